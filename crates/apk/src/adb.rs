//! The ADB container of apk-tools v3: a tree of 32-bit tagged values in one ADB block, then
//! signature blocks, then data blocks (apk-tools' doc/apk-v3.5).
//!
//! A value is a little-endian word: 4 bits of type, 28 bits of immediate value or of offset into
//! the ADB block. The [`Writer`] lays values out the way apk-tools' own writer does (same
//! alignment, identical values stored once, objects with trailing null slots trimmed), so a tree
//! written in the same order gives the same bytes as `apk mkpkg` / `apk mkndx`. The [`Adb`]
//! reader checks every offset and length against the block; nothing in a file can panic it.

use std::collections::HashMap;

/// A tagged value (host order; written little-endian).
pub type Val = u32;

pub const NULL: Val = 0;
const TYPE_MASK: u32 = 0xf000_0000;
const VALUE_MASK: u32 = 0x0fff_ffff;
const TYPE_INT: u32 = 0x1000_0000;
const TYPE_INT_32: u32 = 0x2000_0000;
const TYPE_INT_64: u32 = 0x3000_0000;
const TYPE_BLOB_8: u32 = 0x8000_0000;
const TYPE_BLOB_16: u32 = 0x9000_0000;
const TYPE_BLOB_32: u32 = 0xa000_0000;
/// Arrays and objects differ only in their tag; apk-tools' package and index writers tag
/// both with the object type, and readers accept either.
const TYPE_ARRAY: u32 = 0xd000_0000;
const TYPE_OBJECT: u32 = 0xe000_0000;

/// The file magic `ADB.` and the schemas of a package and of an index.
pub const MAGIC: &[u8; 4] = b"ADB.";
pub const SCHEMA_PACKAGE: u32 = u32::from_le_bytes(*b"pckg");
pub const SCHEMA_INDEX: u32 = u32::from_le_bytes(*b"indx");

/// Block types (the top two bits of a block's first word).
pub const BLOCK_ADB: u32 = 0;
pub const BLOCK_SIG: u32 = 1;
pub const BLOCK_DATA: u32 = 2;
const BLOCK_ALIGN: usize = 8;
/// The size field of a plain block header: 30 bits, header word included.
const BLOCK_MAX_RAW: usize = 0x3fff_ffff;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdbError {
    #[error("the ADB block outgrew the 28-bit offsets of the format")]
    TooLarge,
    #[error("not an apk v3 file (no ADB./ADBd magic)")]
    Magic,
    #[error("schema {found:#010x}, expected {expected:#010x}")]
    Schema { found: u32, expected: u32 },
    #[error("block structure: {0}")]
    Block(&'static str),
    #[error("value out of the ADB block: {0}")]
    Value(&'static str),
    #[error("deflate stream: {0}")]
    Inflate(String),
}

fn val_type(v: Val) -> u32 {
    v & TYPE_MASK
}

fn val_value(v: Val) -> usize {
    (v & VALUE_MASK) as usize
}

/// Builds one ADB block. Values are appended; the root is set last.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
    /// Stored bytes -> offset of their latest copy, for storing identical values once.
    stored: HashMap<Vec<u8>, usize>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty block: the 8-byte header (compat version 0, version 0, root null).
    pub fn new() -> Self {
        Writer {
            buf: vec![0; 8],
            stored: HashMap::new(),
        }
    }

    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn append(&mut self, bytes: &[u8], align: usize) -> Result<usize, AdbError> {
        self.pad(align);
        let offset = self.buf.len();
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > VALUE_MASK as usize {
            return Err(AdbError::TooLarge);
        }
        Ok(offset)
    }

    /// Stores `bytes` once: an identical, suitably aligned earlier copy is reused.
    fn data(&mut self, bytes: &[u8], align: usize) -> Result<usize, AdbError> {
        if let Some(&offset) = self.stored.get(bytes) {
            if offset.is_multiple_of(align) {
                return Ok(offset);
            }
        }
        let offset = self.append(bytes, align)?;
        self.stored.insert(bytes.to_vec(), offset);
        Ok(offset)
    }

    fn tag(ty: u32, offset: usize) -> Result<Val, AdbError> {
        u32::try_from(offset)
            .ok()
            .filter(|o| *o <= VALUE_MASK)
            .map(|o| ty | o)
            .ok_or(AdbError::TooLarge)
    }

    fn blob_bytes(b: &[u8]) -> Result<Option<(u32, usize, Vec<u8>)>, AdbError> {
        let len = b.len();
        let (ty, align, mut out) = if len == 0 {
            return Ok(None);
        } else if let Ok(l) = u8::try_from(len) {
            (TYPE_BLOB_8, 1, vec![l])
        } else if let Ok(l) = u16::try_from(len) {
            (TYPE_BLOB_16, 2, l.to_le_bytes().to_vec())
        } else {
            let l = u32::try_from(len).map_err(|_| AdbError::TooLarge)?;
            (TYPE_BLOB_32, 4, l.to_le_bytes().to_vec())
        };
        out.extend_from_slice(b);
        Ok(Some((ty, align, out)))
    }

    /// A byte string; the empty string is null.
    pub fn blob(&mut self, b: &[u8]) -> Result<Val, AdbError> {
        match Self::blob_bytes(b)? {
            None => Ok(NULL),
            Some((ty, align, bytes)) => {
                let offset = self.data(&bytes, align)?;
                Self::tag(ty, offset)
            }
        }
    }

    /// A byte string stored without reuse: a placeholder to be patched in place later.
    /// Returns the value and the offset of its bytes.
    pub fn blob_placeholder(&mut self, b: &[u8]) -> Result<(Val, usize), AdbError> {
        match Self::blob_bytes(b)? {
            None => Ok((NULL, 0)),
            Some((ty, align, bytes)) => {
                let offset = self.append(&bytes, align)?;
                let header = bytes.len().saturating_sub(b.len());
                Ok((Self::tag(ty, offset)?, offset.saturating_add(header)))
            }
        }
    }

    /// An unsigned integer: immediate below 2^28, else stored as 32 or 64 bits.
    pub fn int(&mut self, v: u64) -> Result<Val, AdbError> {
        if let Ok(small) = u32::try_from(v) {
            if small <= VALUE_MASK {
                return Ok(TYPE_INT | small);
            }
            let offset = self.data(&small.to_le_bytes(), 4)?;
            return Self::tag(TYPE_INT_32, offset);
        }
        let offset = self.data(&v.to_le_bytes(), 4)?;
        Self::tag(TYPE_INT_64, offset)
    }

    fn slots(&mut self, ty: u32, slots: &[Val]) -> Result<Val, AdbError> {
        let used = slots
            .iter()
            .rposition(|v| *v != NULL)
            .map_or(0, |i| i.saturating_add(1));
        if used == 0 {
            return Ok(NULL);
        }
        let count = u32::try_from(used.saturating_add(1)).map_err(|_| AdbError::TooLarge)?;
        let mut bytes = Vec::with_capacity(used.saturating_add(1).saturating_mul(4));
        bytes.extend_from_slice(&count.to_le_bytes());
        for v in slots.iter().take(used) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let offset = self.data(&bytes, 4)?;
        Self::tag(ty, offset)
    }

    /// An object: `fields[0]` is field 1. Trailing nulls are trimmed; all-null is null.
    pub fn object(&mut self, fields: &[Val]) -> Result<Val, AdbError> {
        self.slots(TYPE_OBJECT, fields)
    }

    /// An array tagged as an array (apk-tools' writers tag arrays as objects: [`Self::object`]).
    pub fn array(&mut self, items: &[Val]) -> Result<Val, AdbError> {
        self.slots(TYPE_ARRAY, items)
    }

    /// Copies a value of another block into this one, children first (as apk-tools does).
    pub fn copy(&mut self, src: &Adb<'_>, v: Val) -> Result<Val, AdbError> {
        match val_type(v) {
            0 | TYPE_INT => Ok(v),
            TYPE_INT_32 => {
                let bytes = src.bytes(v, 0, 4)?;
                let offset = self.data(bytes, 4)?;
                Self::tag(TYPE_INT_32, offset)
            }
            TYPE_INT_64 => {
                let bytes = src.bytes(v, 0, 8)?;
                let offset = self.data(bytes, 8)?;
                Self::tag(TYPE_INT_64, offset)
            }
            TYPE_BLOB_8 | TYPE_BLOB_16 | TYPE_BLOB_32 => {
                let b = src.blob(v)?;
                self.blob(b)
            }
            TYPE_OBJECT | TYPE_ARRAY => {
                let obj = src.obj(v)?;
                let mut copied = Vec::with_capacity(obj.len());
                for i in 1..=obj.len() {
                    copied.push(self.copy(src, obj.get(i))?);
                }
                self.slots(val_type(v), &copied)
            }
            _ => Err(AdbError::Value("unknown value type")),
        }
    }

    /// Sets the root and returns the block's bytes.
    pub fn finish(mut self, root: Val) -> Vec<u8> {
        if let Some(slot) = self.buf.get_mut(4..8) {
            slot.copy_from_slice(&root.to_le_bytes());
        }
        self.buf
    }
}

/// A read-only view of one ADB block.
#[derive(Debug, Clone, Copy)]
pub struct Adb<'a> {
    pub block: &'a [u8],
}

/// The slots of an object or array: `get(1)` is the first field, absent fields are null.
#[derive(Debug, Clone, Default)]
pub struct Obj {
    slots: Vec<Val>,
}

impl Obj {
    pub fn get(&self, i: usize) -> Val {
        self.slots.get(i).copied().unwrap_or(NULL)
    }
    /// The number of fields (or items), slot 0 not counted.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> Adb<'a> {
    pub fn new(block: &'a [u8]) -> Result<Self, AdbError> {
        match block.first() {
            None => Err(AdbError::Block("empty ADB block")),
            Some(0) if block.len() >= 8 => Ok(Adb { block }),
            Some(0) => Err(AdbError::Block("ADB block shorter than its header")),
            Some(_) => Err(AdbError::Block("unsupported ADB compat version")),
        }
    }

    pub fn root(&self) -> Val {
        self.block
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map_or(NULL, u32::from_le_bytes)
    }

    fn bytes(&self, v: Val, skip: usize, len: usize) -> Result<&'a [u8], AdbError> {
        let start = val_value(v)
            .checked_add(skip)
            .ok_or(AdbError::Value("offset"))?;
        let end = start.checked_add(len).ok_or(AdbError::Value("length"))?;
        self.block
            .get(start..end)
            .ok_or(AdbError::Value("points past the block"))
    }

    fn le(&self, v: Val, skip: usize, len: usize) -> Result<u64, AdbError> {
        let b = self.bytes(v, skip, len)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    /// An integer value (null reads as 0, as in apk-tools).
    pub fn int(&self, v: Val) -> Result<u64, AdbError> {
        match val_type(v) {
            0 if v == NULL => Ok(0),
            TYPE_INT => Ok(val_value(v) as u64),
            TYPE_INT_32 => self.le(v, 0, 4),
            TYPE_INT_64 => self.le(v, 0, 8),
            _ => Err(AdbError::Value("not an integer")),
        }
    }

    /// A blob value (null reads as empty).
    pub fn blob(&self, v: Val) -> Result<&'a [u8], AdbError> {
        let header = match val_type(v) {
            0 if v == NULL => return Ok(&[]),
            TYPE_BLOB_8 => 1,
            TYPE_BLOB_16 => 2,
            TYPE_BLOB_32 => 4,
            _ => return Err(AdbError::Value("not a blob")),
        };
        let len = usize::try_from(self.le(v, 0, header)?).map_err(|_| AdbError::TooLarge)?;
        self.bytes(v, header, len)
    }

    /// An object or array value (null reads as empty).
    pub fn obj(&self, v: Val) -> Result<Obj, AdbError> {
        match val_type(v) {
            0 if v == NULL => return Ok(Obj::default()),
            TYPE_OBJECT | TYPE_ARRAY => {}
            _ => return Err(AdbError::Value("not an object")),
        }
        let count = usize::try_from(self.le(v, 0, 4)?).map_err(|_| AdbError::TooLarge)?;
        if count == 0 {
            return Err(AdbError::Value("object without slots"));
        }
        let raw = self.bytes(v, 0, count.checked_mul(4).ok_or(AdbError::TooLarge)?)?;
        let slots = raw
            .chunks_exact(4)
            .map(|c| c.try_into().map_or(NULL, u32::from_le_bytes))
            .collect();
        Ok(Obj { slots })
    }
}

/// How the container is stored: `ADB.` plain, or `ADBd` + raw deflate (apk-tools' default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Deflate,
}

/// The blocks of one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Container {
    pub schema: u32,
    pub adb: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
    pub data: Vec<Vec<u8>>,
}

fn push_block(out: &mut Vec<u8>, ty: u32, payload: &[u8]) -> Result<(), AdbError> {
    let raw = payload.len().checked_add(4).ok_or(AdbError::TooLarge)?;
    if raw > BLOCK_MAX_RAW {
        return Err(AdbError::TooLarge);
    }
    let word = (ty << 30) | u32::try_from(raw).map_err(|_| AdbError::TooLarge)?;
    out.extend_from_slice(&word.to_le_bytes());
    out.extend_from_slice(payload);
    let padded = raw.div_ceil(BLOCK_ALIGN).saturating_mul(BLOCK_ALIGN);
    out.resize(out.len().saturating_add(padded.saturating_sub(raw)), 0);
    Ok(())
}

impl Container {
    /// The uncompressed file: magic, schema, the ADB block, signature and data blocks.
    pub fn to_plain(&self) -> Result<Vec<u8>, AdbError> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.schema.to_le_bytes());
        push_block(&mut out, BLOCK_ADB, &self.adb)?;
        for s in &self.signatures {
            push_block(&mut out, BLOCK_SIG, s)?;
        }
        for d in &self.data {
            push_block(&mut out, BLOCK_DATA, d)?;
        }
        Ok(out)
    }

    pub fn to_bytes(&self, compression: Compression) -> Result<Vec<u8>, AdbError> {
        let plain = self.to_plain()?;
        match compression {
            Compression::None => Ok(plain),
            Compression::Deflate => {
                use std::io::Write;
                let mut out = b"ADBd".to_vec();
                let mut enc =
                    flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::new(9));
                enc.write_all(&plain)
                    .and_then(|_| enc.finish().map(|_| ()))
                    .map_err(|e| AdbError::Inflate(e.to_string()))?;
                Ok(out)
            }
        }
    }

    /// Parses a file (plain or deflated); `expected` schema checked when given.
    pub fn parse(file: &[u8], expected: Option<u32>) -> Result<Container, AdbError> {
        let plain = decompress(file)?;
        let schema = plain
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(AdbError::Magic)?;
        if let Some(expected) = expected {
            if schema != expected {
                return Err(AdbError::Schema {
                    found: schema,
                    expected,
                });
            }
        }
        let mut c = Container {
            schema,
            ..Container::default()
        };
        let mut rest = plain.get(8..).unwrap_or_default();
        let mut seen_adb = false;
        while !rest.is_empty() {
            let word = rest
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(AdbError::Block("truncated block header"))?;
            let ty = word >> 30;
            let raw = (word & 0x3fff_ffff) as usize;
            if raw < 4 {
                return Err(AdbError::Block("block shorter than its header"));
            }
            let payload = rest
                .get(4..raw)
                .ok_or(AdbError::Block("block past the end"))?
                .to_vec();
            let padded = raw.div_ceil(BLOCK_ALIGN).saturating_mul(BLOCK_ALIGN);
            rest = rest.get(padded..).unwrap_or_default();
            match ty {
                BLOCK_ADB if !seen_adb => {
                    seen_adb = true;
                    c.adb = payload;
                }
                BLOCK_SIG if seen_adb && c.data.is_empty() => c.signatures.push(payload),
                BLOCK_DATA if seen_adb => c.data.push(payload),
                _ => return Err(AdbError::Block("unexpected block type or order")),
            }
        }
        if !seen_adb {
            return Err(AdbError::Block("no ADB block"));
        }
        Adb::new(&c.adb)?;
        Ok(c)
    }
}

fn decompress(file: &[u8]) -> Result<Vec<u8>, AdbError> {
    match file.get(0..4) {
        Some(m) if m == MAGIC => Ok(file.to_vec()),
        Some(b"ADBd") => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(file.get(4..).unwrap_or_default())
                .read_to_end(&mut out)
                .map_err(|e| AdbError::Inflate(e.to_string()))?;
            if out.get(0..4) != Some(MAGIC.as_slice()) {
                return Err(AdbError::Magic);
            }
            Ok(out)
        }
        _ => Err(AdbError::Magic),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn values_are_laid_out_as_apk_tools_does() {
        let mut w = Writer::new();
        let a = w.blob(b"abc").unwrap();
        assert_eq!(a, TYPE_BLOB_8 | 8);
        assert_eq!(
            w.blob(b"abc").unwrap(),
            a,
            "identical blobs are stored once"
        );
        assert_eq!(w.blob(b"").unwrap(), NULL);
        assert_eq!(w.int(0o755).unwrap(), TYPE_INT | 0o755);
        let t = w.int(1_700_000_000).unwrap();
        assert_eq!(t, TYPE_INT_32 | 12, "4-aligned after the 4-byte blob");
        let o = w.object(&[a, NULL, t, NULL]).unwrap();
        assert_eq!(o, TYPE_OBJECT | 16);
        let block = w.finish(o);
        assert_eq!(
            block,
            [
                0, 0, 0, 0, 16, 0, 0, 0xe0, // header, root
                3, b'a', b'b', b'c', // blob
                0x00, 0xf1, 0x53, 0x65, // int32
                4, 0, 0, 0, 8, 0, 0, 0x80, 0, 0, 0, 0, 12, 0, 0, 0x20, // object
            ]
        );
        let r = Adb::new(&block).unwrap();
        let obj = r.obj(r.root()).unwrap();
        assert_eq!(obj.len(), 3);
        assert_eq!(r.blob(obj.get(1)).unwrap(), b"abc");
        assert_eq!(r.int(obj.get(3)).unwrap(), 1_700_000_000);
        assert_eq!(obj.get(9), NULL);
    }

    #[test]
    fn reader_rejects_what_points_outside() {
        let block = [0u8, 0, 0, 0, 0xf0, 0, 0, 0xe0];
        let r = Adb::new(&block).unwrap();
        assert!(r.obj(r.root()).is_err());
        assert!(r.blob(TYPE_BLOB_32 | 4).is_err());
        assert!(Container::parse(b"ADB.pckg\x07\0\0\0", None).is_err());
        assert!(Container::parse(b"nope", None).is_err());
    }

    #[test]
    fn container_round_trips_both_compressions() {
        let c = Container {
            schema: SCHEMA_PACKAGE,
            adb: Writer::new().finish(NULL),
            signatures: vec![],
            data: vec![vec![1, 0, 0, 0, 1, 0, 0, 0, b'x']],
        };
        for comp in [Compression::None, Compression::Deflate] {
            let bytes = c.to_bytes(comp).unwrap();
            assert_eq!(Container::parse(&bytes, Some(SCHEMA_PACKAGE)).unwrap(), c);
        }
        assert_eq!(c.to_plain().unwrap().len(), 8 + 16 + 16);
    }
}
