//! Building workbooks cell by cell for tests (rust_xlsxwriter directly, not the exporter).

#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

/// A cell of a test sheet.
#[derive(Debug, Clone)]
pub enum C {
    /// Text.
    S(&'static str),
    /// A number.
    N(f64),
    /// A boolean.
    B(bool),
    /// An empty cell.
    E,
    /// A formula whose cached result is a spreadsheet error (`#DIV/0!`).
    Err,
    /// A date cell.
    Date,
}

pub use C::*;

/// The .xlsx bytes of sheets given as rows of cells (row 1 first).
pub fn xlsx(sheets: &[(&str, Vec<Vec<C>>)]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (name, rows) in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(*name).unwrap();
        for (i, row) in rows.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                let (r, c) = (i as u32, j as u16);
                match cell {
                    S(s) => {
                        ws.write_string(r, c, *s).unwrap();
                    }
                    N(n) => {
                        ws.write_number(r, c, *n).unwrap();
                    }
                    B(b) => {
                        ws.write_boolean(r, c, *b).unwrap();
                    }
                    E => {}
                    Err => {
                        ws.write_formula(r, c, Formula::new("=1/0").set_result("#DIV/0!"))
                            .unwrap();
                    }
                    Date => {
                        let d = ExcelDateTime::from_ymd(2024, 1, 2).unwrap();
                        ws.write_datetime_with_format(r, c, &d, &date).unwrap();
                    }
                }
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

/// The path of a file of the repository.
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn devices_header() -> Vec<C> {
    [
        "name",
        "device_alias",
        "enable",
        "protocol",
        "ip",
        "port",
        "mqtt_qos",
        "auth",
        "ca_certificate",
        "serial_port",
        "modbus_id",
    ]
    .into_iter()
    .map(S)
    .collect()
}

/// A workbook with ten different mistakes (and a skipped empty row, so row numbers are
/// checked to be the spreadsheet's).
pub fn ten_mistakes() -> Vec<u8> {
    let devices = vec![
        devices_header(),
        // Devices!G2: qos 3.
        vec![
            S("Cloud"),
            S("cloud"),
            N(1.0),
            S("mqtt"),
            S("127.0.0.1"),
            N(1883.0),
            N(3.0),
            S("none"),
        ],
        // Devices!I3: TLS without a CA certificate.
        vec![
            S("Cloud TLS"),
            S("cloud2"),
            N(1.0),
            S("mqtt"),
            S("127.0.0.1"),
            N(8883.0),
            N(1.0),
            S("tls"),
            E,
        ],
        // Devices!F4: port "abc"; and no asdu_address column at all (required by rows 4, 5).
        vec![
            S("RTU 1"),
            S("rtu1"),
            N(1.0),
            S("iec104-master"),
            S("127.0.0.1"),
            S("abc"),
        ],
        // Devices!B5: duplicate alias.
        vec![
            S("RTU 1 again"),
            S("rtu1"),
            B(true),
            S("iec104-master"),
            S("127.0.0.2"),
            N(2404.0),
        ],
        // Devices!D6: unknown protocol.
        vec![
            S("Meter"),
            S("meter1"),
            N(1.0),
            S("modbus-ascii"),
            E,
            E,
            E,
            E,
            E,
            S("/dev/ttyS1"),
            N(1.0),
        ],
        // Valid.
        vec![
            S("Meter 2"),
            S("meter2"),
            S("yes"),
            S("modbus-rtu"),
            E,
            E,
            E,
            E,
            E,
            S("/dev/ttyS2"),
            S("2"),
        ],
    ];
    let signals = vec![
        [
            "signal_name",
            "device_alias",
            "signal_alias",
            "info_address",
            "type_id",
            "source_device_alias",
            "source_signal_alias",
            "function",
            "address",
        ]
        .into_iter()
        .map(S)
        .collect(),
        vec![
            S("Breaker 1"),
            S("rtu1"),
            S("cb1"),
            N(100.0),
            S("M_SP_NA_1"),
        ],
        // Signals!C3: empty alias.
        vec![S("Breaker 2"), S("rtu1"), S(""), N(101.0), S("M_SP_NA_1")],
        // Signals!E4: no such type_id.
        vec![S("Bad type"), S("rtu1"), S("x1"), N(102.0), S("M_XX_NA_1")],
        // Signals!D5: IOA out of range (3 octets).
        vec![
            S("Too far"),
            S("rtu1"),
            S("x2"),
            N(16_777_216.0),
            S("M_ME_NC_1"),
        ],
        // Signals!F6: dangling source.
        vec![S("Up"), S("cloud"), S("cb1up"), E, E, S("rtu9"), S("cb1")],
        // Row 7 is empty: skipped.
        vec![E, E, E],
        // Valid (row 8).
        vec![S("Power"), S("meter2"), S("p"), E, E, E, E, N(3.0), N(0.0)],
    ];
    xlsx(&[("Devices", devices), ("Signals", signals)])
}

/// The start of each error the ten-mistakes workbook gives (and no other).
pub const TEN_MISTAKES_ERRORS: &[&str] = &[
    "Devices!1:1 (asdu_address): required column is missing from the header row (needed by rows 4, 5)",
    "Devices!G2 (mqtt_qos): 3 is out of range 0..=2",
    "Devices!I3 (ca_certificate): required when auth is tls",
    "Devices!F4 (port): expected an integer, got \"abc\"",
    "Devices!B5 (device_alias): duplicate device_alias \"rtu1\" (also Devices row 4)",
    "Devices!D6 (protocol): unknown protocol \"modbus-ascii\"",
    "Signals!C3 (signal_alias): required, but empty",
    "Signals!E4 (type_id): \"M_XX_NA_1\" is not a known type identification",
    "Signals!D5 (info_address): information object address does not fit the configured size (ioa_size: at most 16777215)",
    "Signals!F6 (source_device_alias): no device \"rtu9\" in Devices",
];

/// Writes a PEM file of one `label` block (`CERTIFICATE`, `PRIVATE KEY`, `X509 CRL`) with
/// `mode` into `dir`; its absolute path. Validation checks the block kinds, not the DER.
pub fn pem_file(dir: &std::path::Path, name: &str, label: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("-----BEGIN {label}-----\nMIIBAA==\n-----END {label}-----\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}
