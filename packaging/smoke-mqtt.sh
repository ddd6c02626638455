#!/usr/bin/env bash
# End-to-end smoke test of a (cross-built) fieldbridge binary: its mqtt-client, run under
# qemu-user, delivers a value written to the tag bus to a mosquitto broker on this machine.
#   packaging/smoke-mqtt.sh "qemu-arm-static -cpu cortex-a7" target/ipk/fieldbridge-armv7-unknown-linux-musleabihf
# (QEMU may be "" for a host binary.) Starts redis-server and mosquitto on free 127.0.0.1 ports
# and stops everything it started. Exit 0: delivered; 1: failed; 3: skipped because this binary's
# mqtt-client applet is not built yet (the stub says "not part of this build").
set -euo pipefail
qemu=$1 bin=$2
for p in redis-server mosquitto mosquitto_sub python3; do
  command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || { echo "smoke-mqtt: $p missing (tests/setup installs it)" >&2; exit 1; }
done
PATH=$PATH:/usr/sbin
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # bounded: 100 x 0.1 s
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "smoke-mqtt: nothing listens on port $1" >&2; return 1
}
rport=$(free_port) mport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 & pids+=($!)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mport" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
wait_port "$rport"; wait_port "$mport"

cat >"$work/config.json" <<JSON
{
  "redis_url": "redis://127.0.0.1:$rport",
  "devices": [
    {"name": "Broker", "device_alias": "cloud", "protocol": "mqtt", "ip": "127.0.0.1", "port": $mport,
     "mqtt_qos": 1, "enable_threshold": 0, "client_id": "fieldbridge-smoke"},
    {"name": "RTU", "device_alias": "rtu1", "enable": 0, "protocol": "iec104-master", "ip": "127.0.0.1",
     "port": 2404, "asdu_address": 1}
  ],
  "signals": [
    {"signal_name": "Value", "device_alias": "rtu1", "signal_alias": "v1", "info_address": 100, "type_id": "M_ME_NC_1"},
    {"signal_name": "Value up", "device_alias": "cloud", "signal_alias": "v1", "source_device_alias": "rtu1",
     "source_signal_alias": "v1", "topic": "smoke/v1"}
  ]
}
JSON
# shellcheck disable=SC2086 # $qemu is a command with arguments
$qemu "$bin" config validate "$work/config.json"

# The tag bus first: the binary writes and reads Redis (tokio networking under qemu).
# shellcheck disable=SC2086
$qemu "$bin" tag -c "$work/config.json" set tag/rtu1/check/in 41.5 >/dev/null
# shellcheck disable=SC2086
got=$($qemu "$bin" tag -c "$work/config.json" get tag/rtu1/check/in)
case $got in 41.5,*) echo "smoke-mqtt: tag bus ok: tag/rtu1/check/in = $got" ;;
  *) echo "smoke-mqtt: tag get returned '$got'" >&2; exit 1 ;; esac

mosquitto_sub -h 127.0.0.1 -p "$mport" -t smoke/v1 -C 1 -W 60 >"$work/received" 2>&1 & sub=$!; pids+=("$sub")
# shellcheck disable=SC2086
$qemu "$bin" mqtt-client -c "$work/config.json" >"$work/client.log" 2>&1 & client=$!; pids+=("$client")
sleep 3
if ! kill -0 "$client" 2>/dev/null; then
  if grep -q 'not part of this build' "$work/client.log"; then
    echo "smoke-mqtt: SKIPPED: the mqtt-client applet is not built yet"; exit 3
  fi
  echo "smoke-mqtt: mqtt-client exited:" >&2; cat "$work/client.log" >&2; exit 1
fi
# Write a value until it arrives (bounded: 20 x 2 s; a consumer group may start at new entries).
for _ in $(seq 20); do
  # shellcheck disable=SC2086
  $qemu "$bin" tag -c "$work/config.json" set tag/rtu1/v1/in 42.5 >/dev/null
  kill -0 "$sub" 2>/dev/null || break
  sleep 2
done
wait "$sub" || true
if grep -q '^42.5,' "$work/received"; then
  echo "smoke-mqtt: delivered: smoke/v1 $(cat "$work/received")"
else
  echo "smoke-mqtt: FAILED: nothing on smoke/v1; mqtt-client log:" >&2; tail -n 30 "$work/client.log" >&2; exit 1
fi
