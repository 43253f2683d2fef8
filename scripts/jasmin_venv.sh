#!/usr/bin/env bash
# Jasmin 0.11.1 (PyPI) in a virtualenv of its own, .venv/jasmin, for tests/interop: Jasmin
# needs Twisted and setuptools<70 (it imports pkg_resources), which must not leak into the
# project's own venv. Idempotent: does nothing once the stamp is there.
#   - patches jasmin/managers/listeners.py with upstream fix a3635cc1 (not released on PyPI):
#     without it, 0.11.1 never maps submit_sm_resp ids, so no receipt ever reaches an ESME;
#   - copies the AMQP spec files (in the sdist only, not in the wheel) to .venv/jasmin/resource.
set -euo pipefail
cd "$(dirname "$0")/.."
JV=${JASMIN_VENV:-.venv/jasmin}
VERSION=0.11.1
stamp="$JV/.adressat-jasmin-$VERSION-1"
[ -e "$stamp" ] && exit 0
py=${PYTHON:-python3}
echo "creating $JV (jasmin==$VERSION)" >&2
rm -rf "$JV"
"$py" -m venv "$JV"
"$JV/bin/python" -m pip install -q "setuptools<70" wheel
"$JV/bin/python" -m pip install -q "jasmin==$VERSION" "setuptools<70"
pkg=$("$JV/bin/python" -c 'import jasmin, os; print(os.path.dirname(jasmin.__file__))')
sed -i 's/_pdu\.response\./r.response./g' "$pkg/managers/listeners.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$JV/bin/python" -m pip download -q --no-deps --no-binary :all: "jasmin==$VERSION" -d "$tmp"
tar xzf "$tmp/jasmin-$VERSION.tar.gz" -C "$tmp" "jasmin-$VERSION/misc/config/resource"
mkdir -p "$JV/resource"
cp "$tmp/jasmin-$VERSION/misc/config/resource/"*.xml "$JV/resource/"
touch "$stamp"
