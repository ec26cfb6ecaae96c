#!/usr/bin/env bash
# pki.sh DIR writes the local cluster's certificates into DIR: a CA, the
# apiserver's serving certificate (127.0.0.1), one client certificate in
# system:masters used by every component and by the tests, and the service
# account signing key. They are made fresh on every up and valid for a week.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
days=7
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days "$days" -subj /CN=goferfs-local-ca 2>/dev/null

# cert NAME SUBJECT EXTENSIONS signs NAME.crt with the CA.
cert() {
	openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
		-out "$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
	rm -f "$1.csr"
}
cert apiserver /CN=kube-apiserver \
	"subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
cert admin /O=system:masters/CN=goferfs-local-admin \
	"keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key
