#!/bin/sh
# The cross targets of packaging/build-ipk.sh, one home for the mapping of a Rust target triple
# to its OpenWrt architecture (the ipk's Architecture and the apk's arch), the qemu-user
# command of its smoke test (the CPU of the OpenWrt architecture) and its extra rustflags:
#   packaging/targets.sh            # the triples built by default, one a line
#   packaging/targets.sh TRIPLE     # ARCH<TAB>QEMU<TAB>RUSTFLAGS; exit 1 for an unknown triple
# mips-unknown-linux-musl is the MIPS 24Kc of the ath79 target (OpenWrt mips_24kc): big-endian
# MIPS32r2, soft-float (the Rust target's default and zig's mips-linux-musleabi). The Rust
# target is PIC and dynamically linked by default; OpenWrt's executables are static non-PIC
# there, and that is also 12 % smaller.
set -eu
if [ $# -eq 0 ]; then
  printf '%s\n' armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl mips-unknown-linux-musl
  exit 0
fi
tab=$(printf '\t')
case $1 in
  armv7-unknown-linux-musleabihf) echo "arm_cortex-a7_neon-vfpv4${tab}qemu-arm-static -cpu cortex-a7${tab}" ;;
  aarch64-unknown-linux-musl)     echo "aarch64_cortex-a53${tab}qemu-aarch64-static -cpu cortex-a53${tab}" ;;
  mips-unknown-linux-musl)        echo "mips_24kc${tab}qemu-mips-static -cpu 24Kc${tab}-C target-cpu=mips32r2 -C target-feature=+crt-static -C relocation-model=static" ;;
  *) echo "targets.sh: unknown target $1 (known: $("$0" | tr '\n' ' '))" >&2; exit 1 ;;
esac
