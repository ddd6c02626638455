#!/usr/bin/env bash
# Assembles one OpenWrt .ipk, reproducibly, from an already built binary (or, for the LuCI app,
# from openwrt/luci-app-fieldbridge). Used by packaging/build-ipk.sh and by the package tests.
#
#   mkipk.sh fieldbridge BINARY ARCH OUTDIR    -> OUTDIR/fieldbridge_<version>_<ARCH>.ipk
#   mkipk.sh luci-app-fieldbridge OUTDIR        -> OUTDIR/luci-app-fieldbridge_<version>_all.ipk
#
# Prints the path of the .ipk it wrote on stdout (last line).
# The format is OpenWrt's (ipkg-build): a gzip'd tar of ./debian-binary, ./data.tar.gz and
# ./control.tar.gz, NOT the Debian ar archive (opkg in OpenWrt does not read that).
# Same inputs, same bytes: every member is written with sorted names, numeric owner 0:0, fixed
# modes and mtime SOURCE_DATE_EPOCH (else the last commit's time, else 0), gzip -n.
#
# Environment: PKG_RELEASE (default 1), SOURCE_DATE_EPOCH, MAINTAINER, APPLET_LINKS (space
# separated applet symlinks in /usr/bin; default: cli.rs APPLET_NAMES minus the generic ones).
#
# APK_OUT=DIR also writes the OpenWrt 25.12 package from the same staged files (after the .ipk's
# path, the .apk's is printed): DIR/<arch, or noarch>/<pkg>-<version>-r<PKG_RELEASE>.apk, apk
# v3 format, with OpenWrt's /lib/apk/packages/<pkg>.list, .conffiles and .conffiles_static
# (path and sha256) and the ipk's maintainer scripts as apk scripts, as OpenWrt's
# include/package-pack.mk maps them: postinst -> post-install, and post-upgrade with
# PKG_UPGRADE=1 exported first; prerm -> pre-deinstall (apk runs it on removal only).
# Written by packaging/mkapk.sh (this repository's writer, or APK=/path/to/apk).
set -euo pipefail
export LC_ALL=C
top=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: $0 fieldbridge BINARY ARCH OUTDIR | luci-app-fieldbridge OUTDIR" >&2; exit 2; }
[ $# -ge 1 ] || usage
pkg=$1; shift

# ---- metadata, all from the workspace ------------------------------------------------------
ws_field() { # the [workspace.package] key of the root Cargo.toml
  sed -n '/^\[workspace\.package\]/,/^\[/{s/^'"$1"' *= *"\(.*\)".*/\1/p}' "$top/Cargo.toml" | head -n1
}
base_version=$(ws_field version)
version="$base_version-${PKG_RELEASE:-1}"
license=$(ws_field license)
source_url=$(ws_field repository)
maintainer=${MAINTAINER:-"fieldbridge maintainers <fieldbridge@example.invalid>"}
if [ -z "$base_version" ] || [ -z "$license" ]; then echo "mkipk: cannot read version/license from Cargo.toml" >&2; exit 1; fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)
fi

applet_links() { # APPLET_LINKS overrides packaging/applet-links.sh (derived from cli.rs)
  if [ -n "${APPLET_LINKS+x}" ]; then echo "$APPLET_LINKS"; else "$top/packaging/applet-links.sh"; fi
}

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
data="$work/data" ctrl="$work/control"
mkdir -p "$data" "$ctrl"

put() { # put MODE SRC DEST (DEST relative to the data root)
  install -D -m "$1" "$2" "$data/$3"
}

case $pkg in
  fieldbridge)
    [ $# -eq 3 ] || usage
    binary=$1 arch=$2 outdir=$3
    [ -f "$binary" ] || { echo "mkipk: no binary $binary" >&2; exit 1; }
    files="$top/openwrt/fieldbridge/files"
    put 0755 "$binary" usr/bin/fieldbridge
    for a in $(applet_links); do ln -s fieldbridge "$data/usr/bin/$a"; done
    put 0755 "$files/fieldbridge.init" etc/init.d/fieldbridge
    put 0600 "$files/fieldbridge.config" etc/config/fieldbridge
    # The shipped config is empty but valid: the supervisor starts nothing until the engineer
    # imports a workbook. 0600: a real config holds broker passwords.
    put 0600 "$files/config.json" etc/fieldbridge/config.json
    put 0644 "$top/config/example.json" usr/share/fieldbridge/example.json
    # The tag-bus Redis settings sized for a 64 MB gateway (docs/reliability.md), for the
    # Redis package's /etc/redis.conf; not applied by this package.
    put 0644 "$files/redis-tagbus.conf" usr/share/fieldbridge/redis-tagbus.conf
    depends="procd, uci"   # static musl binary: no libc dependency; procd/uci for the init script
    section=net
    description=$(sed -n 's/^description *= *"\(.*\)"/\1/p' "$top/crates/fieldbridge/Cargo.toml" | head -n1)
    printf '%s\n' /etc/config/fieldbridge /etc/fieldbridge/config.json > "$ctrl/conffiles"
    install -m 0755 "$files/postinst" "$ctrl/postinst"
    install -m 0755 "$files/prerm" "$ctrl/prerm"
    ;;
  luci-app-fieldbridge)
    [ $# -eq 1 ] || usage
    arch=all outdir=$1
    app="$top/openwrt/luci-app-fieldbridge"
    put 0644 "$app/htdocs/luci-static/resources/view/fieldbridge.js" www/luci-static/resources/view/fieldbridge.js
    put 0644 "$app/root/usr/share/luci/menu.d/luci-app-fieldbridge.json" usr/share/luci/menu.d/luci-app-fieldbridge.json
    put 0644 "$app/root/usr/share/rpcd/acl.d/luci-app-fieldbridge.json" usr/share/rpcd/acl.d/luci-app-fieldbridge.json
    depends="luci-base, fieldbridge"
    section=luci
    description="LuCI page for fieldbridge: enable, log level, config file, protocol status, workbook upload"
    : > "$ctrl/conffiles"
    install -m 0755 "$app/postinst" "$ctrl/postinst"
    ;;
  *) usage ;;
esac
[ -s "$ctrl/conffiles" ] || rm -f "$ctrl/conffiles"

# Installed-Size: the sum of the file sizes (not du: block sizes differ between file systems).
installed_size=$(find "$data" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
cat > "$ctrl/control" <<CONTROL
Package: $pkg
Version: $version
Depends: $depends
Source: $source_url
License: $license
Section: $section
Architecture: $arch
Installed-Size: $installed_size
Maintainer: $maintainer
Description: $description
CONTROL
echo 2.0 > "$work/debian-binary"

# Normalise what the umask or the checkout may have changed, then pack deterministically.
find "$data" "$ctrl" -type d -exec chmod 0755 {} +
chmod 0644 "$ctrl/control" "$work/debian-binary"
[ -f "$ctrl/conffiles" ] && chmod 0644 "$ctrl/conffiles"
tarz() { # tarz DIR OUT MEMBERS...
  local dir=$1 out=$2; shift 2
  (cd "$dir" && tar --format=gnu --sort=name --numeric-owner --owner=0 --group=0 \
     --mtime="@$SOURCE_DATE_EPOCH" --no-acls --no-xattrs -cf - "$@") | gzip -9n > "$out"
}
tarz "$data" "$work/data.tar.gz" .
tarz "$ctrl" "$work/control.tar.gz" .
mkdir -p "$outdir"
ipk="$(cd "$outdir" && pwd)/${pkg}_${version}_${arch}.ipk"
tarz "$work" "$ipk.tmp" ./debian-binary ./data.tar.gz ./control.tar.gz
mv "$ipk.tmp" "$ipk"
echo "$ipk"

[ -n "${APK_OUT:-}" ] || exit 0
# ---- the apk, from the same staged tree ----------------------------------------------------
apk_version="$base_version-r${PKG_RELEASE:-1}"
apk_arch=$arch; [ "$arch" = all ] && apk_arch=noarch
aroot="$work/apk-root" ascripts="$work/apk-scripts"
mkdir -p "$aroot" "$ascripts"
cp -a "$data/." "$aroot/"
meta="$aroot/lib/apk/packages"
mkdir -p "$meta"
(cd "$data" && find . -type f,l -printf '/%P\n' | sort) > "$meta/$pkg.list"
if [ -f "$ctrl/conffiles" ]; then
  cp "$ctrl/conffiles" "$meta/$pkg.conffiles"
  while read -r f; do
    [ -f "$data/$f" ] && echo "$f $(sha256sum "$data/$f" | cut -d' ' -f1)"
  done < "$ctrl/conffiles" > "$meta/$pkg.conffiles_static"
fi
find "$aroot" -type d -exec chmod 0755 {} +
chmod 0644 "$meta"/*
find "$aroot" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
script_args=()
if [ -f "$ctrl/postinst" ]; then
  { echo '#!/bin/sh'; echo 'export PKG_UPGRADE=1'; sed '/^[[:space:]]*#!/d' "$ctrl/postinst"; } > "$ascripts/post-upgrade"
  script_args+=(--script "post-install:$ctrl/postinst" --script "post-upgrade:$ascripts/post-upgrade")
fi
if [ -f "$ctrl/prerm" ]; then
  script_args+=(--script "pre-deinstall:$ctrl/prerm")
fi
mkdir -p "$APK_OUT/$apk_arch"
apk="$(cd "$APK_OUT/$apk_arch" && pwd)/$pkg-$apk_version.apk"
SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH "$top/packaging/mkapk.sh" mkpkg \
  --info "name:$pkg" --info "version:$apk_version" --info "description:$description" \
  --info "arch:$apk_arch" --info "license:$license" --info "origin:fieldbridge" \
  --info "url:$source_url" --info "maintainer:$maintainer" --info "depends:${depends//,/}" \
  "${script_args[@]}" --files "$aroot" --output "$apk"
echo "$apk"
