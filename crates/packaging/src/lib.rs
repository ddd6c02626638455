//! Tests of fieldbridge's OpenWrt packaging (no library code: see `tests/`).
//! (Its place in fieldbridge: docs/architecture.md.)
//!
//! The packaging itself is shell and files, outside the Rust build:
//! - `packaging/build-ipk.sh`: the ARM and MIPS cross builds (targets: `packaging/targets.sh`;
//!   Debian's rustc-web + `-Zbuild-std`, zig as C compiler and linker), a qemu smoke test, and
//!   the `.ipk`s; `packaging/mkipk.sh` assembles
//!   one reproducible `.ipk` from a binary; `packaging/make-feed.sh` + `packaging/usign.py` make
//!   a signed opkg feed.
//! - `openwrt/fieldbridge`: the OpenWrt feed package (Makefile, procd init script, uci file,
//!   empty default config, postinst/prerm) and `openwrt/luci-app-fieldbridge`: the LuCI page.
//!
//! The tests here run in `cargo test` without the cross toolchain: they package a stand-in
//! binary with `mkipk.sh` and check the result byte by byte, run the init script against stubs
//! of procd, uci and rc.common, check the LuCI JavaScript with node and its rpcd ACL, and build
//! and verify a signed feed. They need `sh`, `tar`, `gzip`, `shellcheck`, `node`, Python 3 with
//! `cryptography` (all installed by `tests/setup`), and use `signify-openbsd` when present to
//! verify the feed signature with an independent implementation.
