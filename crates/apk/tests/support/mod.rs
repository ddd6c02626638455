//! Helpers of the apk tests: mkipk.sh/make-feed.sh runs with this crate's writer or a real apk.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ARCH: &str = "arm_cortex-a7_neon-vfpv4";
pub const EPOCH: &str = "1700000000";

pub fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256(b: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// mkipk.sh with APK_OUT; returns (ipk, apk) paths. `apk` selects a real apk-tools.
pub fn mkipk(args: &[&Path], out: &Path, release: u32, apk: Option<&Path>) -> (PathBuf, PathBuf) {
    let mut cmd = Command::new(top().join("packaging/mkipk.sh"));
    cmd.args(args)
        .arg(out)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("PKG_RELEASE", release.to_string())
        .env("APK_OUT", out.join("apk"))
        .env("MKAPK", env!("CARGO_BIN_EXE_fieldbridge-mkapk"))
        .env_remove("APPLET_LINKS");
    match apk {
        Some(a) => cmd.env("APK", a),
        None => cmd.env_remove("APK"),
    };
    let stdout = run(&mut cmd);
    let lines: Vec<&str> = stdout.lines().collect();
    let n = lines.len();
    (PathBuf::from(lines[n - 2]), PathBuf::from(lines[n - 1]))
}

/// A stand-in for the ARM binary (fixed bytes; not run).
pub fn stand_in(dir: &Path) -> PathBuf {
    let p = dir.join("fieldbridge");
    let bytes: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(&p, bytes).unwrap();
    p
}

pub fn fieldbridge_apk(dir: &Path, bin: &Path, release: u32, apk: Option<&Path>) -> PathBuf {
    mkipk(
        &[Path::new("fieldbridge"), bin, Path::new(ARCH)],
        &dir.join("out"),
        release,
        apk,
    )
    .1
}

pub fn luci_apk(dir: &Path, release: u32, apk: Option<&Path>) -> PathBuf {
    mkipk(
        &[Path::new("luci-app-fieldbridge")],
        &dir.join("out"),
        release,
        apk,
    )
    .1
}

pub fn workspace_version() -> String {
    let toml = fs::read_to_string(top().join("Cargo.toml")).unwrap();
    let at = toml.find("[workspace.package]").unwrap();
    let line = toml[at..]
        .lines()
        .find(|l| l.starts_with("version"))
        .unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

/// A fresh EC prime256v1 key `name`.pem and its public half `name`.pub.pem, made as
/// packaging/README.md says; returns the private key.
pub fn keypair(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.pem"));
    let k = key.to_str().unwrap();
    let public = dir.join(format!("{name}.pub.pem"));
    let public = public.to_str().unwrap();
    run(Command::new("openssl").args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        k,
    ]));
    run(Command::new("openssl").args(["ec", "-in", k, "-pubout", "-out", public]));
    key
}

/// A python3 with the `cryptography` package (packaging/usign.py needs it; tests/setup).
fn python() -> &'static str {
    let has = |py: &str| {
        Command::new(py)
            .args(["-c", "import cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| has(py))
        .expect("no python3 with the cryptography package: run tests/setup")
}

/// make-feed.sh with both keys over `out` (ipks in out/, apks in out/apk/); returns the feed.
pub fn make_feed(dir: &Path, out: &Path, apk_key: &Path, apk: Option<&Path>) -> PathBuf {
    let usign = dir.join("vendor.sec");
    if !usign.exists() {
        run(Command::new(python())
            .arg(top().join("packaging/usign.py"))
            .args(["keygen", "-s"])
            .arg(&usign)
            .arg("-p")
            .arg(dir.join("vendor.pub")));
    }
    let feed = dir.join("feed");
    let ipks: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipk"))
        .collect();
    let mut cmd = Command::new(top().join("packaging/make-feed.sh"));
    cmd.arg(&feed)
        .arg(&usign)
        .args(&ipks)
        .env("APK_KEY", apk_key)
        .env("APK_DIR", out.join("apk"))
        .env("MKAPK", env!("CARGO_BIN_EXE_fieldbridge-mkapk"));
    match apk {
        Some(a) => cmd.env("APK", a),
        None => cmd.env_remove("APK"),
    };
    run(&mut cmd);
    feed
}
