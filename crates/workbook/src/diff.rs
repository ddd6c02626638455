//! What an import would change: devices (by alias), signals (by device and signal alias)
//! and settings added, removed or changed. Values are compared in their canonical form, so
//! `1883` and `1883.0` are the same; secrets are never shown.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use config::{cell_text, RawConfig, Row};

use crate::canon::{canonical, canonical_value};
use crate::SECRET_COLUMNS;

/// Added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// The columns that differ: (column, old, new); a secret's values are masked.
    Changed(Vec<(String, String, String)>),
}

/// One change of a device, a signal or a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `device`, `signal` or `setting`.
    pub what: &'static str,
    /// The device alias, `device/signal`, or the setting's key.
    pub key: String,
    pub kind: ChangeKind,
}

/// All changes from one config to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub changes: Vec<Change>,
}

impl Diff {
    /// No change at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// (added, removed, changed) of one kind of item.
    pub fn counts(&self, what: &str) -> (usize, usize, usize) {
        let of = |f: fn(&ChangeKind) -> bool| {
            self.changes
                .iter()
                .filter(|c| c.what == what && f(&c.kind))
                .count()
        };
        (
            of(|k| *k == ChangeKind::Added),
            of(|k| *k == ChangeKind::Removed),
            of(|k| matches!(k, ChangeKind::Changed(_))),
        )
    }
}

impl fmt::Display for Change {
    /// `+ device meter2`, `- signal rtu1/cb9`, `~ device rtu1: port 2404 -> 2405`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Added => write!(f, "+ {} {}", self.what, self.key),
            ChangeKind::Removed => write!(f, "- {} {}", self.what, self.key),
            ChangeKind::Changed(columns) => {
                write!(f, "~ {} {}:", self.what, self.key)?;
                for (i, (c, old, new)) in columns.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{c} {old} -> {new}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for what in ["device", "signal", "setting"] {
            let (a, r, c) = self.counts(what);
            writeln!(f, "{what}s: {a} added, {r} removed, {c} changed")?;
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

fn shown(column: &str, v: Option<&Value>) -> String {
    match v {
        None => "(empty)".into(),
        Some(_) if SECRET_COLUMNS.contains(&column) => "***".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

fn key_text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(cell_text)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Items by key; a row without a key (or a repeated one) is keyed by its position.
fn keyed(rows: &[Row], key: impl Fn(&Row) -> String) -> BTreeMap<String, &Row> {
    let mut out = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let k = key(row);
        let k = if k.is_empty() || k == "/" || out.contains_key(&k) {
            format!("#{}", i.saturating_add(1))
        } else {
            k
        };
        out.insert(k, row);
    }
    out
}

fn compare(
    what: &'static str,
    old: &BTreeMap<String, &Row>,
    new: &BTreeMap<String, &Row>,
    out: &mut Vec<Change>,
) {
    for (k, new_row) in new {
        match old.get(k) {
            None => out.push(Change {
                what,
                key: k.clone(),
                kind: ChangeKind::Added,
            }),
            Some(old_row) => {
                let columns = changed_columns(old_row, new_row);
                if !columns.is_empty() {
                    out.push(Change {
                        what,
                        key: k.clone(),
                        kind: ChangeKind::Changed(columns),
                    });
                }
            }
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(Change {
            what,
            key: k.clone(),
            kind: ChangeKind::Removed,
        });
    }
}

fn changed_columns(old: &Row, new: &Row) -> Vec<(String, String, String)> {
    let mut columns: Vec<&str> = old.keys().chain(new.keys()).collect();
    columns.sort();
    columns.dedup();
    columns
        .into_iter()
        .filter_map(|c| {
            let (o, n) = (old.get(c), new.get(c));
            (o != n).then(|| (c.to_owned(), shown(c, o), shown(c, n)))
        })
        .collect()
}

fn settings(raw: &RawConfig) -> Row {
    let mut row: Row = raw.unknown.iter().map(|(k, v)| (k, v.clone())).collect();
    if let Some(u) = &raw.redis_url {
        row.insert("redis_url".into(), Value::String(u.clone()));
    }
    if let Some(v) = &raw.stream_max_len {
        row.insert("stream_max_len".into(), v.clone());
    }
    row
}

/// What changes from `old` to `new`.
pub fn diff(old: &RawConfig, new: &RawConfig) -> Diff {
    let (old, new) = (canonical(old), canonical(new));
    let mut changes = Vec::new();
    let dev = |r: &Row| key_text(r, "device_alias");
    compare(
        "device",
        &keyed(&old.devices, dev),
        &keyed(&new.devices, dev),
        &mut changes,
    );
    let sig = |r: &Row| {
        format!(
            "{}/{}",
            key_text(r, "device_alias"),
            key_text(r, "signal_alias")
        )
    };
    compare(
        "signal",
        &keyed(&old.signals, sig),
        &keyed(&new.signals, sig),
        &mut changes,
    );
    let (old_s, new_s) = (settings(&old), settings(&new));
    for key in old_s
        .keys()
        .chain(new_s.keys().filter(|k| !old_s.contains_key(k)))
    {
        let (o, n) = (old_s.get(key), new_s.get(key));
        if o.and_then(canonical_value) != n.and_then(canonical_value) {
            let kind = match (o, n) {
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Removed,
                _ => ChangeKind::Changed(vec![(key.to_owned(), shown(key, o), shown(key, n))]),
            };
            changes.push(Change {
                what: "setting",
                key: key.to_owned(),
                kind,
            });
        }
    }
    Diff { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> RawConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn changes_by_alias() {
        let old = raw(json!({
            "redis_url": "redis://127.0.0.1:6379",
            "devices": [
                {"device_alias": "rtu1", "port": 2404, "password": "a"},
                {"device_alias": "old", "port": 1}
            ],
            "signals": [
                {"device_alias": "rtu1", "signal_alias": "cb1", "info_address": 100},
                {"device_alias": "rtu1", "signal_alias": "cb2", "info_address": 101}
            ]
        }));
        let new = raw(json!({
            "devices": [
                {"device_alias": "new", "port": 1},
                {"device_alias": "rtu1", "port": 2405.0, "password": "b"}
            ],
            "signals": [
                {"device_alias": "rtu1", "signal_alias": "cb2", "info_address": 101.0},
                {"device_alias": "rtu1", "signal_alias": "cb1", "info_address": 100, "multiplier": 0.5}
            ]
        }));
        let d = diff(&old, &new);
        let text = d.to_string();
        assert_eq!(d.counts("device"), (1, 1, 1), "{text}");
        assert_eq!(d.counts("signal"), (0, 0, 1), "{text}");
        assert_eq!(d.counts("setting"), (0, 1, 0), "{text}");
        assert!(text.contains("+ device new\n"), "{text}");
        assert!(text.contains("- device old\n"), "{text}");
        assert!(
            text.contains("~ device rtu1: password *** -> ***, port 2404 -> 2405\n"),
            "{text}"
        );
        assert!(
            text.contains("~ signal rtu1/cb1: multiplier (empty) -> 0.5\n"),
            "{text}"
        );
        assert!(text.contains("- setting redis_url\n"), "{text}");
        assert!(!text.contains("\"b\""), "{text}");
        assert!(diff(&new, &new).is_empty());
    }
}
