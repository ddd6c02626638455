//! The canonical form of a config: what survives a trip through a workbook.
//!
//! A spreadsheet cell is text, a number (an f64) or a boolean, and an empty cell is no cell.
//! So `import(export(c)) == canonical(c)`, where [`canonical`]:
//! - drops null cells and whitespace-only text (an absent cell: the default applies);
//! - writes integral numbers within ±2^53 as integers (`1883.0` -> `1883`), the way the
//!   importer reads Excel's float-for-integer cells;
//! - turns integers beyond ±2^53 (Excel keeps 15 digits) and arrays/objects into text.
//!
//! - renames old column names to their new ones ([`config::upgrade_columns`]: `t1` ->
//!   `t1_s`, `command_max_age` in s -> `command_max_age_ms`), as `export` writes them.
//!
//! Validation reads all of these the same way, so canonicalising never changes what a
//! config means.

use serde_json::{Number, Value};

use config::{RawConfig, Row};

/// 2^53: integers up to this are exact in an f64 (an Excel number).
pub(crate) const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
const MAX_EXACT_INT: u64 = 9_007_199_254_740_992;

/// A number as the importer reads it back from a cell holding `f`: an integer when `f` is
/// integral and exact, else the float. None for NaN and infinities (no cell holds them).
pub(crate) fn number_from_f64(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() <= MAX_EXACT {
        // Exact: |f| <= 2^53 fits an i64 and has no fraction.
        #[allow(clippy::cast_possible_truncation)]
        let i = f as i64;
        return Some(Value::Number(Number::from(i)));
    }
    Number::from_f64(f).map(Value::Number)
}

/// The canonical form of one cell (None: no cell).
pub fn canonical_value(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(_) | Value::Bool(_) => Some(v.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let exact = i.unsigned_abs() <= MAX_EXACT_INT;
                return Some(if exact {
                    v.clone()
                } else {
                    Value::String(i.to_string())
                });
            }
            if n.as_u64().is_some() {
                // Beyond i64, so beyond 2^53.
                return Some(Value::String(n.to_string()));
            }
            n.as_f64().and_then(number_from_f64)
        }
        Value::Array(_) | Value::Object(_) => Some(Value::String(v.to_string())),
    }
}

fn canonical_row(row: &Row) -> Row {
    row.iter()
        .filter_map(|(k, v)| canonical_value(v).map(|v| (k, v)))
        .collect()
}

/// The canonical form of a config (see the module docs).
pub fn canonical(raw: &RawConfig) -> RawConfig {
    let mut devices = raw.devices.clone();
    config::upgrade_columns(&mut devices);
    RawConfig {
        redis_url: raw.redis_url.clone().filter(|s| !s.trim().is_empty()),
        stream_max_len: raw.stream_max_len.as_ref().and_then(canonical_value),
        devices: devices.iter().map(canonical_row).collect(),
        signals: raw.signals.iter().map(canonical_row).collect(),
        unknown: raw
            .unknown
            .iter()
            .filter_map(|(k, v)| canonical_value(v).map(|v| (k.clone(), v)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells() {
        assert_eq!(canonical_value(&json!(null)), None);
        assert_eq!(canonical_value(&json!("  ")), None);
        assert_eq!(canonical_value(&json!(" a ")), Some(json!(" a ")));
        assert_eq!(canonical_value(&json!(1883.0)), Some(json!(1883)));
        assert_eq!(canonical_value(&json!(-2.0)), Some(json!(-2)));
        assert_eq!(canonical_value(&json!(0.1)), Some(json!(0.1)));
        assert_eq!(canonical_value(&json!(1e300)), Some(json!(1e300)));
        assert_eq!(
            canonical_value(&json!(9_007_199_254_740_992_i64)),
            Some(json!(9_007_199_254_740_992_i64))
        );
        assert_eq!(
            canonical_value(&json!(9_007_199_254_740_993_i64)),
            Some(json!("9007199254740993"))
        );
        assert_eq!(
            canonical_value(&json!(u64::MAX)),
            Some(json!("18446744073709551615"))
        );
        assert_eq!(
            canonical_value(&json!(i64::MIN)),
            Some(json!("-9223372036854775808"))
        );
        assert_eq!(canonical_value(&json!([1, "a"])), Some(json!("[1,\"a\"]")));
        assert_eq!(canonical_value(&json!(true)), Some(json!(true)));
    }
}
