//! `fieldbridge config import|export|validate` through the binary.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[path = "../../workbook/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{repo_file, ten_mistakes, xlsx, S, TEN_MISTAKES_ERRORS};
use config::RawConfig;

fn fieldbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldbridge"))
        .args(args)
        .env_remove("FIELDBRIDGE_REDIS_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn example() -> RawConfig {
    RawConfig::parse(&std::fs::read_to_string(repo_file("config/example.json")).unwrap()).unwrap()
}

#[test]
fn export_then_import_gives_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("site.xlsx");
    let json = dir.path().join("etc").join("config.json");
    let json_example = repo_file("config/example.json");

    let o = fieldbridge(&["config", "export", "-c", p(&json_example), "-o", p(&book)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("wrote {} (5 devices, 55 signals)\n", book.display())
    );

    let o = fieldbridge(&["config", "validate", p(&book)]);
    assert!(o.status.success(), "{}", stdout(&o));

    let o = fieldbridge(&["config", "import", p(&book), "-o", p(&json)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("devices 5 added, 0 removed, 0 changed"),
        "{}",
        stdout(&o)
    );
    let written = RawConfig::parse(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written, workbook::canonical(&example()));
    assert_eq!(
        written,
        example(),
        "the example has no float-for-integer cells to normalise"
    );
    let mode = std::fs::metadata(&json).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config holds passwords");

    // The same again: nothing changes.
    let o = fieldbridge(&["config", "import", p(&book), "-o", p(&json), "--dry-run"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("devices: 0 added, 0 removed, 0 changed\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn dry_run_shows_the_changes_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("config.json");
    let mut current = example();
    current.devices[1].insert("port".into(), serde_json::json!(2405));
    current.devices[0].insert("password".into(), serde_json::json!("old-secret"));
    let removed = current.signals.remove(0);
    current.signals.push(
        serde_json::from_value(
            serde_json::json!({"device_alias": "rtu1", "signal_alias": "gone",
            "info_address": 9999, "type_id": "M_SP_NA_1"}),
        )
        .unwrap(),
    );
    let text = current.to_json_pretty();
    std::fs::write(&json, &text).unwrap();

    let o = fieldbridge(&[
        "config",
        "import",
        p(&repo_file("config/example.xlsx")),
        "-o",
        p(&json),
        "--dry-run",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("devices: 0 added, 0 removed, 2 changed\n"),
        "{out}"
    );
    assert!(
        out.contains("signals: 1 added, 1 removed, 0 changed\n"),
        "{out}"
    );
    assert!(out.contains("~ device rtu1: port 2405 -> 2404\n"), "{out}");
    assert!(
        out.contains("~ device cloud: password *** -> ***\n"),
        "{out}"
    );
    assert!(
        !out.contains("old-secret") && !out.contains("change-me"),
        "secrets are never shown: {out}"
    );
    let sig = format!(
        "+ signal rtu1/{}\n",
        removed["signal_alias"].as_str().unwrap()
    );
    assert!(out.contains(&sig), "{out}");
    assert!(out.contains("- signal rtu1/gone\n"), "{out}");
    assert!(out.ends_with("dry run: nothing written\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        text,
        "nothing written"
    );
}

#[test]
fn a_workbook_with_ten_mistakes_reports_each_cell_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("bad.xlsx");
    std::fs::write(&book, ten_mistakes()).unwrap();
    let json = dir.path().join("config.json");

    for args in [
        vec!["config", "import", p(&book), "-o", p(&json)],
        vec!["config", "import", p(&book), "-o", p(&json), "--dry-run"],
        vec!["config", "validate", p(&book)],
    ] {
        let o = fieldbridge(&args);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        for e in TEN_MISTAKES_ERRORS {
            assert!(
                out.contains(&format!("error: {e}")),
                "{args:?}: missing {e:?} in\n{out}"
            );
        }
        assert!(
            out.contains(&format!(
                "{}: {} errors\n",
                book.display(),
                TEN_MISTAKES_ERRORS.len()
            )),
            "{out}"
        );
        assert!(!json.exists(), "nothing written");
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no temporary file either");
    }
}

#[test]
fn damaged_files_give_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = ten_mistakes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.xlsx",
            good[..good.len() / 2].to_vec(),
            "not a readable .xlsx workbook",
        ),
        (
            "text.xlsx",
            b"name,device_alias\nRTU,rtu1\n".to_vec(),
            "the file is not a zip archive",
        ),
        (
            "nosignals.xlsx",
            xlsx(&[("Devices", vec![vec![S("name")]])]),
            "no sheet named Signals (the workbook's sheets: Devices)",
        ),
    ];
    let json = dir.path().join("config.json");
    for (name, bytes, expected) in cases {
        let book = dir.path().join(name);
        std::fs::write(&book, bytes).unwrap();
        for sub in ["import", "validate"] {
            let args = if sub == "import" {
                vec!["config", sub, p(&book), "-o", p(&json)]
            } else {
                vec!["config", sub, p(&book)]
            };
            let o = fieldbridge(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{name} {sub}: {err}");
            assert_eq!(err.lines().count(), 1, "{name} {sub}: one line: {err}");
            assert!(
                err.starts_with(&format!("fieldbridge: {}: ", book.display())),
                "{err}"
            );
            assert!(err.contains(expected), "{name} {sub}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(!json.exists());
        }
    }
}

#[test]
fn export_to_stdout_and_json_validation_still_work() {
    let o = fieldbridge(&[
        "config",
        "export",
        "-c",
        p(&repo_file("config/example.json")),
        "-o",
        "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.starts_with(b"PK\x03\x04"));
    let imported = workbook::read_workbook_bytes(o.stdout.clone(), "stdout").unwrap();
    assert_eq!(imported.raw, example());

    let o = fieldbridge(&["config", "validate", p(&repo_file("config/example.json"))]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("valid (5 devices, 55 signals)\n"));
}

#[test]
fn a_missing_file_is_one_plain_line() {
    let o = fieldbridge(&[
        "config",
        "import",
        "/nonexistent/x.xlsx",
        "-o",
        "/nonexistent/c.json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "fieldbridge: /nonexistent/x.xlsx: No such file or directory (os error 2)\n"
    );
    let o = fieldbridge(&[
        "config",
        "export",
        "-c",
        "/nonexistent/c.json",
        "-o",
        "/nonexistent/x.xlsx",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "fieldbridge: /nonexistent/c.json: No such file or directory (os error 2)\n"
    );
}
