//! What this crate writes, checked by a real apk-tools v3 (path in FIELDBRIDGE_APK; skipped when
//! unset, CI has none): `apk mkpkg` makes the same container from the same staged tree; `apk
//! add` installs fieldbridge and the LuCI app from the signed feed into an offline root (stub
//! packages for procd, uci and luci-base; scripts off) with every file, mode and symlink; the
//! armv7 binary from that root runs under qemu-arm (FIELDBRIDGE_ARMV7_BINARY, else a stand-in
//! and that step skipped); `apk verify` accepts the package and the signed index and refuses a
//! tampered index and one signed with a foreign key; an upgrade to a higher release from the
//! feed keeps the user's edited /etc/config/fieldbridge and writes `.apk-new`; an index signed
//! with a foreign key upgrades nothing; removal takes the files and keeps the edited conffile.
//! And with scripts on, in a root holding the host's /bin/sh and a stand-in rc.common that
//! records what the init script is asked: install enables and starts, an upgrade restarts only
//! an enabled service, removal stops and disables, and with IPKG_INSTROOT (`--preserve-env`)
//! nothing is asked.
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

mod support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fieldbridge_apk::adb::Container;
use fieldbridge_apk::read;
use support::{fieldbridge_apk, keypair, luci_apk, make_feed, run, stand_in, top, ARCH};

fn real_apk() -> Option<PathBuf> {
    match std::env::var_os("FIELDBRIDGE_APK") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("skipped: FIELDBRIDGE_APK not set (path to a real apk-tools v3 apk binary)");
            None
        }
    }
}

fn apk(bin: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin).args(args).output().unwrap();
    println!(
        "$ apk {}\n{}{}(rc {})",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "apk failed");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn installed_version(root: &Path, pkg: &str) -> Option<String> {
    let db = fs::read_to_string(root.join("lib/apk/db/installed")).ok()?;
    let mut lines = db.lines();
    while let Some(l) = lines.next() {
        if l == format!("P:{pkg}") {
            return lines.next()?.strip_prefix("V:").map(str::to_string);
        }
    }
    None
}

fn stubs(out: &Path) {
    let empty = out.join("stub-root");
    fs::create_dir_all(&empty).unwrap();
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o755)).unwrap();
    let noarch = out.join("apk/noarch");
    fs::create_dir_all(&noarch).unwrap();
    for name in ["procd", "uci", "luci-base"] {
        run(Command::new(env!("CARGO_BIN_EXE_fieldbridge-mkapk"))
            .args(["mkpkg", "--info"])
            .arg(format!("name:{name}"))
            .args(["--info", "version:1-r1", "--info", "arch:noarch", "--files"])
            .arg(&empty)
            .arg("--output")
            .arg(noarch.join(format!("{name}-1-r1.apk"))));
    }
}

/// An index of `packages` signed with `key`, written with fieldbridge-mkapk.
fn signed_index(key: &Path, output: &Path, packages: &[impl AsRef<OsStr>]) {
    run(Command::new(env!("CARGO_BIN_EXE_fieldbridge-mkapk"))
        .args(["mkndx", "--sign-key", s(key), "--output", s(output)])
        .args(packages));
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn real_apk_installs_upgrades_verifies_and_removes_what_we_write() {
    let Some(bin) = real_apk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let armv7 = std::env::var_os("FIELDBRIDGE_ARMV7_BINARY").map(PathBuf::from);
    let binary = armv7.clone().unwrap_or_else(|| stand_in(d));

    // The same staged tree through apk mkpkg: the same container (deflate streams differ).
    let ours = fieldbridge_apk(&d.join("ours"), &binary, 1, None);
    let theirs = fieldbridge_apk(&d.join("theirs"), &binary, 1, Some(&bin));
    assert_eq!(
        Container::parse(&fs::read(&ours).unwrap(), None).unwrap(),
        Container::parse(&fs::read(&theirs).unwrap(), None).unwrap(),
        "apk mkpkg writes the same container from the same staged files"
    );

    let pkg = fieldbridge_apk(d, &binary, 1, None);
    luci_apk(d, 1, None);
    let out = d.join("out");
    stubs(&out);
    let key = keypair(d, "vendor-apk");
    let feed = make_feed(d, &out, &key, None);
    let index = feed.join(format!("apk/{ARCH}/packages.adb"));
    let keys = feed.join("apk/keys");

    // apk verify: the package (unsigned, as OpenWrt's: its hashes) and the signed index.
    ok(&apk(&bin, &["verify", "--allow-untrusted", s(&pkg)]));
    ok(&apk(&bin, &["verify", "--keys-dir", s(&keys), s(&index)]));
    let mut tampered = Container::parse(&fs::read(&index).unwrap(), None).unwrap();
    let at = tampered.adb.len() - 1;
    tampered.adb[at] ^= 1;
    let tampered_path = d.join("tampered.adb");
    fs::write(&tampered_path, tampered.to_plain().unwrap()).unwrap();
    assert!(
        !apk(&bin, &["verify", "--keys-dir", s(&keys), s(&tampered_path)])
            .status
            .success()
    );
    let foreign_key = keypair(d, "foreign");
    let foreign_path = d.join("foreign.adb");
    signed_index(&foreign_key, &foreign_path, &[&pkg]);
    assert!(
        !apk(&bin, &["verify", "--keys-dir", s(&keys), s(&foreign_path)])
            .status
            .success()
    );

    // Install into an offline root that trusts the feed's key.
    let root = d.join("root");
    trust_feed_key(&root, &keys);
    let common = [
        "--root",
        s(&root),
        "-X",
        s(&index),
        "--no-scripts",
        "--no-cache",
    ];
    let mut add = vec!["add", "--initdb", "--arch", ARCH];
    add.extend(common);
    add.extend(["fieldbridge", "luci-app-fieldbridge"]);
    ok(&apk(&bin, &add));
    assert_eq!(
        installed_version(&root, "fieldbridge").as_deref(),
        Some("0.1.0-r1")
    );
    let p = read::package(&fs::read(&pkg).unwrap()).unwrap();
    for f in &p.files {
        let on_disk = root.join(&f.path);
        let meta = fs::symlink_metadata(&on_disk).unwrap();
        match &f.link {
            Some(target) => assert_eq!(fs::read_link(&on_disk).unwrap(), Path::new(target)),
            None => {
                assert_eq!(meta.permissions().mode() & 0o7777, f.acl.mode, "{}", f.path);
                assert_eq!(fs::read(&on_disk).unwrap(), f.content, "{}", f.path);
            }
        }
    }
    let list = fs::read_to_string(root.join("lib/apk/packages/fieldbridge.list")).unwrap();
    for l in list.lines() {
        assert!(fs::symlink_metadata(root.join(&l[1..])).is_ok(), "{l}");
    }
    assert!(root
        .join("www/luci-static/resources/view/fieldbridge.js")
        .is_file());

    let qemu = Path::new("/usr/bin/qemu-arm-static");
    match (&armv7, qemu.exists()) {
        (Some(_), true) => {
            let o = Command::new(qemu)
                .args(["-cpu", "cortex-a7"])
                .arg(root.join("usr/bin/fieldbridge"))
                .arg("--version")
                .output()
                .unwrap();
            let v = String::from_utf8_lossy(&o.stdout);
            println!("$ qemu-arm-static -cpu cortex-a7 ROOT/usr/bin/fieldbridge --version\n{v}");
            assert!(o.status.success() && v.contains("0.1.0"), "{v}");
        }
        _ => println!(
            "skipped: the qemu run needs FIELDBRIDGE_ARMV7_BINARY (the armv7 build) and qemu-arm-static"
        ),
    }

    // Upgrade to the next release from the feed: the edited conffile stays, .apk-new lands.
    let conf = root.join("etc/config/fieldbridge");
    let mut edited = fs::read_to_string(&conf).unwrap();
    edited.push_str("\toption log_level 'debug'\n");
    fs::write(&conf, &edited).unwrap();
    fieldbridge_apk(d, &binary, 2, None);
    let feed = make_feed(d, &out, &key, None);
    assert_eq!(feed.join(format!("apk/{ARCH}/packages.adb")), index);
    let mut upgrade = vec!["upgrade"];
    upgrade.extend(common);
    let said = ok(&apk(&bin, &upgrade));
    assert!(said.contains("0.1.0-r1 -> 0.1.0-r2"), "{said}");
    assert_eq!(
        installed_version(&root, "fieldbridge").as_deref(),
        Some("0.1.0-r2")
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
    assert_eq!(
        fs::read(root.join("etc/config/fieldbridge.apk-new")).unwrap(),
        fs::read(top().join("openwrt/fieldbridge/files/fieldbridge.config")).unwrap()
    );

    // A higher release in an index signed with a foreign key is not installed.
    let r3 = fieldbridge_apk(&d.join("r3"), &binary, 3, None);
    let foreign_feed = d.join("foreign-feed.adb");
    signed_index(&foreign_key, &foreign_feed, &[&r3]);
    let foreign_upgrade = [
        "upgrade",
        "--root",
        s(&root),
        "-X",
        s(&foreign_feed),
        "--no-scripts",
        "--no-cache",
    ];
    let said = ok(&apk(&bin, &foreign_upgrade));
    assert!(said.contains("UNTRUSTED"), "{said}");
    assert_eq!(
        installed_version(&root, "fieldbridge").as_deref(),
        Some("0.1.0-r2")
    );

    // Removal: the package's files go, the user's edited conffile stays.
    let mut del = vec!["del"];
    del.extend(common);
    del.extend(["luci-app-fieldbridge", "fieldbridge"]);
    ok(&apk(&bin, &del));
    assert!(installed_version(&root, "fieldbridge").is_none());
    assert!(!root.join("usr/bin/fieldbridge").exists());
    assert!(!root.join("usr/bin/mqtt-client").exists());
    assert!(!root.join("etc/init.d/fieldbridge").exists());
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
}

/// The feed's key in the offline root's /etc/apk/keys/.
fn trust_feed_key(root: &Path, keys: &Path) {
    fs::create_dir_all(root.join("etc/apk/keys")).unwrap();
    fs::copy(
        keys.join("vendor-apk.pem"),
        root.join("etc/apk/keys/vendor-apk.pem"),
    )
    .unwrap();
}

/// A stand-in for OpenWrt's /etc/rc.common: records each action, keeps the enable state.
const RC_COMMON: &str = r#"#!/bin/sh
echo "$2" >> /rc-calls
case $2 in
  enable) echo 1 > /enabled ;;
  disable) echo 0 > /enabled ;;
  enabled) read -r s < /enabled; [ "$s" = 1 ]; exit ;;
esac
exit 0
"#;

/// An offline root apk can run scripts in: the host's /bin/sh with its libraries, the feed's
/// key, the stand-in rc.common.
fn script_root(root: &Path, keys: &Path) {
    trust_feed_key(root, keys);
    let ldd = run(Command::new("ldd").arg("/bin/sh"));
    let libs = ldd
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from);
    for from in libs.chain([PathBuf::from("/bin/sh")]) {
        let real = fs::canonicalize(&from).unwrap();
        let to = root.join(from.strip_prefix("/").unwrap());
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(real, &to).unwrap();
    }
    fs::write(root.join("etc/rc.common"), RC_COMMON).unwrap();
}

/// `apk add` of fieldbridge from `index` into a fresh `root`, scripts on.
fn install_args<'a>(root: &'a Path, index: &'a Path) -> [&'a str; 10] {
    [
        "add",
        "--initdb",
        "--arch",
        ARCH,
        "--root",
        s(root),
        "-X",
        s(index),
        "--no-cache",
        "fieldbridge",
    ]
}

/// `apk upgrade` of `root` from `index`, scripts on.
fn upgrade_args<'a>(root: &'a Path, index: &'a Path) -> [&'a str; 6] {
    ["upgrade", "--root", s(root), "-X", s(index), "--no-cache"]
}

fn rc_calls(root: &Path) -> String {
    fs::read_to_string(root.join("rc-calls"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn real_apk_runs_the_scripts_as_the_ipk_runs_its_own() {
    let Some(bin) = real_apk() else { return };
    if run(Command::new("id").arg("-u")).trim() != "0" {
        println!("skipped: running the scripts chrooted needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let binary = stand_in(d);
    let out = d.join("out");
    let r1 = fieldbridge_apk(d, &binary, 1, None);
    stubs(&out);
    let key = keypair(d, "vendor-apk");
    let feed = make_feed(d, &out, &key, None);
    let keys = feed.join("apk/keys");
    let index = feed.join(format!("apk/{ARCH}/packages.adb"));
    // The next release's feed: its directory holds every package its index names.
    let r2 = fieldbridge_apk(&d.join("next"), &binary, 2, None);
    let next_dir = r2.parent().unwrap().to_path_buf();
    let mut next_pkgs = vec![r2.clone()];
    for p in ["procd-1-r1.apk", "uci-1-r1.apk"]
        .map(|n| out.join("apk/noarch").join(n))
        .into_iter()
        .chain([r1])
    {
        let to = next_dir.join(p.file_name().unwrap());
        fs::copy(&p, &to).unwrap();
        next_pkgs.push(to);
    }
    let next = next_dir.join("packages.adb");
    signed_index(&key, &next, &next_pkgs);

    let root = d.join("root");
    script_root(&root, &keys);
    ok(&apk(&bin, &install_args(&root, &index)));
    assert_eq!(
        rc_calls(&root),
        "enable start",
        "first install: enable and start"
    );
    assert!(ok(&apk(&bin, &upgrade_args(&root, &next))).contains("0.1.0-r1 -> 0.1.0-r2"));
    assert_eq!(
        rc_calls(&root),
        "enable start enabled restart",
        "upgrade: restart (enabled)"
    );
    ok(&apk(
        &bin,
        &["del", "--root", s(&root), "--no-cache", "fieldbridge"],
    ));
    assert_eq!(
        rc_calls(&root),
        "enable start enabled restart stop disable",
        "removal: stop and disable"
    );

    // Disabled by the user: the upgrade leaves it stopped.
    let root = d.join("disabled");
    script_root(&root, &keys);
    ok(&apk(&bin, &install_args(&root, &index)));
    fs::write(root.join("enabled"), "0\n").unwrap();
    ok(&apk(&bin, &upgrade_args(&root, &next)));
    assert_eq!(
        rc_calls(&root),
        "enable start enabled",
        "upgrade of a disabled service"
    );

    // An offline root (IPKG_INSTROOT passed with --preserve-env): the scripts ask nothing.
    let root = d.join("offline");
    script_root(&root, &keys);
    let out = Command::new(&bin)
        .arg("--preserve-env")
        .args(install_args(&root, &index))
        .env("IPKG_INSTROOT", &root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    println!("$ IPKG_INSTROOT=R apk --preserve-env add ... fieldbridge\n{said}");
    assert!(out.status.success() && said.contains("Executing fieldbridge-0.1.0-r1.post-install"));
    assert_eq!(rc_calls(&root), "", "offline root: nothing");
}
