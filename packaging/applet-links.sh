#!/bin/sh
# Prints the applet symlinks to install in /usr/bin, one a line: every name of APPLET_NAMES in
# crates/fieldbridge/src/cli.rs except the generic ones (supervise is daemontools', and config,
# tag, status, demo would clash with other programs in /usr/bin; they stay `fieldbridge
# supervise ...`). The protocol names (iec104-master, iec104-slave, modbus-master, mqtt-client: WCC Lite-style
# commands) are installed by no package of the OpenWrt feeds (packaging/README.md says which
# were checked). New applets are picked up without editing the packaging.
# openwrt/fieldbridge/Makefile lists the same names (a test checks that they agree).
top=$(cd "$(dirname "$0")/.." && pwd)
awk '/const APPLET_NAMES/ {on = 1} on {print} on && /\];/ {exit}' "$top/crates/fieldbridge/src/cli.rs" |
  grep -o '"[a-z0-9][a-z0-9-]*"' | tr -d '"' | grep -vxE 'supervise|config|tag|status|demo'
