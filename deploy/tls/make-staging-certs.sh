#!/bin/sh
# Staging certificates for TLS to NATS and Postgres: a CA, and a server
# certificate for each, for the names docker-compose.yml and deploy/k8s use.
# In production use your organisation's CA instead; the file names are the same.
#
#   deploy/tls/make-staging-certs.sh tls       # then KAIKU_TLS_DIR=./tls
#
# Writes DIR/ca.crt (every client trusts it), ca.key (keep it offline),
# nats.crt + nats.key and postgres.crt + postgres.key. Keys are mode 0600.
# KAIKU_K8S_NAMESPACE (default kaikukortti) names the cluster's DNS names.
set -eu
dir=${1:?usage: make-staging-certs.sh DIR}
ns=${KAIKU_K8S_NAMESPACE:-kaikukortti}
mkdir -p "$dir"
cd "$dir"
if [ -e ca.key ]; then
  echo "make-staging-certs: $dir/ca.key exists; not overwriting it" >&2
  exit 1
fi
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $ec -days 825 -sha256 -subj "/CN=Kaikukortti staging CA" \
  -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

leaf() {  # NAME SUBJECT-ALT-NAMES
  # shellcheck disable=SC2086
  openssl req $ec -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=$2" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 397 \
    -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
# NATS: compose's service name, the cluster's client Service and each server's
# route name (routes are TLS too, the servers verify each other), and the host.
leaf nats "DNS:nats,DNS:nats.$ns.svc,DNS:nats.$ns.svc.cluster.local,\
DNS:*.nats-headless.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
leaf postgres "DNS:postgres,DNS:postgres.$ns.svc,DNS:postgres.$ns.svc.cluster.local"
chmod 0644 ca.crt nats.crt postgres.crt
echo "make-staging-certs: wrote $dir/{ca,nats,postgres}.{crt,key}"
