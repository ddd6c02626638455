#!/bin/sh
# Runs an OpenWrt procd init script outside OpenWrt, against stubs of /lib/functions.sh
# (config_load, config_get, config_get_bool), of /lib/functions/procd.sh (procd_*) and of the
# parts of /etc/rc.common that call it. Every procd call is printed on stdout, one a line:
#   open_service NAME | open_instance NAME | set_param KEY [VALUE]... | close_instance
#   add_reload_trigger CONFIG... | send_signal ... | close_service
# (each value in brackets, so word splitting is visible).
# Usage: procd-harness.sh INIT_SCRIPT ACTION   (ACTION: start, reload, restart, stop)
# The uci values come from the environment: UCI_<section>_<option>, e.g. UCI_main_enabled=1;
# an unset variable is an unset option. `uci` itself is stubbed the same way.
# With PROCD_STATE=DIR, the harness also keeps procd's view of the running instance in DIR
# across runs and prints what real procd (service/instance.c, instance_update) would do on
# each `service set`, as `procd: start|unchanged|signal HUP|restart|stop`: a running
# instance is left alone unless its definition changed (its params, and the md5 of each
# `file` param's content); a changed one gets its reload_signal if it has one, else a
# restart (and procd keeps the new definition, command line included, even though the
# signalled process runs the old one). `ubus call service list` | `jsonfilter ...command[*]`
# print that command.
set -eu
script=$1 action=$2

emit() { printf '%s' "$1"; shift; for v in "$@"; do printf ' [%s]' "$v"; done; printf '\n'; }

# --- /lib/functions.sh -------------------------------------------------------------------
CONFIG_LOADED=""
config_load() { CONFIG_LOADED=$1; emit config_load "$1"; }
_uci_value() { # _uci_value SECTION OPTION -> prints the value, exit 1 if unset
	eval "[ \"\${UCI_$1_$2+x}\" = x ] || return 1; printf '%s' \"\$UCI_$1_$2\""
}
config_get() { # config_get VAR SECTION OPTION [DEFAULT]
	[ -n "$CONFIG_LOADED" ] || { echo "config_get before config_load" >&2; exit 3; }
	_v=$(_uci_value "$2" "$3") || _v=${4-}
	eval "$1=\$_v"
}
config_get_bool() { # like OpenWrt's: 1/on/true/yes/enabled -> 1, 0/off/false/no/disabled -> 0
	config_get _b "$2" "$3" "${4-0}"
	case "$_b" in
		1|on|true|yes|enabled) _b=1 ;;
		0|off|false|no|disabled) _b=0 ;;
		*) _b=${4-0} ;;
	esac
	eval "$1=\$_b"
}
uci() { # uci [-q] get CONFIG.SECTION.OPTION
	[ "$1" = -q ] && shift
	[ "$1" = get ] || { echo "uci stub: only get" >&2; return 1; }
	_p=${2#*.}
	_uci_value "${_p%%.*}" "${_p#*.}"
}

# --- /lib/functions/procd.sh ---------------------------------------------------------------
INSTANCE="" # the definition being sent: its set_param lines, a `file` param with its md5
procd_open_service() { INSTANCE=""; emit open_service "$@"; }
procd_close_service() { emit close_service; procd_service_set; }
procd_open_instance() { emit open_instance "$@"; }
procd_set_param() {
	emit set_param "$@"
	INSTANCE="$INSTANCE$(emit set_param "$@")
"
	if [ "$1" = file ]; then
		shift
		for _f in "$@"; do
			INSTANCE="$INSTANCE$(md5sum <"$_f" 2>/dev/null || echo none) $_f
"
		done
	fi
}
procd_append_param() { emit append_param "$@"; }
procd_close_instance() { emit close_instance; }
procd_add_reload_trigger() { emit add_reload_trigger "$@"; }
procd_send_signal() { emit send_signal "$@"; }
procd_kill() { emit kill "$@"; [ -z "${PROCD_STATE:-}" ] || procd_update ""; }

# procd's instance_update for the one instance: prints what it does, keeps the new definition.
procd_service_set() {
	[ -n "${PROCD_STATE:-}" ] && procd_update "$INSTANCE"
	return 0
}
procd_update() {
	_old=$(cat "$PROCD_STATE/instance" 2>/dev/null || true)
	_new=$(printf "%s" "$1")
	if [ -z "$_old" ] && [ -z "$_new" ]; then :
	elif [ -z "$_old" ]; then echo "procd: start"
	elif [ -z "$_new" ]; then echo "procd: stop"
	elif [ "$_old" = "$_new" ]; then echo "procd: unchanged"
	elif printf '%s\n' "$_old" | grep -q '^set_param \[reload_signal\]'; then
		echo "procd: signal $(printf '%s\n' "$_old" | sed -n 's/^set_param \[reload_signal\] \[\(.*\)\]$/\1/p')"
	else echo "procd: restart"
	fi
	printf '%s\n' "$_new" >"$PROCD_STATE/instance"
}

# `ubus call service list ...`: the running command's arguments, one a line; `jsonfilter`
# passes them on (the init script asks for @...command[*]).
ubus() {
	[ -n "${PROCD_STATE:-}" ] || return 0
	sed -n 's/^set_param \[command\] //p' "$PROCD_STATE/instance" 2>/dev/null |
		sed 's/^\[//; s/\]$//; s/\] \[/\n/g'
}
jsonfilter() { cat; }

# --- /etc/rc.common with USE_PROCD=1 ------------------------------------------------------
service_triggers() { :; }
reload_service() { start; }
stop_service() { :; }
# shellcheck disable=SC1090
. "$script"
[ "${USE_PROCD:-0}" = 1 ] || { echo "USE_PROCD is not 1" >&2; exit 4; }
start() { procd_open_service "$(basename "$script")"; start_service; service_triggers; procd_close_service; }
stop() { stop_service; procd_kill "$(basename "$script")"; }
reload() { reload_service; }
restart() { stop; start; }
emit START "${START:-}"
"$action"
