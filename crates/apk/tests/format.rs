//! The writer against fixtures made by apk-tools 3.0.6 from the same input (`apk mkpkg
//! --compression none` of the tree below, `apk mkndx --compression none -d fixture` of that
//! package), reproducibility, parse-back, and the index signature.
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use fieldbridge_apk::adb::{self, Compression, Container};
use fieldbridge_apk::{index, pkg, read, sign};

const EPOCH: u64 = 1_700_000_000;
const POST_INSTALL: &str = "#!/bin/sh\necho installed\n";
/// The tree's directories, in the order apk sorts them.
const DIRS: [&str; 7] = [
    "",
    "etc",
    "etc/config",
    "usr",
    "usr/bin",
    "var",
    "var/empty-dir",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn put(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The fixtures' tree: a 0600 conffile, an empty file, a 300-byte binary, a symlink to it and
/// an empty directory; every directory 0755.
fn tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    put(
        &t.join("etc/config/sample"),
        b"config sample\n\toption x '1'\n",
        0o600,
    );
    put(&t.join("etc/empty"), b"", 0o644);
    let bin: Vec<u8> = (0..300u32).map(|i| (i % 256) as u8).collect();
    put(&t.join("usr/bin/tool"), &bin, 0o755);
    symlink("tool", t.join("usr/bin/alias")).unwrap();
    fs::create_dir_all(t.join("var/empty-dir")).unwrap();
    for d in DIRS {
        fs::set_permissions(t.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    t
}

fn spec() -> pkg::PkgSpec {
    let mut s = pkg::PkgSpec {
        epoch: Some(EPOCH),
        ..Default::default()
    };
    for kv in [
        "name:sample",
        "version:1.2.3-r4",
        "description:A sample package",
        "arch:noarch",
        "license:Apache-2.0",
        "origin:sample",
        "url:https://example.invalid/sample",
        "maintainer:Someone <someone@example.invalid>",
        "depends:libc busybox",
    ] {
        s.set_info(kv).unwrap();
    }
    s.set_script("post-install", POST_INSTALL.as_bytes().to_vec())
        .unwrap();
    s
}

#[test]
fn package_is_byte_for_byte_what_apk_mkpkg_writes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pkg::build(&tree(dir.path()), &spec(), Compression::None).unwrap();
    assert_eq!(bytes, fs::read(fixture("sample.apk")).unwrap());
}

#[test]
fn index_is_byte_for_byte_what_apk_mkndx_writes() {
    let bytes = index::build(
        &[fixture("sample.apk")],
        Some("fixture"),
        None,
        Compression::None,
    )
    .unwrap();
    assert_eq!(bytes, fs::read(fixture("sample-index.adb")).unwrap());
}

#[test]
fn same_input_same_bytes_and_deflate_holds_the_same_container() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let one = pkg::build(&tree(a.path()), &spec(), Compression::Deflate).unwrap();
    let two = pkg::build(&tree(b.path()), &spec(), Compression::Deflate).unwrap();
    assert_eq!(one, two);
    assert_eq!(&one[..4], b"ADBd");
    let plain = fs::read(fixture("sample.apk")).unwrap();
    assert_eq!(
        Container::parse(&one, None).unwrap(),
        Container::parse(&plain, None).unwrap()
    );
    assert!(one.len() < plain.len());
}

#[test]
fn package_parses_back_with_every_field_file_and_script() {
    let p = read::package(&fs::read(fixture("sample.apk")).unwrap()).unwrap();
    assert_eq!(p.info.get("name"), Some("sample"));
    assert_eq!(p.info.get("version"), Some("1.2.3-r4"));
    assert_eq!(p.info.get("arch"), Some("noarch"));
    assert_eq!(
        p.info.get("depends"),
        Some("busybox libc"),
        "sorted by name"
    );
    assert_eq!(p.info.installed_size, 28 + 300);
    assert_eq!(p.info.hashes.len(), 20, "the unique id");
    let dirs: Vec<&str> = p.dirs.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(dirs, DIRS);
    assert!(p
        .dirs
        .iter()
        .all(|(_, a)| a.mode == 0o755 && a.user == "root"));
    let conf = p.file("etc/config/sample").unwrap();
    assert_eq!(conf.acl.mode, 0o600);
    assert_eq!(conf.content, b"config sample\n\toption x '1'\n");
    assert_eq!(conf.mtime, EPOCH);
    let link = p.file("usr/bin/alias").unwrap();
    assert_eq!(link.link.as_deref(), Some("tool"));
    assert_eq!(link.acl.mode, 0o777);
    assert_eq!(p.file("usr/bin/tool").unwrap().content.len(), 300);
    assert_eq!(p.file("etc/empty").unwrap().size, 0);
    assert_eq!(p.script("post-install"), Some(POST_INSTALL));
    assert_eq!(p.scripts.len(), 1);
}

#[test]
fn reader_refuses_altered_content() {
    let mut bytes = fs::read(fixture("sample.apk")).unwrap();
    let at = bytes.len() - 20; // inside the last data block (the tool's bytes)
    bytes[at] ^= 1;
    assert!(read::package(&bytes).is_err());
    assert!(read::package(b"ADB.pckg").is_err());
    assert!(read::index(&fs::read(fixture("sample.apk")).unwrap()).is_err());
}

#[test]
fn index_lists_packages_sorted_with_size_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let t = tree(dir.path());
    let mut paths = Vec::new();
    for (name, version) in [
        ("zeta", "1.0-r1"),
        ("alpha", "0.10-r1"),
        ("alpha", "0.9-r2"),
    ] {
        let mut s = pkg::PkgSpec::default();
        for kv in [
            format!("name:{name}"),
            format!("version:{version}"),
            "arch:noarch".into(),
        ] {
            s.set_info(&kv).unwrap();
        }
        let p = dir.path().join(format!("{name}-{version}.apk"));
        fs::write(&p, pkg::build(&t, &s, Compression::Deflate).unwrap()).unwrap();
        paths.push(p);
    }
    let ndx =
        read::index(&index::build(&paths, None, None, Compression::Deflate).unwrap()).unwrap();
    let got: Vec<(&str, &str)> = ndx
        .packages
        .iter()
        .map(|p| (p.get("name").unwrap(), p.get("version").unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("alpha", "0.9-r2"),
            ("alpha", "0.10-r1"),
            ("zeta", "1.0-r1")
        ]
    );
    for p in &ndx.packages {
        let file = dir.path().join(format!(
            "{}-{}.apk",
            p.get("name").unwrap(),
            p.get("version").unwrap()
        ));
        let bytes = fs::read(&file).unwrap();
        assert_eq!(p.file_size, bytes.len() as u64);
        assert_eq!(p.hashes, read::package(&bytes).unwrap().identity);
    }
}

fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = support::keypair(dir, name);
    (key, dir.join(format!("{name}.pub.pem")))
}

#[test]
fn signed_index_verifies_with_its_key_only_and_not_when_altered() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "feed");
    let (_, foreign) = keypair(dir.path(), "foreign");
    let bytes = index::build(
        &[fixture("sample.apk")],
        Some("fixture"),
        Some(&key),
        Compression::None,
    )
    .unwrap();
    let c = Container::parse(&bytes, Some(adb::SCHEMA_INDEX)).unwrap();
    assert_eq!(
        c.adb,
        Container::parse(&fs::read(fixture("sample-index.adb")).unwrap(), None)
            .unwrap()
            .adb,
        "signing adds a block and changes nothing else"
    );
    assert_eq!(c.signatures.len(), 1);
    let s = &c.signatures[0];
    assert_eq!(&s[..2], [0, 4], "version 0, SHA-512 digest");
    let point = sign::public_point(&public, false).unwrap();
    assert_eq!(&s[2..18], sign::key_id(&point));
    assert!(sign::verify(c.schema, &c.adb, s, &public).unwrap());
    assert!(!sign::verify(c.schema, &c.adb, s, &foreign).unwrap());
    let mut altered = c.adb.clone();
    let at = altered.len() - 1;
    altered[at] ^= 1;
    assert!(!sign::verify(c.schema, &altered, s, &public).unwrap());
    assert!(!sign::verify(adb::SCHEMA_PACKAGE, &c.adb, s, &public).unwrap());
}

#[test]
fn bad_info_is_refused_before_anything_is_written() {
    let mut s = pkg::PkgSpec::default();
    assert!(s.set_info("version:0.1.0-1").is_err());
    assert!(s.set_info("name:-x").is_err());
    assert!(s.set_info("depends:a>=1").is_err());
    assert!(s.set_info("colour:red").is_err());
    assert!(s.set_script("post-remove", vec![]).is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(pkg::build(&tree(dir.path()), &s, Compression::None).is_err());
}
