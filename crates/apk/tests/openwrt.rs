//! The OpenWrt 25.12 packages that packaging/mkipk.sh (APK_OUT) and packaging/make-feed.sh
//! (APK_KEY) make with this crate's writer, from a stand-in binary: metadata, files, modes,
//! symlinks, OpenWrt's /lib/apk/packages files, the scripts, reproducibility, the signed feed.
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use fieldbridge_apk::adb::{self, Container};
use fieldbridge_apk::{read, sign};
use support::{
    fieldbridge_apk, keypair, luci_apk, make_feed, mkipk, run, sha256, stand_in, top,
    workspace_version, ARCH, EPOCH,
};

#[test]
fn fieldbridge_apk_has_openwrt_metadata_files_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let path = fieldbridge_apk(dir.path(), &bin, 1, None);
    let version = format!("{}-r1", workspace_version());
    assert_eq!(
        path,
        dir.path()
            .join(format!("out/apk/{ARCH}/fieldbridge-{version}.apk"))
    );
    let p = read::package(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(p.info.get("name"), Some("fieldbridge"));
    assert_eq!(p.info.get("version"), Some(version.as_str()));
    assert_eq!(p.info.get("arch"), Some(ARCH));
    assert_eq!(p.info.get("depends"), Some("procd uci"));
    assert_eq!(p.info.get("license"), Some("Apache-2.0"));
    assert_eq!(p.info.get("origin"), Some("fieldbridge"));
    assert!(p.info.get("url").unwrap().starts_with("https://"));
    assert!(p.info.get("maintainer").unwrap().contains('@'));
    assert!(p
        .info
        .get("description")
        .unwrap()
        .contains("IEC 60870-5-104"));

    let files = top().join("openwrt/fieldbridge/files");
    let f = p.file("usr/bin/fieldbridge").unwrap();
    assert_eq!((f.acl.mode, &f.content), (0o755, &fs::read(&bin).unwrap()));
    for (path, src, mode) in [
        (
            "etc/config/fieldbridge",
            files.join("fieldbridge.config"),
            0o600,
        ),
        (
            "etc/fieldbridge/config.json",
            files.join("config.json"),
            0o600,
        ),
        (
            "etc/init.d/fieldbridge",
            files.join("fieldbridge.init"),
            0o755,
        ),
        (
            "usr/share/fieldbridge/example.json",
            top().join("config/example.json"),
            0o644,
        ),
        (
            "usr/share/fieldbridge/redis-tagbus.conf",
            files.join("redis-tagbus.conf"),
            0o644,
        ),
    ] {
        let f = p.file(path).unwrap();
        assert_eq!(f.content, fs::read(src).unwrap(), "{path}");
        assert_eq!(f.acl.mode, mode, "{path}");
    }
    let links = run(&mut Command::new(top().join("packaging/applet-links.sh")));
    for l in links.split_whitespace() {
        let f = p.file(&format!("usr/bin/{l}")).unwrap();
        assert_eq!(f.link.as_deref(), Some("fieldbridge"), "{l}");
    }
    for f in &p.files {
        assert_eq!(
            (f.acl.user.as_str(), f.acl.group.as_str()),
            ("root", "root")
        );
        assert_eq!(f.mtime, EPOCH.parse::<u64>().unwrap(), "{}", f.path);
    }
    assert!(p.dirs.iter().all(|(_, a)| a.mode == 0o755));

    // OpenWrt's lists: every file and symlink but the lists themselves, sorted.
    let text = |path: &str| String::from_utf8(p.file(path).unwrap().content.clone()).unwrap();
    let mut expected: Vec<String> = p
        .files
        .iter()
        .filter(|f| !f.path.starts_with("lib/apk/packages/"))
        .map(|f| format!("/{}", f.path))
        .collect();
    expected.sort();
    assert_eq!(
        text("lib/apk/packages/fieldbridge.list"),
        expected.join("\n") + "\n"
    );
    assert_eq!(
        text("lib/apk/packages/fieldbridge.conffiles"),
        "/etc/config/fieldbridge\n/etc/fieldbridge/config.json\n"
    );
    let statics: Vec<String> = ["etc/config/fieldbridge", "etc/fieldbridge/config.json"]
        .iter()
        .map(|c| format!("/{c} {}", sha256(&p.file(c).unwrap().content)))
        .collect();
    assert_eq!(
        text("lib/apk/packages/fieldbridge.conffiles_static"),
        statics.join("\n") + "\n"
    );
    let installed: u64 = p
        .files
        .iter()
        .filter(|f| f.link.is_none())
        .map(|f| f.size)
        .sum();
    assert_eq!(p.info.installed_size, installed);
}

#[test]
fn scripts_are_the_ipk_scripts_as_openwrt_maps_them_for_apk() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let p = read::package(&fs::read(fieldbridge_apk(dir.path(), &bin, 1, None)).unwrap()).unwrap();
    let files = top().join("openwrt/fieldbridge/files");
    let postinst = fs::read_to_string(files.join("postinst")).unwrap();
    let prerm = fs::read_to_string(files.join("prerm")).unwrap();
    assert_eq!(p.script("post-install"), Some(postinst.as_str()));
    let body: String = postinst
        .lines()
        .filter(|l| !l.trim_start().starts_with("#!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        p.script("post-upgrade").unwrap(),
        format!("#!/bin/sh\nexport PKG_UPGRADE=1\n{body}")
    );
    assert_eq!(p.script("pre-deinstall"), Some(prerm.as_str()));
    let names: Vec<&str> = p.scripts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["post-install", "pre-deinstall", "post-upgrade"]);
    // In an offline root (OpenWrt's image build exports IPKG_INSTROOT) they do nothing.
    for (name, script) in &p.scripts {
        let out = Command::new("/bin/sh")
            .args(["-c", script, name])
            .env("IPKG_INSTROOT", dir.path())
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{name}"
        );
    }

    let luci = read::package(&fs::read(luci_apk(dir.path(), 1, None)).unwrap()).unwrap();
    assert_eq!(luci.info.get("arch"), Some("noarch"));
    assert_eq!(luci.info.get("depends"), Some("fieldbridge luci-base"));
    let luci_postinst =
        fs::read_to_string(top().join("openwrt/luci-app-fieldbridge/postinst")).unwrap();
    assert_eq!(luci.script("post-install"), Some(luci_postinst.as_str()));
    assert!(luci.script("pre-deinstall").is_none());
    assert!(luci
        .file("lib/apk/packages/luci-app-fieldbridge.conffiles")
        .is_none());
    assert!(luci
        .file("www/luci-static/resources/view/fieldbridge.js")
        .is_some());
}

#[test]
fn two_builds_give_the_same_apk_and_without_apk_out_only_the_ipk() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let one = fs::read(fieldbridge_apk(a.path(), &stand_in(a.path()), 1, None)).unwrap();
    let two = fs::read(fieldbridge_apk(b.path(), &stand_in(b.path()), 1, None)).unwrap();
    assert_eq!(one, two);
    let out = run(Command::new(top().join("packaging/mkipk.sh"))
        .args([
            "luci-app-fieldbridge".as_ref(),
            a.path().join("plain").as_os_str(),
        ])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("APK_OUT"));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.trim_end().ends_with(".ipk"));
}

#[test]
fn make_feed_writes_both_feeds_and_a_signed_packages_adb() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let fb = fieldbridge_apk(dir.path(), &bin, 1, None);
    let luci = luci_apk(dir.path(), 1, None);
    let key = keypair(dir.path(), "vendor-apk");
    let feed = make_feed(dir.path(), &dir.path().join("out"), &key, None);
    assert!(
        feed.join("Packages.sig").is_file(),
        "the opkg feed as before"
    );
    let public = feed.join("apk/keys/vendor-apk.pem");
    let pem = fs::read_to_string(&public).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let ndx_bytes = fs::read(feed.join(format!("apk/{ARCH}/packages.adb"))).unwrap();
    let ndx = read::index(&ndx_bytes).unwrap();
    let c: &Container = &ndx.container;
    assert_eq!(c.schema, adb::SCHEMA_INDEX);
    assert_eq!(c.signatures.len(), 1);
    assert!(sign::verify(c.schema, &c.adb, &c.signatures[0], &public).unwrap());
    let names: Vec<&str> = ndx
        .packages
        .iter()
        .map(|p| p.get("name").unwrap())
        .collect();
    assert_eq!(names, ["fieldbridge", "luci-app-fieldbridge"]);
    for (info, file) in ndx.packages.iter().zip([&fb, &luci]) {
        let bytes = fs::read(file).unwrap();
        assert_eq!(info.hashes, read::package(&bytes).unwrap().identity);
        assert_eq!(info.file_size, bytes.len() as u64);
        let in_feed = feed
            .join(format!("apk/{ARCH}"))
            .join(file.file_name().unwrap());
        assert_eq!(fs::read(in_feed).unwrap(), bytes);
    }
}

#[test]
fn mkapk_sh_passes_shellcheck() {
    // The other packaging scripts are checked by crates/packaging's init_script test.
    let out = Command::new("shellcheck")
        .arg(top().join("packaging/mkapk.sh"))
        .output()
        .expect("shellcheck (tests/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_feed_has_an_index_per_architecture_of_packaging_targets() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let out = dir.path().join("out");
    let triples = run(&mut Command::new(top().join("packaging/targets.sh")));
    let arches: Vec<String> = triples
        .lines()
        .map(|t| {
            let line = run(Command::new(top().join("packaging/targets.sh")).arg(t));
            line.split('\t').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        arches,
        [
            "arm_cortex-a7_neon-vfpv4",
            "aarch64_cortex-a53",
            "mips_24kc"
        ]
    );
    for arch in &arches {
        let (ipk, apk) = mkipk(
            &[Path::new("fieldbridge"), &bin, Path::new(arch)],
            &out,
            1,
            None,
        );
        assert!(ipk.to_str().unwrap().ends_with(&format!("_{arch}.ipk")));
        assert_eq!(apk.parent().unwrap(), out.join("apk").join(arch));
        let p = read::package(&fs::read(&apk).unwrap()).unwrap();
        assert_eq!(p.info.get("arch"), Some(arch.as_str()));
    }
    luci_apk(dir.path(), 1, None);
    let key = keypair(dir.path(), "vendor-apk");
    let feed = make_feed(dir.path(), &out, &key, None);
    let packages = fs::read_to_string(feed.join("Packages")).unwrap();
    for arch in &arches {
        assert!(
            packages.contains(&format!("Architecture: {arch}\n")),
            "{arch} in Packages"
        );
        let ndx_bytes = fs::read(feed.join(format!("apk/{arch}/packages.adb"))).unwrap();
        let ndx = read::index(&ndx_bytes).unwrap();
        let c: &Container = &ndx.container;
        assert!(sign::verify(
            c.schema,
            &c.adb,
            &c.signatures[0],
            &feed.join("apk/keys/vendor-apk.pem")
        )
        .unwrap());
        let found: Vec<(&str, &str)> = ndx
            .packages
            .iter()
            .map(|p| (p.get("name").unwrap(), p.get("arch").unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                ("fieldbridge", arch.as_str()),
                ("luci-app-fieldbridge", "noarch")
            ]
        );
    }
}
