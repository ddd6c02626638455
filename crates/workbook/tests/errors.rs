//! Mistakes in a workbook are reported at their cells; damaged files give one error.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use workbook::{read_workbook, read_workbook_bytes, ReadError};

#[test]
fn ten_mistakes_each_at_its_cell() {
    let imported = read_workbook_bytes(ten_mistakes(), "bad.xlsx").unwrap();
    assert_eq!(
        imported.map.signals.rows,
        vec![2, 3, 4, 5, 6, 8],
        "the empty row 7 is skipped"
    );
    let report = imported.check();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let text = errors.join("\n");
    let expected = TEN_MISTAKES_ERRORS;
    for e in expected {
        assert!(
            errors.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in\n{text}"
        );
    }
    assert_eq!(
        errors.len(),
        expected.len(),
        "exactly these errors:\n{text}"
    );
    assert!(!report.is_valid());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn a_missing_device_alias_column_is_one_error() {
    let devices = vec![
        vec![S("name"), S("protocol"), S("ip"), S("asdu_address")],
        vec![S("RTU 1"), S("iec104-master"), S("127.0.0.1"), N(1.0)],
        vec![S("RTU 2"), S("iec104-master"), S("127.0.0.2"), N(2.0)],
    ];
    let signals = vec![
        vec![
            S("device_alias"),
            S("signal_alias"),
            S("info_address"),
            S("type_id"),
        ],
        vec![S("rtu1"), S("a"), N(1.0), S("M_SP_NA_1")],
        vec![S("rtu2"), S("b"), N(2.0), S("M_SP_NA_1")],
    ];
    let report = read_workbook_bytes(
        xlsx(&[("Devices", devices), ("Signals", signals)]),
        "x.xlsx",
    )
    .unwrap()
    .check();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec!["Devices!1:1 (device_alias): required column is missing from the header row (needed by rows 2, 3)"]
    );
}

#[test]
fn cells_of_every_type_are_read_and_unknown_columns_warned_once() {
    let devices = vec![
        vec![
            S("Name"),
            S("Device_Alias"),
            S("protocol"),
            S("ip"),
            S("port"),
            S("asdu_address"),
            S("comment"),
            E,
        ],
        vec![
            S("RTU"),
            S("rtu1"),
            S("iec104-master"),
            S("127.0.0.1"),
            S("2404"),
            N(7.0),
            S("old"),
            S("stray"),
        ],
    ];
    let signals = vec![
        vec![
            S("device_alias"),
            S("signal_alias"),
            S("info_address"),
            S("type_id"),
            S("multiplier"),
            S("enable"),
            S("log"),
        ],
        vec![
            S("rtu1"),
            S("a"),
            S("100"),
            N(13.0),
            N(0.5),
            B(true),
            S("no"),
        ],
        vec![
            S("rtu1"),
            S("b"),
            N(101.0),
            S("M_SP_NA_1"),
            E,
            S("TRUE"),
            N(0.0),
        ],
    ];
    let imported = read_workbook_bytes(
        xlsx(&[("Devices", devices), ("Signals", signals)]),
        "x.xlsx",
    )
    .unwrap();
    let d = &imported.raw.devices[0];
    assert_eq!(
        d["name"],
        serde_json::json!("RTU"),
        "headers are matched case-insensitively"
    );
    assert_eq!(d["port"], serde_json::json!("2404"));
    assert_eq!(
        d["asdu_address"],
        serde_json::json!(7),
        "7.0 is the integer 7"
    );
    let s = &imported.raw.signals[0];
    assert_eq!(s["multiplier"], serde_json::json!(0.5));
    assert_eq!(s["enable"], serde_json::json!(true));
    let report = imported.check();
    assert!(report.is_valid(), "{:?}", report.errors);
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "Devices!G1 (comment): unknown column, ignored",
            "Devices!H2: a value in a column with no header (column H); the column is ignored",
        ]
    );
    let c = &report.validated.config;
    assert_eq!(c.devices.len(), 1);
    assert_eq!(c.signals.len(), 2);
}

#[test]
fn error_and_date_cells_are_errors_at_their_cell() {
    let devices = vec![
        vec![
            S("name"),
            S("device_alias"),
            S("protocol"),
            S("ip"),
            S("asdu_address"),
            S("port"),
        ],
        vec![
            S("RTU"),
            S("rtu1"),
            S("iec104-master"),
            S("127.0.0.1"),
            Err,
            Date,
        ],
    ];
    let signals = vec![vec![S("device_alias"), S("signal_alias")]];
    let report = read_workbook_bytes(
        xlsx(&[("Devices", devices), ("Signals", signals)]),
        "x.xlsx",
    )
    .unwrap()
    .check();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "Devices!E2 (asdu_address): the cell holds the spreadsheet error #DIV/0!",
            "Devices!F2 (port): a date or time cell; expected text or a number (format the cell as General or Text)",
        ]
    );
}

#[test]
fn duplicate_headers_and_settings() {
    let devices = vec![vec![S("name"), S("device_alias"), S("protocol"), S("name")]];
    let signals = vec![vec![S("device_alias"), S("signal_alias")]];
    let settings = vec![
        vec![S("key"), S("value"), S("description")],
        vec![S("redis_url"), S("redis://10.0.0.1:6379"), S("the tag bus")],
        vec![S("stream_max_len"), N(500.0)],
        vec![S("colour"), S("blue")],
        vec![S("REDIS_URL"), S("redis://x")],
    ];
    let imported = read_workbook_bytes(
        xlsx(&[
            ("Devices", devices),
            ("Signals", signals),
            ("Settings", settings),
        ]),
        "x.xlsx",
    )
    .unwrap();
    assert_eq!(
        imported.raw.redis_url.as_deref(),
        Some("redis://10.0.0.1:6379")
    );
    let report = imported.check();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "Devices!D1 (name): duplicate column (also A1); this one is ignored",
            "Settings!A5 (redis_url): duplicate setting (also row 2); this one is ignored",
            "Settings!B3 (stream_max_len): expected an integer in 1000..=100000000",
        ]
    );
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec!["Settings!B4 (colour): unknown setting, ignored"]
    );
}

fn read_err(bytes: Vec<u8>) -> ReadError {
    read_workbook_bytes(bytes, "book.xlsx").unwrap_err()
}

#[test]
fn damaged_files_give_one_clear_error() {
    let good = ten_mistakes();

    let truncated = read_err(good[..good.len() / 2].to_vec());
    assert!(
        matches!(truncated, ReadError::NotAWorkbook { .. }),
        "{truncated}"
    );
    let text = read_err(b"name;device_alias\nrtu;rtu1\n".to_vec());
    assert_eq!(
        text.to_string(),
        "book.xlsx: not an .xlsx or .ods workbook: the file is not a zip archive (a CSV or text file with a workbook's name?)"
    );
    assert!(read_err(Vec::new())
        .to_string()
        .ends_with("the file is empty"));
    let ole = read_err(vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0]);
    assert!(matches!(ole, ReadError::Unsupported { .. }), "{ole}");

    let no_signals = read_err(xlsx(&[
        ("Devices", vec![vec![S("name")]]),
        ("Sheet2", vec![]),
    ]));
    assert_eq!(
        no_signals.to_string(),
        "book.xlsx: no sheet named Signals (the workbook's sheets: Devices, Sheet2)"
    );

    // Every prefix of a workbook is an error, never a panic.
    for cut in (0..good.len()).step_by(97) {
        assert!(read_workbook_bytes(good[..cut].to_vec(), "cut.xlsx").is_err());
    }
    for e in [truncated, text, ole, no_signals] {
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn files_are_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.xlsx");
    std::fs::write(&path, ten_mistakes()).unwrap();
    assert_eq!(read_workbook(&path).unwrap().raw.devices.len(), 6);
    let missing = read_workbook(&dir.path().join("none.xlsx")).unwrap_err();
    assert!(matches!(missing, ReadError::Io { .. }), "{missing}");
}

#[test]
fn a_zip_that_unpacks_too_large_is_refused_before_unpacking() {
    let mut bytes = ten_mistakes();
    // Patch the first central directory record's uncompressed size (offset 24) to 4 GB - 1.
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_err(bytes);
    assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("unpacks to "), "{e}");
}
