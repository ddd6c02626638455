//! IEC 62351-3 TLS for IEC 60870-5-104 links, on both sides of the gateway.
//!
//! From a device row's [`Iec104Tls`] this crate builds the rustls (ring) configuration of the
//! master ([`client_config`], used by [`TlsConnector`]) and of the slave ([`server_config`],
//! used by [`TlsAcceptor`]); the connector and acceptor plug into the IEC 104 stack as its
//! [`iec60870::transport`]. Every handshake outcome goes to the device's [`SecurityLog`],
//! which logs and counts it and gives the [`TlsStats`] the applet writes to the status hash.
//!
//! # The profile
//! - Versions `tls_version_min..=tls_version_max` (1.2, 1.3). Cipher suites: the AEAD suites
//!   of the IEC 62351-3 profile only: TLS 1.3 AES-128-GCM-SHA256 and AES-256-GCM-SHA384;
//!   TLS 1.2 ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM-SHA256 and AES-256-GCM-SHA384
//!   (no ChaCha20, no CBC, no static RSA). Key exchange groups: those rustls' ring provider
//!   offers (X25519, P-256, P-384).
//! - Mutual authentication always: the slave requires a client certificate; the master
//!   presents its own and verifies the outstation's. There is no plaintext fallback: a
//!   handshake that fails closes the connection.
//! - The peer's certificate chain must verify against `ca_certificate` (validity period, key
//!   usage: server authentication for an outstation, client authentication for a master) and,
//!   with `crl_file`, its end-entity certificate must not be on the CRL (a CRL that is not the
//!   issuer's is refused as an unknown revocation status; intermediate CAs are not checked
//!   against it; the CRL's `nextUpdate` is not enforced: an outdated CRL keeps working rather
//!   than stopping the link). Then, when `peer_certificates` is set, the end-entity
//!   certificate's SHA-256 must be on that list.
//! - **The peer's name or IP address is not checked** against the certificate: IEC 104 peers
//!   are identified by their certificate (the CA, and the allow-list for a strict identity),
//!   not by DNS names, as lib60870 does. Use `peer_certificates` to pin a peer.
//! - Sessions are never resumed: every connection does a full handshake, so every
//!   certificate is verified again (and checked for expiry) on each connect.
//! - Files are read once, when the applet starts; a changed CRL or certificate takes effect
//!   at the next start, read by [`config::tls104`]'s loaders (the rules validation uses). The
//!   private key file must not be world-accessible; its contents are never logged.
//!
//! # Session renewal (`tls_renewal_s`)
//! - TLS 1.3: a KeyUpdate (requesting the peer's update too) on the interval, by the master
//!   while the link is active and by the slave on each of its connections. The IEC 104 link
//!   is not disturbed.
//! - TLS 1.2: rustls has no renegotiation. The master renews by a planned reconnect on the
//!   interval (see [`iec60870::master`]): STOPDT act, STOPDT con once every I frame is
//!   acknowledged, close, connect, STARTDT: nothing is lost or duplicated; the master
//!   interrogates again after it. The slave never forces a renewal on TLS 1.2 (it cannot
//!   stop the data transfer of a master); when a master renews this way the slave sees an
//!   orderly STOPDT and a new connection, and anything it had not had acknowledged would be
//!   requeued for the next connection anyway.
//! - Not covered: TLS 1.2 renegotiation and renewal of a TLS 1.2 session by the slave; a
//!   foreign master's own renewal policy is up to it (a KeyUpdate it sends is answered).
//!
//! # Security events
//! A failed handshake is classified ([`classify`]) as certificate expired, not yet valid,
//! revoked, unknown (no chain to the CA, bad signature, not on the allow-list) or another
//! handshake failure (protocol, version, cipher, a plaintext peer, the peer refusing ours),
//! and logged with the device, the peer's address and the certificate's subject. In TLS 1.3
//! a client's handshake ends before the server has verified the client's certificate: the
//! master counts a refusal of its certificate when the server's alert arrives, on the first
//! read (the [`TlsLink`] does). The own
//! certificate (at start and daily) and each peer's (after each handshake, once a day per
//! certificate) are checked to expire within `tls_expiry_warning_days`.

pub mod der;
mod events;
mod load;
mod stream;
mod verify;

pub use config::tls104::Iec104Tls;
pub use contract::stats::{SecurityEvent, SecurityEventKind, TlsStats};
pub use der::{summarize, CertSummary};
pub use events::{classify, expires_within, SecurityLog};
pub use load::{client_config, server_config, LoadError};
pub use stream::{TlsAcceptor, TlsConnector, TlsLink};

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 of a certificate's DER, as `peer_certificates` lists it.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    for (o, d) in out.iter_mut().zip(digest.as_ref()) {
        *o = *d;
    }
    out
}
