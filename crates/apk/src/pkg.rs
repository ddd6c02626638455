//! An apk v3 package from a staged directory, as `apk mkpkg --files DIR` builds it.
//!
//! Every directory of the tree is a path entry (the root one nameless) with its ACL and files;
//! a file carries name, ACL (mode, owner `root:root`), size, mtime and SHA-256, a symlink its
//! target (the file type word, then the link text). The regular files' contents follow in data
//! blocks, one per non-empty file, addressed by (path index, file index). The package's unique
//! id (20 bytes in `info.hashes`) is the start of the SHA-256 of the ADB block with that slot
//! zeroed. Fields are written in apk-tools' order, so the bytes equal `apk mkpkg`'s.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::digest;

use crate::adb::{self, AdbError, Compression, Container, Val, Writer, NULL};
use crate::version;

/// Slots of the package info object (apk-tools' `ADBI_PI_*`).
pub mod pi {
    pub const NAME: usize = 1;
    pub const VERSION: usize = 2;
    pub const HASHES: usize = 3;
    pub const DESCRIPTION: usize = 4;
    pub const ARCH: usize = 5;
    pub const LICENSE: usize = 6;
    pub const ORIGIN: usize = 7;
    pub const MAINTAINER: usize = 8;
    pub const URL: usize = 9;
    pub const INSTALLED_SIZE: usize = 0x0c;
    pub const FILE_SIZE: usize = 0x0d;
    pub const DEPENDS: usize = 0x0f;
    pub const MAX: usize = 0x16;
}

/// The string fields `--info KEY:VALUE` sets, by name and slot.
pub const INFO_FIELDS: [(&str, usize); 9] = [
    ("name", pi::NAME),
    ("version", pi::VERSION),
    ("description", pi::DESCRIPTION),
    ("arch", pi::ARCH),
    ("license", pi::LICENSE),
    ("origin", pi::ORIGIN),
    ("maintainer", pi::MAINTAINER),
    ("url", pi::URL),
    ("depends", pi::DEPENDS),
];

/// Script slots in apk-tools' order (`ADBI_SCRPT_*`, 1-based).
pub const SCRIPTS: [&str; 7] = [
    "trigger",
    "pre-install",
    "post-install",
    "pre-deinstall",
    "post-deinstall",
    "pre-upgrade",
    "post-upgrade",
];

const PKG_INFO: usize = 1;
const PKG_PATHS: usize = 2;
const PKG_SCRIPTS: usize = 3;
const UNIQUE_ID_LEN: usize = 20;
const S_IFLNK: u16 = 0o120000;

#[derive(Debug, thiserror::Error)]
pub enum PkgError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: neither a regular file, a symlink nor a directory")]
    Special(PathBuf),
    #[error("{0}: not a UTF-8 path")]
    Name(PathBuf),
    #[error("info field {0}: {1}")]
    Info(String, &'static str),
    #[error("unknown info field {0:?} (known: name version description arch license origin maintainer url depends)")]
    UnknownInfo(String),
    #[error("unknown script type {0:?}")]
    UnknownScript(String),
    #[error(transparent)]
    Adb(#[from] AdbError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkgError + '_ {
    move |source| PkgError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `apk mkpkg` is told: info fields, scripts, the staged tree.
#[derive(Debug, Clone, Default)]
pub struct PkgSpec {
    /// `(slot, value)` of the string info fields; `depends` is space separated names.
    pub info: Vec<(usize, String)>,
    /// Script bodies by slot index into [`SCRIPTS`] (0-based).
    pub scripts: Vec<(usize, Vec<u8>)>,
    /// `SOURCE_DATE_EPOCH`: later mtimes are clamped to it.
    pub epoch: Option<u64>,
}

impl PkgSpec {
    /// Parses `KEY:VALUE` as `apk mkpkg --info` does (for the fields this tool writes).
    pub fn set_info(&mut self, kv: &str) -> Result<(), PkgError> {
        let (key, value) = kv
            .split_once(':')
            .ok_or_else(|| PkgError::Info(kv.to_string(), "expected KEY:VALUE"))?;
        let slot = INFO_FIELDS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .ok_or_else(|| PkgError::UnknownInfo(key.to_string()))?;
        match slot {
            pi::NAME if !valid_name(value) => {
                return Err(PkgError::Info(key.into(), "not a package name"))
            }
            pi::VERSION if !version::valid(value) => {
                return Err(PkgError::Info(
                    key.into(),
                    "not a version of the form 1.2.3-r4",
                ))
            }
            pi::DEPENDS if !value.split_whitespace().all(valid_name) => {
                return Err(PkgError::Info(
                    key.into(),
                    "only plain package names are supported",
                ))
            }
            _ => {}
        }
        self.info.retain(|(s, _)| *s != slot);
        self.info.push((slot, value.to_string()));
        Ok(())
    }

    /// Adds a script `TYPE` with `body`.
    pub fn set_script(&mut self, ty: &str, body: Vec<u8>) -> Result<(), PkgError> {
        let slot = SCRIPTS
            .iter()
            .position(|s| *s == ty)
            .ok_or_else(|| PkgError::UnknownScript(ty.to_string()))?;
        self.scripts.retain(|(s, _)| *s != slot);
        self.scripts.push((slot, body));
        Ok(())
    }

    fn info(&self, slot: usize) -> Option<&str> {
        self.info
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, v)| v.as_str())
    }
}

/// apk's package name characters; must start alphanumeric.
pub fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
}

/// One file of a directory entry.
struct FileEntry {
    name: String,
    mode: u32,
    size: u64,
    mtime: u64,
    sha256: Option<Vec<u8>>,
    target: Option<Vec<u8>>,
    source: PathBuf,
}

struct DirEntry {
    /// Relative path, "" for the root.
    name: String,
    mode: u32,
    files: Vec<FileEntry>,
}

fn sorted_names(dir: &Path) -> Result<Vec<(String, PathBuf, fs::Metadata)>, PkgError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| PkgError::Name(path.clone()))?;
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        out.push((name, path, meta));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Every directory below `root` (relative, sorted bytewise as apk sorts path names).
fn subdirs(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), PkgError> {
    for (name, _, meta) in sorted_names(&root.join(rel))? {
        if meta.file_type().is_dir() {
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            out.push(sub.clone());
            subdirs(root, &sub, out)?;
        }
    }
    Ok(())
}

fn scan(root: &Path, epoch: Option<u64>) -> Result<Vec<DirEntry>, PkgError> {
    let mut names = vec![String::new()];
    let mut below = Vec::new();
    subdirs(root, "", &mut below)?;
    below.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names.extend(below);
    let clamp = |t: i64| {
        let t = u64::try_from(t).unwrap_or(0);
        epoch.map_or(t, |e| t.min(e))
    };
    let mut dirs = Vec::new();
    for name in names {
        let path = root.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let mut files = Vec::new();
        for (fname, fpath, m) in sorted_names(&path)? {
            let ft = m.file_type();
            if ft.is_dir() {
                continue;
            }
            let (sha256, target, size) = if ft.is_file() {
                let content = fs::read(&fpath).map_err(io(&fpath))?;
                let sum = digest::digest(&digest::SHA256, &content).as_ref().to_vec();
                (Some(sum), None, m.len())
            } else if ft.is_symlink() {
                let link = fs::read_link(&fpath).map_err(io(&fpath))?;
                let text = link
                    .to_str()
                    .ok_or_else(|| PkgError::Name(fpath.clone()))?
                    .as_bytes()
                    .to_vec();
                let mut target = S_IFLNK.to_le_bytes().to_vec();
                target.extend_from_slice(&text);
                (None, Some(target), text.len() as u64)
            } else {
                return Err(PkgError::Special(fpath));
            };
            files.push(FileEntry {
                name: fname,
                mode: m.permissions().mode() & 0o7777,
                size,
                mtime: clamp(m.mtime()),
                sha256,
                target,
                source: fpath,
            });
        }
        dirs.push(DirEntry {
            name,
            mode: meta.permissions().mode() & 0o7777,
            files,
        });
    }
    Ok(dirs)
}

fn acl(w: &mut Writer, mode: u32) -> Result<Val, AdbError> {
    let mode = w.int(u64::from(mode))?;
    let user = w.blob(b"root")?;
    let group = w.blob(b"root")?;
    w.object(&[mode, user, group])
}

/// The package file (`compression` as `apk mkpkg --compression`; apk's default is deflate).
pub fn build(files: &Path, spec: &PkgSpec, compression: Compression) -> Result<Vec<u8>, PkgError> {
    for required in [pi::NAME, pi::VERSION, pi::ARCH] {
        if spec.info(required).is_none() {
            return Err(PkgError::Info(
                INFO_FIELDS
                    .iter()
                    .find(|(_, s)| *s == required)
                    .map_or("?", |(k, _)| k)
                    .into(),
                "required",
            ));
        }
    }

    let dirs = scan(files, spec.epoch)?;
    let mut w = Writer::new();

    // info fields in slot order
    let mut info = [NULL; pi::MAX - 1];
    let mut slots: Vec<&(usize, String)> = spec.info.iter().collect();
    slots.sort_by_key(|(s, _)| *s);
    for (slot, value) in slots {
        let v = if *slot == pi::DEPENDS {
            depends(&mut w, value)?
        } else {
            w.blob(value.as_bytes())?
        };
        set(&mut info, *slot, v);
    }
    let mut paths = Vec::with_capacity(dirs.len());
    let mut installed: u64 = 0;
    for d in &dirs {
        let mut fvals = Vec::with_capacity(d.files.len());
        for f in &d.files {
            let name = w.blob(f.name.as_bytes())?;
            let hash = match &f.sha256 {
                Some(h) => w.blob(h)?,
                None => NULL,
            };
            let target = match &f.target {
                Some(t) => w.blob(t)?,
                None => NULL,
            };
            let mtime = w.int(f.mtime)?;
            let size = w.int(f.size)?;
            let a = acl(&mut w, f.mode)?;
            fvals.push(w.object(&[name, a, size, mtime, hash, target])?);
            if f.target.is_none() {
                installed = installed.saturating_add(f.size);
            }
        }
        let name = w.blob(d.name.as_bytes())?;
        let a = acl(&mut w, d.mode)?;
        let fl = w.object(&fvals)?;
        paths.push(w.object(&[name, a, fl])?);
    }
    let installed = w.int(installed.max(1))?;
    set(&mut info, pi::INSTALLED_SIZE, installed);
    let (uid, uid_at) = w.blob_placeholder(&[0; UNIQUE_ID_LEN])?;
    set(&mut info, pi::HASHES, uid);
    let info = w.object(&info)?;
    let paths = w.object(&paths)?;
    let mut pkg = [info, paths, NULL];
    if !spec.scripts.is_empty() {
        let mut s = [NULL; SCRIPTS.len()];
        for (i, slot) in s.iter_mut().enumerate() {
            if let Some((_, body)) = spec.scripts.iter().find(|(k, _)| *k == i) {
                *slot = w.blob(body)?;
            }
        }
        pkg[PKG_SCRIPTS - 1] = w.object(&s)?;
    }
    let root = w.object(&pkg)?;
    let mut block = w.finish(root);
    let uid_hash = digest::digest(&digest::SHA256, &block);
    if let (Some(slot), Some(sum)) = (
        block.get_mut(uid_at..uid_at.saturating_add(UNIQUE_ID_LEN)),
        uid_hash.as_ref().get(..UNIQUE_ID_LEN),
    ) {
        slot.copy_from_slice(sum);
    }

    let mut data = Vec::new();
    for (pi_, d) in dirs.iter().enumerate() {
        for (fi, f) in d.files.iter().enumerate() {
            if f.target.is_some() || f.size == 0 {
                continue;
            }
            let mut payload = Vec::new();
            payload.extend_from_slice(&index_word(pi_)?);
            payload.extend_from_slice(&index_word(fi)?);
            let content = fs::read(&f.source).map_err(io(&f.source))?;
            payload.extend_from_slice(&content);
            data.push(payload);
        }
    }
    let c = Container {
        schema: adb::SCHEMA_PACKAGE,
        adb: block,
        signatures: Vec::new(),
        data,
    };
    Ok(c.to_bytes(compression)?)
}

fn index_word(i: usize) -> Result<[u8; 4], AdbError> {
    u32::try_from(i.saturating_add(1))
        .map(u32::to_le_bytes)
        .map_err(|_| AdbError::TooLarge)
}

fn set(info: &mut [Val], slot: usize, v: Val) {
    if let Some(s) = slot.checked_sub(1).and_then(|i| info.get_mut(i)) {
        *s = v;
    }
}

/// The depends array: one object per name, sorted by name, duplicates dropped.
fn depends(w: &mut Writer, value: &str) -> Result<Val, AdbError> {
    let mut deps: Vec<(&str, Val)> = Vec::new();
    for name in value.split_whitespace() {
        let n = w.blob(name.as_bytes())?;
        deps.push((name, w.object(&[n])?));
    }
    deps.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    deps.dedup_by(|a, b| a.1 == b.1);
    let vals: Vec<Val> = deps.iter().map(|(_, v)| *v).collect();
    w.object(&vals)
}

/// Slots of the package object, for readers.
pub mod slots {
    pub const INFO: usize = super::PKG_INFO;
    pub const PATHS: usize = super::PKG_PATHS;
    pub const SCRIPTS: usize = super::PKG_SCRIPTS;
}
