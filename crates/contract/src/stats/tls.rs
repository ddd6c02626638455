//! The TLS security events of an IEC 104 device (master or slave, IEC 62351-3).
//!
//! Each device with `tls: 1` has a hash of its own, [`TlsStatsKey`]
//! (`fieldbridge:stats:tls:<device>`), written by its applet and copied by the supervisor into
//! its status file under `tls`, for `fieldbridge status` and the LuCI page.

use serde::{Deserialize, Serialize};

use crate::Alias;

/// The prefix of a device's TLS stats hash; the device alias follows.
pub const TLS_STATS_KEY_PREFIX: &str = "fieldbridge:stats:tls:";

/// The Redis key of one device's TLS stats hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TlsStatsKey(String);

impl TlsStatsKey {
    /// The key of `device`'s hash.
    pub fn new(device: &Alias) -> Self {
        Self(format!("{TLS_STATS_KEY_PREFIX}{device}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TlsStatsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong (or is about to) with a TLS link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A handshake failed for another reason (protocol, version, cipher, plaintext peer).
    HandshakeFailed,
    /// The peer's certificate has expired.
    CertificateExpired,
    /// The peer's certificate is not valid yet.
    CertificateNotYetValid,
    /// The peer's certificate is on the CRL.
    CertificateRevoked,
    /// The peer's certificate does not chain to the CA, or is not on `peer_certificates`.
    CertificateUnknown,
    /// An own or peer certificate expires within `tls_expiry_warning_days`.
    CertificateExpiresSoon,
}

/// One security event, as the status shows the last of each device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub kind: SecurityEventKind,
    /// The peer's address (`ip:port`), empty for an own certificate.
    pub peer: String,
    /// The certificate's subject when one was seen, else empty.
    pub subject: String,
    /// Details in words (the TLS alert, the expiry date).
    pub detail: String,
    /// When it happened (ms since the Unix epoch).
    pub at_ms: u64,
}

/// The TLS state of one device: counters per event kind and the last event.
/// Counters start at 0 with each process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStats {
    /// When the applet wrote it (ms since the Unix epoch).
    pub updated_ms: u64,
    /// Handshakes that succeeded.
    pub handshakes: u64,
    /// Events by kind (a kind never seen is absent).
    pub events: std::collections::BTreeMap<SecurityEventKind, u64>,
    /// The most recent event.
    pub last: Option<SecurityEvent>,
}
