//! Where a row or a cell of the config is in the workbook, and issues rendered there.

use std::collections::BTreeMap;
use std::fmt;

use config::{ConfigPath, Section};

/// The spreadsheet letters of a 0-based column index: 0 -> `A`, 25 -> `Z`, 26 -> `AA`.
pub fn column_letter(index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(index).saturating_add(1);
    while n > 0 {
        let rem = n.saturating_sub(1).rem_euclid(26);
        letters.push(char::from(
            b'A'.saturating_add(u8::try_from(rem).unwrap_or(0)),
        ));
        n = n.saturating_sub(1).div_euclid(26);
    }
    letters.iter().rev().collect()
}

/// A place in the workbook: a sheet, maybe a row, maybe a cell, and the column's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The sheet's name as the workbook spells it.
    pub sheet: String,
    /// The row number as the spreadsheet shows it (1-based).
    pub row: Option<u32>,
    /// The 0-based column index, when the sheet has that column.
    pub col: Option<u32>,
    /// The column's name (its header), when the issue is about a column.
    pub column: Option<String>,
}

impl fmt::Display for Location {
    /// `Signals!F17 (source_device_alias)`, `Devices!3:3 (ca_certificate)` when the sheet has
    /// no such column, `Devices!1:1 (asdu_address)` for a header problem, `Settings`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sheet)?;
        match (self.row, self.col) {
            (Some(r), Some(c)) => write!(f, "!{}{r}", column_letter(c))?,
            (Some(r), None) => write!(f, "!{r}:{r}")?,
            (None, Some(c)) => {
                let l = column_letter(c);
                write!(f, "!{l}:{l}")?
            }
            (None, None) => {}
        }
        if let Some(c) = &self.column {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

/// An error or a warning at a place in the workbook.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// How one sheet maps onto a section of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SheetMap {
    /// The sheet's name as the workbook spells it.
    pub name: String,
    /// The header row (1-based).
    pub header_row: u32,
    /// Column name -> 0-based column index.
    pub columns: BTreeMap<String, u32>,
    /// Item index (in the config array) -> row number (1-based).
    pub rows: Vec<u32>,
}

impl SheetMap {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            header_row: 1,
            columns: BTreeMap::new(),
            rows: Vec::new(),
        }
    }

    /// The location of a row (by its index in the config array) and maybe a column.
    pub fn locate(&self, index: Option<usize>, column: Option<&str>) -> Location {
        Location {
            sheet: self.name.clone(),
            row: index.and_then(|i| self.rows.get(i).copied()),
            col: column.and_then(|c| self.columns.get(c).copied()),
            column: column.map(str::to_owned),
        }
    }

    /// The location of a header cell (or of the header row when the column is missing).
    pub fn header(&self, column: &str) -> Location {
        Location {
            sheet: self.name.clone(),
            row: Some(self.header_row),
            col: self.columns.get(column).copied(),
            column: Some(column.to_owned()),
        }
    }

    /// Whether the header has this column.
    pub fn has_column(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }
}

/// Where each part of an imported config came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellMap {
    pub devices: SheetMap,
    pub signals: SheetMap,
    /// The `Settings` sheet, when the workbook has one: key -> row; its value column.
    pub settings: Option<SettingsMap>,
}

/// Where each top-level setting is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsMap {
    pub name: String,
    /// The 0-based column of the values.
    pub value_col: u32,
    /// Key -> row (1-based).
    pub rows: BTreeMap<String, u32>,
}

impl CellMap {
    /// The sheet of a section (None for top-level settings).
    pub fn sheet(&self, section: Section) -> Option<&SheetMap> {
        match section {
            Section::Devices => Some(&self.devices),
            Section::Signals => Some(&self.signals),
            Section::Top => None,
        }
    }

    /// The workbook location of a config path.
    pub fn locate(&self, path: &ConfigPath) -> Location {
        match self.sheet(path.section) {
            Some(sheet) => sheet.locate(path.index, path.column.as_deref()),
            None => {
                let key = path.column.as_deref();
                let (sheet, row, col) = match &self.settings {
                    Some(s) => (
                        s.name.clone(),
                        key.and_then(|k| s.rows.get(k).copied()),
                        Some(s.value_col),
                    ),
                    None => (crate::SETTINGS_SHEET.to_owned(), None, None),
                };
                Location {
                    sheet,
                    col: row.and(col),
                    row,
                    column: key.map(str::to_owned),
                }
            }
        }
    }

    /// Rewrites references such as `devices[2]` in a message to `Devices row 4`.
    pub fn rewrite_refs(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        loop {
            let next = [("devices[", &self.devices), ("signals[", &self.signals)]
                .into_iter()
                .filter_map(|(pat, sheet)| rest.find(pat).map(|at| (at, pat, sheet)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, pat, sheet)) = next else {
                // `no device "rtu9" in devices`: the array is the Devices sheet.
                match rest.strip_suffix(" in devices") {
                    Some(head) => {
                        out.push_str(head);
                        out.push_str(" in ");
                        out.push_str(&self.devices.name);
                    }
                    None => out.push_str(rest),
                }
                return out;
            };
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let after = from.get(pat.len()..).unwrap_or("");
            let digits: &str = after
                .find(|c: char| !c.is_ascii_digit())
                .map_or(after, |end| after.get(..end).unwrap_or(""));
            let closed = after
                .get(digits.len()..)
                .is_some_and(|s| s.starts_with(']'));
            let row = digits
                .parse::<usize>()
                .ok()
                .and_then(|i| sheet.rows.get(i).copied());
            match (closed, row) {
                (true, Some(row)) => {
                    out.push_str(&format!("{} row {row}", sheet.name));
                    rest = after.get(digits.len().saturating_add(1)..).unwrap_or("");
                }
                _ => {
                    out.push_str(pat);
                    rest = after;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(5), "F");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
        assert_eq!(column_letter(16_383), "XFD");
    }

    #[test]
    fn locations_render_as_spreadsheet_references() {
        let mut s = SheetMap::new("Signals");
        s.columns.insert("source_device_alias".into(), 5);
        s.rows = vec![2, 3, 17];
        assert_eq!(
            s.locate(Some(2), Some("source_device_alias")).to_string(),
            "Signals!F17 (source_device_alias)"
        );
        assert_eq!(
            s.locate(Some(0), Some("topic")).to_string(),
            "Signals!2:2 (topic)"
        );
        assert_eq!(s.locate(Some(1), None).to_string(), "Signals!3:3");
        assert_eq!(s.header("topic").to_string(), "Signals!1:1 (topic)");
        assert_eq!(
            s.header("source_device_alias").to_string(),
            "Signals!F1 (source_device_alias)"
        );
    }

    #[test]
    fn references_in_messages_are_rewritten() {
        let mut map = CellMap {
            devices: SheetMap::new("Devices"),
            signals: SheetMap::new("Signals"),
            settings: None,
        };
        map.devices.rows = vec![2, 4];
        map.signals.rows = vec![2, 3, 9];
        assert_eq!(
            map.rewrite_refs("duplicate device_alias \"a\" (also devices[1])"),
            "duplicate device_alias \"a\" (also Devices row 4)"
        );
        assert_eq!(
            map.rewrite_refs("x signals[2] and devices[0]; signals[7] devices[ signals[1"),
            "x Signals row 9 and Devices row 2; signals[7] devices[ signals[1"
        );
        assert_eq!(
            map.rewrite_refs("no device \"rtu9\" in devices"),
            "no device \"rtu9\" in Devices"
        );
    }
}
