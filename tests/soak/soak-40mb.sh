#!/usr/bin/env bash
# The 64 MB gateway budget, measured: redis-server (the tag bus) and `fieldbridge supervise` with
# every applet of config/example.json run inside a memory cgroup of 40 MB (what a 64 MB WCC Lite
# has left after OpenWrt itself: docs/reliability.md, "The 64 MB budget"), through a broker
# outage at a fixed value rate with the default stream cap. Prints the figures; exit 1 if
# anything in the cgroup was OOM-killed or a process of it died.
#
#   tests/soak/soak-40mb.sh                                  # 10 min outage at 100 values/s
#   SOAK_OUTAGE_S=60 tests/soak/soak-40mb.sh                 # a short run
#
# Not in CI (it takes 12-14 minutes). Needs root (a cgroup), redis-server, redis-cli, mosquitto,
# mosquitto_sub, socat and the Python venv with c104 (tests/setup). Runs the host binary
# (FIELDBRIDGE_BIN, default target/debug/fieldbridge, built if missing): the figures are the
# x86_64 ones; docs/reliability.md says how they carry over to the device.
# Outside the cgroup (they are the field and the cloud): the IEC 104 outstation that sends the
# values (tests/soak/outstation.py, the example's rtu1, CA 1), mosquitto and a subscriber.
# The example's other devices run as on a site whose relay is unreachable: relay2 on a port
# where nothing listens, meter1 on a pty (socat) where no slave answers; the iec104-slave
# listens on a loopback port no SCADA master connects to (its events wait in the stream).
# Settings: SOAK_OUTAGE_S (600), SOAK_RATE (100 values/s), SOAK_MEMORY_LIMIT (40M),
# SOAK_REDIS_MAXMEMORY (the shipped openwrt/fieldbridge/files/redis-tagbus.conf's), SOAK_DRAIN_S (180).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
OUTAGE_S=${SOAK_OUTAGE_S:-600}
RATE=${SOAK_RATE:-100}
LIMIT=${SOAK_MEMORY_LIMIT:-40M}
DRAIN_S=${SOAK_DRAIN_S:-180}
BIN=${FIELDBRIDGE_BIN:-$top/target/debug/fieldbridge}
REDIS_CONF=$top/openwrt/fieldbridge/files/redis-tagbus.conf
PY=$top/.venv/bin/python3
[ -x "$PY" ] || PY=python3
PATH=$PATH:/usr/sbin
die() { echo "soak: $*" >&2; exit 2; }
for p in redis-server redis-cli mosquitto mosquitto_sub socat; do
  command -v "$p" >/dev/null || die "$p missing (tests/setup installs it)"
done
"$PY" -c 'import c104' 2>/dev/null || die "no c104 for $PY (tests/setup makes the venv)"
if [ ! -x "$BIN" ]; then
  (cd "$top" && cargo build -p fieldbridge) || die "cargo build -p fieldbridge failed"
fi

# ---- the cgroup: v2 (memory.max, memory.events) or v1 (memory.limit_in_bytes, oom_control) ----
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
  cgv=2 cg=/sys/fs/cgroup/fbsoak.$$
  mkdir "$cg" || die "cannot create $cg (not root? a read-only cgroup fs?): try systemd-run --scope -p MemoryMax=$LIMIT"
  echo "$LIMIT" > "$cg/memory.max"
  [ ! -f "$cg/memory.swap.max" ] || echo 0 > "$cg/memory.swap.max"
elif [ -d /sys/fs/cgroup/memory ]; then
  # v1: a child of this shell's own memory cgroup, so every limit above it still applies.
  cgv=1 own=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
  cg=/sys/fs/cgroup/memory${own%/}/fbsoak.$$
  mkdir "$cg" || die "cannot create $cg (not root? a read-only cgroup fs?)"
  echo "$LIMIT" > "$cg/memory.limit_in_bytes"
  [ ! -f "$cg/memory.memsw.limit_in_bytes" ] || echo "$LIMIT" > "$cg/memory.memsw.limit_in_bytes" || true
else
  die "no memory cgroup controller in /sys/fs/cgroup (v1 or v2)"
fi
limit_bytes=$(numfmt --from=iec "$LIMIT")

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for _ in $(seq 50); do [ -s "$cg/cgroup.procs" ] || break; sleep 0.1; done
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# in_cgroup CMD...: runs CMD in the cgroup (its children stay there).
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  die "nothing listens on port $1"
}
rport=$(free_port) mport=$(free_port) oport=$(free_port) dead_port=$(free_port) sport=$(free_port)
rcli() { redis-cli -p "$rport" "$@"; }

# ---- the processes ---------------------------------------------------------------------------
# Copies of the binaries, written from inside the cgroup: their page cache (the text the
# processes run) is charged to it as on the device, not to whoever read the files first.
in_cgroup cp "$BIN" "$work/fieldbridge"
in_cgroup cp "$(command -v redis-server)" "$work/redis-server"
maxmemory=${SOAK_REDIS_MAXMEMORY:-$(sed -n 's/^maxmemory  *//p' "$REDIS_CONF")}
in_cgroup "$work/redis-server" "$REDIS_CONF" --port "$rport" --bind 127.0.0.1 --dir "$work" --daemonize no \
  --maxmemory "$maxmemory" >"$work/redis.log" 2>&1 & pids+=($!)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\n' \
  "$mport" "$work" >"$work/mosquitto.conf"
start_broker() { mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & broker=$!; pids+=("$broker"); wait_port "$mport"; }
start_broker
wait_port "$rport"
socat "pty,link=$work/ttyS1,raw,echo=0" "pty,link=$work/ttyS1-slave,raw,echo=0" 2>"$work/socat.log" & pids+=($!)
for _ in $(seq 50); do [ -e "$work/ttyS1" ] && break; sleep 0.1; done
"$PY" "$top/tests/soak/outstation.py" "$oport" "$RATE" >"$work/outstation.log" 2>&1 & outstation=$!; pids+=("$outstation")
wait_port "$oport"

# The example config with this run's ports (the default stream cap: no stream_max_len).
"$PY" - "$top/config/example.json" "$work/config.json" "$rport" "$mport" "$oport" "$dead_port" "$work/ttyS1" "$sport" <<'PY'
import json, sys
src, dst, rport, mport, oport, dead, tty, sport = sys.argv[1:]
c = json.load(open(src))
assert "stream_max_len" not in c
c["redis_url"] = f"redis://127.0.0.1:{rport}"
for d in c["devices"]:
    if d["device_alias"] == "cloud": d["port"] = int(mport)
    if d["device_alias"] == "rtu1": d["port"] = int(oport)
    if d["device_alias"] == "relay2": d["port"] = int(dead)
    if d["protocol"] == "iec104-slave": d["ip"], d["port"] = "127.0.0.1", int(sport)  # no master connects
    if d.get("serial_port"): d["serial_port"] = tty
json.dump(c, open(dst, "w"), indent=1)
PY
"$BIN" config validate "$work/config.json" >/dev/null
mosquitto_sub -h 127.0.0.1 -p "$mport" -t '#' -q 1 -c -i fbsoak-cloud -F '%t' >"$work/received" 2>/dev/null & pids+=($!)
in_cgroup "$work/fieldbridge" supervise -c "$work/config.json" -d info --status-file "$work/status.json" \
  >"$work/supervise.log" 2>&1 & supervisor=$!; pids+=("$supervisor")

# ---- sampling --------------------------------------------------------------------------------
cg_usage() { if [ $cgv = 2 ]; then cat "$cg/memory.current"; else cat "$cg/memory.usage_in_bytes"; fi; }
cg_anon() { if [ $cgv = 2 ]; then awk '$1=="anon"{print $2}' "$cg/memory.stat"; else awk '$1=="rss"{print $2}' "$cg/memory.stat"; fi; }
cg_oom_kills() { if [ $cgv = 2 ]; then awk '$1=="oom_kill"{print $2}' "$cg/memory.events"; else awk '$1=="oom_kill"{print $2}' "$cg/memory.oom_control"; fi; }
cg_peak() { if [ $cgv = 2 ]; then cat "$cg/memory.peak" 2>/dev/null || echo 0; else cat "$cg/memory.max_usage_in_bytes"; fi; }
cg_limit_hits() { if [ $cgv = 2 ]; then awk '$1=="max"{print $2}' "$cg/memory.events"; else cat "$cg/memory.failcnt"; fi; }
declare -A rss_max
peak_anon=0 peak_used=0
mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
sample() { # per process VmRSS (max per name), the cgroup's anon memory, Redis used_memory
  local p name kb anon used
  while read -r p; do
    name=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | awk '{n=$1; sub(".*/","",n); if (n ~ /fieldbridge/) n=$2; print n}')
    kb=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    if [ -z "$name" ] || [ -z "$kb" ]; then continue; fi
    [ "${rss_max[$name]:-0}" -ge "$kb" ] || rss_max[$name]=$kb
  done <"$cg/cgroup.procs"
  anon=$(cg_anon); [ "$peak_anon" -ge "$anon" ] || peak_anon=$anon
  used=$(rcli info memory | tr -d '\r' | sed -n 's/^used_memory://p')
  [ "$peak_used" -ge "${used:-0}" ] || peak_used=$used
}
stream_len() { rcli xlen tagbus:stream | tr -d '\r'; }
report() { # report LABEL
  printf '%6ss %-9s cgroup %5s MB (anon %5s MB)  redis used_memory %5s MB  stream %7s entries  oom_kill %s\n' \
    "$(( $(date +%s) - t0 ))" "$1" "$(mb "$(cg_usage)")" "$(mb "$(cg_anon)")" \
    "$(mb "$(rcli info memory | tr -d '\r' | sed -n 's/^used_memory://p')")" "$(stream_len)" "$(cg_oom_kills)"
}
alive() { kill -0 "$supervisor" 2>/dev/null || { tail -n 20 "$work/supervise.log" >&2; die "the supervisor died"; }; }

t0=$(date +%s)
echo "soak: limit $LIMIT (cgroup v$cgv $cg), outage ${OUTAGE_S}s at ${RATE} values/s, redis maxmemory $maxmemory, binary $BIN"
for _ in $(seq 300); do grep -q CONNECTED "$work/outstation.log" && break; sleep 0.1; done
grep -q CONNECTED "$work/outstation.log" || die "the iec104-master did not connect to the outstation"
for _ in $(seq 30); do sample; sleep 1; done      # 30 s with the broker up
alive; report "broker up"
acked_before=$(rcli hget fieldbridge:stats:mqtt-client cloud.acked | tr -d '\r')
added_before=$(rcli xinfo stream tagbus:stream | tr -d '\r' | awk 'p{print; exit} /^entries-added$/{p=1}')

kill -TERM "$broker"; wait "$broker" 2>/dev/null || true
echo "soak: broker stopped for ${OUTAGE_S}s"
end=$(( $(date +%s) + OUTAGE_S )) next=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
  sample; alive
  if [ "$(date +%s)" -ge "$next" ]; then report outage; next=$(( next + 60 )); fi
  sleep 2
done
report "outage end"
outage_len=$(stream_len)
start_broker
echo "soak: broker back; draining (at most ${DRAIN_S}s)"
deadline=$(( $(date +%s) + DRAIN_S ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  sample; alive
  groups=$(rcli xinfo groups tagbus:stream | tr -d '\r')
  lag=$(awk 'p{print; exit} /^lag$/{p=1}' <<<"$groups")
  pending=$(awk 'p{print; exit} /^pending$/{p=1}' <<<"$groups")
  # caught up: what is left is what the last second brought
  [ "${lag:-$RATE}" -lt "$RATE" ] && [ "${pending:-$RATE}" -lt "$RATE" ] && break
  sleep 2
done
sleep 6   # the publisher writes its counters every 5 s
report drained
kill -TERM "$outstation"; wait "$outstation" 2>/dev/null || true

# ---- figures ---------------------------------------------------------------------------------
stat() { rcli hget fieldbridge:stats:mqtt-client "cloud.$1" | tr -d '\r'; }
added=$(rcli xinfo stream tagbus:stream | tr -d '\r' | awk 'p{print; exit} /^entries-added$/{p=1}')
oom=$(cg_oom_kills)
echo
echo "== soak figures (host $(uname -m) binaries; limit $LIMIT)"
echo "outstation:              $(grep SENT "$work/outstation.log" || echo 'SENT ?')  (transmits accepted, refused)"
echo "tag bus stream:          $added entries added, $(( added - added_before )) during and after the outage; length at the outage end $outage_len"
echo "mqtt-client (cloud):     published $(stat published), acknowledged $(stat acked) ($(( $(stat acked) - acked_before )) after the outage began), dropped by the stream cap (trimmed) $(stat trimmed), refused $(stat rejected), connects $(stat connects), repeats dropped $(stat dropped_threshold)"
echo "subscriber received:     $(wc -l <"$work/received") messages"
echo "cgroup:                  peak $(mb "$(cg_peak)") MB of $(mb "$limit_bytes") MB (page cache included), peak anon $(mb "$peak_anon") MB, limit hits $(cg_limit_hits), oom_kill $oom"
echo "redis used_memory peak:  $(mb "$peak_used") MB (maxmemory $maxmemory)"
printf 'peak RSS per process:    '; for n in "${!rss_max[@]}"; do printf '%s %s MB  ' "$n" "$(awk -v k="${rss_max[$n]}" 'BEGIN{printf "%.1f", k/1024}')"; done; echo
echo "applet restarts:         $("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(", ".join(k + " " + str(v.get("restarts")) + " (" + str(v.get("state")) + ")" for k, v in s["applets"].items()))' "$work/status.json" 2>/dev/null || echo '?')"
if grep -qi 'oom\|out of memory' "$work/redis.log"; then echo "redis log:"; grep -i 'oom\|out of memory' "$work/redis.log" | tail -n 3; fi
[ "$oom" = 0 ] || { echo "soak: FAILED: $oom process(es) OOM-killed" >&2; exit 1; }
echo "soak: ok, nothing OOM-killed"
