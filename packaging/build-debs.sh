#!/bin/sh
# build-debs.sh — builds kaaval's Debian packages (kaaval-agent, kaaval-collector,
# kaaval-common) from this checkout into OUT_DIR, out of tree: the committed tree
# (git archive of HEAD, or of the commit given) is unpacked in a temp folder, where
# dpkg-buildpackage writes its build tree and, one level up, the .debs; the checkout stays
# clean. Tests are not built (DEB_BUILD_OPTIONS=nocheck), and the compiler runs niced, two
# jobs at once, unless DEB_BUILD_OPTIONS says otherwise.
#
#   packaging/build-debs.sh OUT_DIR [COMMIT]     (COMMIT: default HEAD)
#
# Needs: dpkg-dev, debhelper, fakeroot (packaging/install-deps.sh) and the build
# dependencies of debian/control. Uncommitted changes are not in the packages: commit first.
set -eu

usage() {
    sed -n '9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
rev=${2:-HEAD}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in git dpkg-buildpackage dh fakeroot; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "build-debs.sh: '$t' not found: run packaging/install-deps.sh" >&2
        exit 1
    }
done
git -C "$here" rev-parse --verify -q "$rev^{commit}" >/dev/null || {
    echo "build-debs.sh: '$rev' is not a commit of $here" >&2
    exit 1
}
if [ "$rev" = HEAD ] && [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
    echo "build-debs.sh: note: uncommitted changes in $here are not packaged" >&2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/kaaval-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/kaaval"
git -C "$here" archive --format=tar "$rev" | tar -x -C "$work/kaaval"

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2 nocheck}"
(cd "$work/kaaval" && nice -n 10 dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    echo "build-debs.sh: dpkg-buildpackage failed (last lines above)" >&2
    exit 1
}
for f in "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo; do
    [ -e "$f" ] && cp "$f" "$out/"
done
cp "$work/build.log" "$out/build.log"
ls "$out"/*.deb
