#!/bin/sh
# Runs the init script under a real procd and ubusd (OpenWrt's, built on the host) and checks
# what `/etc/init.d/fieldbridge reload` does to the running supervisor:
#   1. start: procd starts `fieldbridge supervise`;
#   2. reload with config.json unchanged: nothing (same pid, no SIGHUP);
#   3. reload after an edit of config.json: SIGHUP, the supervisor re-reads it (same pid);
#   4. reload after writing an unreadable config.json: SIGHUP, the supervisor reports it and
#      keeps running;
#   5. reload after `uci set fieldbridge.main.log_level=debug`: the instance restarts with
#      the new command line (a new pid, `-d debug`);
#   6. reload after `uci set fieldbridge.main.enabled=0`: the supervisor stops.
# Usage: procd-real.sh PROCD_ROOT FIELDBRIDGE_BINARY INIT_SCRIPT UCI_CONFIG JSON_CONFIG OUTDIR
# PROCD_ROOT holds what an OpenWrt root has and the host lacks:
#   usr/sbin/procd usr/sbin/ubusd usr/sbin/uci usr/bin/ubus usr/bin/jshn usr/bin/jsonfilter
#   usr/share/libubox/jshn.sh etc/rc.common lib/functions.sh lib/functions/procd.sh
#   lib/functions/service.sh lib/config/uci.sh, and optionally usr/bin/busybox (else the
#   host's busybox is OpenWrt's /bin/sh).
# Runs as root in private mount and pid namespaces (unshare): /usr, /etc and /run are overlaid
# there only, so the host's procd-less system is untouched. Prints the supervisor's log;
# exits non-zero with a message naming the failed step.
set -eu

if [ "${1:-}" != --inside ]; then
	[ "$#" = 6 ] || { echo "usage: $0 PROCD_ROOT BINARY INIT UCI_CONFIG JSON_CONFIG OUTDIR" >&2; exit 2; }
	exec unshare --mount --pid --fork --mount-proc --propagation private sh "$0" --inside "$@"
fi
shift
root=$1 binary=$2 init=$3 uci_config=$4 json_config=$5 out=$6
mkdir -p "$out"
log=$out/syslog.log

busybox=$root/usr/bin/busybox
[ -x "$busybox" ] || busybox=$(command -v busybox) || { echo "no busybox (OpenWrt's /bin/sh)" >&2; exit 2; }

work=$(mktemp -d)
mount -t tmpfs tmpfs "$work"
stage=$work/stage
mkdir -p "$stage/usr/bin" "$stage/usr/sbin" "$stage/usr/share" "$stage/etc/init.d" \
	"$stage/etc/config" "$stage/etc/fieldbridge" "$stage/etc/rc.d" "$work/etc-up" "$work/etc-work"
# /lib of OpenWrt: on a merged-/usr host (/lib -> usr/lib) it goes into /usr/lib.
if [ -L /lib ]; then libdir=$stage/usr/lib; else libdir=$stage/lib; fi
mkdir -p "$libdir"
ln -s "$busybox" "$stage/usr/bin/sh"
ln -s "$binary" "$stage/usr/bin/fieldbridge"
for p in usr/bin/ubus usr/bin/jshn usr/bin/jsonfilter usr/sbin/uci usr/sbin/procd usr/sbin/ubusd; do
	[ -x "$root/$p" ] || { echo "missing $root/$p" >&2; exit 2; }
	ln -s "$root/$p" "$stage/$p"
done
ln -s "$root/usr/share/libubox" "$stage/usr/share/libubox"
for p in functions.sh functions config; do ln -s "$root/lib/$p" "$libdir/$p"; done
ln -s "$root/usr/lib/libsetlbf.so" "$libdir/libsetlbf.so"
cp "$root/etc/rc.common" "$stage/etc/rc.common"
cp "$init" "$stage/etc/init.d/fieldbridge"
chmod 755 "$stage/etc/init.d/fieldbridge"
cp "$uci_config" "$stage/etc/config/fieldbridge"
cp "$json_config" "$stage/etc/fieldbridge/config.json"

mount -t overlay overlay -o "lowerdir=$stage/usr:/usr" /usr
[ -L /lib ] || mount -t overlay overlay -o "lowerdir=$stage/lib:/lib" /lib
mount -t overlay overlay -o "lowerdir=$stage/etc:/etc,upperdir=$work/etc-up,workdir=$work/etc-work" /etc
mount -t tmpfs tmpfs /run
mkdir -p /run/ubus /run/lock /tmp/run
# procd sends the services' stdout/stderr to syslog (/dev/log): a private /dev with the
# host's null, zero, urandom and tty, and busybox syslogd writing $log.
mkdir "$work/hostdev"
mount --bind /dev "$work/hostdev"
mount -t tmpfs tmpfs /dev
for d in null zero random urandom tty full; do
	touch "/dev/$d"
	mount --bind "$work/hostdev/$d" "/dev/$d"
done
: >"$log"
"$busybox" syslogd -n -O "$log" &

fail() {
	echo "FAILED: $*" >&2
	echo "--- syslog" >&2
	cat "$log" >&2
	echo "--- ubus call service list" >&2
	ubus call service list '{"name":"fieldbridge"}' >&2 || echo "ubus rc=$?" >&2; pid >&2
	echo "--- procd" >&2
	cat "$out/procd.log" >&2
	exit 1
}

/usr/sbin/ubusd >"$out/ubusd.log" 2>&1 &
i=0
until [ -S /var/run/ubus/ubus.sock ]; do
	i=$((i + 1)); [ "$i" -lt 50 ] || fail "ubusd did not create /var/run/ubus/ubus.sock"; sleep 0.1
done
# Not PID 1: procd only connects to ubus and runs services (-S: its own log on stderr).
/usr/sbin/procd -S >"$out/procd.log" 2>&1 &
ubus -t 10 wait_for service || fail "procd did not register the service object"

# The supervisor's pid as procd reports it (empty when not running).
pid() {
	ubus call service list '{"name":"fieldbridge"}' |
		jsonfilter -e '@.fieldbridge.instances.supervisor.pid' 2>/dev/null || true
}
command_line() {
	ubus call service list '{"name":"fieldbridge"}' |
		jsonfilter -e '@.fieldbridge.instances.supervisor.command[*]' | tr '\n' ' '
}
count() { grep -c -- "$1" "$log" || true; }
# wait_count PATTERN N: until the log has N lines with PATTERN (5 s)
wait_count() {
	i=0
	until [ "$(count "$1")" -ge "$2" ]; do
		i=$((i + 1)); [ "$i" -lt 50 ] || fail "not $2 lines '$1' in the log after 5 s"; sleep 0.1
	done
}
step() { echo "== $*"; }
# gone PID: the process exits within 20 s (procd stops it with SIGTERM, term_timeout 15). Its
# last log lines may be missing: procd closes a deleted instance's stdout at once.
gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -lt 200 ] || fail "pid $1 still runs"; sleep 0.1
	done
}
# reload_unchanged: a reload that must change nothing (procd acts at once; 2 s to be sure)
reload_unchanged() { /etc/init.d/fieldbridge reload; sleep 2; }

step start
/etc/init.d/fieldbridge start || fail "start failed"
wait_count "supervisor starting" 1
pid1=$(pid)
[ -n "$pid1" ] || fail "procd does not run the supervisor"
echo "supervisor pid $pid1: $(command_line)"

step "reload, config.json unchanged"
reload_unchanged
[ "$(pid)" = "$pid1" ] || fail "an unchanged reload restarted the supervisor"
[ "$(count 'SIGHUP: reloading')" = 0 ] || fail "an unchanged reload sent SIGHUP"

step "reload after an edit of config.json"
sed 's#redis://127.0.0.1:6379#redis://127.0.0.1:6380#' /etc/fieldbridge/config.json >/tmp/run/c.json
cat /tmp/run/c.json >/etc/fieldbridge/config.json
/etc/init.d/fieldbridge reload
wait_count "SIGHUP: reloading" 1
[ "$(pid)" = "$pid1" ] || fail "the edit restarted the supervisor instead of SIGHUP"

step "reload after writing an unreadable config.json"
echo '{ not json' >/etc/fieldbridge/config.json
/etc/init.d/fieldbridge reload
wait_count "SIGHUP: reloading" 2
wait_count "cannot read the config" 1
[ "$(pid)" = "$pid1" ] || fail "the unreadable config stopped the supervisor"

step "reload, config.json unchanged again"
reload_unchanged
[ "$(count 'SIGHUP: reloading')" = 2 ] || fail "an unchanged reload sent SIGHUP"

cp "$json_config" /etc/fieldbridge/config.json
step "uci set fieldbridge.main.log_level=debug; reload"
uci set fieldbridge.main.log_level=debug
uci commit fieldbridge
/etc/init.d/fieldbridge reload
i=0
until [ -n "$(pid)" ] && [ "$(pid)" != "$pid1" ]; do
	i=$((i + 1)); [ "$i" -lt 100 ] || fail "a new log level did not restart the supervisor"; sleep 0.1
done
command_line | grep -q -- '-d debug' || fail "the restarted supervisor runs $(command_line)"
pid2=$(pid)
echo "supervisor pid $pid2: $(command_line)"
wait_count "supervisor starting" 2
gone "$pid1"

step "uci set fieldbridge.main.enabled=0; reload"
uci set fieldbridge.main.enabled=0
uci commit fieldbridge
/etc/init.d/fieldbridge reload
i=0
until [ -z "$(pid)" ]; do
	i=$((i + 1)); [ "$i" -lt 100 ] || fail "enabled=0 did not stop the supervisor"; sleep 0.1
done
gone "$pid2"

echo "--- syslog"
cat "$log"
echo "real procd: ok"
