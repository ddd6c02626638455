//! A minimal reader of what this crate writes (and apk-tools writes): the package's info, paths,
//! files with their contents, scripts; an index's packages. Checks that every data block
//! matches its file's SHA-256 and that the unique id matches the ADB block.

use std::fmt::Write as _;

use ring::digest;

use crate::adb::{self, Adb, AdbError, Container, Obj, Val};
use crate::index::ndx;
use crate::pkg::{pi, slots, INFO_FIELDS, SCRIPTS};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Adb(#[from] AdbError),
    #[error("{0}")]
    Content(String),
}

/// A package's info fields (strings by `--info` name) and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub fields: Vec<(String, String)>,
    pub installed_size: u64,
    pub file_size: u64,
    pub hashes: Vec<u8>,
}

impl Info {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub mode: u32,
    pub user: String,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Full path without the leading slash.
    pub path: String,
    pub acl: Acl,
    pub size: u64,
    pub mtime: u64,
    pub sha256: Vec<u8>,
    /// Symlink text.
    pub link: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub info: Info,
    pub dirs: Vec<(String, Acl)>,
    pub files: Vec<File>,
    pub scripts: Vec<(String, String)>,
    /// SHA-256 of the ADB block: the package's identity in an index.
    pub identity: Vec<u8>,
}

impl Package {
    pub fn file(&self, path: &str) -> Option<&File> {
        self.files.iter().find(|f| f.path == path)
    }
    pub fn script(&self, ty: &str) -> Option<&str> {
        self.scripts
            .iter()
            .find(|(k, _)| k == ty)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Index {
    pub description: String,
    pub packages: Vec<Info>,
    pub container: Container,
}

fn text(r: &Adb<'_>, v: Val) -> Result<String, ReadError> {
    Ok(String::from_utf8_lossy(r.blob(v)?).into_owned())
}

fn read_info(r: &Adb<'_>, info: &Obj) -> Result<Info, ReadError> {
    let mut out = Info::default();
    for (key, slot) in INFO_FIELDS {
        let v = info.get(slot);
        if v == adb::NULL {
            continue;
        }
        let value = if slot == pi::DEPENDS {
            let deps = r.obj(v)?;
            let mut names = Vec::new();
            for i in 1..=deps.len() {
                names.push(text(r, r.obj(deps.get(i))?.get(1))?);
            }
            names.join(" ")
        } else {
            text(r, v)?
        };
        out.fields.push((key.to_string(), value));
    }
    out.installed_size = r.int(info.get(pi::INSTALLED_SIZE))?;
    out.file_size = r.int(info.get(pi::FILE_SIZE))?;
    out.hashes = r.blob(info.get(pi::HASHES))?.to_vec();
    Ok(out)
}

fn read_acl(r: &Adb<'_>, v: Val) -> Result<Acl, ReadError> {
    let a = r.obj(v)?;
    Ok(Acl {
        mode: u32::try_from(r.int(a.get(1))?).map_err(|_| ReadError::Content("mode".into()))?,
        user: text(r, a.get(2))?,
        group: text(r, a.get(3))?,
    })
}

fn word(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at.checked_add(4)?)
        .and_then(|w| w.try_into().ok())
        .map(u32::from_le_bytes)
        .and_then(|w| usize::try_from(w).ok())
}

/// Parses and checks a package file.
pub fn package(bytes: &[u8]) -> Result<Package, ReadError> {
    let c = Container::parse(bytes, Some(adb::SCHEMA_PACKAGE))?;
    let r = Adb::new(&c.adb)?;
    let root = r.obj(r.root())?;
    let info = read_info(&r, &r.obj(root.get(slots::INFO))?)?;
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut index = Vec::new();
    let paths = r.obj(root.get(slots::PATHS))?;
    for pi_ in 1..=paths.len() {
        let d = r.obj(paths.get(pi_))?;
        let dname = text(&r, d.get(1))?;
        dirs.push((dname.clone(), read_acl(&r, d.get(2))?));
        let fl = r.obj(d.get(3))?;
        for fi in 1..=fl.len() {
            let f = r.obj(fl.get(fi))?;
            let name = text(&r, f.get(1))?;
            let target = r.blob(f.get(6))?;
            let link = match (target.get(..2), target.get(2..)) {
                (Some([lo, hi]), Some(rest))
                    if u16::from_le_bytes([*lo, *hi]) & 0o170000 == 0o120000 =>
                {
                    Some(String::from_utf8_lossy(rest).into_owned())
                }
                _ => None,
            };
            files.push(File {
                path: if dname.is_empty() {
                    name
                } else {
                    format!("{dname}/{name}")
                },
                acl: read_acl(&r, f.get(2))?,
                size: r.int(f.get(3))?,
                mtime: r.int(f.get(4))?,
                sha256: r.blob(f.get(5))?.to_vec(),
                link,
                content: Vec::new(),
            });
            index.push((pi_, fi));
        }
    }
    for block in &c.data {
        let (Some(p), Some(f)) = (word(block, 0), word(block, 4)) else {
            return Err(ReadError::Content("short data block".into()));
        };
        let at = index
            .iter()
            .position(|x| *x == (p, f))
            .ok_or_else(|| ReadError::Content(format!("data block for unknown file {p}/{f}")))?;
        let file = files
            .get_mut(at)
            .ok_or_else(|| ReadError::Content("data block index".into()))?;
        file.content = block.get(8..).unwrap_or_default().to_vec();
        let sum = digest::digest(&digest::SHA256, &file.content);
        if sum.as_ref() != file.sha256.as_slice() || file.content.len() as u64 != file.size {
            return Err(ReadError::Content(format!(
                "{}: data does not match its hash or size",
                file.path
            )));
        }
    }
    let mut scripts = Vec::new();
    let s = r.obj(root.get(slots::SCRIPTS))?;
    for (i, name) in SCRIPTS.iter().enumerate() {
        let v = s.get(i.saturating_add(1));
        if v != adb::NULL {
            scripts.push((name.to_string(), text(&r, v)?));
        }
    }
    let mut zeroed = c.adb.clone();
    if let Some(at) = find_unique_id(&c.adb, &info.hashes) {
        if let Some(slot) = zeroed.get_mut(at..at.saturating_add(info.hashes.len())) {
            slot.fill(0);
        }
    }
    let uid = digest::digest(&digest::SHA256, &zeroed);
    if uid.as_ref().get(..info.hashes.len()) != Some(info.hashes.as_slice()) {
        return Err(ReadError::Content(
            "unique id does not match the ADB block".into(),
        ));
    }
    Ok(Package {
        info,
        dirs,
        files,
        scripts,
        identity: digest::digest(&digest::SHA256, &c.adb).as_ref().to_vec(),
    })
}

fn find_unique_id(block: &[u8], id: &[u8]) -> Option<usize> {
    if id.is_empty() {
        return None;
    }
    block
        .windows(id.len().saturating_add(1))
        .position(|w| w.first() == u8::try_from(id.len()).ok().as_ref() && w.get(1..) == Some(id))
        .map(|p| p.saturating_add(1))
}

/// Parses an index (signatures are checked separately: [`crate::sign::verify`]).
pub fn index(bytes: &[u8]) -> Result<Index, ReadError> {
    let c = Container::parse(bytes, Some(adb::SCHEMA_INDEX))?;
    let r = Adb::new(&c.adb)?;
    let root = r.obj(r.root())?;
    let description = text(&r, root.get(ndx::DESCRIPTION))?;
    let pkgs = r.obj(root.get(ndx::PACKAGES))?;
    let mut packages = Vec::new();
    for i in 1..=pkgs.len() {
        packages.push(read_info(&r, &r.obj(pkgs.get(i))?)?);
    }
    Ok(Index {
        description,
        packages,
        container: c,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A stable text listing of a package, for reviews and tests.
pub fn describe_package(p: &Package) -> String {
    let mut s = String::new();
    for (k, v) in &p.info.fields {
        let _ = writeln!(s, "info {k}: {v}");
    }
    let _ = writeln!(s, "info installed-size: {}", p.info.installed_size);
    for (d, a) in &p.dirs {
        let _ = writeln!(s, "dir /{d} {:04o} {}:{}", a.mode, a.user, a.group);
    }
    for f in &p.files {
        let what = match &f.link {
            Some(l) => format!("-> {l}"),
            None => format!("sha256 {}", hex(&f.sha256)),
        };
        let _ = writeln!(
            s,
            "file /{} {:04o} {}:{} size {} mtime {} {what}",
            f.path, f.acl.mode, f.acl.user, f.acl.group, f.size, f.mtime
        );
    }
    for (k, v) in &p.scripts {
        let _ = writeln!(s, "script {k}: {} bytes", v.len());
    }
    s
}

/// A stable text listing of an index.
pub fn describe_index(i: &Index) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "description: {}", i.description);
    for p in &i.packages {
        let f: Vec<String> = p.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "package {} file-size {} installed-size {} hash {}",
            f.join(" "),
            p.file_size,
            p.installed_size,
            hex(&p.hashes)
        );
    }
    let _ = writeln!(s, "signatures: {}", i.container.signatures.len());
    s
}
