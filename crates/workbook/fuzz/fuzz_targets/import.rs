#![no_main]
//! The workbook importer (`fieldbridge config import`) on hostile files. The first byte
//! picks a mode:
//! - `RAW` (0xFF): the rest is the whole file (zip container, format detection, calamine);
//! - otherwise `n`: the rest replaces part `n % parts` of `config/example.xlsx` (its XML:
//!   workbook, relationships, sheets, shared strings, styles, content types), re-zipped
//!   uncompressed, so the fuzzer mutates the XML calamine parses instead of deflate streams.
//!
//! Nothing may panic. A workbook that imports must check (validate) without panicking, and
//! its export must import back to the same canonical rows.

use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use workbook::{canonical, export, read_workbook_bytes};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

const RAW: u8 = 0xFF;
const EXAMPLE: &[u8] = include_bytes!("../../../../config/example.xlsx");

/// The example workbook's parts: (name, content).
fn parts() -> &'static [(String, Vec<u8>)] {
    static PARTS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    PARTS.get_or_init(|| {
        let mut zip = ZipArchive::new(Cursor::new(EXAMPLE)).expect("example.xlsx is a zip");
        (0..zip.len())
            .map(|i| {
                let mut f = zip.by_index(i).expect("example part");
                let mut content = Vec::new();
                f.read_to_end(&mut content).expect("example part reads");
                (String::from_utf8_lossy(f.name_raw()).into_owned(), content)
            })
            .collect()
    })
}

/// The example with part `index` replaced by `content`, stored uncompressed.
fn with_part(index: usize, content: &[u8]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (i, (name, original)) in parts().iter().enumerate() {
        w.start_file(name.as_str(), options).expect("zip entry");
        w.write_all(if i == index { content } else { original })
            .expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode == RAW {
        rest.to_vec()
    } else {
        with_part(usize::from(mode) % parts().len(), rest)
    };
    let Ok(imported) = read_workbook_bytes(file, "fuzz.xlsx") else {
        return;
    };
    let report = imported.check();
    for issue in report.errors.iter().chain(&report.warnings) {
        let _ = issue.to_string();
    }
    let _ = report.is_valid();

    // What `config export` writes from these rows reads back as the same canonical rows.
    if let Ok(bytes) = export(&imported.raw) {
        let again = read_workbook_bytes(bytes, "export.xlsx")
            .unwrap_or_else(|e| panic!("exported workbook does not import: {e}"));
        assert_eq!(canonical(&again.raw), canonical(&imported.raw));
    }
});
