//! The IEC 104 TLS columns' mistakes in a workbook are reported at their cells.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use workbook::read_workbook_bytes;

#[test]
fn tls_mistakes_each_at_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    // The cell helpers take static text.
    let file = |name: &str, label: &str, mode: u32| -> &'static str {
        Box::leak(pem_file(dir.path(), name, label, mode).into_boxed_str())
    };
    let ca = file("ca.pem", "CERTIFICATE", 0o644);
    let open_key = file("open.key", "PRIVATE KEY", 0o644);
    let header = [
        "name",
        "device_alias",
        "protocol",
        "ip",
        "asdu_address",
        "tls",
        "ca_certificate",
        "certificate",
        "private_key",
        "peer_certificates",
        "tls_version_min",
        "tls_version_max",
    ];
    let devices = vec![
        header.iter().map(|h| S(h)).collect(),
        // B..L: C protocol, F tls, G ca_certificate, H certificate, I private_key,
        // J peer_certificates, K tls_version_min, L tls_version_max.
        vec![
            S("RTU"),
            S("rtu"),
            S("iec104-master"),
            S("127.0.0.1"),
            N(1.0),
            N(1.0),
            S(ca),
            S(ca),
            S(open_key),
            S("AB:CD"),
            N(1.3),
            N(1.2),
        ],
        vec![
            S("SCADA"),
            S("scada"),
            S("iec104-slave"),
            S("0.0.0.0"),
            N(2.0),
            N(0.0),
            S(ca),
            E,
            E,
            E,
            E,
            S("1.1"),
        ],
    ];
    let signals = vec![vec![S("device_alias"), S("signal_alias")]];
    let report = read_workbook_bytes(
        xlsx(&[("Devices", devices), ("Signals", signals)]),
        "tls.xlsx",
    )
    .unwrap()
    .check();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let text = errors.join("\n");
    for (cell, says) in [
        (
            "Devices!I2 (private_key)",
            "mode 644 makes the private key world-accessible",
        ),
        (
            "Devices!J2 (peer_certificates)",
            "is no SHA-256 fingerprint: 4 hex digits",
        ),
        (
            "Devices!K2 (tls_version_min)",
            "1.3 is above tls_version_max 1.2",
        ),
        ("Devices!G3 (ca_certificate)", "set while tls is 0"),
        ("Devices!L3 (tls_version_max)", "expected 1.2 or 1.3"),
        ("Devices!L3 (tls_version_max)", "set while tls is 0"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(cell) && e.contains(says)),
            "{cell}: {says:?} not in\n{text}"
        );
    }
    assert_eq!(errors.len(), 6, "exactly these errors:\n{text}");
}
