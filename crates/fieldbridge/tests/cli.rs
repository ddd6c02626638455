#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! The binary's command line against a real redis-server.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use testrig::RedisServer;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fieldbridge"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("FIELDBRIDGE_REDIS_URL")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> PathBuf {
    testrig::workspace_root().join("config/example.json")
}

#[test]
fn config_validate_accepts_the_example() {
    let out = run(&["config", "validate", example().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("valid (5 devices, 55 signals)"));
}

#[test]
fn config_validate_prints_every_error() {
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    raw["devices"][0]["mqtt_qos"] = 3.into();
    raw["devices"][0]["port"] = "abc".into();
    raw["devices"][1]["asdu_address"] = serde_json::Value::Null;
    raw["devices"][3]["parity"] = "X".into();
    raw["signals"][3]["type_id"] = "M_NOPE".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, raw.to_string()).unwrap();
    let out = run(&["config", "validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 5, "{stdout}");
    for path in [
        "devices[0].mqtt_qos",
        "devices[0].port",
        "devices[1].asdu_address",
        "devices[3].parity",
        "signals[3].type_id",
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("error: {path}: "))),
            "{path} missing in {stdout}"
        );
    }
}

#[test]
fn config_show_masks_passwords() {
    let out = run(&["config", "show", example().to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("change-me"));
    assert!(stdout.contains("\"password\": \"***\""));
    assert!(stdout.contains("# mqtt-client: valid"));
}

#[test]
fn the_environment_overrides_the_config_file() {
    let out = Command::new(bin())
        .args(["config", "show", example().to_str().unwrap()])
        .env("FIELDBRIDGE_REDIS_URL", "redis://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("\"redis_url\": \"redis://127.0.0.1:9\""),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn tag_set_get_and_bulk_against_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let out = run(&[
        "tag",
        "--redis-url",
        &url,
        "set",
        "tag/rtu1/ua/in",
        "231.5",
        "--ts",
        "1732280000000",
        "--flags",
        "nt gt",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["tag", "--redis-url", &url, "get", "tag/rtu1/ua/in"]);
    assert_eq!(text(&out.stdout), "231.5,1732280000000,nt gt\n");
    assert_eq!(redis.cli(&["XLEN", tagbus::STREAM_KEY]), "1");

    // The environment variable works too; a missing key exits 1.
    let out = Command::new(bin())
        .args(["tag", "get", "tag/rtu1/nothing/in"])
        .env("FIELDBRIDGE_REDIS_URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Bad input is an error, not a panic.
    for bad in [
        ["set", "tag/x/y/in", "abc"],
        ["set", "tag/x y/in", "1"],
        ["get", "nope", "x"],
    ] {
        let out = run(&[&["tag", "--redis-url", &url][..], &bad[..]].concat());
        assert!(!out.status.success());
        assert!(!text(&out.stderr).contains("panicked"));
    }

    let mut child = Command::new(bin())
        .args(["tag", "--redis-url", &url, "set", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..2500 {
            writeln!(stdin, "tag/bulk/s{i}/in {i},{},", 1_000 + i).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2500 values written, 0 lines refused"));
    assert_eq!(redis.cli(&["GET", "tag/bulk/s2499/in"]), "2499,3499,");
    assert_eq!(redis.cli(&["XLEN", tagbus::STREAM_KEY]), "2501");
}

#[test]
fn applets_answer_help_and_version_also_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    for applet in [
        "supervise",
        "iec104-master",
        "modbus-master",
        "mqtt-client",
        "config",
        "tag",
        "status",
        #[cfg(feature = "demo")]
        "demo",
    ] {
        let out = run(&[applet, "--help"]);
        assert!(out.status.success(), "{applet} --help");
        let link = dir.path().join(applet);
        std::os::unix::fs::symlink(bin(), &link).unwrap();
        let out = Command::new(&link).arg("--version").output().unwrap();
        assert!(out.status.success(), "{applet} --version via symlink");
        assert!(text(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    let out = Command::new(dir.path().join("mqtt-client"))
        .arg("-h")
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("Usage: fieldbridge mqtt-client"));
}
