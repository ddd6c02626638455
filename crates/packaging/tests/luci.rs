//! The LuCI app: the JavaScript view parses (node --check), the menu points at it, and the
//! rpcd ACL grants only fieldbridge's uci config, status file, upload path and commands.
// Test code (helpers included): a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use support::{require, root, run};

const APP: &str = "openwrt/luci-app-fieldbridge";
const VIEW: &str = "htdocs/luci-static/resources/view/fieldbridge.js";

fn json(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(APP).join(path)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn view() -> String {
    std::fs::read_to_string(root().join(APP).join(VIEW)).unwrap()
}

#[test]
fn view_passes_node_check_and_uses_form_map() {
    require("node");
    run(Command::new("node")
        .arg("--check")
        .arg(root().join(APP).join(VIEW)));
    let js = view();
    assert!(js.starts_with("'use strict';"));
    for needed in [
        "form.Map('fieldbridge'",
        "form.NamedSection, 'main', 'fieldbridge'",
        "'enabled'",
        "'log_level'",
        "'config_file'",
        "ui.uploadFile(",
        "fs.exec(FIELDBRIDGE, importArgs(",
        "fs.read(STATUS_FILE)",
    ] {
        assert!(js.contains(needed), "view has {needed}");
    }
}

#[test]
fn menu_entry_opens_the_view() {
    let menu = json("root/usr/share/luci/menu.d/luci-app-fieldbridge.json");
    let entry = &menu["admin/services/fieldbridge"];
    assert_eq!(entry["action"]["type"], "view");
    assert_eq!(entry["action"]["path"], "fieldbridge");
    assert_eq!(
        entry["depends"]["acl"],
        serde_json::json!(["luci-app-fieldbridge"])
    );
    assert_eq!(entry["depends"]["uci"]["fieldbridge"], true);
    assert_eq!(menu.as_object().unwrap().len(), 1);
}

/// The only files and command lines the page may touch.
const ALLOWED_READ: &[&str] = &["/var/run/fieldbridge/status.json"];
const ALLOWED_WRITE: &[&str] = &["/tmp/fieldbridge-upload.xlsx"];
const ALLOWED_EXEC: &[&str] = &[
    "/usr/bin/fieldbridge config import /tmp/fieldbridge-upload.xlsx -o /etc/fieldbridge/config.json",
    "/usr/bin/fieldbridge config import /tmp/fieldbridge-upload.xlsx -o /etc/fieldbridge/config.json --dry-run",
    "/etc/init.d/fieldbridge reload",
];

#[test]
fn acl_names_only_fieldbridge() {
    let acl = json("root/usr/share/rpcd/acl.d/luci-app-fieldbridge.json");
    let top = acl.as_object().unwrap();
    assert_eq!(top.keys().collect::<Vec<_>>(), ["luci-app-fieldbridge"]);
    let grant = top["luci-app-fieldbridge"].as_object().unwrap();
    let sections: BTreeSet<&str> = grant.keys().map(String::as_str).collect();
    assert_eq!(sections, BTreeSet::from(["description", "read", "write"]));

    let mut files: Vec<(String, String)> = Vec::new();
    for mode in ["read", "write"] {
        let g = grant[mode].as_object().unwrap();
        for key in g.keys() {
            assert!(
                ["file", "ubus", "uci"].contains(&key.as_str()),
                "{mode}: unexpected grant {key}"
            );
        }
        assert_eq!(
            g["uci"],
            serde_json::json!(["fieldbridge"]),
            "{mode}: uci is fieldbridge's only"
        );
        let ubus = g["ubus"].as_object().unwrap();
        assert_eq!(
            ubus.keys().collect::<Vec<_>>(),
            ["file"],
            "{mode}: ubus file only"
        );
        for m in ubus["file"].as_array().unwrap() {
            let allowed: &[&str] = if mode == "read" {
                &["read"]
            } else {
                &["exec", "remove"]
            };
            assert!(
                allowed.contains(&m.as_str().unwrap()),
                "{mode}: ubus file.{m}"
            );
        }
        for (path, perms) in g["file"].as_object().unwrap() {
            assert!(
                !path.contains(['*', '?', '[']),
                "no wildcard in ACL path {path}"
            );
            for p in perms.as_array().unwrap() {
                files.push((path.clone(), p.as_str().unwrap().to_owned()));
            }
        }
    }
    let mut expected: Vec<(String, String)> = ALLOWED_READ
        .iter()
        .map(|p| (p.to_string(), "read".to_owned()))
        .chain(
            ALLOWED_WRITE
                .iter()
                .map(|p| (p.to_string(), "write".to_owned())),
        )
        .chain(
            ALLOWED_EXEC
                .iter()
                .map(|p| (p.to_string(), "exec".to_owned())),
        )
        .collect();
    files.sort();
    expected.sort();
    assert_eq!(files, expected);
}

#[test]
fn view_uses_exactly_the_paths_the_acl_allows() {
    let js = view();
    let constant = |name: &str| {
        let line = js
            .lines()
            .find(|l| l.starts_with(&format!("var {name} = ")))
            .unwrap();
        line.split('\'').nth(1).unwrap().to_owned()
    };
    assert_eq!(constant("STATUS_FILE"), ALLOWED_READ[0]);
    assert_eq!(constant("UPLOAD_FILE"), ALLOWED_WRITE[0]);
    // importArgs(false|true) builds these two command lines.
    let import = format!(
        "{} config import {} -o {}",
        constant("FIELDBRIDGE"),
        constant("UPLOAD_FILE"),
        constant("CONFIG_JSON")
    );
    assert_eq!(import, ALLOWED_EXEC[0]);
    assert_eq!(format!("{import} --dry-run"), ALLOWED_EXEC[1]);
    assert!(
        js.contains("[ 'config', 'import', UPLOAD_FILE, '-o', CONFIG_JSON ]")
            && js.contains("args.push('--dry-run')")
    );
    assert_eq!(
        format!("{} reload", constant("INIT_SCRIPT")),
        ALLOWED_EXEC[2]
    );
    assert!(js.contains("fs.exec(INIT_SCRIPT, [ 'reload' ])"));
}

#[test]
fn view_renders_any_status_and_runs_only_the_allowed_commands() {
    require("node");
    let out = run(Command::new("node")
        .arg(root().join("crates/packaging/tests/support/luci-view-harness.js"))
        .arg(root().join(APP).join(VIEW)));
    assert!(out.contains("checks passed"), "{out}");
}
