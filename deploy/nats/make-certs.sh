#!/bin/sh
# Makes a private CA and one certificate for the NATS servers (client and route TLS) with openssl.
#   deploy/nats/make-certs.sh [out-dir] [extra-name-or-ip ...]
# out-dir defaults to deploy/nats/secrets. The certificate is valid for nats, nats-1..3,
# localhost, 127.0.0.1 and every extra name or IP given (the names clients and routes dial).
# Clients verify the servers with ca.pem (meshd --nats-tls-ca ca.pem). Keys are mode 0600;
# ca.key stays with whoever makes certificates (it need not be on any server).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/secrets"}
[ $# -gt 0 ] && shift
days=${MESH_CERT_DAYS:-825}

if [ -e "$out/server.pem" ] && [ "${FORCE:-}" != 1 ]; then
  echo "make-certs: $out/server.pem exists; set FORCE=1 to make new certificates" >&2
  exit 1
fi
umask 077
mkdir -p "$out"
chmod 0700 "$out"

san="DNS:nats,DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1"
for n in "$@"; do
  case "$n" in
    *[!0-9.]*) case "$n" in *:*) san="$san,IP:$n" ;; *) san="$san,DNS:$n" ;; esac ;;
    *) san="$san,IP:$n" ;;
  esac
done

key_args="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $key_args -days "$days" -subj "/CN=agent-mesh NATS CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
# shellcheck disable=SC2086
openssl req $key_args -subj "/CN=agent-mesh NATS server" \
  -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
cat > "$out/server.ext" <<EXT
subjectAltName=$san
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
EXT
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
  -days "$days" -extfile "$out/server.ext" -out "$out/server.pem" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"
chmod 0600 "$out/ca.key" "$out/server.key"
chmod 0644 "$out/ca.pem" "$out/server.pem"
echo "make-certs: CA $out/ca.pem, server certificate $out/server.pem for $san"
