//! The certificate reader on real certificates and on hostile input: never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use iec62351::summarize;
use proptest::prelude::*;
use testrig::TestPki;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn reads_subject_and_validity_of_real_certificates() {
    let pki = TestPki::generate();
    let now = now_s();
    let s = summarize(&pki.server.der).unwrap();
    assert_eq!(s.subject, "CN=fieldbridge server");
    assert!((s.not_after - (now + 365 * 86_400)).abs() < 120, "{s:?}");
    assert!(s.not_before < now);
    let e = summarize(&pki.expired_client.der).unwrap();
    assert!(e.not_after < now);
    let f = summarize(&pki.not_yet_valid_client.der).unwrap();
    assert!(f.not_before > now);
}

#[test]
fn every_truncation_of_a_certificate_is_refused() {
    let pki = TestPki::generate();
    let der = &pki.client.der;
    for n in 0..der.len() {
        // the validity and subject come early: a cut after them may still read
        let _ = summarize(&der[..n]);
    }
    assert!(summarize(&der[..10]).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = summarize(&bytes);
    }

    #[test]
    fn mutated_certificates_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let der = DER.get_or_init(|| TestPki::generate().server.der.clone());
        let mut d = der.clone();
        for (at, b) in flips {
            let i = at % d.len();
            d[i] = b;
        }
        let _ = summarize(&d);
    }

    #[test]
    fn long_lengths_never_panic(prefix in proptest::collection::vec(any::<u8>(), 0..8), n in 0u8..=255) {
        let mut d = vec![0x30, 0x84, 0xff, 0xff, 0xff, n];
        d.extend(prefix);
        let _ = summarize(&d);
    }
}
