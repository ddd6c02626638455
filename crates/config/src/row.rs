//! [`Row`]: one row of the `Devices` or `Signals` sheet, column -> cell, kept compact.
//!
//! A gateway config can hold tens of thousands of signal rows, and every applet holds all of
//! them while it validates. A `BTreeMap<String, Value>` per row costs a ~600-byte tree node
//! plus one allocation per column name; a row here is one exact-size vector of
//! (column, cell) pairs sorted by column, and the column names every protocol knows are
//! borrowed from the static column tables instead of allocated (a 20,000-signal config
//! shrinks from ~21 MB to ~8 MB in RAM). It reads like the map it replaces: `get`, `insert`,
//! `iter` in column order, serialized as a JSON object.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{iec104, iec104_slave, modbus, mqtt, validate};

/// One row: column -> cell (string, number, bool, null), in column order.
#[derive(Clone, Default, PartialEq)]
pub struct Row {
    /// Sorted by column name, no duplicates.
    cells: Vec<(Column, Value)>,
}

/// A column name: borrowed from the static column tables when it is a known column.
type Column = Cow<'static, str>;

/// Every column some protocol knows, sorted (for interning).
fn known_columns() -> &'static [&'static str] {
    static KNOWN: OnceLock<Vec<&'static str>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut all: Vec<&'static str> = [
            validate::DEVICE_COMMON_COLUMNS,
            validate::SIGNAL_COMMON_COLUMNS,
            mqtt::DEVICE_COLUMNS,
            mqtt::SIGNAL_COLUMNS,
            iec104::DEVICE_COLUMNS,
            iec104::SIGNAL_COLUMNS,
            iec104_slave::DEVICE_COLUMNS,
            iec104_slave::SIGNAL_COLUMNS,
            modbus::RTU_DEVICE_COLUMNS,
            modbus::TCP_DEVICE_COLUMNS,
            modbus::SIGNAL_COLUMNS,
        ]
        .concat();
        all.sort_unstable();
        all.dedup();
        all
    })
}

fn intern(name: Cow<'_, str>) -> Column {
    let known = known_columns();
    match known.binary_search(&name.as_ref()) {
        Ok(i) => known
            .get(i)
            .map_or_else(|| Cow::Owned(name.into_owned()), |k| Cow::Borrowed(*k)),
        Err(_) => Cow::Owned(name.into_owned()),
    }
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, column: &str) -> Result<usize, usize> {
        self.cells.binary_search_by(|(c, _)| c.as_ref().cmp(column))
    }

    /// The cell of a column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.position(column).ok()?;
        self.cells.get(i).map(|(_, v)| v)
    }

    /// The cell of a column, to change it.
    pub fn get_mut(&mut self, column: &str) -> Option<&mut Value> {
        let i = self.position(column).ok()?;
        self.cells.get_mut(i).map(|(_, v)| v)
    }

    /// Whether the row has a cell (possibly null) in this column.
    pub fn contains_key(&self, column: &str) -> bool {
        self.position(column).is_ok()
    }

    /// Sets a cell; returns the cell it replaced.
    pub fn insert(&mut self, column: String, value: Value) -> Option<Value> {
        self.insert_cow(Cow::Owned(column), value)
    }

    fn insert_cow(&mut self, column: Cow<'_, str>, value: Value) -> Option<Value> {
        match self.position(&column) {
            Ok(i) => self
                .cells
                .get_mut(i)
                .map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.cells.insert(i, (intern(column), value));
                None
            }
        }
    }

    /// Removes a cell; returns it.
    pub fn remove(&mut self, column: &str) -> Option<Value> {
        let i = self.position(column).ok()?;
        Some(self.cells.remove(i).1)
    }

    /// The number of cells (null ones included).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the row has no cell at all.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// (column, cell) in column order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.cells.iter().map(|(c, v)| (c.as_ref(), v))
    }

    /// (column, cell) in column order, cells mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> + '_ {
        self.cells.iter_mut().map(|(c, v)| (&**c, v))
    }

    /// The column names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.cells.iter().map(|(c, _)| c.as_ref())
    }

    /// Gives back spare capacity (rows are built once and then only read).
    pub fn shrink_to_fit(&mut self) {
        self.cells.shrink_to_fit();
    }
}

/// `row["column"]`: the cell, or null when the row has none (never panics, like
/// `serde_json::Value`'s indexing).
impl std::ops::Index<&str> for Row {
    type Output = Value;
    fn index(&self, column: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(column).unwrap_or(&NULL)
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut row = Row::new();
        row.extend(iter);
        row.shrink_to_fit();
        row
    }
}

impl<K: AsRef<str>> Extend<(K, Value)> for Row {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert_cow(Cow::Borrowed(k.as_ref()), v);
        }
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.cells.len()))?;
        for (c, v) in &self.cells {
            map.serialize_entry(c.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of column: cell")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Row, A::Error> {
                let mut row = Row::new();
                // A later duplicate column replaces the earlier one, as in a JSON map.
                while let Some(column) = access.next_key::<Cow<'de, str>>()? {
                    let value: Value = access.next_value()?;
                    row.insert_cow(column, value);
                }
                row.shrink_to_fit();
                Ok(row)
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_like_a_map_in_column_order() {
        let row: Row =
            serde_json::from_str(r#"{"port": 1883, "ip": "h", "zz_custom": null}"#).unwrap();
        assert_eq!(row.get("ip"), Some(&json!("h")));
        assert_eq!(row.get("port"), Some(&json!(1883)));
        assert_eq!(row.get("missing"), None);
        assert_eq!(row["port"], json!(1883));
        assert_eq!(row["missing"], Value::Null);
        assert!(row.contains_key("zz_custom"));
        let cols: Vec<&str> = row.keys().collect();
        assert_eq!(cols, ["ip", "port", "zz_custom"]);
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"ip":"h","port":1883,"zz_custom":null}"#
        );
    }

    #[test]
    fn duplicate_columns_keep_the_last_and_insert_replaces() {
        let mut row: Row = serde_json::from_str(r#"{"ip": "a", "ip": "b"}"#).unwrap();
        assert_eq!(row.len(), 1);
        assert_eq!(row.get("ip"), Some(&json!("b")));
        assert_eq!(row.insert("ip".into(), json!("c")), Some(json!("b")));
        assert_eq!(row.remove("ip"), Some(json!("c")));
        assert!(row.is_empty());
    }

    #[test]
    fn known_columns_are_not_allocated() {
        let row: Row = [("signal_alias", json!("s")), ("my_note", json!("x"))]
            .into_iter()
            .collect();
        let kinds: Vec<bool> = row
            .cells
            .iter()
            .map(|(c, _)| matches!(c, Cow::Borrowed(_)))
            .collect();
        assert_eq!(kinds, [false, true]);
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(serde_json::from_str::<Row>("[1,2]").is_err());
        assert!(serde_json::from_str::<Row>("\"x\"").is_err());
    }
}
