//! A `packages.adb` index as `apk mkndx` writes it: each package's info copied from its ADB
//! block, plus its file size and its identity (the SHA-256 of its ADB block, which is how apk
//! trusts an unsigned package from a signed index), sorted by name, version and identity; the
//! index signed by [`crate::sign`].

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use ring::digest;

use crate::adb::{self, Adb, AdbError, Compression, Container, Val, Writer, NULL};
use crate::pkg::{pi, slots};
use crate::sign::{self, SignError};
use crate::version;

const NDX_DESCRIPTION: usize = 1;
const NDX_PACKAGES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Package { path: PathBuf, source: AdbError },
    #[error(transparent)]
    Adb(#[from] AdbError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

struct Entry {
    val: Val,
    name: Vec<u8>,
    version: String,
    hash: Vec<u8>,
}

fn order(a: &Entry, b: &Entry) -> Ordering {
    a.name
        .cmp(&b.name)
        .then_with(|| version::compare(&a.version, &b.version))
        .then_with(|| a.hash.cmp(&b.hash))
}

/// The unsigned index container of `packages` (read from disk, in the order given).
pub fn build_unsigned(
    packages: &[PathBuf],
    description: Option<&str>,
) -> Result<Container, IndexError> {
    let mut w = Writer::new();
    let mut entries = Vec::with_capacity(packages.len());
    for path in packages {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |source| IndexError::Package {
            path: path.clone(),
            source,
        };
        let c = Container::parse(&bytes, Some(adb::SCHEMA_PACKAGE)).map_err(bad)?;
        let r = Adb::new(&c.adb).map_err(bad)?;
        let info = r
            .obj(r.root())
            .and_then(|root| r.obj(root.get(slots::INFO)))
            .map_err(bad)?;
        let mut fields = vec![NULL; pi::MAX - 1];
        for (i, slot) in fields.iter_mut().enumerate().take(info.len()) {
            *slot = w.copy(&r, info.get(i.saturating_add(1))).map_err(bad)?;
        }
        let size = w.int(bytes.len() as u64)?;
        let hash = digest::digest(&digest::SHA256, &c.adb).as_ref().to_vec();
        let hv = w.blob(&hash)?;
        if let Some(s) = fields.get_mut(pi::FILE_SIZE - 1) {
            *s = size;
        }
        if let Some(s) = fields.get_mut(pi::HASHES - 1) {
            *s = hv;
        }
        let name = r.blob(info.get(pi::NAME)).map_err(bad)?.to_vec();
        let version =
            String::from_utf8_lossy(r.blob(info.get(pi::VERSION)).map_err(bad)?).into_owned();
        entries.push(Entry {
            val: w.object(&fields)?,
            name,
            version,
            hash,
        });
    }
    entries.sort_by(order);
    let desc = w.blob(description.unwrap_or_default().as_bytes())?;
    let vals: Vec<Val> = entries.iter().map(|e| e.val).collect();
    let pkgs = w.object(&vals)?;
    let mut root = [NULL; 3];
    root[NDX_DESCRIPTION - 1] = desc;
    root[NDX_PACKAGES - 1] = pkgs;
    let root = w.object(&root)?;
    Ok(Container {
        schema: adb::SCHEMA_INDEX,
        adb: w.finish(root),
        signatures: Vec::new(),
        data: Vec::new(),
    })
}

/// The index file, signed with `key` when given.
pub fn build(
    packages: &[PathBuf],
    description: Option<&str>,
    key: Option<&Path>,
    compression: Compression,
) -> Result<Vec<u8>, IndexError> {
    let mut c = build_unsigned(packages, description)?;
    if let Some(key) = key {
        c.signatures.push(sign::sign(c.schema, &c.adb, key)?);
    }
    Ok(c.to_bytes(compression)?)
}

/// Slots of the index object, for readers.
pub mod ndx {
    pub const DESCRIPTION: usize = super::NDX_DESCRIPTION;
    pub const PACKAGES: usize = super::NDX_PACKAGES;
}
