//! The procd init script: syntax, shellcheck, and what it asks procd for (run against stubs
//! of procd, uci and rc.common: tests/support/procd-harness.sh).
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::process::Command;

use support::{output, require, root, run};

const INIT: &str = "openwrt/fieldbridge/files/fieldbridge.init";

/// Runs the init script's ACTION with the given uci options of section `main`.
fn procd_calls(action: &str, uci: &[(&str, &str)]) -> Vec<String> {
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
        "packaging/build-ipk.sh",
        "packaging/mkipk.sh",
        "packaging/make-feed.sh",
        "packaging/applet-links.sh",
        "packaging/smoke-mqtt.sh",
        "packaging/openwrt-features.sh",
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
fn reload_keeps_the_same_instance_so_procd_sends_sighup() {
    let start = procd_calls("start", &[("enabled", "1")]);
    let reload = procd_calls("reload", &[("enabled", "1")]);
    assert_eq!(instance_lines(&start), instance_lines(&reload));
    assert!(reload.contains(&"set_param [reload_signal] [HUP]".to_owned()));
    assert!(instance_lines(&procd_calls("reload", &[("enabled", "0")])).is_empty());
}
