//! The procd init script: syntax, shellcheck, and what it asks procd for (run against stubs
//! of procd, uci and rc.common: tests/support/procd-harness.sh, which also models what procd
//! does with a reload); and, given a host build of OpenWrt's procd and ubusd in
//! `FIELDBRIDGE_PROCD_ROOT`, the reload path under the real procd (tests/support/procd-real.sh).
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{output, require, root, run};

const INIT: &str = "openwrt/fieldbridge/files/fieldbridge.init";

/// Runs the init script's ACTION with the given uci options of section `main`.
fn procd_calls(action: &str, uci: &[(&str, &str)]) -> Vec<String> {
    harness(action, uci, None)
}

/// Like [`procd_calls`], with the harness keeping procd's running instance in `state`; returns
/// what procd does (the harness's `procd: ...` lines).
fn procd_does(state: &Path, action: &str, uci: &[(&str, &str)]) -> Vec<String> {
    harness(action, uci, Some(state))
        .into_iter()
        .filter(|l| l.starts_with("procd: "))
        .collect()
}

fn harness(action: &str, uci: &[(&str, &str)], state: Option<&Path>) -> Vec<String> {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join("crates/packaging/tests/support/procd-harness.sh"))
        .arg(root().join(INIT))
        .arg(action);
    for (k, _) in std::env::vars() {
        if k.starts_with("UCI_") {
            cmd.env_remove(k);
        }
    }
    for (option, value) in uci {
        cmd.env(format!("UCI_main_{option}"), value);
    }
    match state {
        Some(dir) => cmd.env("PROCD_STATE", dir),
        None => cmd.env_remove("PROCD_STATE"),
    };
    run(&mut cmd).lines().map(str::to_owned).collect()
}

fn instance_lines(calls: &[String]) -> Vec<String> {
    let start = calls.iter().position(|l| l.starts_with("open_instance"));
    let end = calls.iter().position(|l| l == "close_instance");
    match (start, end) {
        (Some(s), Some(e)) => calls.get(s..=e).map(<[String]>::to_vec).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn init_script_passes_sh_n_and_shellcheck() {
    run(Command::new("sh").arg("-n").arg(root().join(INIT)));
    require("shellcheck");
    let scripts = [
        INIT,
        "openwrt/fieldbridge/files/postinst",
        "openwrt/fieldbridge/files/prerm",
        "openwrt/luci-app-fieldbridge/postinst",
        "crates/packaging/tests/support/procd-harness.sh",
        "crates/packaging/tests/support/procd-real.sh",
        "packaging/build-ipk.sh",
        "packaging/mkipk.sh",
        "packaging/make-feed.sh",
        "packaging/applet-links.sh",
        "packaging/smoke-mqtt.sh",
        "packaging/openwrt-features.sh",
        "packaging/targets.sh",
        "tests/soak/soak-40mb.sh",
    ];
    let out = output(Command::new("shellcheck").current_dir(root()).args(scripts));
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(root().join(INIT)).unwrap();
    assert!(text.starts_with("#!/bin/sh /etc/rc.common\n"));
    assert!(text.contains("\nUSE_PROCD=1\n") && text.contains("\nSTART=95\n"));
}

#[test]
fn enabled_starts_the_supervisor_with_respawn_and_logd() {
    let calls = procd_calls("start", &[("enabled", "1")]);
    assert_eq!(
        instance_lines(&calls),
        [
            "open_instance [supervisor]",
            "set_param [command] [/usr/bin/fieldbridge] [supervise] [-c] [/etc/fieldbridge/config.json] [-d] [info]",
            "set_param [respawn] [3600] [5] [0]",
            "set_param [file] [/etc/fieldbridge/config.json]",
            "set_param [reload_signal] [HUP]",
            "set_param [stdout] [1]",
            "set_param [stderr] [1]",
            "set_param [term_timeout] [15]",
            "close_instance",
        ]
    );
    assert!(calls.contains(&"config_load [fieldbridge]".to_owned()));
    assert!(
        calls.contains(&"add_reload_trigger [fieldbridge]".to_owned()),
        "{calls:?}"
    );
}

#[test]
fn uci_config_file_and_log_level_reach_the_command_line() {
    let calls = procd_calls(
        "start",
        &[
            ("enabled", "yes"),
            ("config_file", "/mnt/sd/site 1.json"),
            ("log_level", "debug"),
        ],
    );
    assert!(
        calls.contains(
            &"set_param [command] [/usr/bin/fieldbridge] [supervise] [-c] [/mnt/sd/site 1.json] [-d] [debug]".to_owned()
        ),
        "{calls:?}"
    );
}

#[test]
fn disabled_or_unset_starts_nothing_but_keeps_the_reload_trigger() {
    for uci in [
        &[("enabled", "0")][..],
        &[("enabled", "off"), ("log_level", "debug")],
        &[],
    ] {
        let calls = procd_calls("start", uci);
        assert!(instance_lines(&calls).is_empty(), "{uci:?}: {calls:?}");
        assert!(
            !calls
                .iter()
                .any(|l| l.contains("respawn") || l.contains("command")),
            "{calls:?}"
        );
        // The service stays registered with its trigger, so enabling it in LuCI starts it.
        assert!(
            calls.contains(&"add_reload_trigger [fieldbridge]".to_owned()),
            "{calls:?}"
        );
    }
}

#[test]
fn reload_signals_the_supervisor_only_when_the_json_config_changed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("procd");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{\"devices\": []}\n").unwrap();
    let config = config.to_str().unwrap();
    let uci = [("enabled", "1"), ("config_file", config)];

    assert_eq!(procd_does(&state, "start", &uci), ["procd: start"]);
    // What the LuCI import runs after writing the config, here with nothing changed.
    assert_eq!(procd_does(&state, "reload", &uci), ["procd: unchanged"]);
    std::fs::write(config, "{\"devices\": [], \"signals\": []}\n").unwrap();
    assert_eq!(procd_does(&state, "reload", &uci), ["procd: signal HUP"]);
    assert_eq!(procd_does(&state, "reload", &uci), ["procd: unchanged"]);
    // A uci setting on the command line: procd would only signal, so reload restarts.
    let debug = [
        ("enabled", "1"),
        ("config_file", config),
        ("log_level", "debug"),
    ];
    assert_eq!(
        procd_does(&state, "reload", &debug),
        ["procd: stop", "procd: start"]
    );
    assert_eq!(procd_does(&state, "reload", &debug), ["procd: unchanged"]);
    let off = [
        ("enabled", "0"),
        ("config_file", config),
        ("log_level", "debug"),
    ];
    assert_eq!(procd_does(&state, "reload", &off), ["procd: stop"]);
    assert!(procd_does(&state, "reload", &off).is_empty());
    assert_eq!(procd_does(&state, "reload", &debug), ["procd: start"]);
}

/// The reload path under a real procd: tests/support/procd-real.sh (its header lists what
/// `FIELDBRIDGE_PROCD_ROOT` holds). `FIELDBRIDGE_BIN` is the host-built fieldbridge (default:
/// target/debug/fieldbridge, from `cargo build -p fieldbridge`). Needs root (unshare).
#[test]
fn reload_under_real_procd_sighups_only_on_a_changed_config() {
    let Some(procd_root) = std::env::var_os("FIELDBRIDGE_PROCD_ROOT") else {
        eprintln!(
            "skipped: FIELDBRIDGE_PROCD_ROOT not set (a host build of OpenWrt's procd, ubusd, \
             ubus, uci, jsonfilter and base-files' shell functions; see packaging/README.md)"
        );
        return;
    };
    let binary = std::env::var_os("FIELDBRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/fieldbridge"));
    assert!(
        binary.is_file(),
        "no {}: cargo build -p fieldbridge",
        binary.display()
    );
    let out = tempfile::tempdir().unwrap();
    let files = root().join("openwrt/fieldbridge/files");
    let stdout = run(Command::new("sh")
        .arg(root().join("crates/packaging/tests/support/procd-real.sh"))
        .arg(procd_root)
        .arg(&binary)
        .arg(root().join(INIT))
        .arg(files.join("fieldbridge.config"))
        .arg(files.join("config.json"))
        .arg(out.path()));
    eprintln!("{stdout}");
    assert!(stdout.ends_with("real procd: ok\n"), "{stdout}");
    // The supervisor's own log lines, as procd passed them to syslog.
    let log = |what: &str| stdout.lines().filter(|l| l.contains(what)).count();
    assert_eq!(log("SIGHUP: reloading the config"), 2, "{stdout}");
    assert_eq!(log("cannot read the config"), 1, "{stdout}");
    assert_eq!(log("supervisor starting"), 2, "{stdout}");
}
