//! TLS of an IEC 104 link (IEC 62351-3), shared by the `iec104-master` and `iec104-slave`
//! device rows: `tls: 1`, `ca_certificate`, `certificate`, `private_key`,
//! `peer_certificates`, `crl_file`, `tls_version_min`, `tls_version_max`, `tls_renewal_s`
//! and `tls_expiry_warning_days` ([`COLUMNS`], read by one reader for both protocols).
//!
//! Authentication is always mutual: the slave requires a client certificate, the master
//! verifies the outstation's and presents its own. There is no plaintext fallback: a row with
//! `tls: 1` only ever speaks TLS, and a row with `tls: 0` (or empty) that fills any other TLS
//! column is an error, so nobody believes a plaintext link is secured.
//!
//! The files are loaded here, by [`load_certificates`], [`load_private_key`] and
//! [`load_crls`] (rustls-pemfile): validation and the transport read them with the same
//! rules, so a row that validates is one whose files the transport accepts. Paths are
//! absolute (the applets do not run in the directory the workbook was written in).

use std::io::BufReader;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::cell::{IntColumn, RowReader};

/// The TLS columns of an IEC 104 device row (master and slave alike).
pub const COLUMNS: &[&str] = &[
    "tls",
    "ca_certificate",
    "certificate",
    "private_key",
    "peer_certificates",
    "crl_file",
    "tls_version_min",
    "tls_version_max",
    "tls_renewal_s",
    "tls_expiry_warning_days",
];

/// `tls_renewal_s`: how often a link's session keys are renewed; 0 is never. The default, an
/// hour, renews often enough that a key is never used for long while keeping the TLS 1.2
/// planned reconnect (and its general interrogation) rare. At least [`MIN_RENEWAL_S`].
pub const TLS_RENEWAL_S: IntColumn = IntColumn {
    name: "tls_renewal_s",
    min: 0,
    max: 31 * 24 * 3600,
    default: Some(3600),
};
/// The shortest renewal interval other than 0 (a renewal is a reconnect on TLS 1.2).
pub const MIN_RENEWAL_S: i64 = 60;

/// The IEC 104 port when `tls` is set and `port` is empty (IEC 62351-3).
pub const TLS_PORT: u16 = 19998;
/// `tls_expiry_warning_days` when the cell is empty.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;
/// `tls_expiry_warning_days`: warn when a certificate expires within this many days (0: never
/// warn).
pub const TLS_EXPIRY_WARNING_DAYS: IntColumn = IntColumn {
    name: "tls_expiry_warning_days",
    min: 0,
    max: 3650,
    default: Some(DEFAULT_EXPIRY_WARNING_DAYS as i64),
};

/// A TLS protocol version a link may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (`1.2`).
    V1_2,
    /// TLS 1.3 (`1.3`).
    V1_3,
}

impl TlsVersion {
    /// Its cell text (`1.2`, `1.3`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS {}", self.as_str())
    }
}

impl FromStr for TlsVersion {
    type Err = ();

    /// `1.2` or `1.3` (a `TLS`/`TLSv` prefix allowed, any case).
    fn from_str(s: &str) -> Result<Self, ()> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_prefix("tlsv")
            .or_else(|| t.strip_prefix("tls"))
            .unwrap_or(&t)
            .trim();
        match t {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            _ => Err(()),
        }
    }
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

impl FromStr for PeerCertificate {
    type Err = String;

    /// An entry made only of hex digits and `:` (an optional `SHA256 Fingerprint=` prefix, as
    /// `openssl x509 -fingerprint -sha256` prints it) is a fingerprint and must have 64 hex
    /// digits; anything else is a file path.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bare = t
            .split_once('=')
            .filter(|(prefix, _)| prefix.trim().eq_ignore_ascii_case("sha256 fingerprint"))
            .map_or(t, |(_, rest)| rest.trim());
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return parse_fingerprint(bare).map(PeerCertificate::Sha256);
        }
        Ok(PeerCertificate::File(PathBuf::from(t)))
    }
}

/// A SHA-256 fingerprint from 64 hex digits, `:` between them allowed.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
    let bad = || {
        format!(
            "{s:?} is no SHA-256 fingerprint: {} hex digits, one has 64 (`:` between pairs allowed)",
            digits.len()
        )
    };
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A fingerprint as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:...`), for logs
/// and events.
pub fn fingerprint_hex(fingerprint: &[u8; 32]) -> String {
    fingerprint
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Why a TLS file is refused. Every message names the file; none shows its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("{path}: not an absolute path (the applets do not run in this directory)")]
    NotAbsolute { path: PathBuf },
    #[error("{path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: mode {mode:03o} makes the private key world-accessible; chmod 600 (or 640) it"
    )]
    WorldAccessible { path: PathBuf, mode: u32 },
    #[error("{path}: holds no {what} (PEM `-----BEGIN {label}-----`)")]
    Missing {
        path: PathBuf,
        what: &'static str,
        label: &'static str,
    },
}

impl TlsFileError {
    fn unreadable(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| TlsFileError::Unreadable {
            path: path.to_owned(),
            source,
        }
    }

    fn missing(path: &Path, what: &'static str, label: &'static str) -> Self {
        TlsFileError::Missing {
            path: path.to_owned(),
            what,
            label,
        }
    }
}

/// Refuses a relative path.
fn absolute(path: &Path) -> Result<(), TlsFileError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(TlsFileError::NotAbsolute {
            path: path.to_owned(),
        })
    }
}

/// The bytes of an absolute path.
fn read_file(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    absolute(path)?;
    std::fs::read(path).map_err(TlsFileError::unreadable(path))
}

/// Every certificate of a PEM file (at least one): a CA file, an own chain, a peer.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read_file(path)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsFileError::unreadable(path))?;
    if certs.is_empty() {
        return Err(TlsFileError::missing(path, "certificate", "CERTIFICATE"));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1), refused when the file is
/// world-accessible ([`check_private_key_file`]).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    absolute(path)?;
    key_file_mode(path)?;
    let bytes = read_file(path)?;
    rustls_pemfile::private_key(&mut BufReader::new(bytes.as_slice()))
        .map_err(TlsFileError::unreadable(path))?
        .ok_or_else(|| TlsFileError::missing(path, "private key", "PRIVATE KEY"))
}

/// Every CRL of a file: PEM (`X509 CRL`, at least one) or one DER CRL.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsFileError> {
    let bytes = read_file(path)?;
    let pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if !pem {
        // DER: an ASN.1 SEQUENCE; anything else is no CRL at all.
        if bytes.first() == Some(&0x30) {
            return Ok(vec![CertificateRevocationListDer::from(bytes)]);
        }
        return Err(TlsFileError::missing(path, "CRL", "X509 CRL"));
    }
    let crls = rustls_pemfile::crls(&mut BufReader::new(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsFileError::unreadable(path))?;
    if crls.is_empty() {
        return Err(TlsFileError::missing(path, "CRL", "X509 CRL"));
    }
    Ok(crls)
}

/// Refuses a key file others may access (any of the mode bits `0o007`; group access, as in
/// `640 root:ssl-cert`, is allowed).
fn key_file_mode(path: &Path) -> Result<(), TlsFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(TlsFileError::unreadable(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(TlsFileError::WorldAccessible {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Why a private key file is refused: it cannot be read, or it is world-accessible (any of
/// the mode bits `0o007`; group access, as in `640 root:ssl-cert`, is allowed).
pub fn check_private_key_file(path: &Path) -> Result<(), String> {
    key_file_mode(path).map_err(|e| e.to_string())
}

/// `port`: the column's own value, else 2404, or [`TLS_PORT`] when `tls` is set.
pub(crate) fn read_port(r: &mut RowReader<'_>, tls: bool) -> Option<NonZeroU16> {
    let port = r.opt_int("port", 1, 65_535).ok()?;
    r.computed_default("port", "2404; 19998 with `tls` 1");
    let default = if tls { TLS_PORT } else { 2404 };
    port.map_or(Some(default), |p| u16::try_from(p).ok())
        .and_then(NonZeroU16::new)
}

/// The TLS columns of a row: `Some(None)` without TLS, `None` when a cell is wrong (each
/// error recorded at its column).
pub(crate) fn read(r: &mut RowReader<'_>) -> Option<Option<Iec104Tls>> {
    let on = r.bool_or("tls", false);
    let ca = r.opt_string("ca_certificate");
    let certificate = r.opt_string("certificate");
    let private_key = r.opt_string("private_key");
    let peers = r.opt_string("peer_certificates");
    let crl = r.opt_string("crl_file");
    let version_min = r.parse_or("tls_version_min", TlsVersion::V1_2, "1.2 or 1.3");
    let version_max = r.parse_or("tls_version_max", TlsVersion::V1_3, "1.2 or 1.3");
    let renewal = r.int(&TLS_RENEWAL_S);
    let expiry = r.int(&TLS_EXPIRY_WARNING_DAYS);
    for (column, accepted, default) in [
        (
            "ca_certificate",
            "absolute path: PEM, CA certificates",
            "required with tls",
        ),
        (
            "certificate",
            "absolute path: PEM, own certificate (chain)",
            "required with tls",
        ),
        (
            "private_key",
            "absolute path: PEM, own key, not world-accessible",
            "required with tls",
        ),
        (
            "peer_certificates",
            "`;`-separated PEM files or SHA-256 fingerprints",
            "any the CA signed",
        ),
        ("crl_file", "absolute path: CRL, PEM or DER", "none"),
        ("tls_version_min", "1.2 or 1.3", "1.2"),
        ("tls_version_max", "1.2 or 1.3", "1.3"),
    ] {
        r.document(column, accepted, default);
    }
    r.document(
        "tls_renewal_s",
        &format!("0 (never) or {MIN_RENEWAL_S}..={}", TLS_RENEWAL_S.max),
        "3600",
    );

    if !on? {
        let mut ok = true;
        for column in COLUMNS.iter().skip(1) {
            if r.has_own(column) {
                r.error(
                    Some(column),
                    "set while tls is 0: the link would run in plaintext; set tls to 1, or \
                     clear the TLS columns",
                );
                ok = false;
            }
        }
        return ok.then_some(None);
    }

    let mut ok = true;
    for (column, cell) in [
        ("ca_certificate", &ca),
        ("certificate", &certificate),
        ("private_key", &private_key),
    ] {
        if cell.is_none() && !r.has_own(column) {
            r.error(Some(column), "required with tls: 1");
            ok = false;
        }
    }
    let path = |cell: Option<String>| cell.map(|c| PathBuf::from(c.trim()));
    let (ca, certificate, private_key) = (path(ca), path(certificate), path(private_key));
    let file_error = |r: &mut RowReader<'_>, column: &'static str, e: TlsFileError| {
        r.error(Some(column), e.to_string());
    };
    if let Some(Err(e)) = ca.as_deref().map(load_certificates) {
        file_error(r, "ca_certificate", e);
        ok = false;
    }
    if let Some(Err(e)) = certificate.as_deref().map(load_certificates) {
        file_error(r, "certificate", e);
        ok = false;
    }
    if let Some(Err(e)) = private_key.as_deref().map(load_private_key) {
        file_error(r, "private_key", e);
        ok = false;
    }
    let mut peer_certificates = Vec::new();
    for entry in peers.iter().flat_map(|p| p.split(';')) {
        if entry.trim().is_empty() {
            continue;
        }
        match entry.parse::<PeerCertificate>() {
            Ok(PeerCertificate::File(path)) => match load_certificates(&path) {
                Ok(_) => peer_certificates.push(PeerCertificate::File(path)),
                Err(e) => {
                    file_error(r, "peer_certificates", e);
                    ok = false;
                }
            },
            Ok(fingerprint) => peer_certificates.push(fingerprint),
            Err(e) => {
                r.error(Some("peer_certificates"), e);
                ok = false;
            }
        }
    }
    let crl_file = path(crl);
    if let Some(Err(e)) = crl_file.as_deref().map(load_crls) {
        file_error(r, "crl_file", e);
        ok = false;
    }
    let (version_min, version_max) = (version_min?, version_max?);
    if version_min > version_max {
        r.error(
            Some("tls_version_min"),
            format!(
                "{} is above tls_version_max {}",
                version_min.as_str(),
                version_max.as_str()
            ),
        );
        ok = false;
    }
    let renewal = renewal?;
    if (1..MIN_RENEWAL_S).contains(&renewal) {
        r.error(
            Some("tls_renewal_s"),
            format!("{renewal} is below {MIN_RENEWAL_S} s (0: never renew)"),
        );
        ok = false;
    }
    let expiry_warning_days = u32::try_from(expiry?).ok()?;
    if !ok {
        return None;
    }
    Some(Some(Iec104Tls {
        ca_certificate: ca?,
        certificate: certificate?,
        private_key: private_key?,
        peer_certificates,
        crl_file,
        version_min,
        version_max,
        renewal: u64::try_from(renewal)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        expiry_warning_days,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::os::unix::fs::PermissionsExt;

    use serde_json::{json, Value};

    use super::*;
    use crate::{validate, DeviceKind, Protocol, RawConfig, Validated};

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIBAA==\n-----END PRIVATE KEY-----\n";
    const CRL: &str = "-----BEGIN X509 CRL-----\nMIIBAA==\n-----END X509 CRL-----\n";

    /// A directory with a CA, an own certificate, a key (mode 600), a peer and CRLs.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Self {
            let pki = Pki {
                dir: tempfile::tempdir().unwrap(),
            };
            pki.write("ca.pem", CERT, 0o644);
            pki.write("own.pem", &format!("{CERT}{CERT}"), 0o644);
            pki.write("own.key", KEY, 0o600);
            pki.write("peer.pem", CERT, 0o644);
            pki.write("crl.pem", CRL, 0o644);
            std::fs::write(pki.path("crl.der"), [0x30, 0x82, 0x01, 0x00]).unwrap();
            pki
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn write(&self, name: &str, text: &str, mode: u32) -> String {
            let path = self.path(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        /// `tls: 1` with the three files.
        fn cells(&self) -> Value {
            json!({
                "tls": 1,
                "ca_certificate": self.path("ca.pem"),
                "certificate": self.path("own.pem"),
                "private_key": self.path("own.key"),
            })
        }
    }

    /// A master and a slave row, each with `cells` on top.
    fn config(cells: &Value) -> RawConfig {
        let mut master = json!({"name": "R", "device_alias": "rtu", "protocol": "iec104-master",
            "ip": "127.0.0.1", "asdu_address": 1});
        let mut slave = json!({"name": "S", "device_alias": "scada", "protocol": "iec104-slave",
            "asdu_address": 1});
        for (k, v) in cells.as_object().unwrap() {
            master[k] = v.clone();
            slave[k] = v.clone();
        }
        RawConfig::parse(&json!({"devices": [master, slave], "signals": []}).to_string()).unwrap()
    }

    fn tls_of(v: &Validated) -> [(u16, Option<Iec104Tls>); 2] {
        let of = |alias: &str| match &v.config.device(&alias.parse().unwrap()).unwrap().kind {
            DeviceKind::Iec104Master(d) => (d.port.get(), d.tls.clone()),
            DeviceKind::Iec104Slave(d) => (d.port.get(), d.tls.clone()),
            other => panic!("{other:?}"),
        };
        [of("rtu"), of("scada")]
    }

    /// The errors of both rows, which must be the same at the same columns: `column: message`.
    fn errors(cells: &Value) -> Vec<String> {
        let v = validate(&config(cells));
        let mut by_row: [Vec<String>; 2] = Default::default();
        for e in &v.errors {
            let row = usize::from(e.protocol == Some(Protocol::Iec104Slave));
            let text = e.to_string();
            let message = text.split_once(": ").map_or(text.as_str(), |(_, m)| m);
            by_row[row].push(format!(
                "{}: {message}",
                e.path.column.as_deref().unwrap_or("")
            ));
        }
        assert_eq!(by_row[0], by_row[1], "master and slave differ");
        by_row[0].clone()
    }

    fn one_error(cells: &Value, column: &str, contains: &str) {
        let e = errors(cells);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with(&format!("{column}: ")), "{e:?}");
        assert!(e[0].contains(contains), "{contains:?} not in {e:?}");
    }

    fn with(pki: &Pki, extra: Value) -> Value {
        let mut cells = pki.cells();
        for (k, v) in extra.as_object().unwrap() {
            cells[k] = v.clone();
        }
        cells
    }

    #[test]
    fn columns_are_declared_on_both_protocols() {
        for p in [Protocol::Iec104Master, Protocol::Iec104Slave] {
            let declared = crate::device_columns(p);
            for c in COLUMNS {
                assert!(declared.contains(c), "{c} on {p}");
            }
        }
    }

    #[test]
    fn a_full_row_reads_on_master_and_slave() {
        let pki = Pki::new();
        let fp = "AB:".repeat(31) + "CD";
        let cells = with(
            &pki,
            json!({
                "peer_certificates": format!(" {} ; {fp};SHA256 Fingerprint={};", pki.path("peer.pem"), "0f".repeat(32)),
                "crl_file": pki.path("crl.pem"),
                "tls_version_min": 1.3,
                "tls_version_max": "TLSv1.3",
                "tls_renewal_s": 600,
                "tls_expiry_warning_days": 14,
            }),
        );
        let v = validate(&config(&cells));
        assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:#?}");
        let mut fingerprint = [0xAB; 32];
        fingerprint[31] = 0xCD;
        let expected = Iec104Tls {
            ca_certificate: pki.path("ca.pem").into(),
            certificate: pki.path("own.pem").into(),
            private_key: pki.path("own.key").into(),
            peer_certificates: vec![
                PeerCertificate::File(pki.path("peer.pem").into()),
                PeerCertificate::Sha256(fingerprint),
                PeerCertificate::Sha256([0x0f; 32]),
            ],
            crl_file: Some(pki.path("crl.pem").into()),
            version_min: TlsVersion::V1_3,
            version_max: TlsVersion::V1_3,
            renewal: Some(Duration::from_secs(600)),
            expiry_warning_days: 14,
        };
        // `tls` sets the default port.
        assert_eq!(
            tls_of(&v),
            [
                (TLS_PORT, Some(expected.clone())),
                (TLS_PORT, Some(expected))
            ]
        );
        assert_eq!(fingerprint_hex(&fingerprint), fp);
    }

    #[test]
    fn defaults_and_an_explicit_port() {
        let pki = Pki::new();
        let v = validate(&config(&with(
            &pki,
            json!({"port": 2404, "crl_file": pki.path("crl.der"), "tls_renewal_s": 0}),
        )));
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        for (port, tls) in tls_of(&v) {
            let tls = tls.unwrap();
            assert_eq!(port, 2404);
            assert_eq!(
                (tls.version_min, tls.version_max),
                (TlsVersion::V1_2, TlsVersion::V1_3)
            );
            assert_eq!(tls.renewal, None);
            assert_eq!(tls.expiry_warning_days, DEFAULT_EXPIRY_WARNING_DAYS);
            assert!(tls.peer_certificates.is_empty());
        }
        let v = validate(&config(&pki.cells()));
        for (_, tls) in tls_of(&v) {
            assert_eq!(tls.unwrap().renewal, Some(Duration::from_secs(3600)));
        }
        // Without tls: plain, port 2404.
        let v = validate(&config(&json!({"tls": 0})));
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(tls_of(&v), [(2404, None), (2404, None)]);
    }

    #[test]
    fn tls_needs_its_three_files() {
        let e = errors(&json!({"tls": 1}));
        assert_eq!(
            e,
            [
                "ca_certificate: required with tls: 1",
                "certificate: required with tls: 1",
                "private_key: required with tls: 1",
            ]
        );
        one_error(&json!({"tls": "maybe"}), "tls", "expected 0/1");
    }

    #[test]
    fn missing_unreadable_and_relative_files_are_refused() {
        let pki = Pki::new();
        one_error(
            &with(&pki, json!({"ca_certificate": pki.path("nope.pem")})),
            "ca_certificate",
            "No such file",
        );
        // A directory cannot be read as a file (even by root, unlike a chmod 000 file).
        let dir = pki.dir.path().display().to_string();
        one_error(
            &with(&pki, json!({"certificate": dir})),
            "certificate",
            "Is a directory",
        );
        one_error(
            &with(&pki, json!({"private_key": "own.key"})),
            "private_key",
            "not an absolute path",
        );
        one_error(
            &with(&pki, json!({"crl_file": pki.path("gone.crl")})),
            "crl_file",
            "No such file",
        );
        one_error(
            &with(&pki, json!({"peer_certificates": pki.path("gone.pem")})),
            "peer_certificates",
            "No such file",
        );
    }

    #[test]
    fn a_world_accessible_key_is_refused() {
        let pki = Pki::new();
        for mode in [0o644, 0o604, 0o601] {
            let key = pki.write("open.key", KEY, mode);
            one_error(
                &with(&pki, json!({"private_key": key})),
                "private_key",
                &format!("mode {mode:03o} makes the private key world-accessible; chmod 600"),
            );
        }
        // Group access (640 root:ssl-cert) is fine.
        let key = pki.write("group.key", KEY, 0o640);
        assert!(errors(&with(&pki, json!({"private_key": key}))).is_empty());
        assert!(check_private_key_file(Path::new(&key)).is_ok());
        let open = pki.write("open.key", KEY, 0o666);
        assert!(check_private_key_file(Path::new(&open))
            .unwrap_err()
            .contains("mode 666"));
    }

    #[test]
    fn files_must_hold_the_right_pem_items() {
        let pki = Pki::new();
        let key_as_ca = pki.write("key-as-ca.pem", KEY, 0o600);
        one_error(
            &with(&pki, json!({"ca_certificate": key_as_ca})),
            "ca_certificate",
            "holds no certificate (PEM `-----BEGIN CERTIFICATE-----`)",
        );
        let cert_as_key = pki.write("cert-as-key.pem", CERT, 0o600);
        one_error(
            &with(&pki, json!({"private_key": cert_as_key})),
            "private_key",
            "holds no private key",
        );
        let text = pki.write("notes.txt", "not a certificate\n", 0o644);
        one_error(
            &with(&pki, json!({"certificate": text.clone()})),
            "certificate",
            "holds no certificate",
        );
        one_error(
            &with(&pki, json!({"crl_file": text})),
            "crl_file",
            "holds no CRL",
        );
        one_error(
            &with(&pki, json!({"crl_file": pki.path("ca.pem")})),
            "crl_file",
            "holds no CRL (PEM `-----BEGIN X509 CRL-----`)",
        );
        let broken = pki.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            0o644,
        );
        one_error(
            &with(&pki, json!({"ca_certificate": broken})),
            "ca_certificate",
            "broken.pem",
        );
        // A key file's contents never appear in a message.
        let e = errors(&with(&pki, json!({"private_key": pki.path("ca.pem")})));
        assert!(e.iter().all(|e| !e.contains("MIIBAA")), "{e:?}");
    }

    #[test]
    fn a_bad_fingerprint_is_refused() {
        let pki = Pki::new();
        for (entry, digits) in [("AB:CD", 4), (&*"a".repeat(63), 63), (&*"0".repeat(66), 66)] {
            one_error(
                &with(&pki, json!({"peer_certificates": entry})),
                "peer_certificates",
                &format!("is no SHA-256 fingerprint: {digits} hex digits, one has 64"),
            );
        }
        // Not hex at all: a file (which does not exist).
        one_error(
            &with(&pki, json!({"peer_certificates": "GG:HH"})),
            "peer_certificates",
            "not an absolute path",
        );
        assert!(parse_fingerprint(&"f".repeat(64)).is_ok());
    }

    #[test]
    fn versions_are_known_and_ordered() {
        let pki = Pki::new();
        one_error(
            &with(
                &pki,
                json!({"tls_version_min": "1.3", "tls_version_max": 1.2}),
            ),
            "tls_version_min",
            "1.3 is above tls_version_max 1.2",
        );
        for bad in [json!("1.1"), json!(1.0), json!("ssl3"), json!(13)] {
            one_error(
                &with(&pki, json!({"tls_version_max": bad})),
                "tls_version_max",
                "expected 1.2 or 1.3",
            );
        }
        for (text, v) in [
            ("1.2", TlsVersion::V1_2),
            ("TLS1.3", TlsVersion::V1_3),
            (" tlsv1.2 ", TlsVersion::V1_2),
        ] {
            assert_eq!(text.parse::<TlsVersion>(), Ok(v));
        }
        assert_eq!(TlsVersion::V1_3.to_string(), "TLS 1.3");
    }

    #[test]
    fn renewal_and_expiry_ranges() {
        let pki = Pki::new();
        one_error(
            &with(&pki, json!({"tls_renewal_s": 30})),
            "tls_renewal_s",
            "30 is below 60 s (0: never renew)",
        );
        one_error(
            &with(&pki, json!({"tls_renewal_s": -1})),
            "tls_renewal_s",
            "out of range",
        );
        one_error(
            &with(&pki, json!({"tls_expiry_warning_days": 4000})),
            "tls_expiry_warning_days",
            "out of range 0..=3650",
        );
    }

    #[test]
    fn tls_columns_without_tls_are_an_error() {
        let pki = Pki::new();
        let mut cells = with(
            &pki,
            json!({"peer_certificates": "AB:CD", "tls_version_min": "1.3", "tls_renewal_s": 0}),
        );
        for off in [json!(0), json!(""), json!(null)] {
            cells["tls"] = off;
            let e = errors(&cells);
            let columns: Vec<&str> = e.iter().map(|e| e.split_once(':').unwrap().0).collect();
            assert_eq!(
                columns,
                [
                    "ca_certificate",
                    "certificate",
                    "private_key",
                    "peer_certificates",
                    "tls_version_min",
                    "tls_renewal_s"
                ],
                "{e:#?}"
            );
            assert!(
                e[0].contains("set while tls is 0: the link would run in plaintext"),
                "{e:?}"
            );
        }
    }
}
