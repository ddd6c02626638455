#!/usr/bin/env bash
# Installs the MQTT brokers the publisher's end-to-end tests run against besides mosquitto
# (crates/testrig/src/broker.rs). Idempotent; run by tests/setup.
#   aedes 1.2.0 (npm, MQTT 3.1.1 + WebSocket): npm ci in tests/peers/node (package-lock.json)
#   amqtt 0.12.1 (PyPI, MQTT 3.1.1 + WebSocket): a venv in tests/peers/amqtt, pinned by
#     tests/peers/amqtt-requirements.txt
#   rmqttd 0.24.0 (crates.io, MQTT 5) only with FIELDBRIDGE_SETUP_RMQTT=1: a release build of
#     ~700 crates (cargo install into tests/peers/rmqtt), far longer than the whole CI run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
peers=$top/tests/peers

node_dir=$peers/node
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
   ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.src" 2>/dev/null; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json.src"
fi

amqtt=$peers/amqtt
req=$peers/amqtt-requirements.txt
if ! cmp -s "$req" "$amqtt/.requirements.txt" 2>/dev/null; then
  py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3)
  [ -x "$amqtt/bin/python" ] || "$py" -m venv "$amqtt"
  "$amqtt/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$amqtt/.requirements.txt"
fi

if [ "${FIELDBRIDGE_SETUP_RMQTT:-0}" = 1 ] && [ ! -x "$peers/rmqtt/bin/rmqttd" ]; then
  echo "tests/setup: building rmqttd 0.24.0 (long)"
  nice cargo install rmqttd --version 0.24.0 --locked --root "$peers/rmqtt"
fi
echo "brokers ok: aedes $(node -p 'require("'"$node_dir"'/node_modules/aedes/package.json").version'), amqtt $("$amqtt/bin/amqtt" --version 2>/dev/null | tail -1)"
