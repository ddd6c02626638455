#![no_main]
//! The config file as the gateway reads it: arbitrary bytes as text through
//! `RawConfig::parse`, then `config::validate`; valid JSON also through `RawConfig::load`
//! (the figment layering) from a file. Nothing may panic; a parsed config must write out
//! JSON that parses again and validates with the same number of errors.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use config::{validate, RawConfig};
use libfuzzer_sys::fuzz_target;

/// One scratch file per fuzzing process.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!(
            "fieldbridge-config-fuzz-{}.json",
            std::process::id()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = RawConfig::parse(text) else {
        return;
    };
    let v = validate(&raw);
    for e in v.errors.iter().chain(&v.warnings) {
        let _ = e.to_string();
    }
    for applet in config::Applet::ALL {
        let _ = v.errors_for(applet);
        let _ = v.config.applet_has_work(applet);
    }

    // What `config export` writes must read back.
    let out = raw.to_json_pretty();
    let again = RawConfig::parse(&out)
        .unwrap_or_else(|e| panic!("exported JSON does not parse: {e}\n{out}"));
    let v2 = validate(&again);
    assert_eq!(v2.errors.len(), v.errors.len(), "{out}");

    // The file path with figment (no FIELDBRIDGE_* variables are set while fuzzing).
    let path = scratch();
    if let Ok(mut f) = std::fs::File::create(path) {
        if f.write_all(data).is_ok() {
            drop(f);
            if let Ok(loaded) = RawConfig::load(path) {
                let _ = validate(&loaded);
            }
        }
    }
});
