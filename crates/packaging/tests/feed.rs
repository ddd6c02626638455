//! The signed opkg feed of packaging/make-feed.sh: the Packages index, Packages.gz, and a usign
//! signature that verifies with the vendor's public key (and with OpenBSD's signify, an
//! independent implementation of the same format, when it is installed).
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use support::{fake_binary, gunzip, have, mkipk, mkipk_luci, output, python, root, run};

fn usign(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("packaging/usign.py")).args(args);
    cmd
}

fn keygen(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (sec, public) = (dir.join("vendor.sec"), dir.join("vendor.pub"));
    run(&mut usign(&[
        "keygen".as_ref(),
        "-s".as_ref(),
        sec.as_os_str(),
        "-p".as_ref(),
        public.as_os_str(),
    ]));
    (sec, public)
}

fn verify(public: &Path, msg: &Path, sig: &Path) -> bool {
    output(&mut usign(&[
        "verify".as_ref(),
        "-p".as_ref(),
        public.as_os_str(),
        "-m".as_ref(),
        msg.as_os_str(),
        "-x".as_ref(),
        sig.as_os_str(),
    ]))
    .status
    .success()
}

#[test]
fn feed_has_index_gz_and_a_valid_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fake_binary(d);
    let arm = mkipk(
        &bin,
        "arm_cortex-a7_neon-vfpv4",
        &d.join("ipk"),
        1_700_000_000,
    );
    let luci = mkipk_luci(&d.join("ipk"), 1_700_000_000);
    let (sec, public) = keygen(d);
    let feed = d.join("feed");
    run(Command::new(root().join("packaging/make-feed.sh"))
        .arg(&feed)
        .arg(&sec)
        .arg(&arm)
        .arg(&luci));

    let packages = std::fs::read(feed.join("Packages")).unwrap();
    assert_eq!(
        gunzip(&std::fs::read(feed.join("Packages.gz")).unwrap()),
        packages
    );

    // One stanza per package, ipkg-make-index fields, Filename/Size/SHA256sum true to the file.
    let text = String::from_utf8(packages).unwrap();
    let stanzas: Vec<BTreeMap<&str, &str>> = text
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.lines().map(|l| l.split_once(": ").unwrap()).collect())
        .collect();
    assert_eq!(stanzas.len(), 2);
    for s in &stanzas {
        for field in [
            "Package",
            "Version",
            "Depends",
            "Source",
            "Section",
            "Architecture",
            "Installed-Size",
            "Filename",
            "Size",
            "SHA256sum",
            "Description",
        ] {
            assert!(s.contains_key(field), "{field} in {s:?}");
        }
        let file = feed.join(s["Filename"]);
        assert_eq!(
            s["Size"],
            std::fs::metadata(&file).unwrap().len().to_string()
        );
        let sum = run(Command::new("sha256sum").arg(&file));
        assert_eq!(s["SHA256sum"], sum.split_whitespace().next().unwrap());
    }
    assert_eq!(stanzas[0]["Package"], "fieldbridge");
    assert_eq!(stanzas[0]["Architecture"], "arm_cortex-a7_neon-vfpv4");
    assert_eq!(stanzas[1]["Package"], "luci-app-fieldbridge");
    assert_eq!(stanzas[1]["Architecture"], "all");

    // usign format: comment line + base64("Ed" | key id | signature).
    let sig = std::fs::read_to_string(feed.join("Packages.sig")).unwrap();
    let fp = run(&mut usign(&[
        "fingerprint".as_ref(),
        "-p".as_ref(),
        public.as_os_str(),
    ]));
    assert!(
        sig.starts_with(&format!("untrusted comment: signed by key {}\n", fp.trim())),
        "{sig}"
    );
    assert_eq!(sig.lines().nth(1).unwrap().len(), 100, "base64 of 74 bytes");
    assert!(verify(
        &public,
        &feed.join("Packages"),
        &feed.join("Packages.sig")
    ));

    // A changed index or another key does not verify.
    let tampered = d.join("Packages.tampered");
    std::fs::write(&tampered, text.replace("Version: ", "Version: 9")).unwrap();
    assert!(!verify(&public, &tampered, &feed.join("Packages.sig")));
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_pub) = keygen(&other);
    assert!(!verify(
        &other_pub,
        &feed.join("Packages"),
        &feed.join("Packages.sig")
    ));

    if have("signify-openbsd") {
        run(Command::new("signify-openbsd")
            .args(["-V", "-q", "-p"])
            .arg(&public)
            .arg("-m")
            .arg(feed.join("Packages"))
            .arg("-x")
            .arg(feed.join("Packages.sig")));
        // And signify signs with our secret key file in a way usign.py verifies.
        run(Command::new("signify-openbsd")
            .args(["-S", "-s"])
            .arg(&sec)
            .arg("-m")
            .arg(&tampered)
            .arg("-x")
            .arg(d.join("t.sig")));
        assert!(verify(&public, &tampered, &d.join("t.sig")));
    } else {
        eprintln!("signify-openbsd not installed: signature checked with usign.py only");
    }
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (sec, public) = keygen(dir.path());
    let before = std::fs::read(&sec).unwrap();
    let out = output(&mut usign(&[
        "keygen".as_ref(),
        "-s".as_ref(),
        sec.as_os_str(),
        "-p".as_ref(),
        public.as_os_str(),
    ]));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&sec).unwrap(), before);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sec).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
