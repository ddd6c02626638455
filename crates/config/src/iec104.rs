//! The IEC 60870-5-104 master part: outstations (`protocol: iec104-master`) and their points.
//! Times are in the unit their column names end in (`t0_s`-`t3_s`, the `_interval_s`
//! columns, `command_timeout_s`, `command_max_age_ms`); an interval of 0 is off.

use std::time::Duration;

use crate::cell::RowReader;

/// Device columns of the IEC 104 master.
pub const DEVICE_COLUMNS: &[&str] = &[
    "ip",
    "port",
    "asdu_address",
    "originator_address",
    "cot_size",
    "ca_size",
    "ioa_size",
    "k",
    "w",
    "t0_s",
    "t1_s",
    "t2_s",
    "t3_s",
    "gi_interval_s",
    "clock_sync_interval_s",
    "counter_interrogation_interval_s",
    "command_timeout_s",
    "command_max_age_ms",
];

/// Signal columns of the IEC 104 master.
pub const SIGNAL_COLUMNS: &[&str] = &[
    "info_address",
    "type_id",
    "multiplier",
    "offset",
    "command_type",
    "select_before_operate",
    "qualifier",
];

/// The standard type identifications the gateway knows: (number, name).
pub const TYPE_IDS: &[(u8, &str)] = &[
    (1, "M_SP_NA_1"),
    (2, "M_SP_TA_1"),
    (3, "M_DP_NA_1"),
    (4, "M_DP_TA_1"),
    (5, "M_ST_NA_1"),
    (6, "M_ST_TA_1"),
    (7, "M_BO_NA_1"),
    (8, "M_BO_TA_1"),
    (9, "M_ME_NA_1"),
    (10, "M_ME_TA_1"),
    (11, "M_ME_NB_1"),
    (12, "M_ME_TB_1"),
    (13, "M_ME_NC_1"),
    (14, "M_ME_TC_1"),
    (15, "M_IT_NA_1"),
    (16, "M_IT_TA_1"),
    (17, "M_EP_TA_1"),
    (18, "M_EP_TB_1"),
    (19, "M_EP_TC_1"),
    (20, "M_PS_NA_1"),
    (21, "M_ME_ND_1"),
    (30, "M_SP_TB_1"),
    (31, "M_DP_TB_1"),
    (32, "M_ST_TB_1"),
    (33, "M_BO_TB_1"),
    (34, "M_ME_TD_1"),
    (35, "M_ME_TE_1"),
    (36, "M_ME_TF_1"),
    (37, "M_IT_TB_1"),
    (38, "M_EP_TD_1"),
    (39, "M_EP_TE_1"),
    (40, "M_EP_TF_1"),
    (45, "C_SC_NA_1"),
    (46, "C_DC_NA_1"),
    (47, "C_RC_NA_1"),
    (48, "C_SE_NA_1"),
    (49, "C_SE_NB_1"),
    (50, "C_SE_NC_1"),
    (51, "C_BO_NA_1"),
    (58, "C_SC_TA_1"),
    (59, "C_DC_TA_1"),
    (60, "C_RC_TA_1"),
    (61, "C_SE_TA_1"),
    (62, "C_SE_TB_1"),
    (63, "C_SE_TC_1"),
    (64, "C_BO_TA_1"),
];

/// A type identification from [`TYPE_IDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IecTypeId(u8);

impl IecTypeId {
    /// From its number, if the gateway knows it.
    pub fn from_number(n: u8) -> Option<Self> {
        TYPE_IDS.iter().any(|(k, _)| *k == n).then_some(Self(n))
    }
    /// From its name (`M_ME_NC_1`, case-insensitive) or its number as text (`13`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u8>() {
            return Self::from_number(n);
        }
        TYPE_IDS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|(n, _)| Self(*n))
    }
    /// The number.
    pub fn number(self) -> u8 {
        self.0
    }
    /// The standard name.
    pub fn name(self) -> &'static str {
        TYPE_IDS
            .iter()
            .find(|(k, _)| *k == self.0)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
    /// A monitor-direction type (1-40).
    pub fn is_monitor(self) -> bool {
        self.0 <= 40
    }
    /// A command type (45-64).
    pub fn is_command(self) -> bool {
        (45..=64).contains(&self.0)
    }
}

/// An outstation the master connects to.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104Device {
    /// `ip`: one address, or several (comma/space separated) of a redundant outstation,
    /// tried in turn.
    pub hosts: Vec<String>,
    pub port: u16,
    /// `asdu_address`: the common address of the station.
    pub common_address: u16,
    pub originator_address: u8,
    pub cot_size: u8,
    pub ca_size: u8,
    pub ioa_size: u8,
    pub k: u16,
    pub w: u16,
    pub t0: Duration,
    pub t1: Duration,
    pub t2: Duration,
    pub t3: Duration,
    /// Periodic general interrogation (None: only after each connect).
    pub gi_interval: Option<Duration>,
    /// Clock sync after connect and periodically (None: never).
    pub clock_sync_interval: Option<Duration>,
    /// Periodic counter interrogation (None: never).
    pub counter_interrogation_interval: Option<Duration>,
    /// How long to wait for a command's confirmation.
    pub command_timeout: Duration,
    /// A command whose `out` value is older than this is refused, never sent late.
    pub command_max_age: Duration,
}

/// How a signal's commands are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iec104Command {
    pub type_id: IecTypeId,
    pub select_before_operate: bool,
    /// QU (0-31) of single/double/step commands, QL (0-127) of set-points.
    pub qualifier: u8,
}

/// A point of an outstation.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104Signal {
    /// `info_address`: the information object address.
    pub ioa: u32,
    /// The monitor type received (None for a command-only signal).
    pub type_id: Option<IecTypeId>,
    /// Engineering value = raw * multiplier + offset.
    pub multiplier: f64,
    pub offset: f64,
    /// Set when the signal is writable (type_id is a command, or command_type is set).
    pub command: Option<Iec104Command>,
}

fn secs(
    r: &mut RowReader<'_>,
    column: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Option<Duration> {
    r.int_or(column, default, min, max)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_secs)
}

fn interval(r: &mut RowReader<'_>, column: &'static str) -> Option<Option<Duration>> {
    secs(r, column, 0, 0, 31 * 24 * 3600).map(|d| (!d.is_zero()).then_some(d))
}

pub(crate) fn read_device(r: &mut RowReader<'_>) -> Option<Iec104Device> {
    let hosts: Option<Vec<String>> = r.req_string("ip").map(|s| {
        s.split([',', ';', ' '])
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect()
    });
    if hosts.as_ref().is_some_and(Vec::is_empty) {
        r.error(Some("ip"), "no address");
    }
    let port = r.int_or("port", 2404, 1, 65_535);
    let ca_size = r.int_or("ca_size", 2, 1, 2);
    let ca_max = if ca_size == Some(1) { 255 } else { 65_535 };
    let common_address = r.req_int("asdu_address", 0, ca_max);
    let originator_address = r.int_or("originator_address", 0, 0, 255);
    let cot_size = r.int_or("cot_size", 2, 1, 2);
    let ioa_size = r.int_or("ioa_size", 3, 1, 3);
    let k = r.int_or("k", 12, 1, 32_767);
    let w = r.int_or("w", 8, 1, 32_767);
    if let (Some(k), Some(w)) = (k, w) {
        if w > k {
            r.error(Some("w"), format!("w ({w}) must not exceed k ({k})"));
        }
    }
    let t0 = secs(r, "t0_s", 30, 1, 255);
    let t1 = secs(r, "t1_s", 15, 1, 255);
    let t2 = secs(r, "t2_s", 10, 1, 255);
    let t3 = secs(r, "t3_s", 20, 1, 172_800);
    if let (Some(t1), Some(t2)) = (t1, t2) {
        if t2 >= t1 {
            r.error(
                Some("t2_s"),
                format!(
                    "t2_s ({}) must be less than t1_s ({})",
                    t2.as_secs(),
                    t1.as_secs()
                ),
            );
        }
    }
    let gi_interval = interval(r, "gi_interval_s");
    let clock_sync_interval = interval(r, "clock_sync_interval_s");
    let counter_interrogation_interval = interval(r, "counter_interrogation_interval_s");
    let command_timeout = secs(r, "command_timeout_s", 10, 1, 600);
    let command_max_age = r
        .int(&crate::columns::COMMAND_MAX_AGE_MS)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_millis);
    Some(Iec104Device {
        hosts: hosts.filter(|h| !h.is_empty())?,
        port: u16::try_from(port?).ok()?,
        common_address: u16::try_from(common_address?).ok()?,
        originator_address: u8::try_from(originator_address?).ok()?,
        cot_size: u8::try_from(cot_size?).ok()?,
        ca_size: u8::try_from(ca_size?).ok()?,
        ioa_size: u8::try_from(ioa_size?).ok()?,
        k: u16::try_from(k?).ok()?,
        w: u16::try_from(w?).ok()?,
        t0: t0?,
        t1: t1?,
        t2: t2?,
        t3: t3?,
        gi_interval: gi_interval?,
        clock_sync_interval: clock_sync_interval?,
        counter_interrogation_interval: counter_interrogation_interval?,
        command_timeout: command_timeout?,
        command_max_age: command_max_age?,
    })
}

fn type_id(r: &mut RowReader<'_>, column: &'static str) -> Option<Option<IecTypeId>> {
    let Some(s) = r.opt_string(column) else {
        return Some(None);
    };
    match IecTypeId::parse(&s) {
        Some(t) => Some(Some(t)),
        None => {
            r.error(
                Some(column),
                format!("{s:?} is not a known type identification (e.g. M_SP_NA_1 or 1)"),
            );
            None
        }
    }
}

/// Reads a point; `ioa_size` is its device's (3 when the device row itself is invalid).
pub(crate) fn read_signal(r: &mut RowReader<'_>, ioa_size: u8) -> Option<Iec104Signal> {
    let ioa_max = match ioa_size {
        1 => 255,
        2 => 65_535,
        _ => 16_777_215,
    };
    let ioa = r.req_int("info_address", 0, ioa_max);
    let has_type = r.has("type_id");
    let tid = type_id(r, "type_id");
    if !has_type {
        r.error(Some("type_id"), "required, but empty");
    }
    let multiplier = r.float_or("multiplier", 1.0);
    let offset = r.float_or("offset", 0.0);
    let command_type = type_id(r, "command_type");
    let sbo = r.bool_or("select_before_operate", false);
    let qualifier = r.int_or("qualifier", 0, 0, 127);

    let tid = tid?.filter(|_| has_type);
    let command_type = command_type?;
    if let Some(ct) = command_type {
        if !ct.is_command() {
            r.error(
                Some("command_type"),
                format!("{} is not a command type (45-64)", ct.name()),
            );
            return None;
        }
    }
    let (monitor, command_tid) = match tid {
        Some(t) if t.is_command() => (None, Some(command_type.unwrap_or(t))),
        Some(t) => (Some(t), command_type),
        None => return None,
    };
    let qualifier = u8::try_from(qualifier?).ok()?;
    if let Some(ct) = command_tid {
        let is_setpoint = matches!(ct.number(), 48..=50 | 61..=63);
        if is_setpoint && multiplier.is_some_and(|m| m == 0.0 || !m.is_finite()) {
            // set-points are inverse-scaled: raw = (out - offset) / multiplier
            r.error(
                Some("multiplier"),
                format!("must be a non-zero number for the set-point {}", ct.name()),
            );
            return None;
        }
        if !is_setpoint && qualifier > 31 {
            r.error(
                Some("qualifier"),
                format!("{qualifier} is out of range 0..=31 for {}", ct.name()),
            );
            return None;
        }
    }
    Some(Iec104Signal {
        ioa: u32::try_from(ioa?).ok()?,
        type_id: monitor,
        multiplier: multiplier?,
        offset: offset?,
        command: command_tid.map(|type_id| Iec104Command {
            type_id,
            select_before_operate: sbo.unwrap_or(false),
            qualifier,
        }),
    })
    .filter(|_| sbo.is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use crate::{validate, RawConfig};

    #[test]
    fn setpoints_need_a_nonzero_multiplier() {
        let raw = RawConfig::parse(
            r#"{"devices": [{"name": "R", "device_alias": "r", "protocol": "iec104-master",
                "ip": "10.0.0.1", "asdu_address": 1}],
              "signals": [
                {"signal_name": "a", "device_alias": "r", "signal_alias": "a", "info_address": 1,
                 "type_id": "C_SE_NB_1", "multiplier": 0},
                {"signal_name": "b", "device_alias": "r", "signal_alias": "b", "info_address": 2,
                 "type_id": "C_SC_NA_1", "multiplier": 0}]}"#,
        )
        .unwrap();
        let v = validate(&raw);
        assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
        assert!(v.errors[0].to_string().contains("multiplier"));
    }
}
