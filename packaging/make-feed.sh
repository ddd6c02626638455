#!/usr/bin/env bash
# Makes an opkg feed directory that OpenWrt devices can `opkg update && opkg upgrade` from:
#   packaging/make-feed.sh FEED_DIR SECRET_KEY [IPK...]      (default IPKs: target/ipk/*.ipk)
# FEED_DIR gets the .ipk files, Packages (the index, in ipkg-make-index format), Packages.gz and
# Packages.sig (usign Ed25519 signature of Packages with SECRET_KEY; opkg checks it against
# the keys in /etc/opkg/keys/). One directory serves every architecture: opkg picks the
# packages whose Architecture it supports. Make a key once with
#   packaging/usign.py keygen -s vendor.sec -p vendor.pub
# (keep vendor.sec offline; install vendor.pub on the devices, see packaging/README.md).
#
# The apk feed of the same release (OpenWrt 25.12), when APK_KEY names an EC prime256v1 private
# key (openssl ecparam -name prime256v1 -genkey -noout -out vendor-apk.pem): for every
# architecture directory of APK_DIR (default target/ipk/apk, as build-ipk.sh writes it),
# FEED_DIR/apk/<arch>/ gets that architecture's .apk files, the noarch ones and packages.adb
# (apk mkndx format, signed with APK_KEY); FEED_DIR/apk/keys/<APK_KEY's name>.pem is the public
# key for the devices' /etc/apk/keys/. The index is written by packaging/mkapk.sh
# (APK=/path/to/apk uses a real apk-tools).
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 FEED_DIR SECRET_KEY [IPK...]" >&2; exit 2; }
feed=$1 key=$2; shift 2
[ -f "$key" ] || { echo "make-feed: no secret key $key (make one: packaging/usign.py keygen -s $key -p ${key%.sec}.pub)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  shopt -s nullglob; set -- "$top"/target/ipk/*.ipk; shopt -u nullglob
fi
[ $# -gt 0 ] || { echo "make-feed: no .ipk given and none in target/ipk (run packaging/build-ipk.sh)" >&2; exit 1; }
py=python3
"$py" -c 'import cryptography' 2>/dev/null || py=/usr/bin/python3

mkdir -p "$feed"
for ipk in "$@"; do
  [ "$(cd "$(dirname "$ipk")" && pwd)" = "$(cd "$feed" && pwd)" ] || cp -f "$ipk" "$feed/"
done

# The index: each package's control with Filename, Size and SHA256sum inserted before its
# Description (as OpenWrt's ipkg-make-index.sh does), a blank line after each, sorted by file.
index="$feed/Packages.tmp"
: > "$index"
(cd "$feed" && find . -maxdepth 1 -name '*.ipk' -printf '%f\n' | sort) | while read -r f; do
  ipk="$feed/$f"
  size=$(stat -c %s "$ipk")
  sum=$(sha256sum "$ipk" | cut -d' ' -f1)
  control=$(tar -xzOf "$ipk" ./control.tar.gz | tar -xzOf - ./control)
  grep -q '^Description:' <<<"$control" || { echo "make-feed: $f has no Description" >&2; exit 1; }
  awk -v f="$f" -v size="$size" -v sum="$sum" '
    /^Description:/ { print "Filename: " f; print "Size: " size; print "SHA256sum: " sum }
    { print }' <<<"$control" >> "$index"
  echo >> "$index"
done
mv "$index" "$feed/Packages"
gzip -9nc "$feed/Packages" > "$feed/Packages.gz"
"$py" "$top/packaging/usign.py" sign -s "$key" -m "$feed/Packages" -x "$feed/Packages.sig"
echo "feed $feed: $(grep -c '^Package:' "$feed/Packages") packages, signed by key $(sed -n 's/^untrusted comment: signed by key //p' "$feed/Packages.sig")"

# ---- the apk feed --------------------------------------------------------------------------
if [ -z "${APK_KEY:-}" ]; then
  echo "apk feed: skipped (set APK_KEY to an EC prime256v1 key to make it)"
  exit 0
fi
[ -f "$APK_KEY" ] || { echo "make-feed: no apk key $APK_KEY (make one: openssl ecparam -name prime256v1 -genkey -noout -out $APK_KEY)" >&2; exit 1; }
apk_dir=${APK_DIR:-$top/target/ipk/apk}
shopt -s nullglob
arches=()
for d in "$apk_dir"/*/; do
  a=$(basename "$d"); [ "$a" = noarch ] || arches+=("$a")
done
[ ${#arches[@]} -gt 0 ] || { echo "make-feed: no architecture directories with .apk files in $apk_dir (run packaging/build-ipk.sh)" >&2; exit 1; }
mkdir -p "$feed/apk/keys"
key_name=$(basename "${APK_KEY%.pem}")
apk_key=$(cd "$(dirname "$APK_KEY")" && pwd)/$(basename "$APK_KEY")
openssl ec -in "$APK_KEY" -pubout -out "$feed/apk/keys/$key_name.pem" 2>/dev/null \
  || { echo "make-feed: $APK_KEY is not an EC private key" >&2; exit 1; }
for a in "${arches[@]}"; do
  out="$feed/apk/$a"
  mkdir -p "$out"
  rm -f "$out"/*.apk
  cp -f "$apk_dir/$a"/*.apk "$apk_dir"/noarch/*.apk "$out/"
  (cd "$out" && "$top/packaging/mkapk.sh" mkndx --allow-untrusted --sign-key "$apk_key" \
     --output packages.adb ./*.apk >/dev/null)
  n=$(find "$out" -maxdepth 1 -name '*.apk' | wc -l)
  echo "apk feed $out: $n packages, packages.adb signed; public key apk/keys/$key_name.pem"
done
shopt -u nullglob
