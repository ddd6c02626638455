//! The cross targets of packaging/build-ipk.sh (packaging/targets.sh): each Rust target triple's
//! OpenWrt architecture, qemu CPU and rustflags, and a package for each architecture.
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::process::Command;

use support::{fake_binary, mkipk, output, root, run, Ipk};

/// (arch, qemu, rustflags) of `triple` as packaging/targets.sh prints them.
fn mapping(triple: &str) -> (String, String, String) {
    let line = run(Command::new(root().join("packaging/targets.sh")).arg(triple));
    let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    assert_eq!(fields.len(), 3, "{line:?}");
    (fields[0].into(), fields[1].into(), fields[2].into())
}

#[test]
fn every_target_maps_to_its_openwrt_architecture_and_qemu_cpu() {
    let defaults = run(&mut Command::new(root().join("packaging/targets.sh")));
    assert_eq!(
        defaults.lines().collect::<Vec<_>>(),
        [
            "armv7-unknown-linux-musleabihf",
            "aarch64-unknown-linux-musl",
            "mips-unknown-linux-musl"
        ]
    );
    let (arch, qemu, flags) = mapping("armv7-unknown-linux-musleabihf");
    assert_eq!(
        (arch.as_str(), qemu.as_str(), flags.as_str()),
        (
            "arm_cortex-a7_neon-vfpv4",
            "qemu-arm-static -cpu cortex-a7",
            ""
        )
    );
    let (arch, qemu, flags) = mapping("aarch64-unknown-linux-musl");
    assert_eq!(
        (arch.as_str(), qemu.as_str(), flags.as_str()),
        (
            "aarch64_cortex-a53",
            "qemu-aarch64-static -cpu cortex-a53",
            ""
        )
    );
    // The WCC Lite's MIPS 24Kc (ath79): static, non-PIC, MIPS32r2 (soft-float is the target's).
    let (arch, qemu, flags) = mapping("mips-unknown-linux-musl");
    assert_eq!(arch, "mips_24kc");
    assert_eq!(qemu, "qemu-mips-static -cpu 24Kc");
    let flags: Vec<&str> = flags.split(' ').collect();
    assert_eq!(
        flags,
        [
            "-C",
            "target-cpu=mips32r2",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static"
        ]
    );

    let unknown =
        output(Command::new(root().join("packaging/targets.sh")).arg("mipsel-unknown-linux-musl"));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("unknown target mipsel-unknown-linux-musl"));

    // build-ipk.sh takes its targets and their mapping from there, and holds no triple itself.
    let build = std::fs::read_to_string(root().join("packaging/build-ipk.sh")).unwrap();
    assert!(build.contains("\"$top/packaging/targets.sh\" \"$target\""));
    assert!(build.contains("TARGETS=${TARGETS:-$(\"$top/packaging/targets.sh\""));
    for arch in [
        "arm_cortex-a7_neon-vfpv4",
        "aarch64_cortex-a53",
        "mips_24kc",
    ] {
        assert!(
            !build.contains(&format!("arch={arch}")),
            "{arch} mapped in build-ipk.sh"
        );
    }
}

#[test]
fn each_target_architecture_gets_its_ipk() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(dir.path());
    let triples = run(&mut Command::new(root().join("packaging/targets.sh")));
    for triple in triples.lines() {
        let (arch, _, _) = mapping(triple);
        let path = mkipk(&bin, &arch, &dir.path().join("ipk"), 1_700_000_000);
        assert!(
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(&format!("-1_{arch}.ipk")),
            "{path:?}"
        );
        let ipk = Ipk::read(&path);
        assert_eq!(ipk.field_map()["Architecture"], arch);
        assert_eq!(
            ipk.data_file("/usr/bin/fieldbridge").unwrap().data,
            std::fs::read(&bin).unwrap()
        );
    }
}
