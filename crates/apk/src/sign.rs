//! Index signatures as `apk mkndx --sign-key` writes them for an EC prime256v1 key.
//!
//! A signature block holds: version 0, the hash algorithm of the ADB digest (4 = SHA-512), the
//! key id (the first 16 bytes of the SHA-512 of the key's public point) and the DER ECDSA
//! signature, made with SHA-512, of: the schema word, those 18 header bytes, and the SHA-512
//! of the ADB block. ring signs P-256 only with SHA-256, so the signing itself is done by the
//! `openssl` command line tool (`openssl dgst -sha512 -sign KEY`), which also makes the key.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use ring::digest;

const SIGN_VERSION: u8 = 0;
const HASH_SHA512: u8 = 4;
/// The DER prefix of a prime256v1 SubjectPublicKeyInfo, up to the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("openssl {what}: {detail}")]
    Openssl { what: &'static str, detail: String },
    #[error("not an EC prime256v1 key (apk feeds here are signed with one)")]
    NotP256,
}

fn openssl(args: &[&str], input: &[u8], what: &'static str) -> Result<Vec<u8>, SignError> {
    let err = |detail: String| SignError::Openssl { what, detail };
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run openssl: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("writing to openssl: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for openssl: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

/// The public point of a P-256 key (a private key or a public `.pem`).
pub fn public_point(key: &Path, private: bool) -> Result<Vec<u8>, SignError> {
    let key = key.to_string_lossy();
    let mut args = vec!["pkey", "-in", key.as_ref(), "-pubout", "-outform", "DER"];
    if !private {
        args.insert(1, "-pubin");
    }
    let der = openssl(&args, &[], "reading the key")?;
    match der.strip_prefix(P256_SPKI_PREFIX.as_slice()) {
        Some(point) if point.len() == 65 => Ok(point.to_vec()),
        _ => Err(SignError::NotP256),
    }
}

/// apk's key id: the first 16 bytes of the SHA-512 of the public point.
pub fn key_id(point: &[u8]) -> [u8; 16] {
    let d = digest::digest(&digest::SHA512, point);
    let mut id = [0u8; 16];
    for (o, i) in id.iter_mut().zip(d.as_ref()) {
        *o = *i;
    }
    id
}

/// The 18-byte signature header and the message that is signed.
pub fn signed_message(schema: u32, id: &[u8; 16], adb: &[u8]) -> ([u8; 18], Vec<u8>) {
    let mut header = [0u8; 18];
    header[0] = SIGN_VERSION;
    header[1] = HASH_SHA512;
    for (o, i) in header.iter_mut().skip(2).zip(id) {
        *o = *i;
    }
    let mut msg = schema.to_le_bytes().to_vec();
    msg.extend_from_slice(&header);
    msg.extend_from_slice(digest::digest(&digest::SHA512, adb).as_ref());
    (header, msg)
}

/// The signature block payload for `adb` (an ADB block of `schema`) with the private `key`.
pub fn sign(schema: u32, adb: &[u8], key: &Path) -> Result<Vec<u8>, SignError> {
    let id = key_id(&public_point(key, true)?);
    let (header, msg) = signed_message(schema, &id, adb);
    let k = key.to_string_lossy();
    let sig = openssl(&["dgst", "-sha512", "-sign", k.as_ref()], &msg, "signing")?;
    let mut block = header.to_vec();
    block.extend_from_slice(&sig);
    Ok(block)
}

/// Checks a signature block against the public key `.pem` (as apk does on `apk update`).
pub fn verify(schema: u32, adb: &[u8], sig_block: &[u8], public: &Path) -> Result<bool, SignError> {
    let id = key_id(&public_point(public, false)?);
    let (header, msg) = signed_message(schema, &id, adb);
    let (Some(head), Some(der)) = (sig_block.get(..18), sig_block.get(18..)) else {
        return Ok(false);
    };
    if head != header {
        return Ok(false);
    }
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fieldbridge-apk-sig-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&dir, der).map_err(|e| SignError::Openssl {
        what: "verifying",
        detail: e.to_string(),
    })?;
    let p = public.to_string_lossy();
    let d = dir.to_string_lossy();
    let r = openssl(
        &[
            "dgst",
            "-sha512",
            "-verify",
            p.as_ref(),
            "-signature",
            d.as_ref(),
        ],
        &msg,
        "verifying",
    );
    let _ = std::fs::remove_file(&dir);
    match r {
        Ok(out) => Ok(String::from_utf8_lossy(&out).contains("Verified OK")),
        Err(_) => Ok(false),
    }
}
