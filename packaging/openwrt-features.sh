#!/bin/sh
# Prints the cargo features of the fieldbridge crate for OpenWrt builds, comma separated: its
# default features minus OPENWRT_DROP_FEATURES (default "journald,demo": OpenWrt has no
# journald, procd and logd take stderr; the demo applet and its simulators are for development
# machines, not flash). Build with `--no-default-features --features "$(this)"`.
top=$(cd "$(dirname "$0")/.." && pwd)
drop=${OPENWRT_DROP_FEATURES-journald,demo}
awk '/^\[features\]/ {on = 1; next} /^\[/ {on = 0} on && /^default *=/ {print; exit}' \
  "$top/crates/fieldbridge/Cargo.toml" |
  sed 's/^[^[]*\[//; s/\].*$//' | tr -d '" ' | tr ',' '\n' | grep -v '^$' |
  grep -vxF -e "$(echo "$drop" | tr ',' ' ' | tr ' ' '\n' | grep -v '^$' || echo '#none#')" | paste -sd, -
