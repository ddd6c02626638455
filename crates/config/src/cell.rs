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

    /// The cell, or None when absent, null or an empty/blank string.
    pub fn cell(&mut self, column: &'static str) -> Option<&'a Value> {
        self.used.insert(column);
        match self.row.get(column) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the row has a non-empty cell in this column (without marking it used).
    pub fn has(&self, column: &str) -> bool {
        match self.row.get(column) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        }
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

    pub fn req_string(&mut self, column: &'static str) -> Option<String> {
        let s = self.opt_string(column);
        if s.is_none() && !self.has(column) {
            self.error(Some(column), "required, but empty");
        }
        s
    }

    pub fn req_alias(&mut self, column: &'static str) -> Option<tagbus::Alias> {
        let s = self.req_string(column)?;
        match tagbus::Alias::new(s.trim()) {
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
        let Some(v) = self.cell(column) else {
            return Ok(None);
        };
        match cell_int(v) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => {
                let shown = if is_secret(column) {
                    "the value".to_owned()
                } else {
                    n.to_string()
                };
                self.error(
                    Some(column),
                    format!("{shown} is out of range {min}..={max}"),
                );
                Err(())
            }
            None => {
                self.error(
                    Some(column),
                    format!("expected an integer, got {}", self.shown(column, v)),
                );
                Err(())
            }
        }
    }

    /// An integer with a default; None when the cell is wrong.
    pub fn int_or(
        &mut self,
        column: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        self.opt_int(column, min, max)
            .ok()
            .map(|v| v.unwrap_or(default))
    }

    /// A required integer.
    pub fn req_int(&mut self, column: &'static str, min: i64, max: i64) -> Option<i64> {
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

    /// An enum parsed from text (case-insensitive by the type's FromStr), with a default.
    pub fn parse_or<T: FromStr>(
        &mut self,
        column: &'static str,
        default: T,
        expected: &str,
    ) -> Option<T> {
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
