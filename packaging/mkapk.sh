#!/usr/bin/env bash
# Runs the apk v3 package/index writer with apk-tools' command line:
#   packaging/mkapk.sh mkpkg --info KEY:VALUE... --script TYPE:FILE... --files DIR --output FILE
#   packaging/mkapk.sh mkndx --allow-untrusted [--sign-key KEY.pem] --output packages.adb FILE.apk...
# APK=/path/to/apk uses a real apk-tools v3 (the OpenWrt SDK's staging_dir/host/bin/apk; it
# records the files' real owners, so run it as root or under fakeroot); otherwise this
# repository's fieldbridge-mkapk (crates/apk), MKAPK=/path/to/fieldbridge-mkapk or built here
# (cargo build --release --locked -p fieldbridge-apk, host target).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${APK:-}" ]; then
  exec "$APK" "$@"
fi
if [ -z "${MKAPK:-}" ]; then
  target_dir=${CARGO_TARGET_DIR:-$top/target}
  (cd "$top" && cargo build -q --release --locked -p fieldbridge-apk --bin fieldbridge-mkapk) >&2
  MKAPK=$target_dir/release/fieldbridge-mkapk
fi
exec "$MKAPK" "$@"
