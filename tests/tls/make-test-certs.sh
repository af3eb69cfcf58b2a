#!/bin/sh
# make-test-certs.sh DIR — the certificates the TLS tests use, made fresh at test time (no
# key is ever committed): a CA with packaging/kaaval-certs.sh and, from it, a collector for
# 127.0.0.1 and localhost and agents a1 and a2; another CA with its own agent a1
# (other/a1.*); and an agent a1 from the right CA whose validity ended in 2020
# (expired/a1.*), made with `openssl ca` and explicit dates (OpenSSL 3.0's `x509 -req` has
# no way to set a start date).
set -eu
out=$1
certs=$(dirname "$0")/../../packaging/kaaval-certs.sh
rm -rf "$out"
mkdir -p "$out/other" "$out/expired"
sh "$certs" -d "$out" ca >/dev/null
sh "$certs" -d "$out" collector 127.0.0.1 localhost >/dev/null
sh "$certs" -d "$out" agent a1 >/dev/null
sh "$certs" -d "$out" agent a2 >/dev/null
sh "$certs" -d "$out/other" ca >/dev/null
sh "$certs" -d "$out/other" agent a1 >/dev/null

e=$out/expired
mkdir -p "$e/db"
: >"$e/db/index.txt"
cat >"$e/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $e/db/index.txt
new_certs_dir = $e/db
serial = $e/db/serial
default_md = sha256
policy = anything
copy_extensions = none
x509_extensions = agent
unique_subject = no
[anything]
CN = supplied
O = optional
[agent]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
echo 1000 >"$e/db/serial"
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$e/a1.key" 2>/dev/null)
openssl req -new -key "$e/a1.key" -subj "/O=kaaval/CN=a1" -out "$e/a1.csr"
openssl ca -batch -config "$e/ca.cnf" -cert "$out/ca.crt" -keyfile "$out/ca.key" \
    -startdate 20200101000000Z -enddate 20200102000000Z -in "$e/a1.csr" -out "$e/a1.crt" \
    -notext 2>/dev/null
rm -rf "$e/db" "$e/a1.csr" "$e/ca.cnf"
echo "test certificates in $out"
