#!/usr/bin/env bash
# Creates (once) a virtualenv with the Python `websockets` package, the peer of
# the ws-std interop tests, and prints the path of its python on the last line.
#
#   WS_INTEROP_VENV   where to put the virtualenv (default: <workspace>/target/interop-venv)
#
# Fails (non-zero) when the virtualenv cannot be made or pip cannot install.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${WS_INTEROP_VENV:-$here/../../../../target/interop-venv}"

if ! "$venv/bin/python" -c 'import websockets.sync.server, websockets.sync.client' >/dev/null 2>&1; then
    echo "creating $venv and installing websockets" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'websockets>=13,<18' >&2
fi
"$venv/bin/python" -c 'import websockets; print("websockets", websockets.__version__)' >&2
echo "$venv/bin/python"
