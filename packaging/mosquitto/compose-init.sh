#!/bin/sh
# One-shot set-up of the broker for docker-compose.yml (service `mosquitto-init`).
#
# Runs as root in the eclipse-mosquitto image before the broker starts, on every `up`:
#   - copies the TLS certificates (made by make-certs.sh, mounted at /certs) into the
#     `mosquitto-secrets` volume, owned by the broker's user with private permissions (the broker
#     drops root before it reads them, and bind-mounted host files rarely have the right owner);
#   - keeps the broker's users in Mosquitto's dynamic security plugin (docs/deploy.md "Broker
#     identities"): on the first start it makes the plugin's file with the hub as its admin, and
#     on every start it runs a broker of its own for a moment, on a loopback port, to set the
#     hub's and the simulated agent's passwords from .env, give the healthcheck user a random
#     one, and give each its role (dynsec-seed.txt, generated from the hub's code). Identities
#     made since with `millstream-hub devices add` / `agents add` are kept.
# Paths and the port can be moved with INIT_CERTS, INIT_SECRETS, INIT_DATA, INIT_SEED,
# INIT_PLUGIN and INIT_PORT (tests/packaging runs this script against a real broker outside a
# container).
set -eu

src=${INIT_CERTS:-/certs}
dst=${INIT_SECRETS:-/mosquitto/secrets}
data=${INIT_DATA:-/mosquitto/data}
seed=${INIT_SEED:-/mosquitto/config/dynsec-seed.txt}
plugin=${INIT_PLUGIN:-/usr/lib/mosquitto_dynamic_security.so}
port=${INIT_PORT:-1884}
# Debian keeps the broker in /usr/sbin, which a non-login PATH may lack.
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

for f in ca.crt server.crt server.key; do
  if [ ! -s "$src/$f" ]; then
    echo "mosquitto-init: $src/$f is missing." >&2
    echo "  Make the broker's certificates first: packaging/mosquitto/make-certs.sh" >&2
    echo "  (or point CERTS_DIR in .env at yours), then run docker compose up again." >&2
    exit 1
  fi
done

mkdir -p "$dst" "$data"
cp "$src/ca.crt" "$src/server.crt" "$src/server.key" "$dst/"

dynsec="$data/dynamic-security.json"
if [ ! -s "$dynsec" ]; then
  mosquitto_ctrl dynsec init "$dynsec" hub "$MQTT_HUB_PASSWORD" >/dev/null
  echo "mosquitto-init: made $dynsec with the hub as the plugin's admin"
fi
# The broker starts as root and drops to user mosquitto; the plugin rewrites this file (through
# a new file in the same folder).
[ "$(id -u)" -ne 0 ] || chown mosquitto:mosquitto "$data" "$dynsec"
chmod 0600 "$dynsec"

# A broker of our own, on loopback only, just long enough to seed its users.
conf=$(mktemp)
cat > "$conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
persistence false
plugin $plugin
plugin_opt_config_file $dynsec
CONF
chmod 0644 "$conf"
"$mosquitto" -c "$conf" >"$conf.log" 2>&1 &
broker=$!
stop_broker() {
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
  rm -f "$conf" "$conf.log"
}
trap stop_broker EXIT

# mosquitto_ctrl exits 0 even when the broker refuses it: read what it prints instead.
ctrl() { mosquitto_ctrl -h 127.0.0.1 -p "$port" -u hub -P "$MQTT_HUB_PASSWORD" dynsec "$@" 2>&1; }
holds() { ctrl getClient "$1" | grep -q "$2"; }

tries=0
until holds hub "Username: *hub"; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$broker" 2>/dev/null; then
    echo "mosquitto-init: the seeding broker did not take the hub's login; its log:" >&2
    cat "$conf.log" >&2
    echo "  If MQTT_HUB_PASSWORD changed since the first start, set the new one in the broker" >&2
    echo "  (mosquitto_ctrl ... dynsec setClientPassword hub) or put the old one back in .env;" >&2
    echo "  \"not readable\" above: $data must be reachable by the broker's user." >&2
    exit 1
  fi
  sleep 0.1
done

# Passwords from .env win on every start (as the password file did); a new user is made.
user() {
  if holds "$1" "Username: *$1"; then
    ctrl setClientPassword "$1" "$2" >/dev/null
  else
    ctrl createClient "$1" -p "$2" >/dev/null
  fi
}
user sim-line-pc "$MQTT_AGENT_PASSWORD"
health=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
user healthcheck "$health"
printf '%s\n' "$health" > "$dst/healthcheck.pw"

# Roles, their ACLs and who holds them; "already exists" from an earlier start is fine.
set -f  # the seed's topics hold # and +: never glob them
while read -r line; do
  case "$line" in '#'* | '') continue ;; esac
  # shellcheck disable=SC2086 # one command per line, split into its words on purpose
  ctrl $line >/dev/null
done < "$seed"
set +f
# What counts is what each holds afterwards (the broker kicks the hub when its roles change).
for pair in hub:millstream-hub sim-line-pc:ms-agent-sim-line-pc healthcheck:healthcheck; do
  if ! holds "${pair%%:*}" "${pair#*:}"; then
    echo "mosquitto-init: the broker user ${pair%%:*} did not get its role ${pair#*:}" >&2
    exit 1
  fi
done

[ "$(id -u)" -ne 0 ] || chown -R mosquitto:mosquitto "$dst"
chmod 0700 "$dst"
chmod 0600 "$dst"/*
chmod 0644 "$dst/ca.crt" "$dst/server.crt"
echo "mosquitto-init: certificates and broker users ready (dynamic security)"
