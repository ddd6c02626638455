//! OpenDocument spreadsheets (.ods) are read like .xlsx workbooks.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;

use serde_json::json;
use workbook::{read_workbook_bytes, Format};

enum Cell {
    S(&'static str),
    N(f64),
    B(bool),
    E,
}
use Cell::*;

fn cell_xml(c: &Cell) -> String {
    match c {
        S(s) => format!(
            r#"<table:table-cell office:value-type="string"><text:p>{s}</text:p></table:table-cell>"#
        ),
        N(n) => format!(
            r#"<table:table-cell office:value-type="float" office:value="{n}"><text:p>{n}</text:p></table:table-cell>"#
        ),
        B(b) => format!(
            r#"<table:table-cell office:value-type="boolean" office:boolean-value="{b}"><text:p>{b}</text:p></table:table-cell>"#
        ),
        E => "<table:table-cell/>".into(),
    }
}

/// A minimal .ods: mimetype (stored, first), the manifest and content.xml.
fn ods(sheets: &[(&str, Vec<Vec<Cell>>)]) -> Vec<u8> {
    let mut content = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>"#,
    );
    for (name, rows) in sheets {
        content.push_str(&format!(r#"<table:table table:name="{name}">"#));
        for row in rows {
            content.push_str("<table:table-row>");
            for c in row {
                content.push_str(&cell_xml(c));
            }
            content.push_str("</table:table-row>");
        }
        content.push_str("</table:table>");
    }
    content.push_str("</office:spreadsheet></office:body></office:document-content>");
    raw_ods(&content)
}

/// An .ods holding `content` as its content.xml.
fn raw_ods(content: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", stored).unwrap();
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
    )
    .unwrap();
    zip.start_file("content.xml", stored).unwrap();
    zip.write_all(content.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

#[test]
fn an_ods_workbook_is_read_with_cell_references() {
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
            N(1.0),
            N(2404.0),
        ],
        vec![
            S("RTU 2"),
            S("rtu2"),
            S("iec104-master"),
            S("127.0.0.2"),
            N(2.0),
            S("abc"),
        ],
    ];
    let signals = vec![
        vec![
            S("device_alias"),
            S("signal_alias"),
            S("info_address"),
            S("type_id"),
            S("enable"),
        ],
        vec![E, E, E, E, E],
        vec![S("rtu1"), S("cb1"), N(100.0), S("M_SP_NA_1"), B(true)],
    ];
    let bytes = ods(&[("Devices", devices), ("Signals", signals)]);
    assert_eq!(Format::detect(&bytes, "x.ods").unwrap(), Format::Ods);
    let imported = read_workbook_bytes(bytes, "site.ods").unwrap();
    assert_eq!(imported.raw.devices[0]["port"], json!(2404));
    assert_eq!(imported.raw.signals[0]["enable"], json!(true));
    assert_eq!(
        imported.map.signals.rows,
        vec![3],
        "the empty row 2 is skipped"
    );
    let errors: Vec<String> = imported
        .check()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        vec!["Devices!F3 (port): expected an integer, got \"abc\""]
    );
}

#[test]
fn mangled_ods_never_panics() {
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
            N(1.0),
            N(2404.0),
        ],
    ];
    let signals = vec![
        vec![
            S("device_alias"),
            S("signal_alias"),
            S("info_address"),
            S("type_id"),
            S("enable"),
        ],
        vec![S("rtu1"), S("cb1"), N(100.0), S("M_SP_NA_1"), B(true)],
    ];
    let good = ods(&[("Devices", devices), ("Signals", signals)]);
    let at = good.windows(7).position(|w| w == b"<office").unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let odd: [&[u8]; 9] = [
        b"1e999",
        b"inf",
        b"+inf",
        b"nan",
        b"-",
        b"99999999999999999999",
        b"\"",
        b"<",
        b"table:number-columns-repeated=\"999999999\" ",
    ];
    for round in 0..300 {
        // Mutate content.xml in place (stored, so the zip stays readable but its CRC does
        // not: rebuild from the mutated text instead).
        let mut xml = good[at..].to_vec();
        let end = xml
            .windows(25)
            .position(|w| w == b"</office:document-content")
            .unwrap()
            + 25;
        xml.truncate(end + 1);
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(0..xml.len());
            let piece = odd[rng.usize(0..odd.len())];
            if rng.bool() {
                xml.splice(i..i, piece.iter().copied());
            } else {
                xml.truncate(i.max(1));
            }
        }
        let text = String::from_utf8_lossy(&xml).into_owned();
        let bytes = raw_ods(&text);
        let r = std::panic::catch_unwind(|| {
            if let Ok(i) = read_workbook_bytes(bytes, "m.ods") {
                let _ = i.check();
            }
        });
        assert!(r.is_ok(), "round {round} panicked");
    }
}
