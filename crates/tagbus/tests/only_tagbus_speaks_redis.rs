#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The architecture rule "only tagbus talks to Redis", checked over the whole workspace:
//! no crate but tagbus (and the test-support crate testrig) depends on the Redis client or
//! names it in its code, and the pure crates (`fieldbridge-contract`, `fieldbridge-config`)
//! pull in no Redis client, async runtime or futures, not even transitively.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crates (directory names under `crates/`) that may use the Redis client: tagbus (the
/// one Redis I/O layer) and testrig (test support: looks at Redis as an outside consumer).
const REDIS_ALLOWED: [&str; 2] = ["tagbus", "testrig"];
/// Packages that must stay pure, and what they must never pull in.
const PURE: [&str; 2] = ["fieldbridge-contract", "fieldbridge-config"];
const IMPURE_PREFIXES: [&str; 3] = ["redis", "tokio", "futures"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn crate_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    dirs.sort();
    assert!(dirs.len() > 5, "crates/ not found: {dirs:?}");
    dirs
}

/// `(table, dependency)` for every dependency of a manifest, in any `[*dependencies]` table
/// (also `[dependencies.name]` tables; a `package = "..."` rename counts under both names).
fn manifest_dependencies(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        if let Some(header) = line.strip_prefix('[') {
            table = header.trim_end_matches(']').to_owned();
            if let Some((_, name)) = table.split_once("dependencies.") {
                found.push((table.clone(), name.to_owned()));
            }
            continue;
        }
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        if table.ends_with("dependencies") {
            found.push((
                table.clone(),
                key.trim().split('.').next().unwrap().to_owned(),
            ));
        }
        if table.contains("dependencies")
            && (table.ends_with("dependencies") || key.trim() == "package")
        {
            if let Some((_, package)) = rest.split_once("package") {
                if let Some(name) = package.split('"').nth(1) {
                    found.push((table.clone(), name.to_owned()));
                }
            } else if key.trim() == "package" {
                if let Some(name) = rest.split('"').nth(1) {
                    found.push((table.clone(), name.to_owned()));
                }
            }
        }
    }
    found
}

#[test]
fn no_crate_but_tagbus_depends_on_redis() {
    let mut offenders = Vec::new();
    for (dir, path) in crate_dirs() {
        let text = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
        for (section, name) in manifest_dependencies(&text) {
            if name == "redis" && !REDIS_ALLOWED.contains(&dir.as_str()) {
                offenders.push(format!("crates/{dir}/Cargo.toml [{section}] {name}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only tagbus talks to Redis; use tagbus (or testrig in tests) instead: {offenders:#?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_code_but_tagbus_names_the_redis_client() {
    let mut offenders = Vec::new();
    for (dir, path) in crate_dirs() {
        if REDIS_ALLOWED.contains(&dir.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        for sub in ["src", "tests", "benches", "examples"] {
            rust_files(&path.join(sub), &mut files);
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                if code.contains("redis::") || code.trim_start().starts_with("use redis") {
                    offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only tagbus talks to Redis; use tagbus (or testrig in tests) instead: {offenders:#?}"
    );
}

/// The packages `root` builds with, as `cargo tree` resolves them (normal and build
/// dependencies, with the features in use: an optional dependency left off is not there).
fn resolved_dependencies(root: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            root,
            "-e",
            "normal,build",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {root}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_pure_crates_pull_in_no_io() {
    for root in PURE {
        let deps = resolved_dependencies(root);
        assert!(deps.contains(root), "{root}: not in its own tree: {deps:?}");
        let impure: Vec<&String> = deps
            .iter()
            .filter(|n| IMPURE_PREFIXES.iter().any(|p| n.starts_with(p)) || *n == "tagbus")
            .collect();
        assert!(
            impure.is_empty(),
            "{root} must stay pure (no I/O dependencies), but pulls in {impure:?}"
        );
    }
}

#[test]
fn the_manifest_reader_finds_every_form() {
    let manifest = r#"
[package]
name = "x"
[dependencies]
tagbus = { workspace = true }
redis.workspace = true
[dev-dependencies]
db = { package = "redis", version = "1" }
[target.'cfg(unix)'.dependencies.redis]
version = "1"
[dependencies.other]
package = "redis"
"#;
    let names: Vec<String> = manifest_dependencies(manifest)
        .into_iter()
        .filter(|(_, n)| n == "redis")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        names,
        [
            "dependencies",
            "dev-dependencies",
            "target.'cfg(unix)'.dependencies.redis",
            "dependencies.other"
        ]
    );
}
