#!/usr/bin/env bash
# Creates the Python venv with the real protocol peers the integration tests talk to:
# c104 (a lib60870-based IEC 60870-5-104 stack) and pymodbus. Idempotent.
#   usage: tests/peers/setup-venv.sh [VENV_DIR]   (default: <repo>/.venv)
# Tests find the interpreter through FIELDBRIDGE_PEER_PYTHON, else <repo>/.venv/bin/python.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$top/.venv}
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  'c104==2.2.1' 'pymodbus[serial]>=3.10,<4' 'paho-mqtt>=2,<3' 'redis>=5' \
  'protobuf==7.36.2' 'grpcio-tools==1.85.1'
"$venv/bin/python" -c 'import c104, pymodbus, google.protobuf, grpc_tools; print("peers ok: c104", c104.__version__ if hasattr(c104, "__version__") else "2.2.1", "pymodbus", pymodbus.__version__)'
