//! Column conventions shared by every protocol: the unit suffix of duration columns, the
//! renamed columns still read under their old names, and the column reference
//! (`docs/config-columns.md`) generated from what the readers actually read.
//!
//! # Units
//! A duration column carries its unit as the last part of its name: `_s` (seconds) or `_ms`
//! (milliseconds), e.g. `poll_interval_ms`, `t1_s`, `command_max_age_ms`. The IEC 104
//! timers are `t0_s`..`t3_s` (the standard's names with the suffix), so no duration column
//! needs its unit looked up. A column renamed to follow this is still read under its old
//! name (see [`RENAMED`]) with a deprecation warning naming the new one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cell::IntColumn;
use crate::error::Section;
use crate::Protocol;

/// `command_max_age_ms`: a command whose `out` value is older than this is refused, never
/// sent late. One column, unit and range for every protocol that takes commands.
pub const COMMAND_MAX_AGE_MS: IntColumn = IntColumn {
    name: "command_max_age_ms",
    min: 1,
    max: 3_600_000,
    default: Some(10_000),
};

/// Two column lists as one (`N` = the sum of their lengths), for a protocol whose columns
/// include a list another module owns (the IEC 104 TLS columns).
// Evaluated at compile time only (const items): an index out of bounds or an `N` that is not
// the sum fails the build, never a run.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
pub(crate) const fn concat<const N: usize>(
    a: &[&'static str],
    b: &[&'static str],
) -> [&'static str; N] {
    assert!(a.len() + b.len() == N, "N must be the sum of the lengths");
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// A column renamed to carry its unit; the old name is still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renamed {
    /// The name older workbooks use.
    pub old: &'static str,
    /// The name the readers ask for.
    pub new: &'static str,
    /// The protocols whose rows this applies to.
    pub protocols: &'static [Protocol],
    /// The old cell's value times this is the new column's (1000 for seconds -> ms).
    pub factor: i64,
}

const IEC: &[Protocol] = &[Protocol::Iec104Master];
const MQTT: &[Protocol] = &[Protocol::Mqtt];
const IEC_MQTT: &[Protocol] = &[Protocol::Iec104Master, Protocol::Mqtt];

/// Every renamed column (old -> new).
pub const RENAMED: &[Renamed] = &[
    Renamed {
        old: "t0",
        new: "t0_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "t1",
        new: "t1_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "t2",
        new: "t2_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "t3",
        new: "t3_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "gi_interval",
        new: "gi_interval_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "clock_sync_interval",
        new: "clock_sync_interval_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "counter_interrogation_interval",
        new: "counter_interrogation_interval_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "command_timeout",
        new: "command_timeout_s",
        protocols: IEC,
        factor: 1,
    },
    Renamed {
        old: "command_timeout",
        new: "command_result_timeout_s",
        protocols: MQTT,
        factor: 1,
    },
    Renamed {
        old: "command_max_age",
        new: "command_max_age_ms",
        protocols: IEC_MQTT,
        factor: 1000,
    },
    Renamed {
        old: "keepalive",
        new: "keepalive_s",
        protocols: MQTT,
        factor: 1,
    },
];

/// The old name of a column of a protocol, if it was renamed.
pub fn renamed_from(protocol: Protocol, new: &str) -> Option<&'static Renamed> {
    RENAMED
        .iter()
        .find(|r| r.new == new && r.protocols.contains(&protocol))
}

/// The rename of an old column name in a protocol, if it is one.
pub fn renamed_to(protocol: Protocol, old: &str) -> Option<&'static Renamed> {
    RENAMED
        .iter()
        .find(|r| r.old == old && r.protocols.contains(&protocol))
}

/// Renames the old columns of device rows to their new names, the value multiplied by
/// the rename's factor, as the deprecation warnings ask (what `config export` writes). A row
/// that has both keeps the new cell and loses the old one; an old cell that is not an
/// integer while a factor applies is left for validation to report. Returns how many cells
/// were renamed or dropped.
pub fn upgrade_columns(devices: &mut [crate::Row]) -> usize {
    let mut changed: usize = 0;
    for row in devices {
        let Some(protocol) = row
            .get("protocol")
            .and_then(crate::cell_text)
            .and_then(|p| p.parse::<Protocol>().ok())
        else {
            continue;
        };
        for r in RENAMED.iter().filter(|r| r.protocols.contains(&protocol)) {
            let Some(old) = row.get(r.old).cloned() else {
                continue;
            };
            let has_new = row.get(r.new).is_some_and(crate::cell::is_present);
            let value = if has_new || !crate::cell::is_present(&old) {
                None
            } else if r.factor == 1 {
                Some(old)
            } else {
                match crate::cell_int(&old).and_then(|n| n.checked_mul(r.factor)) {
                    Some(n) => Some(serde_json::Value::from(n)),
                    None => continue,
                }
            };
            row.remove(r.old);
            if let Some(v) = value {
                row.insert(r.new.to_owned(), v);
            }
            changed = changed.saturating_add(1);
        }
    }
    changed
}

/// The unit of a column, from its name's suffix (and the few non-duration units).
pub fn unit_of(column: &str) -> &'static str {
    if column.ends_with("_ms") {
        "ms"
    } else if column.ends_with("_s") {
        "s"
    } else {
        match column {
            "baudrate" => "bit/s",
            "max_gap" => "registers or bits",
            "data_bits" | "stop_bits" | "bit" => "bits",
            "tls_expiry_warning_days" => "days",
            _ => "",
        }
    }
}

/// How a reader read a column: its accepted values and its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ColumnUse {
    pub range: String,
    pub default: String,
}

type Recorded = BTreeMap<(Section, &'static str, Option<Protocol>), ColumnUse>;

thread_local! {
    /// Set while [`column_reference`] runs the readers: what each column read looked like.
    static RECORDING: RefCell<Option<Recorded>> = const { RefCell::new(None) };
}

/// Records one read of a column (only while the reference is generated; otherwise nothing).
/// Later reads of the same column refine what is known (a default on top of a range).
pub(crate) fn record(
    section: Section,
    protocol: Option<Protocol>,
    column: &'static str,
    usage: impl FnOnce() -> (Option<String>, Option<String>),
) {
    RECORDING.with(|cell| {
        if let Some(map) = cell.borrow_mut().as_mut() {
            let (range, default) = usage();
            let usage = map.entry((section, column, protocol)).or_default();
            if let Some(r) = range {
                usage.range = r;
            }
            if let Some(d) = default {
                usage.default = d;
            }
        }
    });
}

/// One row per protocol on each sheet, with the columns a reader needs to read every
/// column (the IEC 104 point needs a type; the MQTT and slave signals a source that exists).
const REFERENCE_ROWS: &str = r#"{
  "devices": [
    {"name": "m", "device_alias": "m", "protocol": "mqtt", "ip": "h"},
    {"name": "i", "device_alias": "i", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
    {"name": "r", "device_alias": "r", "protocol": "modbus-rtu", "serial_port": "/dev/x", "modbus_id": 1},
    {"name": "t", "device_alias": "t", "protocol": "modbus-tcp", "ip": "h"},
    {"name": "s", "device_alias": "s", "protocol": "iec104-slave", "asdu_address": 1}
  ],
  "signals": [
    {"device_alias": "i", "signal_alias": "i", "info_address": 1, "type_id": 1},
    {"device_alias": "r", "signal_alias": "r", "function": 3, "address": 0},
    {"device_alias": "t", "signal_alias": "t", "function": 3, "address": 0},
    {"device_alias": "m", "signal_alias": "m", "source_device_alias": "i", "source_signal_alias": "i"},
    {"device_alias": "s", "signal_alias": "s", "source_device_alias": "i", "source_signal_alias": "i", "info_address": 1, "type_id": 1}
  ]
}"#;

/// What validation reads, recorded while it runs on [`REFERENCE_ROWS`]: per sheet, column
/// and protocol (None: before the row's protocol is known), the accepted values and default.
fn recorded() -> Recorded {
    RECORDING.with(|cell| *cell.borrow_mut() = Some(BTreeMap::new()));
    if let Ok(raw) = crate::RawConfig::parse(REFERENCE_ROWS) {
        let _ = crate::validate(&raw);
    }
    RECORDING.with(|cell| cell.borrow_mut().take().unwrap_or_default())
}

/// One line of the reference: a column as one or more protocols read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReferenceRow {
    pub section: Section,
    pub column: &'static str,
    /// Empty for a column every row of the sheet has.
    pub protocols: Vec<Protocol>,
    pub usage: ColumnUse,
}

/// The columns validation reads: a column read alike by several protocols is one row.
pub(crate) fn reference_rows() -> Vec<ReferenceRow> {
    let mut rows: Vec<ReferenceRow> = Vec::new();
    for ((section, column, protocol), usage) in recorded() {
        let common = match section {
            Section::Signals => crate::SIGNAL_COMMON_COLUMNS,
            _ => crate::DEVICE_COMMON_COLUMNS,
        };
        let protocol = protocol.filter(|_| !common.contains(&column));
        match rows
            .iter_mut()
            .find(|r| r.section == section && r.column == column && r.usage == usage)
        {
            Some(r) => {
                if let Some(p) = protocol.filter(|p| !r.protocols.contains(p)) {
                    r.protocols.push(p);
                }
            }
            None => rows.push(ReferenceRow {
                section,
                column,
                protocols: protocol.into_iter().collect(),
                usage,
            }),
        }
    }
    for r in &mut rows {
        r.protocols.sort();
    }
    // The common columns first (in the sheet's order), then by protocol and column.
    let rank = |r: &ReferenceRow| {
        let common = match r.section {
            Section::Signals => crate::SIGNAL_COMMON_COLUMNS,
            _ => crate::DEVICE_COMMON_COLUMNS,
        };
        let at = common
            .iter()
            .position(|c| *c == r.column)
            .unwrap_or(usize::MAX);
        (
            r.section,
            !r.protocols.is_empty(),
            at,
            r.protocols.clone(),
            r.column,
        )
    };
    rows.sort_by_key(rank);
    rows
}

fn protocol_list(protocols: &[Protocol]) -> String {
    protocols
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The column reference in Markdown: every column of the `Devices` and `Signals` sheets with
/// its protocols, unit, accepted values and default, generated from the readers themselves
/// (kept in `docs/config-columns.md`; a test fails when that file is stale).
pub fn column_reference() -> String {
    let rows = reference_rows();
    let mut out = String::from(
        "# Configuration columns\n\n\
         Generated from the configuration readers (`crates/config`) by recording what\n\
         validation reads; do not edit by hand. Regenerate with\n\
         `UPDATE_DOCS=1 cargo test -p fieldbridge-config --test columns`.\n\n\
         Durations carry their unit in the column name (`_s`, `_ms`). A column without a\n\
         protocol is on every row of its sheet. An empty cell is an absent one: its default\n\
         applies (an empty default: the column is optional and off, or computed as the\n\
         protocol's section of the README says). A column several protocols read differently\n\
         has one line per reading.\n",
    );
    for (section, title) in [(Section::Devices, "Devices"), (Section::Signals, "Signals")] {
        let _ = write!(
            out,
            "\n## {title}\n\n| Column | Protocols | Unit | Accepted | Default |\n|---|---|---|---|---|\n"
        );
        for r in rows.iter().filter(|r| r.section == section) {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                r.column,
                protocol_list(&r.protocols),
                unit_of(r.column),
                r.usage.range.replace('|', "\\|"),
                r.usage.default.replace('|', "\\|"),
            );
        }
    }
    out.push_str(
        "\n## Renamed columns\n\nStill read under the old name, with a warning naming the new \
         one; the old cell's value is multiplied by the factor.\n\n\
         | Old | New | Protocols | Factor |\n|---|---|---|---|\n",
    );
    for r in RENAMED {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            r.old,
            r.new,
            protocol_list(r.protocols),
            r.factor
        );
    }
    let names = |types: &[iec60870::TypeId]| {
        types
            .iter()
            .map(|t| format!("`{}`", t.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        out,
        "\n## IEC 104 slave rows\n\nMonitor types: {}.\n\nCommand types: {}.\n\n{}",
        names(crate::iec104_slave::MONITOR_TYPES),
        names(crate::iec104_slave::COMMAND_TYPES),
        crate::iec104_slave::REFERENCE
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::time::Duration;

    use super::*;
    use crate::{device_columns, signal_columns, upgrade_columns, validate, DeviceKind, RawConfig};

    #[test]
    fn the_reference_lists_exactly_the_declared_columns() {
        let rows = reference_rows();
        for p in Protocol::ALL {
            for (section, declared) in [
                (Section::Devices, device_columns(p)),
                (Section::Signals, signal_columns(p)),
            ] {
                let mut read: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.section == section && r.protocols.contains(&p))
                    .map(|r| r.column)
                    .collect();
                read.sort_unstable();
                read.dedup();
                let mut declared = declared.to_vec();
                declared.sort_unstable();
                assert_eq!(read, declared, "{p} {section:?}");
            }
        }
        for r in RENAMED {
            for p in r.protocols {
                assert!(device_columns(*p).contains(&r.new), "{} in {p}", r.new);
                assert!(!device_columns(*p).contains(&r.old), "{} in {p}", r.old);
            }
        }
    }

    #[test]
    fn durations_carry_their_unit() {
        for r in reference_rows() {
            let duration = r.column.split('_').any(|part| {
                [
                    "timeout",
                    "interval",
                    "age",
                    "delay",
                    "keepalive",
                    "t0",
                    "t1",
                    "t2",
                    "t3",
                ]
                .contains(&part)
            });
            if duration {
                assert!(!unit_of(r.column).is_empty(), "{}", r.column);
            }
        }
    }

    #[test]
    fn upgrading_renames_old_columns_and_keeps_the_meaning() {
        let text = r#"{"devices": [
            {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h",
             "asdu_address": 1, "t1": 20, "command_max_age": 4, "command_timeout": ""},
            {"name": "M", "device_alias": "m", "protocol": "mqtt", "ip": "b",
             "command_max_age": 2, "command_max_age_ms": 1500, "t1": 3}
        ], "signals": []}"#;
        let before = validate(&RawConfig::parse(text).unwrap());
        let mut raw = RawConfig::parse(text).unwrap();
        assert_eq!(upgrade_columns(&mut raw.devices), 4);
        assert_eq!(raw.devices[0]["t1_s"], serde_json::json!(20));
        assert_eq!(
            raw.devices[0]["command_max_age_ms"],
            serde_json::json!(4000)
        );
        assert!(!raw.devices[0].contains_key("command_timeout"));
        assert_eq!(
            raw.devices[1]["command_max_age_ms"],
            serde_json::json!(1500)
        );
        assert!(!raw.devices[1].contains_key("command_max_age"));
        // t1 is no MQTT column: left alone (validation warns about it).
        assert_eq!(raw.devices[1]["t1"], serde_json::json!(3));
        let after = validate(&raw);
        assert_eq!(before.config, after.config);
        assert_eq!(after.warnings.len(), 1, "{:?}", after.warnings);
    }

    #[test]
    fn old_names_are_read_with_a_warning_naming_the_new_one() {
        let raw = RawConfig::parse(
            r#"{"devices": [
                {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h",
                 "asdu_address": 1, "t1": 20, "t3": 30, "gi_interval": 60,
                 "command_timeout": 7, "command_max_age": 4},
                {"name": "M", "device_alias": "m", "protocol": "mqtt", "ip": "b",
                 "keepalive": 30, "command_timeout": 9, "command_max_age": 2,
                 "command_max_age_ms": 1500}
            ], "signals": []}"#,
        )
        .unwrap();
        let v = validate(&raw);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let DeviceKind::Iec104Master(i) = &v.config.devices[0].kind else {
            panic!()
        };
        assert_eq!(
            (i.link.t1, i.link.t3),
            (Duration::from_secs(20), Duration::from_secs(30))
        );
        assert_eq!(
            i.gi_interval.map(crate::iec104::Interval::duration),
            Some(Duration::from_secs(60))
        );
        assert_eq!(i.command_timeout, Duration::from_secs(7));
        assert_eq!(i.command_max_age, Duration::from_millis(4000));
        let DeviceKind::Mqtt(m) = &v.config.devices[1].kind else {
            panic!()
        };
        assert_eq!(m.keepalive, Duration::from_secs(30));
        assert_eq!(m.commands.timeout, Duration::from_secs(9));
        // The new name wins over the old one.
        assert_eq!(m.commands.max_age, Duration::from_millis(1500));
        let warnings: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 8, "{warnings:?}");
        for (old, new) in [
            ("t1", "t1_s"),
            ("gi_interval", "gi_interval_s"),
            ("command_max_age", "command_max_age_ms"),
            ("command_timeout", "command_result_timeout_s"),
            ("keepalive", "keepalive_s"),
        ] {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(&format!("column {old} is deprecated")) && w.contains(new)),
                "{old}: {warnings:?}"
            );
        }
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("ignored: command_max_age_ms is set")),
            "{warnings:?}"
        );

        // An old cell out of range is reported at the old column, in the new unit.
        let raw = RawConfig::parse(
            r#"{"devices": [{"name": "M", "device_alias": "m", "protocol": "mqtt", "ip": "b",
                 "command_max_age": 7200}], "signals": []}"#,
        )
        .unwrap();
        let errors: Vec<String> = validate(&raw)
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("command_max_age:"), "{errors:?}");
        assert!(
            errors[0].contains("7200000 is out of range 1..=3600000"),
            "{errors:?}"
        );
    }
}
