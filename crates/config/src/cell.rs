//! Reading typed cells out of a raw row, recording every problem with its path.
//! Lenient where a spreadsheet is: numbers typed as text ("1883"), Excel's float-for-integer
//! cells (1883.0), booleans as 0/1/true/false/yes/no/on/off; an empty cell is an absent one.

use std::collections::BTreeSet;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{ConfigError, ConfigPath, Section};
use crate::raw::Row;
use crate::Protocol;

/// A reader over one row that collects errors and remembers which columns it read.
pub(crate) struct RowReader<'a> {
    pub section: Section,
    pub index: usize,
    row: &'a Row,
    pub protocol: Option<Protocol>,
    pub errors: Vec<ConfigError>,
    pub used: BTreeSet<&'static str>,
}

impl<'a> RowReader<'a> {
    pub fn new(section: Section, index: usize, row: &'a Row) -> Self {
        Self {
            section,
            index,
            row,
            protocol: None,
            errors: Vec::new(),
            used: BTreeSet::new(),
        }
    }

    pub fn error(&mut self, column: Option<&str>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: ConfigPath::row(self.section, self.index, column),
            protocol: self.protocol,
            message: message.into(),
        });
    }

    /// The cell, or None when absent, null or an empty/blank string. A renamed column is
    /// also read under its old name (see [`crate::columns::RENAMED`]).
    pub fn cell(&mut self, column: &'static str) -> Option<&'a Value> {
        self.lookup(column).map(|(v, _, _)| v)
    }

    /// The cell of a column, the column it was found in (the old name of a renamed column)
    /// and the factor that turns its value into the column's unit.
    fn lookup(&mut self, column: &'static str) -> Option<(&'a Value, &'static str, i64)> {
        self.used.insert(column);
        if let Some(v) = non_empty(self.row.get(column)) {
            return Some((v, column, 1));
        }
        let renamed = self
            .protocol
            .and_then(|p| crate::columns::renamed_from(p, column))?;
        let v = non_empty(self.row.get(renamed.old))?;
        self.used.insert(renamed.old);
        Some((v, renamed.old, renamed.factor))
    }

    /// Whether the row has a non-empty cell in this column or its old name (without marking
    /// it used).
    pub fn has(&self, column: &str) -> bool {
        self.has_own(column)
            || self
                .protocol
                .and_then(|p| crate::columns::renamed_from(p, column))
                .is_some_and(|r| non_empty(self.row.get(r.old)).is_some())
    }

    /// Whether the row has a non-empty cell in exactly this column.
    pub fn has_own(&self, column: &str) -> bool {
        non_empty(self.row.get(column)).is_some()
    }

    /// Records a read of `column` for the column reference; `usage` (its range and default)
    /// is only built while the reference is generated.
    fn record(
        &self,
        column: &'static str,
        usage: impl FnOnce() -> (Option<String>, Option<String>),
    ) {
        crate::columns::record(self.section, self.protocol, column, usage);
    }

    /// The non-empty columns of the row.
    pub fn present_columns(&self) -> Vec<&'a str> {
        self.row
            .iter()
            .filter(|(_, v)| match v {
                Value::Null => false,
                Value::String(s) => !s.trim().is_empty(),
                _ => true,
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// A cell for an error message; a secret column's cell is never shown.
    fn shown(&self, column: &str, v: &Value) -> String {
        if is_secret(column) {
            "a value of the wrong type (not shown: the column is secret)".to_owned()
        } else {
            show(v)
        }
    }

    pub fn opt_string(&mut self, column: &'static str) -> Option<String> {
        self.record(column, || (Some("text".into()), None));
        let v = self.cell(column)?;
        match cell_text(v) {
            Some(s) => Some(s),
            None => {
                self.error(
                    Some(column),
                    format!("expected text, got {}", self.shown(column, v)),
                );
                None
            }
        }
    }

    /// A text column with a default.
    pub fn string_or(&mut self, column: &'static str, default: &'static str) -> String {
        self.record(column, || (None, Some(default.to_owned())));
        self.opt_string(column)
            .unwrap_or_else(|| default.to_owned())
    }

    /// States the default of a column whose default is computed from other cells (shown in
    /// the column reference; nothing else).
    pub fn computed_default(&self, column: &'static str, default: &str) {
        self.record(column, || (None, Some(default.to_owned())));
    }

    /// States what a column accepts and its default in words, for the column reference
    /// (nothing else).
    pub fn document(&self, column: &'static str, accepted: &str, default: &str) {
        self.record(column, || {
            (Some(accepted.to_owned()), Some(default.to_owned()))
        });
    }

    pub fn req_string(&mut self, column: &'static str) -> Option<String> {
        let s = self.opt_string(column);
        self.record(column, || (None, Some("required".into())));
        if s.is_none() && !self.has(column) {
            self.error(Some(column), "required, but empty");
        }
        s
    }

    pub fn req_alias(&mut self, column: &'static str) -> Option<contract::Alias> {
        let s = self.req_string(column)?;
        match contract::Alias::new(s.trim()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.error(Some(column), e.to_string());
                None
            }
        }
    }

    /// An integer cell within `min..=max`; `Ok(None)` when absent, `Err(())` when wrong
    /// (the error is recorded).
    pub fn opt_int(&mut self, column: &'static str, min: i64, max: i64) -> Result<Option<i64>, ()> {
        self.record(column, || (Some(format!("{min}..={max}")), None));
        let Some((v, found, factor)) = self.lookup(column) else {
            return Ok(None);
        };
        let scaled = cell_int(v).and_then(|n| n.checked_mul(factor));
        let read_as = if found == column {
            String::new()
        } else {
            format!(" (read as {column})")
        };
        match scaled {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => {
                let shown = if is_secret(column) {
                    "the value".to_owned()
                } else {
                    n.to_string()
                };
                self.error(
                    Some(found),
                    format!("{shown} is out of range {min}..={max}{read_as}"),
                );
                Err(())
            }
            None => {
                self.error(
                    Some(found),
                    format!("expected an integer, got {}", self.shown(column, v)),
                );
                Err(())
            }
        }
    }

    /// An integer column with its default (`default: None`: required).
    pub fn int(&mut self, c: &IntColumn) -> Option<i64> {
        match c.default {
            Some(d) => self.int_or(c.name, d, c.min, c.max),
            None => self.req_int(c.name, c.min, c.max),
        }
    }

    /// An optional integer column (its default ignored: absent is `Ok(None)`).
    pub fn opt(&mut self, c: &IntColumn) -> Result<Option<i64>, ()> {
        self.opt_int(c.name, c.min, c.max)
    }

    /// An integer with a default; None when the cell is wrong.
    pub fn int_or(
        &mut self,
        column: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        self.record(column, || (None, Some(default.to_string())));
        self.opt_int(column, min, max)
            .ok()
            .map(|v| v.unwrap_or(default))
    }

    /// A required integer.
    pub fn req_int(&mut self, column: &'static str, min: i64, max: i64) -> Option<i64> {
        self.record(column, || (None, Some("required".into())));
        match self.opt_int(column, min, max) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                self.error(Some(column), "required, but empty");
                None
            }
            Err(()) => None,
        }
    }

    /// A float with a default.
    pub fn float_or(&mut self, column: &'static str, default: f64) -> Option<f64> {
        self.record(column, || {
            (Some("number".into()), Some(default.to_string()))
        });
        let Some(v) = self.cell(column) else {
            return Some(default);
        };
        match cell_float(v) {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.error(
                    Some(column),
                    format!("expected a number, got {}", self.shown(column, v)),
                );
                None
            }
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&mut self, column: &'static str, default: bool) -> Option<bool> {
        self.record(column, || {
            (Some("0/1".into()), Some(u8::from(default).to_string()))
        });
        let Some(v) = self.cell(column) else {
            return Some(default);
        };
        match cell_bool(v) {
            Some(b) => Some(b),
            None => {
                self.error(
                    Some(column),
                    format!(
                        "expected 0/1, true/false or yes/no, got {}",
                        self.shown(column, v)
                    ),
                );
                None
            }
        }
    }

    /// An enum parsed from text (case-insensitive by the type's FromStr), with a default
    /// (its Debug name in lower case is what the column reference shows).
    pub fn parse_or<T: FromStr + std::fmt::Debug>(
        &mut self,
        column: &'static str,
        default: T,
        expected: &str,
    ) -> Option<T> {
        self.record(column, || {
            (
                Some(expected.to_owned()),
                Some(format!("{default:?}").to_ascii_lowercase()),
            )
        });
        let Some(v) = self.cell(column) else {
            return Some(default);
        };
        match cell_text(v).and_then(|s| s.trim().parse::<T>().ok()) {
            Some(t) => Some(t),
            None => {
                self.error(
                    Some(column),
                    format!("expected {expected}, got {}", self.shown(column, v)),
                );
                None
            }
        }
    }
}

/// Whether a cell counts (is not null or blank text).
pub(crate) fn is_present(v: &Value) -> bool {
    non_empty(Some(v)).is_some()
}

/// A cell that counts: not absent, null or blank text.
fn non_empty(v: Option<&Value>) -> Option<&Value> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(v),
    }
}

/// An integer column: its name, accepted range and default (None: required, or absent
/// means off), the one definition both the reader and the code checking typed values use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntColumn {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    pub default: Option<i64>,
}

impl IntColumn {
    /// Whether a value is in the accepted range.
    pub fn accepts(&self, v: impl TryInto<i64>) -> bool {
        v.try_into()
            .is_ok_and(|v: i64| (self.min..=self.max).contains(&v))
    }

    /// Whether a duration, in the column's unit (by its name's `_ms` or `_s` suffix), is in
    /// the accepted range.
    pub fn accepts_duration(&self, d: std::time::Duration) -> bool {
        let v = if self.name.ends_with("_ms") {
            d.as_millis()
        } else {
            u128::from(d.as_secs())
        };
        self.accepts(v)
    }
}

/// The integer an integral float stands for (`1883.0` -> 1883); `None` for a fraction,
/// NaN, the infinities and magnitudes beyond 9e15 (where an f64 no longer holds every
/// integer). Every reader of "an integer written as a float" uses this one rule.
pub fn exact_integer(f: f64) -> Option<i64> {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        // integral and within ±9e15: exact in an i64
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i64)
    } else {
        None
    }
}

/// Text of a cell: a string as is, a number as written (an integral float without ".0").
pub fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(
            match n.as_f64().filter(|_| n.is_f64()).and_then(exact_integer) {
                Some(i) => i.to_string(),
                None => n.to_string(),
            },
        ),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// An integer from a number (integral floats accepted) or from text.
pub fn cell_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(exact_integer)),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(exact_integer))
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A float from a number or from text.
pub fn cell_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// A boolean from true/false, 0/1, or text (0/1, true/false, yes/no, on/off, y/n).
pub fn cell_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(_) => match cell_int(v) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "1.0" | "true" | "yes" | "y" | "on" => Some(true),
            "0" | "0.0" | "false" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Columns whose cells are secrets: never echoed in an error message.
pub const SECRET_COLUMNS: &[&str] = &["password"];

fn is_secret(column: &str) -> bool {
    SECRET_COLUMNS.contains(&column)
}

/// A URL with its password hidden (`redis://user:***@host:6379`), for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A cell for an error message (at most 40 characters).
pub fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        let mut t: String = s.chars().take(40).collect();
        t.push('…');
        t
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_cells_are_never_shown() {
        let mut row = Row::new();
        row.insert("password".into(), serde_json::json!(["hunter2"]));
        row.insert("port".into(), serde_json::json!(["hunter3"]));
        let mut r = RowReader::new(Section::Devices, 0, &row);
        assert_eq!(r.opt_string("password"), None);
        assert_eq!(r.opt_int("port", 1, 2), Err(()));
        let text: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert!(!text[0].contains("hunter2"), "{text:?}");
        assert!(text[1].contains("hunter3"), "{text:?}");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://u:p@ss@h"), "redis://u:***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }
}
