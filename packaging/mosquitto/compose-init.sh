#!/bin/sh
# One-shot set-up of the broker's secrets for docker-compose.yml (service `mosquitto-init`).
#
# Runs as root in the eclipse-mosquitto image before the broker starts, on every `up`:
#   - copies the TLS certificates (made by make-certs.sh, mounted at /certs) and the ACL into the
#     `mosquitto-secrets` volume, owned by the broker's user with private permissions (the broker
#     drops root before it reads them, and bind-mounted host files rarely have the right owner);
#   - adds or updates the hub's and the simulated agent's passwords from .env in the password file,
#     keeping any other users added since (`mosquitto_passwd /mosquitto/secrets/passwd NAME`);
#   - gives the healthcheck user a random password of its own.
# The three paths can be moved with INIT_CERTS, INIT_SECRETS and INIT_ACL (tests/packaging runs
# this script against a real broker outside a container).
set -eu

src=${INIT_CERTS:-/certs}
dst=${INIT_SECRETS:-/mosquitto/secrets}
acl=${INIT_ACL:-/mosquitto/config/millstream.acl}

for f in ca.crt server.crt server.key; do
  if [ ! -s "$src/$f" ]; then
    echo "mosquitto-init: $src/$f is missing." >&2
    echo "  Make the broker's certificates first: packaging/mosquitto/make-certs.sh" >&2
    echo "  (or point CERTS_DIR in .env at yours), then run docker compose up again." >&2
    exit 1
  fi
done

mkdir -p "$dst"
cp "$src/ca.crt" "$src/server.crt" "$src/server.key" "$dst/"
cp "$acl" "$dst/acl"

passwd="$dst/passwd"
[ -f "$passwd" ] || : > "$passwd"
# The broker refuses a world-readable password file in future versions and warns today.
chmod 0600 "$passwd"
mosquitto_passwd -b "$passwd" hub "$MQTT_HUB_PASSWORD"
mosquitto_passwd -b "$passwd" sim-line-pc "$MQTT_AGENT_PASSWORD"
health=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
mosquitto_passwd -b "$passwd" healthcheck "$health"
printf '%s\n' "$health" > "$dst/healthcheck.pw"

# The broker starts as root and drops to user mosquitto before it reads these files.
[ "$(id -u)" -ne 0 ] || chown -R mosquitto:mosquitto "$dst"
chmod 0700 "$dst"
chmod 0600 "$dst"/*
chmod 0644 "$dst/ca.crt" "$dst/server.crt"
echo "mosquitto-init: certificates, ACL and passwords ready"
