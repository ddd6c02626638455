//! Shared helpers of the packaging tests: running the scripts, reading .ipk files.
// Test code: a failed unwrap or index is a failed test.
#![allow(
    dead_code,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Fails the test with a pointer to tests/setup when a program is missing.
pub fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "{program} is not installed: run tests/setup");
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a command, returns its output, whatever the exit status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `[workspace.package]` value of a key in the root Cargo.toml.
pub fn workspace_field(key: &str) -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let section = text.split("[workspace.package]").nth(1).unwrap();
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in [workspace.package]"))
}

/// Python 3 with the `cryptography` package (pyenv's or Debian's).
pub fn python() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(find_python)
}

fn find_python() -> &'static str {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import cryptography"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return py;
        }
    }
    panic!("no python3 with the cryptography package: run tests/setup (python3-cryptography)");
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "not gzip data");
    out.stdout
}

/// One member of a tar archive, from its (ustar/GNU) header.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// '0' file, '2' symlink, '5' directory
    pub kind: char,
    pub link: String,
    pub data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(field);
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        0
    } else {
        u64::from_str_radix(s, 8).unwrap_or_else(|_| panic!("bad octal {s:?}"))
    }
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).unwrap()
}

/// Parses an uncompressed tar archive (no long names: the packages' paths are short).
pub fn untar(bytes: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut off = 0;
    while off + 512 <= bytes.len() {
        let h = &bytes[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        assert_eq!(sum, octal(&h[148..156]), "tar header checksum");
        let kind = char::from(h[156]);
        assert!(kind != 'L' && kind != 'K', "unexpected GNU long name entry");
        let size = usize::try_from(octal(&h[124..136])).unwrap();
        let prefix = cstr(&h[345..500]);
        let name = cstr(&h[0..100]);
        let name = if prefix.is_empty() || &h[257..263] != b"ustar\0" {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let data = bytes[off + 512..off + 512 + size].to_vec();
        entries.push(Entry {
            name,
            mode: u32::try_from(octal(&h[100..108])).unwrap(),
            uid: octal(&h[108..116]),
            gid: octal(&h[116..124]),
            mtime: octal(&h[136..148]),
            kind: if kind == '\0' { '0' } else { kind },
            link: cstr(&h[157..257]),
            data,
        });
        off += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// An unpacked .ipk.
#[derive(Debug)]
pub struct Ipk {
    pub bytes: Vec<u8>,
    /// The outer archive's members, in order.
    pub outer: Vec<Entry>,
    pub control: Vec<Entry>,
    pub data: Vec<Entry>,
}

impl Ipk {
    pub fn read(path: &Path) -> Ipk {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..2],
            b"\x1f\x8b",
            "an OpenWrt ipk is a gzip'd tar (not an ar archive)"
        );
        let outer = untar(&gunzip(&bytes));
        let member = |n: &str| {
            outer
                .iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("no {n} in the ipk"))
                .data
                .clone()
        };
        let control = untar(&gunzip(&member("./control.tar.gz")));
        let data = untar(&gunzip(&member("./data.tar.gz")));
        Ipk {
            bytes,
            outer,
            control,
            data,
        }
    }

    pub fn control_file(&self, name: &str) -> Option<&Entry> {
        self.control.iter().find(|e| e.name == format!("./{name}"))
    }

    pub fn data_file(&self, path: &str) -> Option<&Entry> {
        self.data
            .iter()
            .find(|e| e.name == format!(".{path}") || e.name == format!(".{path}/"))
    }

    /// The control fields in file order.
    pub fn fields(&self) -> Vec<(String, String)> {
        let text =
            String::from_utf8(self.control_file("control").expect("control").data.clone()).unwrap();
        text.lines()
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("control line without a colon: {l:?}"));
                (k.to_owned(), v.trim().to_owned())
            })
            .collect()
    }

    pub fn field_map(&self) -> BTreeMap<String, String> {
        self.fields().into_iter().collect()
    }
}

/// Packages `binary` with packaging/mkipk.sh into `outdir`; returns the .ipk's path.
pub fn mkipk(binary: &Path, arch: &str, outdir: &Path, epoch: u64) -> PathBuf {
    let out = run(Command::new(root().join("packaging/mkipk.sh"))
        .args([
            "fieldbridge".as_ref(),
            binary.as_os_str(),
            arch.as_ref(),
            outdir.as_os_str(),
        ])
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env_remove("APPLET_LINKS")
        .env_remove("PKG_RELEASE"));
    PathBuf::from(out.lines().last().unwrap())
}

pub fn mkipk_luci(outdir: &Path, epoch: u64) -> PathBuf {
    let out = run(Command::new(root().join("packaging/mkipk.sh"))
        .args(["luci-app-fieldbridge".as_ref(), outdir.as_os_str()])
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env_remove("PKG_RELEASE"));
    PathBuf::from(out.lines().last().unwrap())
}

/// A stand-in for the ARM binary: fixed pseudo-random bytes (the ipk does not run it).
pub fn fake_binary(dir: &Path) -> PathBuf {
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    let path = dir.join("fieldbridge");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The applet symlinks the packaging installs (packaging/applet-links.sh, from cli.rs).
pub fn applet_links() -> Vec<String> {
    run(&mut Command::new(root().join("packaging/applet-links.sh")))
        .lines()
        .map(str::to_owned)
        .collect()
}
