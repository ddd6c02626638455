//! Report-by-exception settings of an MQTT signal row: `deadband`, `deadband_percent` and
//! the heartbeat `max_interval_s`. What the columns mean lives here; the publisher's filter
//! (`mqtt-client`, `report.rs`) applies them, next to the device's `enable_threshold`.
//!
//! - `deadband` (engineering units, >= 0): a value whose distance to the **last value sent**
//!   on the topic is at most the band (`|new - last| <= deadband`) is held back; 0 holds back
//!   only an unchanged value.
//! - `deadband_percent` (0..=100): the band is that percentage of the last sent value's
//!   magnitude, `deadband_percent / 100 * |last|`. At a last value of 0 the band is 0: any
//!   change is sent. MQTT signal rows carry no engineering range, so the band is relative to
//!   the value, never to a span. Setting both columns is an error (one band per signal).
//!   A deadband whose source is a state (IEC 104 single, double, packed single points,
//!   bitstrings; a Modbus bool) is an error: a state change is never held back.
//! - `max_interval_s` (1..=86400): a topic with nothing sent for this long gets its latest
//!   value again (a heartbeat), unchanged: the value, timestamp and flags as received.
//!
//! The band is measured from the last value **sent**, not the last received, so a slow drift
//! goes out once it leaves the band. A flag (quality) change always goes out, and so does
//! the first value of a topic on every connection (the snapshot after each connect).
//! Non-finite values (NaN, infinities) are always sent.

use std::collections::HashMap;
use std::time::Duration;

use iec60870::TypeId;

use crate::cell::RowReader;
use crate::error::{ConfigError, ConfigPath, Section};
use crate::model::{Protocol, Signal, SignalKind};

/// How far a value must move from the last value sent to be sent again.
#[derive(Debug, Clone, Copy)]
pub enum Deadband {
    /// `deadband`: in the value's engineering units.
    Absolute(f64),
    /// `deadband_percent`: percent of the last sent value's magnitude.
    Percent(f64),
}

impl Deadband {
    /// The half-width of the band around `last` (the last value sent): a value within it is
    /// held back.
    pub fn band(self, last: f64) -> f64 {
        match self {
            Deadband::Absolute(d) => d,
            Deadband::Percent(p) => p / 100.0 * last.abs(),
        }
    }

    /// Whether `new` is within the band around `last`. NaN and infinities are never within.
    pub fn holds_back(self, last: f64, new: f64) -> bool {
        last.is_finite() && new.is_finite() && (new - last).abs() <= self.band(last)
    }
}

impl PartialEq for Deadband {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Deadband::Absolute(a), Deadband::Absolute(b))
            | (Deadband::Percent(a), Deadband::Percent(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

/// Validated once: finite and not negative (and `-0.0` is stored as `0.0`).
impl Eq for Deadband {}

/// The report-by-exception settings of one MQTT signal (all off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reporting {
    pub deadband: Option<Deadband>,
    /// `max_interval_s`: the heartbeat.
    pub max_interval: Option<Duration>,
}

impl Reporting {
    /// Whether either setting is on.
    pub fn is_on(&self) -> bool {
        self.deadband.is_some() || self.max_interval.is_some()
    }
}

/// The largest `max_interval_s`: one day.
pub const MAX_INTERVAL_S: i64 = 86_400;

/// Reads the columns of a signal row; None when a cell is wrong (the error is recorded).
pub(crate) fn read(r: &mut RowReader<'_>) -> Option<Reporting> {
    let absolute = r.opt_float("deadband", 0.0, f64::INFINITY);
    let percent = r.opt_float("deadband_percent", 0.0, 100.0);
    let interval = r.opt_int("max_interval_s", 1, MAX_INTERVAL_S);
    let deadband = match (absolute.ok()?, percent.ok()?) {
        (Some(_), Some(_)) => {
            r.error(
                Some("deadband_percent"),
                "set deadband or deadband_percent, not both",
            );
            return None;
        }
        (Some(d), None) => Some(Deadband::Absolute(d + 0.0)),
        (None, Some(p)) => Some(Deadband::Percent(p + 0.0)),
        (None, None) => None,
    };
    let max_interval = interval
        .ok()?
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(1)));
    Some(Reporting {
        deadband,
        max_interval,
    })
}

/// Whether a field signal carries a state, not a measurement: IEC 104 single, double and
/// packed single points and bitstrings, a Modbus bool.
fn is_state(kind: &SignalKind) -> Option<&'static str> {
    match kind {
        SignalKind::Iec104(s) => s.type_id.map(TypeId::without_time).and_then(|t| {
            matches!(
                t,
                TypeId::M_SP_NA_1 | TypeId::M_DP_NA_1 | TypeId::M_PS_NA_1 | TypeId::M_BO_NA_1
            )
            .then(|| t.name())
        }),
        SignalKind::Modbus(m) if m.data_type == crate::modbus::DataType::Bool => Some("a bool"),
        _ => None,
    }
}

/// A deadband whose source is a state is an error at its cell: a state change (a breaker
/// opening: 0 -> 1) must never be held back, and a band below 1 would hold back nothing.
pub(crate) fn check_state_sources(signals: &[Signal], errors: &mut Vec<ConfigError>) {
    let banded = |s: &&Signal| match &s.kind {
        SignalKind::Mqtt(m) => m.report.deadband.is_some(),
        _ => false,
    };
    if !signals.iter().any(|s| banded(&s)) {
        return;
    }
    let sources: HashMap<(&str, &str), &SignalKind> = signals
        .iter()
        .map(|s| ((s.device.as_str(), s.alias.as_str()), &s.kind))
        .collect();
    for s in signals.iter().filter(banded) {
        let SignalKind::Mqtt(m) = &s.kind else {
            continue;
        };
        let key = (m.source.device.as_str(), m.source.signal.as_str());
        let Some(state) = sources.get(&key).and_then(|k| is_state(k)) else {
            continue;
        };
        let column = match m.report.deadband {
            Some(Deadband::Percent(_)) => "deadband_percent",
            _ => "deadband",
        };
        errors.push(ConfigError {
            path: ConfigPath::row(Section::Signals, s.index, Some(column)),
            protocol: Some(Protocol::Mqtt),
            message: format!(
                "its source {}/{} is a state ({state}): state changes are never held back, remove the deadband",
                m.source.device, m.source.signal
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{validate, Applet, RawConfig, SignalKind};

    fn rows(cells: &[&str]) -> String {
        let signals: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    r#"{{"signal_name": "x", "device_alias": "c", "signal_alias": "s{i}", "source_device_alias": "r", "source_signal_alias": "x"{c}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"devices": [
                {{"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h", "asdu_address": 1}},
                {{"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b"}}
            ], "signals": [
                {{"signal_name": "x", "device_alias": "r", "signal_alias": "x", "info_address": 1, "type_id": "M_ME_NC_1"}},
                {}
            ]}}"#,
            signals.join(",\n")
        )
    }

    /// The MQTT errors of a config: (signal row, column, message).
    fn cell_errors(text: &str) -> Vec<(usize, String, String)> {
        let v = validate(&RawConfig::parse(text).unwrap());
        v.errors_for(Applet::MqttClient)
            .iter()
            .map(|e| {
                (
                    e.path.index.unwrap(),
                    e.path.column.clone().unwrap_or_default(),
                    e.message.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn columns_are_read_and_bands_follow_their_definition() {
        let text = rows(&[
            "",
            r#", "deadband": 0.5, "max_interval_s": 60"#,
            r#", "deadband_percent": "2""#,
            r#", "deadband": 0"#,
        ]);
        let v = validate(&RawConfig::parse(&text).unwrap());
        assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:?}");
        let got: Vec<Reporting> = v
            .config
            .signals
            .iter()
            .filter_map(|s| match &s.kind {
                SignalKind::Mqtt(m) => Some(m.report),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                Reporting::default(),
                Reporting {
                    deadband: Some(Deadband::Absolute(0.5)),
                    max_interval: Some(Duration::from_secs(60)),
                },
                Reporting {
                    deadband: Some(Deadband::Percent(2.0)),
                    max_interval: None,
                },
                Reporting {
                    deadband: Some(Deadband::Absolute(0.0)),
                    max_interval: None,
                },
            ]
        );
        assert!(!got[0].is_on() && got[1].is_on());

        let abs = Deadband::Absolute(0.5);
        assert!(abs.holds_back(10.0, 10.5) && abs.holds_back(10.0, 9.5));
        assert!(!abs.holds_back(10.0, 10.51) && !abs.holds_back(10.0, 9.49));
        let pct = Deadband::Percent(2.0);
        assert_eq!(pct.band(-200.0), 4.0);
        assert!(pct.holds_back(-200.0, -196.0) && !pct.holds_back(-200.0, -195.9));
        assert!(pct.holds_back(0.0, 0.0) && pct.holds_back(0.0, -0.0));
        assert!(!pct.holds_back(0.0, 1e-9), "at 0 any change is sent");
        let zero = Deadband::Absolute(0.0);
        assert!(zero.holds_back(3.0, 3.0) && !zero.holds_back(3.0, 3.000_001));
        for odd in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!abs.holds_back(1.0, odd) && !abs.holds_back(odd, 1.0));
            assert!(!pct.holds_back(1.0, odd) && !pct.holds_back(odd, 1.0));
        }
        assert!(!Deadband::Absolute(f64::MAX).holds_back(f64::INFINITY, f64::INFINITY));
    }

    #[test]
    fn wrong_cells_are_errors_at_their_cell() {
        let text = rows(&[
            r#", "deadband": -1"#,
            r#", "deadband_percent": 101"#,
            r#", "deadband": 1, "deadband_percent": 5"#,
            r#", "max_interval_s": 0"#,
            r#", "deadband": "much""#,
        ]);
        let got = cell_errors(&text);
        let expected = [
            (1, "deadband", "-1 is out of range >= 0"),
            (2, "deadband_percent", "101 is out of range 0..=100"),
            (
                3,
                "deadband_percent",
                "set deadband or deadband_percent, not both",
            ),
            (4, "max_interval_s", "0 is out of range 1..=86400"),
            (5, "deadband", "expected a number, got \"much\""),
        ]
        .map(|(i, c, m)| (i, c.to_owned(), m.to_owned()));
        assert_eq!(got, expected);
    }

    #[test]
    fn a_deadband_on_a_state_is_refused() {
        let text = r#"{"devices": [
            {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
            {"name": "M", "device_alias": "m", "protocol": "modbus-tcp", "ip": "h"},
            {"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b"}
        ], "signals": [
            {"signal_name": "c1", "device_alias": "c", "signal_alias": "a", "source_device_alias": "r", "source_signal_alias": "sp", "deadband": 1},
            {"signal_name": "c2", "device_alias": "c", "signal_alias": "b", "source_device_alias": "r", "source_signal_alias": "dp", "deadband_percent": 5},
            {"signal_name": "c3", "device_alias": "c", "signal_alias": "c", "source_device_alias": "m", "source_signal_alias": "coil", "deadband": 0.5},
            {"signal_name": "c4", "device_alias": "c", "signal_alias": "d", "source_device_alias": "r", "source_signal_alias": "me", "deadband": 1},
            {"signal_name": "c5", "device_alias": "c", "signal_alias": "e", "source_device_alias": "r", "source_signal_alias": "sp", "max_interval_s": 60},
            {"signal_name": "sp", "device_alias": "r", "signal_alias": "sp", "info_address": 1, "type_id": "M_SP_TB_1"},
            {"signal_name": "dp", "device_alias": "r", "signal_alias": "dp", "info_address": 2, "type_id": 3},
            {"signal_name": "me", "device_alias": "r", "signal_alias": "me", "info_address": 3, "type_id": "M_ME_NC_1"},
            {"signal_name": "coil", "device_alias": "m", "signal_alias": "coil", "function": 1, "address": 0}
        ]}"#;
        let got = cell_errors(text);
        let msg = |src: &str, state: &str| {
            format!("its source {src} is a state ({state}): state changes are never held back, remove the deadband")
        };
        assert_eq!(
            got,
            [
                (0, "deadband".to_owned(), msg("r/sp", "M_SP_NA_1")),
                (1, "deadband_percent".to_owned(), msg("r/dp", "M_DP_NA_1")),
                (2, "deadband".to_owned(), msg("m/coil", "a bool")),
            ]
        );
    }
}
