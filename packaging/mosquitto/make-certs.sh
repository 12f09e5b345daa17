#!/usr/bin/env bash
# Make a private CA and a TLS server certificate for the site's MQTT broker (openssl); or, with
# --client, a client certificate from that CA for a device that logs in with it.
#
#   packaging/mosquitto/make-certs.sh [--out DIR] [--days N] [--force-ca] [NAME|IP ...]
#   packaging/mosquitto/make-certs.sh [--out DIR] [--days N] --client NAME
#
# Writes into DIR (default packaging/mosquitto/certs, git-ignored):
#   ca.key ca.crt           the site CA; keep ca.key offline, give ca.crt to every agent (mqtt.ca_file)
#   server.key server.crt   the broker's certificate, signed by the CA
#   NAME.key NAME.crt       with --client: a client certificate whose common name is NAME, the
#                           broker user of a device made with `millstream-hub devices add NAME
#                           --certificate` (docs/deploy.md); give both files to that device only
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
client=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --force-ca) force_ca=1; shift ;;
    --client) client=$2; shift 2 ;;
    -h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "make-certs: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
command -v openssl >/dev/null || { echo "make-certs: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
cd "$out"

if [ -n "$client" ]; then
  if [[ ! "$client" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
    echo "make-certs: --client $client: a broker user name is 1-64 letters, digits, _ or -" >&2
    exit 2
  fi
  if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
    echo "make-certs: no CA in $out (ca.key, ca.crt): run make-certs.sh without --client first," >&2
    echo "  or pass --out with the folder that holds the site CA" >&2
    exit 1
  fi
  ext=$(mktemp)
  trap 'rm -f "$ext" "$client.csr"' EXIT
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth" > "$ext"
  openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$client.key" -out "$client.csr" \
    -subj "/O=Millstream/CN=$client" 2>/dev/null
  openssl x509 -req -in "$client.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$ext" -out "$client.crt" 2>/dev/null
  chmod 0644 "$client.crt"
  echo "make-certs: client certificate $out/$client.crt (CN=$client, valid $days days)"
  echo "  and its key $out/$client.key: give both, and ca.crt, to that device only"
  exit 0
fi

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
