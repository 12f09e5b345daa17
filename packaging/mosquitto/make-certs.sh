#!/usr/bin/env bash
# Make a private CA and a TLS server certificate for the site's MQTT broker (openssl).
#
#   packaging/mosquitto/make-certs.sh [--out DIR] [--days N] [--force-ca] [NAME|IP ...]
#
# Writes into DIR (default packaging/mosquitto/certs, git-ignored):
#   ca.key ca.crt           the site CA; keep ca.key offline, give ca.crt to every agent (mqtt.ca_file)
#   server.key server.crt   the broker's certificate, signed by the CA
# The server certificate names `mosquitto` (its host name in docker-compose.yml), `localhost` and
# 127.0.0.1, plus every NAME or IP given: the names the line PCs use to reach the broker, e.g.
#   packaging/mosquitto/make-certs.sh broker.plant-a.example 10.20.0.5
# An existing CA is reused (agents already trust it) unless --force-ca; the server certificate is
# always made anew, so run it again to add a name or renew.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/certs"
days=825        # the longest validity clients such as Apple's accept for TLS server certificates
ca_days=3650
force_ca=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --force-ca) force_ca=1; shift ;;
    -h | --help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "make-certs: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
command -v openssl >/dev/null || { echo "make-certs: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
cd "$out"

if [ "$force_ca" -eq 1 ] || [ ! -s ca.key ] || [ ! -s ca.crt ]; then
  echo "make-certs: new CA in $out/ca.crt (valid $ca_days days)"
  openssl req -x509 -new -nodes -newkey rsa:3072 -sha256 -days "$ca_days" \
    -keyout ca.key -out ca.crt -subj "/O=Millstream/CN=Millstream site CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
else
  echo "make-certs: reusing the CA in $out/ca.crt"
fi

san="DNS:mosquitto,DNS:localhost,IP:127.0.0.1"
for name in "${names[@]}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
done

ext=$(mktemp)
trap 'rm -f "$ext" server.csr' EXIT
cat > "$ext" <<CONF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
CONF
openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout server.key -out server.csr \
  -subj "/O=Millstream/CN=${names[0]:-mosquitto}" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
  -days "$days" -extfile "$ext" -out server.crt 2>/dev/null
chmod 0644 ca.crt server.crt
echo "make-certs: server certificate $out/server.crt for $san (valid $days days)"
