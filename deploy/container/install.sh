#!/bin/sh
# The container image's install steps (deploy/container/Dockerfile), also run by CI in a fresh
# virtualenv (tests/test_container.py): a wheel built from the source tree SRC, installed with
# the EXTRAS named into a new virtualenv DEST; the build tools leave with it.
#   install.sh SRC DEST [EXTRAS]     e.g. install.sh . /opt/devstral-proxy redis,jwt,otel
set -eu
src=$1
dest=$2
extras=${3:-}
wheels=$(mktemp -d)
python3 -m venv "$dest"
"$dest/bin/pip" install --no-cache-dir --quiet --upgrade pip build
"$dest/bin/python" -m build --wheel --outdir "$wheels" "$src" >/dev/null
wheel=$(ls "$wheels"/devstral_proxy-*.whl)
"$dest/bin/pip" install --no-cache-dir --quiet "$wheel${extras:+[$extras]}"
"$dest/bin/pip" uninstall --yes --quiet build pyproject_hooks
rm -rf "$wheels"
"$dest/bin/devstral-proxy" --version
