#!/bin/sh
# The broker pod's init container (templates/mosquitto-statefulset.yaml), on every start.
#
# Keeps the broker's users in Mosquitto's dynamic security plugin, like
# packaging/mosquitto/compose-init.sh does for docker compose: on the first start it makes the
# plugin's file (on the broker's volume) with the hub as the plugin's admin; on every start it runs
# a broker of its own for a moment, on a loopback port, to set the hub's password from its Secret,
# give the readiness probe's user a fresh random one (written to an emptyDir the broker container
# shares) and give both their roles (dynsec-seed.txt). Identities made since with
# `millstream-hub devices add` / `agents add` are kept.
set -eu

# INIT_* move the paths and the port (tests/packaging/test_helm.py runs it outside a pod).
data=${INIT_DATA:-/mosquitto/data}
run=${INIT_RUN:-/mosquitto/run}
seed=${INIT_SEED:-/mosquitto/config/dynsec-seed.txt}
plugin=${INIT_PLUGIN:-/usr/lib/mosquitto_dynamic_security.so}
port=${INIT_PORT:-1884}
# Debian keeps the broker in /usr/sbin, which a non-login PATH may lack.
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ -z "${MQTT_HUB_PASSWORD:-}" ]; then
  echo "mosquitto-init: MQTT_HUB_PASSWORD is empty: check the Secret named by" >&2
  echo "  mqtt.hubPassword.secretName and its key mqtt.hubPassword.key (docs/kubernetes.md)." >&2
  exit 1
fi

dynsec="$data/dynamic-security.json"
if [ ! -s "$dynsec" ]; then
  mosquitto_ctrl dynsec init "$dynsec" hub "$MQTT_HUB_PASSWORD" >/dev/null
  echo "mosquitto-init: made $dynsec with the hub as the plugin's admin"
fi
# In the pod this runs as the broker's user; as root (a test outside a pod), hand the file to
# the user the broker drops to.
[ "$(id -u)" -ne 0 ] || chown mosquitto:mosquitto "$data" "$dynsec"
chmod 0600 "$dynsec"

conf=$(mktemp)
cat > "$conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
persistence false
plugin $plugin
plugin_opt_config_file $dynsec
CONF
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
    echo "  If the hub's password changed since the first start, set the new one in the broker" >&2
    echo "  (kubectl exec … mosquitto_ctrl -u hub dynsec setClientPassword hub) or put the old" >&2
    echo "  one back in the Secret." >&2
    exit 1
  fi
  sleep 0.1
done

health=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
if holds healthcheck "Username: *healthcheck"; then
  ctrl setClientPassword healthcheck "$health" >/dev/null
else
  ctrl createClient healthcheck -p "$health" >/dev/null
fi
umask 077
printf '%s\n' "$health" > "$run/healthcheck.pw"

set -f  # the seed's topics hold # and +: never glob them
while read -r line; do
  case "$line" in '#'* | '') continue ;; esac
  # shellcheck disable=SC2086 # one command per line, split into its words on purpose
  ctrl $line >/dev/null
done < "$seed"
set +f
for pair in hub:millstream-hub healthcheck:healthcheck; do
  if ! holds "${pair%%:*}" "${pair#*:}"; then
    echo "mosquitto-init: the broker user ${pair%%:*} did not get its role ${pair#*:}" >&2
    exit 1
  fi
done
echo "mosquitto-init: broker users ready (dynamic security)"
