#!/bin/sh
# Makes the token issuer's key pair for the compose stack, once:
#
#   keys/dev-issuer.key  the private key (PKCS #8 PEM, mode 0600); stays on
#                        this machine, `elevate token --data-dir keys` signs
#                        with it
#   keys/dev-issuer.pem  its public key, mounted into the elevate replicas
#
# Needs openssl. An existing private key is kept.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p keys
if [ -e keys/dev-issuer.key ]; then
	echo "keys/dev-issuer.key exists; keeping it" >&2
else
	openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out keys/dev-issuer.key
fi
openssl pkey -in keys/dev-issuer.key -pubout -out keys/dev-issuer.pem
# The replicas run as user 65532: the public key must be readable by all.
chmod 0644 keys/dev-issuer.pem
