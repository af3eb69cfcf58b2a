#!/bin/sh
# kaaval-certs.sh — a small certificate authority for kaaval's mutual TLS, with the openssl
# command line only. For small sites, the demo and the tests; a site with its own PKI uses
# that instead (any CA works: agents need a clientAuth certificate whose subject CN is the
# agent id, the collector a serverAuth certificate naming its host name or IP address).
#
#   kaaval-certs.sh [-d DIR] [--days N] ca                   new CA: DIR/ca.crt, DIR/ca.key
#   kaaval-certs.sh [-d DIR] [--days N] agent ID             DIR/ID.crt, DIR/ID.key (CN=ID)
#   kaaval-certs.sh [-d DIR] [--days N] collector NAME...    DIR/collector.crt, .key; each
#                                                            NAME (host name or IP address)
#                                                            becomes a subjectAltName
#
# DIR defaults to the current folder. Validity: the CA 10 years, the others 2 years (825
# days) unless --days says otherwise. Keys are ECDSA P-256, written with mode 0600; the
# CA key signs every certificate, so keep it off the agents and the collector (they need
# only ca.crt and their own pair). An existing file is never overwritten. Each CA's name
# carries a random part, so two CAs made the same day are told apart in error messages.
set -eu

dir=.
days=""
usage() {
    sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "kaaval-certs.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        -d) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
        --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
        -h | --help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
cmd=$1
shift
command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"
mkdir -p "$dir"

no_clobber() {
    for f in "$@"; do
        [ ! -e "$f" ] || die "$f exists; not overwriting it (remove it first to replace it)"
    done
}

new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) \
        || die "cannot make a key in $1"
    chmod 600 "$1"
}

# sign NAME SUBJECT DAYS EXTENSIONS: DIR/NAME.csr from DIR/NAME.key, signed by the CA.
sign() {
    ext=$(mktemp)
    printf '%s\n' "$4" >"$ext"
    openssl req -new -key "$dir/$1.key" -subj "$2" -out "$dir/$1.csr" \
        && openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days "$3" -sha256 -extfile "$ext" -out "$dir/$1.crt" 2>/dev/null
    rc=$?
    rm -f "$ext" "$dir/$1.csr"
    [ "$rc" -eq 0 ] || die "openssl could not sign $dir/$1.crt"
    chmod 644 "$dir/$1.crt"
}

need_ca() {
    [ -f "$dir/ca.crt" ] && [ -f "$dir/ca.key" ] || die "no CA in $dir: run '$0 -d $dir ca' first"
}

# Subject names: a CN carries the agent id as text; '/' and '\' must not break -subj.
check_name() {
    case "$1" in
        '' | */* | *\\* | *,* | *=*) die "'$1' cannot be used as a certificate name (no / \\ , = and not empty)" ;;
    esac
}

case "$cmd" in
    ca)
        [ $# -eq 0 ] || usage
        no_clobber "$dir/ca.crt" "$dir/ca.key"
        new_key "$dir/ca.key"
        openssl req -x509 -new -key "$dir/ca.key" -subj "/O=kaaval/CN=kaaval CA $(date +%Y-%m-%d) $(openssl rand -hex 4)" \
            -days "${days:-3650}" -sha256 \
            -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt" \
            || die "cannot make the CA certificate"
        chmod 644 "$dir/ca.crt"
        echo "made CA: $dir/ca.crt (certificate, give to every agent and the collector)"
        echo "         $dir/ca.key (private key, mode 0600: keep it here, nowhere else)"
        ;;
    agent)
        [ $# -eq 1 ] || usage
        check_name "$1"
        need_ca
        no_clobber "$dir/$1.crt" "$dir/$1.key"
        new_key "$dir/$1.key"
        sign "$1" "/O=kaaval/CN=$1" "${days:-825}" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
        echo "made agent '$1': $dir/$1.crt, $dir/$1.key (mode 0600)"
        echo "  agent.yaml: id: $1"
        echo "              tls: {ca: ca.crt, cert: $1.crt, key: $1.key}"
        ;;
    collector)
        [ $# -ge 1 ] || usage
        need_ca
        no_clobber "$dir/collector.crt" "$dir/collector.key"
        san=""
        for n in "$@"; do
            check_name "$n"
            # An IPv4 or IPv6 address becomes an IP name, anything else a DNS name.
            if printf '%s' "$n" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$|:'; then
                san="$san${san:+,}IP:$n"
            else
                san="$san${san:+,}DNS:$n"
            fi
        done
        new_key "$dir/collector.key"
        sign collector "/O=kaaval/CN=$1" "${days:-825}" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
        echo "made collector: $dir/collector.crt, $dir/collector.key (mode 0600) for $san"
        echo "  collector.yaml: tls: {ca: ca.crt, cert: collector.crt, key: collector.key}"
        ;;
    *) usage ;;
esac
