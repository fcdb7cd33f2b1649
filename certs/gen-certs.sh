#!/usr/bin/env bash
# Regenerates the development TLS material in this directory:
#   ca.pem / ca.key          a self-signed development CA
#   server.pem / server.key  a server certificate signed by it, valid for localhost and 127.0.0.1
# Development only: the private keys are public. Use your own certificates in production.
set -euo pipefail
cd "$(dirname "$0")"
days=3650
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -subj "/CN=KalamDB Development CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
  -keyout server.key -out server.csr
cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days "$days" -sha256 -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
chmod 600 server.key ca.key
echo "wrote $(pwd)/{ca.pem,ca.key,server.pem,server.key}"
