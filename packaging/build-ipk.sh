#!/usr/bin/env bash
# Builds the OpenWrt packages of fieldbridge from a clean checkout on a Debian 12 x86_64 machine:
# static musl binaries for ARM and MIPS (armv7 = arm_cortex-a7_neon-vfpv4, aarch64 =
# aarch64_cortex-a53, mips = mips_24kc; the mapping is packaging/targets.sh), a smoke test of
# each under qemu-user, the .ipk of each and the (arch-independent) LuCI app,
# and right after each .ipk the OpenWrt 25.12 .apk from the same staged files (mkipk.sh APK_OUT:
# OUT/apk/<arch>/, OUT/apk/noarch/; written by crates/apk's fieldbridge-mkapk, built here for
# the host, or by a real apk-tools with APK=/path/to/apk).
#
#   packaging/build-ipk.sh                 # every target of packaging/targets.sh, ipks in target/ipk/
#   TARGETS=armv7-unknown-linux-musleabihf packaging/build-ipk.sh
#
# Toolchain, offline from rustup (it cannot download targets here): Debian's rustc-web/cargo-web
# 1.96 and rust-web-src (std sources) with RUSTC_BOOTSTRAP=1 and -Zbuild-std, zig from PyPI as
# the C compiler, linker and musl (through cargo-zigbuild, so C code such as ring's builds too).
# Installs what it needs: apt packages (as root or with sudo), zig and cargo-zigbuild in the
# cache directory FIELDBRIDGE_PKG_CACHE (default ~/.cache/fieldbridge-packaging).
# Builds whatever the workspace's `fieldbridge` package holds (`-p fieldbridge`, Cargo.lock).
#
# Environment: FIELDBRIDGE_FEATURES / OPENWRT_DROP_FEATURES (see "features" below), SMOKE_MQTT=0 skips the end-to-end test (packaging/smoke-mqtt.sh: each target's
# mqtt-client under qemu delivers a tag to a local mosquitto). TARGETS, OUT (default target/ipk), FIELDBRIDGE_PKG_CACHE, CROSS_TARGET_DIR
# (default target/cross), PKG_RELEASE, SOURCE_DATE_EPOCH (see mkipk.sh), MAX_BIN_BYTES
# (default 6000000) and MAX_IPK_BYTES (3000000): limits for each target's stripped binary, ipk and apk.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=${TARGETS:-$("$top/packaging/targets.sh" | paste -sd" " -)}
OUT=${OUT:-$top/target/ipk}
CACHE=${FIELDBRIDGE_PKG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fieldbridge-packaging}
CROSS_TARGET_DIR=${CROSS_TARGET_DIR:-$top/target/cross}
MAX_BIN_BYTES=${MAX_BIN_BYTES:-6000000}
MAX_IPK_BYTES=${MAX_IPK_BYTES:-3000000}
ZIG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }
die() { echo "build-ipk: $*" >&2; exit 1; }

# ---- tools ---------------------------------------------------------------------------------
step "tools (cache: $CACHE)"
need=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc -V 2>/dev/null | grep -qE '^rustc 1\.(9[6-9]|[1-9][0-9]{2})' || need+=(rustc-web)
[ -x /usr/bin/cargo ] && /usr/bin/cargo -V 2>/dev/null | grep -qE '^cargo 1\.(9[6-9]|[1-9][0-9]{2})' || need+=(cargo-web)
[ -d /usr/lib/rustlib/src/rust/library/std ] || need+=(rust-web-src)
for q in qemu-arm-static qemu-aarch64-static qemu-mips-static; do command -v $q >/dev/null || { need+=(qemu-user-static); break; }; done
command -v file >/dev/null || need+=(file)
if [ "${SMOKE_MQTT:-1}" != 0 ]; then   # the end-to-end smoke test's broker and tag bus
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
  command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
fi
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  step "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
/usr/bin/rustc -V | grep -qE '^rustc 1\.(9[6-9]|[1-9][0-9]{2})' || die "/usr/bin/rustc is not rustc-web >= 1.96"
mkdir -p "$CACHE/bin"
if [ ! -x "$CACHE/zig-$ZIG_VERSION/ziglang/zig" ]; then
  step "zig $ZIG_VERSION (PyPI ziglang)"
  /usr/bin/python3 -m pip install -q --disable-pip-version-check --target "$CACHE/zig-$ZIG_VERSION" "ziglang==$ZIG_VERSION"
fi
ln -sfn "$CACHE/zig-$ZIG_VERSION/ziglang/zig" "$CACHE/bin/zig"

# Debian's cargo and rustc must win over rustup's shims; keep their registry apart from ~/.cargo.
unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_TARGET CARGO_ENCODED_RUSTFLAGS
export PATH="$CACHE/bin:$CACHE/tools/bin:/usr/bin:/bin:/usr/sbin:/sbin"
export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTC_BOOTSTRAP=1
export CARGO_HOME="$CACHE/cargo-home" XDG_CACHE_HOME="$CACHE/xdg" CARGO_TARGET_DIR="$CROSS_TARGET_DIR"
export CARGO_TERM_COLOR=never
if ! "$CACHE/tools/bin/cargo-zigbuild" --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION"; then
  step "cargo-zigbuild $ZIGBUILD_VERSION (crates.io)"
  cargo install -q --locked --version "$ZIGBUILD_VERSION" --root "$CACHE/tools" cargo-zigbuild
fi
rustc -V; cargo -V; echo "zig $(zig version)"

smoke_dir=$(mktemp -d); trap 'rm -rf "$smoke_dir"' EXIT

# ---- features --------------------------------------------------------------------------------
# The fieldbridge crate's default features minus those OpenWrt does not want (journald: OpenWrt
# has none, procd/logd take stderr; demo: the demo applet and its simulators), so new default
# features are built without editing this.
# FIELDBRIDGE_FEATURES (comma separated) replaces the list; OPENWRT_DROP_FEATURES the drop list.
# (openwrt/fieldbridge/Makefile's RUST_PKG_FEATURES must match: a test checks it.)
features=${FIELDBRIDGE_FEATURES-$("$top/packaging/openwrt-features.sh")}
feature_args=(--no-default-features)
[ -z "$features" ] || feature_args+=(--features "$features")
echo "features: ${features:-(none)}"

# The supervisor as the init script runs it, on the shipped (empty) config: it writes its status
# file, reloads on SIGHUP and exits on SIGTERM (bounded waits; its children are not exercised,
# qemu-user does not follow their exec without binfmt_misc).
smoke_supervise() { # smoke_supervise "QEMU" BINARY
  local q=$1 b=$2 d pid
  d=$(mktemp -d "$smoke_dir/sv.XXXXXX")
  # shellcheck disable=SC2086 # $q is a command with arguments
  $q "$b" supervise -c "$top/openwrt/fieldbridge/files/config.json" -d info --status-file "$d/status.json" \
    >"$d/log" 2>&1 & pid=$!
  for _ in $(seq 100); do [ -s "$d/status.json" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || true
    if grep -q 'not part of this build' "$d/log"; then
      echo "(supervise: skipped, the applet is not built yet)"; return 0
    fi
    cat "$d/log"; die "supervise exited at once"
  fi
  kill -HUP "$pid"; sleep 1
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; cat "$d/log"; die "supervise did not stop on SIGTERM"; fi
  if ! grep -q '"supervisor"' "$d/status.json" || ! grep -q 'SIGHUP' "$d/log"; then
    cat "$d/log"; die "supervise: no status file or no reload"
  fi
  echo "supervise: status file written, SIGHUP reloaded, SIGTERM stopped it"
}

# ---- the apk writer (host tool, not part of the device binary) ------------------------------
export APK_OUT="$OUT/apk"
if [ -z "${APK:-}" ]; then
  step "cargo build -p fieldbridge-apk (host: the apk v3 writer)"
  (cd "$top" && cargo build --release --locked -p fieldbridge-apk --bin fieldbridge-mkapk)
  export MKAPK="$CROSS_TARGET_DIR/release/fieldbridge-mkapk"
fi

# ---- per target ----------------------------------------------------------------------------
mkdir -p "$OUT"
summary=()
for target in $TARGETS; do
  mapping=$("$top/packaging/targets.sh" "$target") || die "unknown target $target"
  IFS=$'\t' read -r arch qemu flags <<<"$mapping"
  step "cargo zigbuild -p fieldbridge --target $target"
  tu=$(echo "$target" | tr 'a-z-' 'A-Z_')
  # link-self-contained=no: build-std has no self-contained crt1.o/libc.a; zig brings musl.
  (cd "$top" && env "CARGO_TARGET_${tu}_RUSTFLAGS=-C link-self-contained=no${flags:+ $flags}" \
    cargo zigbuild --release --locked -p fieldbridge "${feature_args[@]}" --target "$target" \
      -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)
  bin="$OUT/fieldbridge-$target"
  cp "$CROSS_TARGET_DIR/$target/release/fieldbridge" "$bin"
  file "$bin"
  file "$bin" | grep -qE 'statically linked|static-pie linked' || die "$bin is not static"
  file "$bin" | grep -q 'not stripped' && die "$bin is not stripped (profile.release strip = true?)"

  step "smoke test under $qemu"
  $qemu "$bin" --version
  $qemu "$bin" config validate "$top/openwrt/fieldbridge/files/config.json"
  $qemu "$bin" config validate "$top/config/example.json"
  ln -sf "$bin" "$smoke_dir/mqtt-client"      # the multi-call name works through a symlink
  $qemu "$smoke_dir/mqtt-client" --version
  smoke_supervise "$qemu" "$bin"
  if [ "${SMOKE_MQTT:-1}" != 0 ]; then
    rc=0; "$top/packaging/smoke-mqtt.sh" "$qemu" "$bin" || rc=$?
    case $rc in
      0) ;;
      3) echo "(the mqtt-client delivery test waits for the mqtt-client applet)" ;;
      *) die "smoke test: mqtt-client under qemu did not deliver" ;;
    esac
  fi

  step "ipk and apk $arch"
  built=$("$top/packaging/mkipk.sh" fieldbridge "$bin" "$arch" "$OUT" | tail -n2)
  ipk=$(sed -n 1p <<<"$built") apk=$(sed -n 2p <<<"$built")
  bin_size=$(stat -c %s "$bin"); ipk_size=$(stat -c %s "$ipk"); apk_size=$(stat -c %s "$apk")
  summary+=("$(printf '%-32s binary %9d bytes (%.2f MB)   ipk %9d bytes   apk %9d bytes  %s' \
    "$target" "$bin_size" "$(awk "BEGIN{print $bin_size/1e6}")" "$ipk_size" "$apk_size" "$(basename "$ipk")")")
  [ "$bin_size" -lt "$MAX_BIN_BYTES" ] || die "$target binary $bin_size bytes >= limit $MAX_BIN_BYTES"
  [ "$ipk_size" -lt "$MAX_IPK_BYTES" ] || die "$target ipk $ipk_size bytes >= limit $MAX_IPK_BYTES"
  [ "$apk_size" -lt "$MAX_IPK_BYTES" ] || die "$target apk $apk_size bytes >= limit $MAX_IPK_BYTES"
done
step "ipk and apk luci-app-fieldbridge"
"$top/packaging/mkipk.sh" luci-app-fieldbridge "$OUT" | tail -n2

step "done in $(( $(date +%s) - t0 ))s; limits (every target): binary < $MAX_BIN_BYTES, ipk < $MAX_IPK_BYTES bytes"
printf '%s\n' "${summary[@]}"
ls -l "$OUT"/*.ipk "$OUT"/apk/*/*.apk
