#![no_main]
//! Structured config fuzzing: device and signal rows built from the known column names
//! (every protocol's) and arbitrary JSON scalars, biased towards values the validator
//! accepts (protocol names, a few shared aliases, type ids, enum spellings, numbers as
//! text), so inputs reach the per-protocol readers and the cross-row checks.
//! `config::validate` must never panic, and must keep exactly the rows without errors.

use arbitrary::{Result, Unstructured};
use config::{
    device_columns, signal_columns, validate, Protocol, RawConfig, Row, Section,
    DEVICE_COMMON_COLUMNS, SIGNAL_COMMON_COLUMNS,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const WORDS: &[&str] = &[
    "mqtt",
    "iec104-master",
    "IEC104",
    "modbus-rtu",
    "modbus_tcp",
    "modbus-tcp",
    "iec104-slave",
    "0.0.0.0",
    "10.0.0.1 10.0.0.2; 10.0.0.3",
    "rtu1",
    "rtu2",
    "cloud",
    "meter1",
    "cb1",
    "p1",
    "a b",
    "x/y",
    "tag",
    "M_SP_NA_1",
    "M_ME_NC_1",
    "C_SC_NA_1",
    "C_SE_NC_1",
    "M_IT_NA_1",
    "13",
    "1",
    "0",
    "2",
    "3",
    "16",
    "255",
    "1883",
    "1883.0",
    "2404",
    "65535",
    "65536",
    "-1",
    "1e3",
    "nan",
    "inf",
    "yes",
    "no",
    "on",
    "off",
    "true",
    "FALSE",
    "none",
    "password",
    "tls",
    "tcp",
    "ws",
    "wss",
    "3.1.1",
    "5",
    "csv",
    "json",
    "N",
    "E",
    "O",
    "even",
    "big",
    "little",
    "cdab",
    "u16",
    "i32",
    "f32",
    "float64",
    "bool",
    "10.0.0.5",
    "10.0.0.5, 10.0.0.6",
    "/dev/ttyS1",
    "site1/cb1",
    "site/+/x",
    "#",
    "/mqtt",
    "",
    " ",
    "redis://127.0.0.1:6379",
    "\u{0}",
    "é",
];

fn scalar(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=9)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.int_in_range(-2i64..=70_000)?),
        4 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::from(u.arbitrary::<u64>()?),
        6 => Value::String(u.arbitrary()?),
        7 => Value::Array(vec![Value::from(1)]),
        _ => Value::String((*u.choose(WORDS)?).to_owned()),
    })
}

fn row(u: &mut Unstructured<'_>, section: Section) -> Result<Row> {
    let (common, columns_of): (&[&str], fn(Protocol) -> &'static [&'static str]) = match section {
        Section::Signals => (SIGNAL_COMMON_COLUMNS, signal_columns),
        _ => (DEVICE_COMMON_COLUMNS, device_columns),
    };
    let mut r = Row::new();
    // Mostly the common columns, then some of one protocol's.
    for c in common {
        if u.ratio(7, 8)? {
            r.insert((*c).to_owned(), scalar(u)?);
        }
    }
    let p = *u.choose(&Protocol::ALL)?;
    if section == Section::Devices && u.ratio(7, 8)? {
        r.insert("protocol".into(), Value::String(p.as_str().into()));
    }
    let n = u.int_in_range(0..=12)?;
    for _ in 0..n {
        let own = columns_of(p);
        let column = if u.ratio(1, 10)? {
            let other = *u.choose(&Protocol::ALL)?;
            *u.choose(columns_of(other))?
        } else {
            *u.choose(own)?
        };
        r.insert(column.to_owned(), scalar(u)?);
    }
    if u.ratio(1, 20)? {
        r.insert(u.arbitrary()?, scalar(u)?);
    }
    Ok(r)
}

fn raw(u: &mut Unstructured<'_>) -> Result<RawConfig> {
    let mut raw = RawConfig::default();
    if u.ratio(1, 8)? {
        raw.redis_url = Some(u.choose(WORDS)?.to_string());
    }
    if u.ratio(1, 8)? {
        raw.stream_max_len = Some(scalar(u)?);
    }
    for _ in 0..u.int_in_range(0..=6)? {
        raw.devices.push(row(u, Section::Devices)?);
    }
    for _ in 0..u.int_in_range(0..=16)? {
        raw.signals.push(row(u, Section::Signals)?);
    }
    Ok(raw)
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = raw(&mut Unstructured::new(data)) else {
        return;
    };
    let v = validate(&raw);
    for e in v.errors.iter().chain(&v.warnings) {
        let _ = e.to_string();
    }
    // A row is in the config exactly when no error names it.
    for d in &v.config.devices {
        assert!(
            !v.errors
                .iter()
                .any(|e| e.path.section == Section::Devices && e.path.index == Some(d.index)),
            "devices[{}] kept despite an error",
            d.index
        );
    }
    for s in &v.config.signals {
        assert!(
            !v.errors
                .iter()
                .any(|e| e.path.section == Section::Signals && e.path.index == Some(s.index)),
            "signals[{}] kept despite an error",
            s.index
        );
        assert!(
            v.config.device(&s.device).is_some(),
            "signals[{}] kept without its device",
            s.index
        );
    }
    // The JSON form of the same rows validates the same way.
    let again = RawConfig::parse(&raw.to_json_pretty()).map(|r| validate(&r).errors.len());
    assert_eq!(again.ok(), Some(v.errors.len()));
});
