//! Mangled workbook XML (truncated, bytes replaced, slices repeated) is an error or a
//! config with errors, never a panic. A bounded, seeded run of mutations.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::io::{Read, Write};

fn parts(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

fn rezip(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in parts {
        zip.start_file(name.as_str(), stored).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn mutate(rng: &mut fastrand::Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    match rng.u8(0..4) {
        0 => data.truncate(rng.usize(0..data.len())),
        1 => {
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(0..data.len());
                data[i] = *b"<>\"&/=x0123456789 ;#-.eE".get(rng.usize(0..24)).unwrap();
            }
        }
        2 => {
            let a = rng.usize(0..data.len());
            let b = (a + rng.usize(0..64)).min(data.len());
            let slice = data[a..b].to_vec();
            let at = rng.usize(0..data.len());
            data.splice(at..at, slice);
        }
        _ => {
            // A number attribute or value made huge or odd.
            let text = String::from_utf8_lossy(data).into_owned();
            let odd = [
                "1e999",
                "-0",
                "NaN",
                "99999999999999999999",
                "1048577",
                "XFE1",
                "A0",
            ];
            let pick = odd[rng.usize(0..odd.len())];
            let out = match rng.u8(0..3) {
                0 => text.replacen("<v>", &format!("<v>{pick}"), 1),
                1 => text.replacen("r=\"", &format!("r=\"{pick}"), 1),
                _ => text.replacen("ref=\"", &format!("ref=\"{pick}"), 1),
            };
            *data = out.into_bytes();
        }
    }
}

#[test]
fn mangled_xml_never_panics() {
    let good = common::ten_mistakes();
    let original = parts(&good);
    let xml: Vec<usize> = original
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| n.ends_with(".xml") || n.ends_with(".rels"))
        .map(|(i, _)| i)
        .collect();
    // More with e.g. MANGLE_ROUNDS=20000 MANGLE_SEED=3 (a local hunt, not CI).
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut rng = fastrand::Rng::with_seed(env("MANGLE_SEED", 7));
    let (mut errors, mut read) = (0, 0);
    for round in 0..env("MANGLE_ROUNDS", 400) {
        let mut p = original.clone();
        let i = xml[rng.usize(0..xml.len())];
        mutate(&mut rng, &mut p[i].1);
        let bytes = rezip(&p);
        let name = p[i].0.clone();
        let result =
            std::panic::catch_unwind(|| match workbook::read_workbook_bytes(bytes, "m.xlsx") {
                Ok(imported) => {
                    let _ = imported.check();
                    true
                }
                Err(e) => {
                    assert!(!e.to_string().contains('\n'), "one line: {e}");
                    false
                }
            });
        match result {
            Ok(true) => read += 1,
            Ok(false) => errors += 1,
            Err(_) => panic!("round {round}: mangled {name} panicked"),
        }
    }
    assert!(errors > 0 && read > 0, "{errors} errors, {read} read");
}
