//! The .ipk that packaging/mkipk.sh makes: format, control fields, conffiles, file modes,
//! maintainer scripts and reproducibility (a stand-in binary replaces the ARM build).
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::{applet_links, fake_binary, mkipk, output, root, run, workspace_field, Ipk};

const ARCH: &str = "x86_64_test";
const EPOCH: u64 = 1_700_000_000;

fn build(dir: &Path) -> (std::path::PathBuf, Ipk) {
    let bin = fake_binary(dir);
    let ipk = mkipk(&bin, ARCH, &dir.join("out"), EPOCH);
    let parsed = Ipk::read(&ipk);
    (ipk, parsed)
}

#[test]
fn ipk_is_openwrt_format_with_every_control_field() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ipk) = build(dir.path());
    let version = format!("{}-1", workspace_field("version"));
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("fieldbridge_{version}_{ARCH}.ipk")
    );

    let names: Vec<&str> = ipk.outer.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    );
    assert_eq!(ipk.outer[0].data, b"2.0\n");

    let fields = ipk.fields();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Package",
            "Version",
            "Depends",
            "Source",
            "License",
            "Section",
            "Architecture",
            "Installed-Size",
            "Maintainer",
            "Description"
        ]
    );
    let f = ipk.field_map();
    assert_eq!(f["Package"], "fieldbridge");
    assert_eq!(f["Version"], version);
    assert_eq!(f["Architecture"], ARCH);
    assert_eq!(
        f["Depends"], "procd, uci",
        "static binary: no libc, only what the init script uses"
    );
    assert_eq!(f["Source"], workspace_field("repository"));
    assert_eq!(f["License"], workspace_field("license"));
    assert_eq!(f["Section"], "net");
    assert!(f["Maintainer"].contains('@'), "{}", f["Maintainer"]);
    assert!(
        f["Description"].contains("IEC 60870-5-104"),
        "{}",
        f["Description"]
    );
    let installed: usize = ipk
        .data
        .iter()
        .filter(|e| e.kind == '0')
        .map(|e| e.data.len())
        .sum();
    assert_eq!(f["Installed-Size"], installed.to_string());
}

#[test]
fn ipk_files_modes_links_and_conffiles() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ipk) = build(dir.path());

    for e in ipk.data.iter().chain(&ipk.control).chain(&ipk.outer) {
        assert_eq!((e.uid, e.gid), (0, 0), "{} owner", e.name);
        assert_eq!(e.mtime, EPOCH, "{} mtime", e.name);
    }
    let file = |path: &str, mode: u32| {
        let e = ipk
            .data_file(path)
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(e.kind, '0', "{path} is a file");
        assert_eq!(e.mode & 0o7777, mode, "{path} mode {:o}", e.mode);
        e.data.clone()
    };
    assert_eq!(
        file("/usr/bin/fieldbridge", 0o755),
        std::fs::read(dir.path().join("fieldbridge")).unwrap()
    );
    let init = file("/etc/init.d/fieldbridge", 0o755);
    assert_eq!(
        init,
        std::fs::read(root().join("openwrt/fieldbridge/files/fieldbridge.init")).unwrap()
    );
    let uci = String::from_utf8(file("/etc/config/fieldbridge", 0o600)).unwrap();
    assert!(uci.contains("config fieldbridge 'main'"), "{uci}");
    for option in [
        "option enabled '1'",
        "option config_file '/etc/fieldbridge/config.json'",
        "option log_level 'info'",
    ] {
        assert!(uci.contains(option), "{option} in {uci}");
    }
    let shipped = String::from_utf8(file("/etc/fieldbridge/config.json", 0o600)).unwrap();
    let example = file("/usr/share/fieldbridge/example.json", 0o644);
    let redis = String::from_utf8(file("/usr/share/fieldbridge/redis-tagbus.conf", 0o644)).unwrap();
    assert_eq!(
        redis,
        std::fs::read_to_string(root().join("openwrt/fieldbridge/files/redis-tagbus.conf"))
            .unwrap()
    );
    // The 64 MB sizing (docs/reliability.md): a hard ceiling, and tags are never evicted.
    assert!(redis.contains("\nmaxmemory 24mb\n"), "{redis}");
    assert!(redis.contains("\nmaxmemory-policy noeviction\n"), "{redis}");
    assert_eq!(
        example,
        std::fs::read(root().join("config/example.json")).unwrap()
    );

    // The shipped config is valid and starts nothing; the example is valid too.
    let raw = config::RawConfig::parse(&shipped).unwrap();
    let v = config::validate(&raw);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert!(v.config.devices.is_empty() && v.config.signals.is_empty());
    let raw = config::RawConfig::parse(std::str::from_utf8(&example).unwrap()).unwrap();
    assert!(config::validate(&raw).errors.is_empty());

    // Applet symlinks: from cli.rs APPLET_NAMES, relative, to the binary.
    let links: BTreeSet<String> = ipk
        .data
        .iter()
        .filter(|e| e.kind == '2')
        .map(|e| {
            assert_eq!(e.link, "fieldbridge", "{} -> {}", e.name, e.link);
            e.name.trim_start_matches("./usr/bin/").to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = applet_links().into_iter().collect();
    assert_eq!(links, expected);
    for needed in ["iec104-master", "modbus-master", "mqtt-client"] {
        assert!(links.contains(needed), "{needed} symlink");
    }
    // Generic names collide with other packages' /usr/bin (daemontools has `supervise`).
    for generic in ["supervise", "config", "tag", "status", "demo"] {
        assert!(!links.contains(generic), "{generic} symlink");
    }
    let cli = std::fs::read_to_string(root().join("crates/fieldbridge/src/cli.rs")).unwrap();
    for l in &links {
        assert!(
            cli.contains(&format!("\"{l}\"")),
            "{l} is an applet of cli.rs"
        );
    }

    // Directories 0755, nothing else in the package.
    for e in ipk.data.iter().filter(|e| e.kind == '5') {
        assert_eq!(e.mode & 0o7777, 0o755, "{}", e.name);
    }
    let files: BTreeSet<&str> = ipk
        .data
        .iter()
        .filter(|e| e.kind == '0')
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "./usr/bin/fieldbridge",
            "./etc/init.d/fieldbridge",
            "./etc/config/fieldbridge",
            "./etc/fieldbridge/config.json",
            "./usr/share/fieldbridge/example.json",
            "./usr/share/fieldbridge/redis-tagbus.conf"
        ])
    );

    let conffiles = String::from_utf8(ipk.control_file("conffiles").unwrap().data.clone()).unwrap();
    assert_eq!(
        conffiles,
        "/etc/config/fieldbridge\n/etc/fieldbridge/config.json\n"
    );
    for c in conffiles.lines() {
        assert!(ipk.data_file(c).is_some(), "conffile {c} is in the package");
    }
    for script in ["postinst", "prerm"] {
        assert_eq!(
            ipk.control_file(script).unwrap().mode & 0o7777,
            0o755,
            "{script}"
        );
    }
    assert_eq!(ipk.control_file("control").unwrap().mode & 0o7777, 0o644);
}

#[test]
fn same_inputs_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_binary(dir.path());
    let a = std::fs::read(mkipk(&bin, ARCH, &dir.path().join("a"), EPOCH)).unwrap();
    // A different mtime of the input and another output directory change nothing.
    run(Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(&bin));
    let b = std::fs::read(mkipk(&bin, ARCH, &dir.path().join("b"), EPOCH)).unwrap();
    assert!(a == b, "two builds from the same inputs differ");
    let c = std::fs::read(mkipk(&bin, ARCH, &dir.path().join("c"), EPOCH + 1)).unwrap();
    assert!(a != c, "SOURCE_DATE_EPOCH is the packages' mtime");
}

/// Unpacks a maintainer script with /etc/init.d/fieldbridge replaced by a stub that logs its
/// arguments; runs it with the given environment; returns the logged calls.
fn run_script(ipk: &Ipk, script: &str, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let text = String::from_utf8(ipk.control_file(script).unwrap().data.clone()).unwrap();
    let log = dir.join(format!("{script}.log"));
    let _ = std::fs::remove_file(&log);
    let stub = dir.join("init-stub");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" != enabled ] || [ -e '{}' ]\n",
            log.display(),
            dir.join("is-enabled").display()
        ),
    )
    .unwrap();
    run(Command::new("chmod").arg("755").arg(&stub));
    let patched = dir.join(script);
    std::fs::write(
        &patched,
        text.replace("/etc/init.d/fieldbridge", stub.to_str().unwrap()),
    )
    .unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(&patched).args(args);
    for v in ["IPKG_INSTROOT", "PKG_ROOT", "PKG_UPGRADE"] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "{script} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn maintainer_scripts_do_nothing_in_an_offline_root() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ipk) = build(dir.path());
    let offline: [&[(&str, &str)]; 3] = [
        &[("IPKG_INSTROOT", "/tmp/imagebuilder/root")],
        &[("PKG_ROOT", "/tmp/offline/")],
        &[("IPKG_INSTROOT", "/r"), ("PKG_ROOT", "/")],
    ];
    for env in offline {
        for script in ["postinst", "prerm"] {
            assert_eq!(
                run_script(&ipk, script, dir.path(), env, &[]),
                "",
                "{script} with {env:?}"
            );
        }
    }
    // The real scripts too (not only the patched copies): exit 0, no output.
    for script in ["postinst", "prerm"] {
        let path = dir.path().join(format!("real-{script}"));
        std::fs::write(&path, &ipk.control_file(script).unwrap().data).unwrap();
        let out = output(
            Command::new("sh")
                .arg(&path)
                .env("IPKG_INSTROOT", "/tmp/root"),
        );
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{script}: {out:?}"
        );
    }
}

#[test]
fn maintainer_scripts_on_a_running_system() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ipk) = build(dir.path());
    let d = dir.path();
    // opkg sets PKG_ROOT=/ for the running system.
    assert_eq!(
        run_script(&ipk, "postinst", d, &[("PKG_ROOT", "/")], &["configure"]),
        "enable\nstart\n"
    );
    assert_eq!(
        run_script(&ipk, "prerm", d, &[("PKG_ROOT", "/")], &["remove"]),
        "stop\ndisable\n"
    );
    // Upgrade: keep the user's enable/disable choice, restart the new binary if enabled.
    assert_eq!(
        run_script(&ipk, "prerm", d, &[("PKG_UPGRADE", "1")], &[]),
        "stop\n"
    );
    assert_eq!(
        run_script(&ipk, "prerm", d, &[], &["upgrade", "0.2.0-1"]),
        "stop\n"
    );
    assert_eq!(
        run_script(&ipk, "postinst", d, &[("PKG_UPGRADE", "1")], &[]),
        "enabled\n"
    );
    std::fs::write(d.join("is-enabled"), "").unwrap();
    assert_eq!(
        run_script(&ipk, "postinst", d, &[("PKG_UPGRADE", "1")], &[]),
        "enabled\nrestart\n"
    );
}

#[test]
fn feed_makefile_agrees_with_the_workspace() {
    let mk = std::fs::read_to_string(root().join("openwrt/fieldbridge/Makefile")).unwrap();
    let var = |name: &str| {
        mk.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:=")))
            .unwrap_or_else(|| panic!("{name} in the Makefile"))
            .trim()
            .to_owned()
    };
    assert_eq!(var("PKG_VERSION"), workspace_field("version"));
    assert_eq!(var("PKG_LICENSE"), workspace_field("license"));
    let links: Vec<String> = var("FIELDBRIDGE_APPLET_LINKS")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        links,
        applet_links(),
        "Makefile FIELDBRIDGE_APPLET_LINKS vs packaging/applet-links.sh"
    );
    let features: Vec<String> = var("RUST_PKG_FEATURES")
        .split([',', ' '])
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let script = run(Command::new(root().join("packaging/openwrt-features.sh"))
        .env_remove("OPENWRT_DROP_FEATURES"));
    let expected: Vec<String> = script
        .trim()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        features, expected,
        "Makefile RUST_PKG_FEATURES vs packaging/openwrt-features.sh"
    );
    assert!(!expected.iter().any(|f| f == "journald" || f == "demo"));
    for needed in [
        "$(call Build/Compile/Cargo,crates/fieldbridge,--no-default-features)",
        "include $(TOPDIR)/rules.mk",
        "include ../../lang/rust/rust-package.mk",
        "$(eval $(call BuildPackage,fieldbridge))",
        "/etc/fieldbridge/config.json",
        "./files/fieldbridge.init",
    ] {
        assert!(mk.contains(needed), "Makefile has {needed}");
    }
    let luci =
        std::fs::read_to_string(root().join("openwrt/luci-app-fieldbridge/Makefile")).unwrap();
    assert!(luci.contains("include ../../luci.mk") && luci.contains("+fieldbridge"));
}
