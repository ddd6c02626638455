//! TLS of an IEC 104 link (IEC 62351-3), shared by the `iec104-master` and `iec104-slave`
//! device rows: `tls: 1`, `ca_certificate`, `certificate`, `private_key`,
//! `peer_certificates`, `crl_file`, `tls_version_min`, `tls_version_max`, `tls_renewal_s`
//! and `tls_expiry_warning_days`.
//!
//! Authentication is always mutual: the slave requires a client certificate, the master
//! verifies the outstation's and presents its own. There is no plaintext fallback: a row with
//! `tls: 1` only ever speaks TLS.

use std::path::PathBuf;
use std::time::Duration;

/// The IEC 104 port when `tls` is set and `port` is empty (IEC 62351-3).
pub const TLS_PORT: u16 = 19998;
/// `tls_expiry_warning_days` when the cell is empty.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;

/// A TLS protocol version a link may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (`1.2`).
    V1_2,
    /// TLS 1.3 (`1.3`).
    V1_3,
}

/// One entry of `peer_certificates`: a peer accepted only if its end-entity certificate is
/// one of these ("only known certificates").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerCertificate {
    /// A PEM file holding the certificate.
    File(PathBuf),
    /// The SHA-256 fingerprint of the certificate's DER (64 hex digits, `:` allowed).
    Sha256([u8; 32]),
}

/// The TLS settings of one IEC 104 device row (`tls: 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iec104Tls {
    /// CA certificate(s) (PEM) the peer's certificate must chain to.
    pub ca_certificate: PathBuf,
    /// The own certificate (PEM, chain allowed).
    pub certificate: PathBuf,
    /// The own private key (PEM); the file must not be readable by others.
    pub private_key: PathBuf,
    /// Empty: any certificate the CA signed. Otherwise only these.
    pub peer_certificates: Vec<PeerCertificate>,
    /// A CRL (PEM or DER) of the CA; a revoked peer certificate is refused.
    pub crl_file: Option<PathBuf>,
    /// The lowest and highest version allowed (`min <= max`).
    pub version_min: TlsVersion,
    pub version_max: TlsVersion,
    /// `tls_renewal_s`: how often a link's keys are renewed (TLS 1.3 KeyUpdate; a planned
    /// reconnect on TLS 1.2). `None`: never.
    pub renewal: Option<Duration>,
    /// Warn when an own or peer certificate expires within this many days.
    pub expiry_warning_days: u32,
}

/// Why a private key file is refused: it cannot be read, or it is world-accessible (any of
/// the mode bits `0o007`; group access, as in `640 root:ssl-cert`, is allowed).
pub fn check_private_key_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "{}: mode {mode:03o} makes the private key world-accessible; chmod 600 (or 640) it",
            path.display()
        ));
    }
    Ok(())
}
