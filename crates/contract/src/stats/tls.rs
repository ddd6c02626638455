//! The TLS security events of an IEC 104 device (master or slave, IEC 62351-3).
//!
//! Each device with `tls: 1` has a hash of its own, [`TlsStatsKey`]
//! (`fieldbridge:stats:tls:<device>`), written by its applet and copied by the supervisor into
//! its status file under `tls`, for `fieldbridge status` and the LuCI page. The hash is
//! replaced as a whole on every write. Fields, all values decimal unless said:
//! - [`UPDATED_FIELD`] (ms since the Unix epoch) and [`HANDSHAKES_FIELD`];
//! - one field per [`SecurityEventKind`] seen, named [`SecurityEventKind::name`]
//!   (`certificate_revoked: 2`);
//! - when there was an event, the last one: `last_kind` (a kind's name), `last_peer`
//!   (`ip:port`, empty for an own certificate), `last_subject`, `last_detail` (free text) and
//!   `last_at_ms`.
//!
//! The same struct is what the supervisor's status file holds under `tls` (serde).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::UPDATED_FIELD;
use crate::Alias;

/// The field counting the handshakes that succeeded.
pub const HANDSHAKES_FIELD: &str = "handshakes";
const LAST_KIND: &str = "last_kind";
const LAST_PEER: &str = "last_peer";
const LAST_SUBJECT: &str = "last_subject";
const LAST_DETAIL: &str = "last_detail";
const LAST_AT_MS: &str = "last_at_ms";

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

impl SecurityEventKind {
    /// Every kind, in the order the tables show them.
    pub const ALL: [SecurityEventKind; 6] = [
        SecurityEventKind::HandshakeFailed,
        SecurityEventKind::CertificateExpired,
        SecurityEventKind::CertificateNotYetValid,
        SecurityEventKind::CertificateRevoked,
        SecurityEventKind::CertificateUnknown,
        SecurityEventKind::CertificateExpiresSoon,
    ];

    /// Its hash field, its key in the status file (serde) and its word in the logs.
    pub fn name(self) -> &'static str {
        match self {
            SecurityEventKind::HandshakeFailed => "handshake_failed",
            SecurityEventKind::CertificateExpired => "certificate_expired",
            SecurityEventKind::CertificateNotYetValid => "certificate_not_yet_valid",
            SecurityEventKind::CertificateRevoked => "certificate_revoked",
            SecurityEventKind::CertificateUnknown => "certificate_unknown",
            SecurityEventKind::CertificateExpiresSoon => "certificate_expires_soon",
        }
    }

    /// What it is, in words (the `fieldbridge status` table).
    pub fn label(self) -> &'static str {
        match self {
            SecurityEventKind::HandshakeFailed => "handshakes failed",
            SecurityEventKind::CertificateExpired => "certificates expired",
            SecurityEventKind::CertificateNotYetValid => "certificates not yet valid",
            SecurityEventKind::CertificateRevoked => "certificates revoked",
            SecurityEventKind::CertificateUnknown => "certificates unknown",
            SecurityEventKind::CertificateExpiresSoon => "certificates expiring soon",
        }
    }

    /// The kind a name stands for.
    pub fn from_name(name: &str) -> Option<SecurityEventKind> {
        SecurityEventKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
    }
}

impl std::fmt::Display for SecurityEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    pub events: BTreeMap<SecurityEventKind, u64>,
    /// The most recent event.
    pub last: Option<SecurityEvent>,
}

impl TlsStats {
    /// Counts `event` and makes it the last one.
    pub fn record(&mut self, event: SecurityEvent) {
        let count = self.events.entry(event.kind).or_default();
        *count = count.saturating_add(1);
        self.last = Some(event);
    }

    /// How many events of `kind` there were.
    pub fn count(&self, kind: SecurityEventKind) -> u64 {
        self.events.get(&kind).copied().unwrap_or(0)
    }

    /// The hash fields and their values: [`UPDATED_FIELD`], [`HANDSHAKES_FIELD`], the kinds
    /// seen, then the last event.
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            (UPDATED_FIELD.to_owned(), self.updated_ms.to_string()),
            (HANDSHAKES_FIELD.to_owned(), self.handshakes.to_string()),
        ];
        for (kind, count) in &self.events {
            fields.push((kind.name().to_owned(), count.to_string()));
        }
        if let Some(last) = &self.last {
            fields.extend([
                (LAST_KIND.to_owned(), last.kind.name().to_owned()),
                (LAST_PEER.to_owned(), last.peer.clone()),
                (LAST_SUBJECT.to_owned(), last.subject.clone()),
                (LAST_DETAIL.to_owned(), last.detail.clone()),
                (LAST_AT_MS.to_owned(), last.at_ms.to_string()),
            ]);
        }
        fields
    }

    /// Reads the hash fields back. A field that is not one of the above or whose number
    /// cannot be read is skipped (the figures are a display aid); the last event is there only
    /// when both its kind and its time can be read.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut stats = TlsStats::default();
        let (mut kind, mut at_ms) = (None, None);
        let (mut peer, mut subject, mut detail) = (String::new(), String::new(), String::new());
        for (field, value) in fields {
            match field {
                LAST_KIND => kind = SecurityEventKind::from_name(value.trim()),
                LAST_PEER => peer = value.to_owned(),
                LAST_SUBJECT => subject = value.to_owned(),
                LAST_DETAIL => detail = value.to_owned(),
                _ => {
                    let Ok(number) = value.trim().parse::<u64>() else {
                        continue;
                    };
                    if field == LAST_AT_MS {
                        at_ms = Some(number);
                    } else if field == UPDATED_FIELD {
                        stats.updated_ms = number;
                    } else if field == HANDSHAKES_FIELD {
                        stats.handshakes = number;
                    } else if let Some(kind) = SecurityEventKind::from_name(field) {
                        stats.events.insert(kind, number);
                    }
                }
            }
        }
        if let (Some(kind), Some(at_ms)) = (kind, at_ms) {
            stats.last = Some(SecurityEvent {
                kind,
                peer,
                subject,
                detail,
                at_ms,
            });
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TlsStats {
        let mut stats = TlsStats {
            updated_ms: 1_732_280_005_000,
            handshakes: 7,
            ..Default::default()
        };
        stats.record(SecurityEvent {
            kind: SecurityEventKind::CertificateUnknown,
            peer: "10.0.0.5:40001".into(),
            subject: "CN=rtu1".into(),
            detail: "not on peer_certificates".into(),
            at_ms: 1_732_280_000_000,
        });
        stats.record(SecurityEvent {
            kind: SecurityEventKind::CertificateRevoked,
            peer: "[fd00::6]:19998".into(),
            subject: "CN=rtu2, O=Utility, C=LT".into(),
            detail: "revoked by crl.pem".into(),
            at_ms: 1_732_280_004_000,
        });
        stats.record(SecurityEvent {
            kind: SecurityEventKind::CertificateRevoked,
            peer: "[fd00::6]:19998".into(),
            subject: "CN=rtu2, O=Utility, C=LT".into(),
            detail: "revoked by crl.pem".into(),
            at_ms: 1_732_280_004_500,
        });
        stats
    }

    #[test]
    fn fields_round_trip() {
        let stats = sample();
        assert_eq!(stats.count(SecurityEventKind::CertificateRevoked), 2);
        assert_eq!(stats.count(SecurityEventKind::HandshakeFailed), 0);
        let fields = stats.to_fields();
        assert_eq!(
            fields,
            [
                ("updated_ms", "1732280005000"),
                ("handshakes", "7"),
                ("certificate_revoked", "2"),
                ("certificate_unknown", "1"),
                ("last_kind", "certificate_revoked"),
                ("last_peer", "[fd00::6]:19998"),
                ("last_subject", "CN=rtu2, O=Utility, C=LT"),
                ("last_detail", "revoked by crl.pem"),
                ("last_at_ms", "1732280004500"),
            ]
            .map(|(f, v)| (f.to_owned(), v.to_owned()))
        );
        let back =
            TlsStats::from_fields(fields.iter().rev().map(|(f, v)| (f.as_str(), v.as_str())));
        assert_eq!(back, stats);
        let none = TlsStats::default();
        assert_eq!(none.to_fields().len(), 2);
        let back = TlsStats::from_fields(
            none.to_fields()
                .iter()
                .map(|(f, v)| (f.as_str(), v.as_str())),
        );
        assert_eq!(back, none);
    }

    #[test]
    fn unreadable_fields_are_skipped() {
        let stats = TlsStats::from_fields([
            ("updated_ms", "soon"),
            ("handshakes", " 3 "),
            ("handshake_failed", "-1"),
            ("certificate_expired", "2"),
            ("certificate_stolen", "1"),
            ("last_kind", "certificate_stolen"),
            ("last_at_ms", "5"),
            ("", ""),
        ]);
        let mut expected = TlsStats {
            handshakes: 3,
            ..Default::default()
        };
        expected
            .events
            .insert(SecurityEventKind::CertificateExpired, 2);
        assert_eq!(stats, expected);
        // A last event without a readable time is left out.
        let stats = TlsStats::from_fields([("last_kind", "handshake_failed"), ("last_at_ms", "x")]);
        assert_eq!(stats.last, None);
        for k in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
    }

    #[test]
    fn kind_names_are_the_status_file_keys() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["events"]["certificate_revoked"], 2);
        assert_eq!(json["last"]["kind"], "certificate_revoked");
        for k in SecurityEventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        let back: TlsStats = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn key_names_the_device() {
        let key = TlsStatsKey::new(&Alias::new("rtu.a").unwrap());
        assert_eq!(key.as_str(), "fieldbridge:stats:tls:rtu.a");
        assert_eq!(key.to_string(), key.as_str());
    }

    fn any_kind() -> impl Strategy<Value = SecurityEventKind> {
        (0..SecurityEventKind::ALL.len()).prop_map(|i| SecurityEventKind::ALL[i])
    }

    proptest! {
        #[test]
        fn any_fields_decode_without_panic(fields in proptest::collection::vec((".{0,24}", ".{0,24}"), 0..12)) {
            let _ = TlsStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str())));
        }

        #[test]
        fn any_stats_round_trip(
            updated_ms in any::<u64>(),
            handshakes in any::<u64>(),
            events in proptest::collection::btree_map(any_kind(), any::<u64>(), 0..6),
            last in proptest::option::of((any_kind(), ".{0,30}", ".{0,60}", ".{0,60}", any::<u64>())),
        ) {
            let stats = TlsStats {
                updated_ms,
                handshakes,
                events,
                last: last.map(|(kind, peer, subject, detail, at_ms)| SecurityEvent {
                    kind,
                    peer,
                    subject,
                    detail,
                    at_ms,
                }),
            };
            let fields = stats.to_fields();
            prop_assert_eq!(
                TlsStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str()))),
                stats
            );
        }
    }
}
