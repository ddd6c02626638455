//! Security events: the classification of a failed handshake, the expiry checks and the
//! [`SecurityLog`] of a device that logs, counts and reports them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use contract::stats::{SecurityEvent, SecurityEventKind, TlsStats};
use tokio_rustls::rustls::{CertificateError, Error as TlsError};

use crate::der::{summarize, CertSummary};
use crate::verify::NotOnAllowList;

/// The kind of a failed handshake. The certificate kinds concern the peer's certificate as
/// this side verified it; an alert from the peer (it refused ours) is a handshake failure.
pub fn classify(error: &TlsError) -> SecurityEventKind {
    use SecurityEventKind as K;
    match error {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                K::CertificateExpired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                K::CertificateNotYetValid
            }
            CertificateError::Revoked => K::CertificateRevoked,
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                K::CertificateUnknown
            }
            CertificateError::Other(o) if o.0.downcast_ref::<NotOnAllowList>().is_some() => {
                K::CertificateUnknown
            }
            _ => K::HandshakeFailed,
        },
        _ => K::HandshakeFailed,
    }
}

/// The kind and the words of a handshake's I/O error (tokio-rustls wraps the rustls error).
pub(crate) fn classify_io(error: &std::io::Error) -> (SecurityEventKind, String) {
    match error.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) {
        Some(TlsError::AlertReceived(alert)) => (
            SecurityEventKind::HandshakeFailed,
            format!("the peer refused the handshake: alert {alert:?}"),
        ),
        Some(TlsError::InvalidMessage(m)) => (
            SecurityEventKind::HandshakeFailed,
            format!("not a TLS peer (plaintext?): {m:?}"),
        ),
        Some(TlsError::InvalidCertificate(CertificateError::Other(o)))
            if o.0.downcast_ref::<NotOnAllowList>().is_some() =>
        {
            (
                SecurityEventKind::CertificateUnknown,
                NotOnAllowList.to_string(),
            )
        }
        Some(e) => (classify(e), e.to_string()),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => (
            SecurityEventKind::HandshakeFailed,
            "the peer closed the connection during the handshake".to_owned(),
        ),
        None => (SecurityEventKind::HandshakeFailed, error.to_string()),
    }
}

const DAY_S: i64 = 86_400;

/// Whole days left when `not_after` is within `days` of `now` (both Unix seconds), else
/// `None` (also when already expired: that is an expiry, not a warning).
pub fn expires_within(not_after: i64, now: i64, days: u32) -> Option<i64> {
    let left = not_after.checked_sub(now)?;
    let window = i64::from(days).checked_mul(DAY_S)?;
    (left >= 0 && left < window).then_some(left / DAY_S)
}

/// How many certificates' last warning is remembered (oldest forgotten first).
const MAX_WARNED: usize = 64;

/// At most one expiry warning per certificate and day.
#[derive(Debug, Default)]
pub(crate) struct WarnOncePerDay {
    last: HashMap<[u8; 32], i64>,
}

impl WarnOncePerDay {
    /// Whether a warning about certificate `key` is due at `now` (and notes it).
    pub(crate) fn due(&mut self, key: [u8; 32], now: i64) -> bool {
        if let Some(&t) = self.last.get(&key) {
            if now.saturating_sub(t) < DAY_S {
                return false;
            }
        }
        if self.last.len() >= MAX_WARNED && !self.last.contains_key(&key) {
            if let Some(oldest) = self.last.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(key, now);
        true
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_s() -> i64 {
    i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX)
}

/// A Unix time as `YYYY-MM-DD` (for the log).
// after the first two lines every value is bounded: doe in 0..146097, yoe in 0..400,
// doy in 0..366, mp in 0..12; only the year can be large, and it is added saturating
#[allow(clippy::arithmetic_side_effects)]
pub(crate) fn date(unix_s: i64) -> String {
    // inverse of der::days_from_civil (H. Hinnant)
    let z = unix_s.div_euclid(DAY_S).saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.saturating_sub(era.saturating_mul(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(m <= 2));
    format!("{y:04}-{m:02}-{d:02}")
}

#[derive(Debug, Default)]
struct State {
    stats: TlsStats,
    warned: WarnOncePerDay,
}

/// The security log of one device: every event is logged (device, peer, subject, kind) and
/// counted; [`SecurityLog::stats`] is what the applet writes to the device's TLS hash.
/// Cheap to clone (all clones share the counters).
#[derive(Debug, Clone)]
pub struct SecurityLog {
    device: Arc<str>,
    expiry_warning_days: u32,
    state: Arc<Mutex<State>>,
}

impl SecurityLog {
    /// The log of `device`, warning of certificates expiring within `expiry_warning_days`.
    pub fn new(device: &str, expiry_warning_days: u32) -> Self {
        Self {
            device: device.into(),
            expiry_warning_days,
            state: Arc::default(),
        }
    }

    /// The device it logs for.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The counters and the last event, stamped now.
    pub fn stats(&self) -> TlsStats {
        let mut s = self.with_state(|st| st.stats.clone());
        s.updated_ms = now_ms();
        s
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // a panic while holding the lock cannot leave the counters inconsistent
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Logs and counts one event.
    pub fn record(
        &self,
        kind: SecurityEventKind,
        peer: Option<SocketAddr>,
        subject: &str,
        detail: String,
    ) {
        let peer_text = peer.map(|p| p.to_string()).unwrap_or_default();
        let what = match kind {
            SecurityEventKind::HandshakeFailed => "TLS handshake failed",
            SecurityEventKind::CertificateExpired => "TLS refused: certificate expired",
            SecurityEventKind::CertificateNotYetValid => "TLS refused: certificate not yet valid",
            SecurityEventKind::CertificateRevoked => "TLS refused: certificate revoked",
            SecurityEventKind::CertificateUnknown => "TLS refused: certificate unknown",
            SecurityEventKind::CertificateExpiresSoon => "TLS certificate expires soon",
        };
        if kind == SecurityEventKind::CertificateExpiresSoon {
            tracing::warn!(device = %self.device, peer = %peer_text, subject, %kind, %detail, "{what}");
        } else {
            tracing::error!(device = %self.device, peer = %peer_text, subject, %kind, %detail, "{what}");
        }
        let event = SecurityEvent {
            kind,
            peer: peer_text,
            subject: subject.to_owned(),
            detail,
            at_ms: now_ms(),
        };
        self.with_state(|st| st.stats.record(event));
    }

    /// A failed handshake with `peer`; `presented` is the end-entity certificate it showed,
    /// if it got that far.
    pub(crate) fn handshake_failed(
        &self,
        peer: SocketAddr,
        error: &std::io::Error,
        presented: Option<&[u8]>,
    ) {
        let (kind, detail) = classify_io(error);
        let subject = presented
            .and_then(summarize)
            .map(|s| s.subject)
            .unwrap_or_default();
        self.record(kind, Some(peer), &subject, detail);
    }

    /// The first read after a client's handshake failed: a TLS alert there is the server
    /// refusing the handshake (our certificate, in TLS 1.3); other errors are no event.
    pub(crate) fn refused_after_handshake(&self, peer: SocketAddr, error: &std::io::Error) {
        if let Some(TlsError::AlertReceived(_)) =
            error.get_ref().and_then(|e| e.downcast_ref::<TlsError>())
        {
            self.with_state(|st| st.stats.handshakes = st.stats.handshakes.saturating_sub(1));
            self.handshake_failed(peer, error, None);
        }
    }

    /// A handshake with `peer` succeeded; its certificate is checked for expiry.
    pub(crate) fn handshake_ok(&self, peer: SocketAddr, end_entity: Option<&[u8]>) {
        self.with_state(|st| st.stats.handshakes = st.stats.handshakes.saturating_add(1));
        tracing::debug!(device = %self.device, %peer, "TLS handshake done");
        if let Some(der) = end_entity {
            if let Some(s) = summarize(der) {
                self.check_expiry(Some(peer), crate::fingerprint(der), &s, "peer");
            }
        }
    }

    /// Checks the own certificate (at most one warning a day).
    pub(crate) fn check_own(&self, fingerprint: [u8; 32], own: &CertSummary) {
        let now = now_s();
        if own.not_after < now {
            if self.with_state(|st| st.warned.due(fingerprint, now)) {
                let detail = format!("own certificate expired on {}", date(own.not_after));
                self.record(
                    SecurityEventKind::CertificateExpired,
                    None,
                    &own.subject,
                    detail,
                );
            }
            return;
        }
        self.check_expiry(None, fingerprint, own, "own");
    }

    fn check_expiry(
        &self,
        peer: Option<SocketAddr>,
        fingerprint: [u8; 32],
        cert: &CertSummary,
        whose: &str,
    ) {
        let now = now_s();
        let Some(days) = expires_within(cert.not_after, now, self.expiry_warning_days) else {
            return;
        };
        if self.with_state(|st| st.warned.due(fingerprint, now)) {
            let detail = format!(
                "{whose} certificate expires on {} (in {days} days)",
                date(cert.not_after)
            );
            self.record(
                SecurityEventKind::CertificateExpiresSoon,
                peer,
                &cert.subject,
                detail,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio_rustls::rustls::OtherError;

    #[test]
    fn classification() {
        use SecurityEventKind as K;
        let cert = |c| TlsError::InvalidCertificate(c);
        assert_eq!(
            classify(&cert(CertificateError::Expired)),
            K::CertificateExpired
        );
        assert_eq!(
            classify(&cert(CertificateError::NotValidYet)),
            K::CertificateNotYetValid
        );
        assert_eq!(
            classify(&cert(CertificateError::Revoked)),
            K::CertificateRevoked
        );
        assert_eq!(
            classify(&cert(CertificateError::UnknownIssuer)),
            K::CertificateUnknown
        );
        assert_eq!(
            classify(&cert(CertificateError::Other(OtherError(Arc::new(
                NotOnAllowList
            ))))),
            K::CertificateUnknown
        );
        assert_eq!(
            classify(&cert(CertificateError::UnknownRevocationStatus)),
            K::HandshakeFailed
        );
        assert_eq!(
            classify(&TlsError::NoCertificatesPresented),
            K::HandshakeFailed
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            cert(CertificateError::Revoked),
        );
        assert_eq!(classify_io(&io).0, K::CertificateRevoked);
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(classify_io(&eof).0, K::HandshakeFailed);
    }

    #[test]
    fn expiry_window() {
        let now = 1_000_000_000;
        assert_eq!(expires_within(now + 10 * DAY_S, now, 30), Some(10));
        assert_eq!(expires_within(now + 30 * DAY_S, now, 30), None);
        assert_eq!(expires_within(now + 30 * DAY_S - 1, now, 30), Some(29));
        assert_eq!(expires_within(now - 1, now, 30), None);
        assert_eq!(expires_within(now + 5, now, 0), None);
        assert_eq!(expires_within(i64::MIN, i64::MAX, u32::MAX), None);
    }

    #[test]
    fn one_warning_a_day_per_certificate() {
        let mut w = WarnOncePerDay::default();
        assert!(w.due([1; 32], 0));
        assert!(!w.due([1; 32], DAY_S - 1));
        assert!(w.due([2; 32], 5));
        assert!(w.due([1; 32], DAY_S));
        for i in 0..200u8 {
            w.due([i; 32], 10 * DAY_S);
        }
        assert!(w.last.len() <= MAX_WARNED);
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(2_524_607_999), "2049-12-31");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn counted_with_the_last_event() {
        let log = SecurityLog::new("rtu1", 30);
        log.record(
            SecurityEventKind::CertificateRevoked,
            None,
            "CN=x",
            "d".into(),
        );
        log.record(
            SecurityEventKind::CertificateRevoked,
            None,
            "CN=y",
            "d".into(),
        );
        log.record(SecurityEventKind::HandshakeFailed, None, "", "d".into());
        let s = log.stats();
        assert_eq!(
            s.events.get(&SecurityEventKind::CertificateRevoked),
            Some(&2)
        );
        assert_eq!(s.events.get(&SecurityEventKind::HandshakeFailed), Some(&1));
        assert_eq!(
            s.last.map(|e| e.kind),
            Some(SecurityEventKind::HandshakeFailed)
        );
        assert!(s.updated_ms > 0);
    }
}
