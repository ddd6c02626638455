//! The IEC 60870-5-104 master part: outstations (`protocol: iec104-master`) and their points.
//! Times are in the unit their column names end in (`t0_s`-`t3_s`, the `_interval_s`
//! columns, `command_timeout_s`, `command_max_age_ms`); an interval of 0 is off. `tls` 1 and
//! its columns make the link TLS ([`crate::tls104`], default port 19998).

use std::num::NonZeroU16;
use std::time::Duration;

use iec60870::command::{check_command_max_age, check_command_timeout};
use iec60870::{AsduSizes, CaSize, CommonAddress, CotSize, Ioa, IoaSize, LinkConfig, TypeId};

use crate::cell::RowReader;

/// The IEC 104 master's own device columns (without the TLS ones).
const OWN_DEVICE_COLUMNS: &[&str] = &[
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

/// Device columns of the IEC 104 master: its own, then the TLS ones ([`crate::tls104::COLUMNS`]).
pub const DEVICE_COLUMNS: &[&str] = &crate::columns::concat::<
    { OWN_DEVICE_COLUMNS.len() + crate::tls104::COLUMNS.len() },
>(OWN_DEVICE_COLUMNS, crate::tls104::COLUMNS);

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

/// An outstation the master connects to.
///
/// Everything the stack checks is checked by the stack's own rules when the row is read
/// ([`LinkConfig::validate`], the ASDU field sizes, the addresses that fit them, the command
/// timeouts): a row that validates is one the master accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104Device {
    /// `ip`: one address, or several (comma/space separated) of a redundant outstation,
    /// tried in turn.
    pub hosts: Vec<String>,
    pub port: NonZeroU16,
    /// `asdu_address`: the common address of the station (fits `ca_size`).
    pub common_address: CommonAddress,
    /// Sent in the COT (0 with a one-octet COT).
    pub originator_address: u8,
    /// `cot_size`, `ca_size`, `ioa_size`.
    pub sizes: AsduSizes,
    /// `k`, `w`, `t0`-`t3`.
    pub link: LinkConfig,
    /// Periodic general interrogation (None: only after each connect).
    pub gi_interval: Option<Interval>,
    /// Clock sync after connect and periodically (None: never).
    pub clock_sync_interval: Option<Interval>,
    /// Periodic counter interrogation (None: never).
    pub counter_interrogation_interval: Option<Interval>,
    /// How long to wait for a command's confirmation.
    pub command_timeout: Duration,
    /// A command whose `out` value is older than this is refused, never sent late.
    pub command_max_age: Duration,
    /// `tls: 1` and its columns: the link is TLS (IEC 62351-3), never plaintext.
    pub tls: Option<crate::tls104::Iec104Tls>,
}

/// The period of a periodic request: 1 s to 31 days (a cell of 0 is "off").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(Duration);

impl Interval {
    /// The longest period.
    pub const MAX_SECS: u64 = 31 * 24 * 3600;

    /// A period of `secs` seconds, if within 1..=[`Interval::MAX_SECS`].
    pub fn from_secs(secs: u64) -> Option<Self> {
        (1..=Self::MAX_SECS)
            .contains(&secs)
            .then(|| Self(Duration::from_secs(secs)))
    }

    /// The period.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// How a signal's commands are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iec104Command {
    /// A process command type (45-64).
    pub type_id: TypeId,
    pub select_before_operate: bool,
    /// QU (0-31) of single/double/step commands, QL (0-127) of set-points, 0 for bitstrings.
    pub qualifier: u8,
}

/// A point of an outstation.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104Signal {
    /// `info_address`: the information object address (fits the device's `ioa_size`).
    pub ioa: Ioa,
    /// The monitor type received (None for a command-only signal).
    pub type_id: Option<TypeId>,
    /// Engineering value = raw * multiplier + offset.
    pub multiplier: f64,
    pub offset: f64,
    /// Set when the signal is writable (type_id is a command, or command_type is set).
    pub command: Option<Iec104Command>,
}

/// The largest number of seconds a duration cell is read as (the stack's ranges are far
/// below; this only keeps the conversion exact).
const MAX_SECONDS: i64 = u32::MAX as i64;

fn secs(r: &mut RowReader<'_>, column: &'static str, default: u64) -> Option<Duration> {
    r.int_or(column, i64::try_from(default).unwrap_or(0), 0, MAX_SECONDS)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_secs)
}

fn interval(r: &mut RowReader<'_>, column: &'static str) -> Option<Option<Interval>> {
    let max = i64::try_from(Interval::MAX_SECS).unwrap_or(i64::MAX);
    r.int_or(column, 0, 0, max)
        .and_then(|n| u64::try_from(n).ok())
        .map(Interval::from_secs)
}

fn octets(r: &mut RowReader<'_>, column: &'static str, default: u8) -> Option<u8> {
    r.int_or(column, i64::from(default), 0, 255)
        .and_then(|n| u8::try_from(n).ok())
}

/// Records a stack error at its column.
fn stack_error(r: &mut RowReader<'_>, column: &'static str, e: impl std::fmt::Display) {
    r.error(Some(column), e.to_string());
}

/// The column a stack parameter is read from: the parameter's name, or the column it was
/// renamed to (`t0` -> `t0_s`, ...).
fn link_column(parameter: &'static str) -> &'static str {
    crate::columns::renamed_to(crate::Protocol::Iec104Master, parameter)
        .map_or(parameter, |r| r.new)
}

/// An ASDU field size, checked by the stack (the error recorded at its column).
fn size<T>(
    r: &mut RowReader<'_>,
    column: &'static str,
    default: u8,
    from_octets: fn(u8) -> Result<T, iec60870::BadSize>,
) -> Option<T> {
    match from_octets(octets(r, column, default)?) {
        Ok(s) => Some(s),
        Err(e) => {
            stack_error(r, column, e);
            None
        }
    }
}

/// The ASDU field sizes; `None` (errors recorded) when one is bad.
pub(crate) fn read_sizes(r: &mut RowReader<'_>) -> Option<AsduSizes> {
    let d = AsduSizes::default();
    let cot = size(r, "cot_size", d.cot.octets(), CotSize::from_octets);
    let ca = size(r, "ca_size", d.ca.octets(), CaSize::from_octets);
    let ioa = size(r, "ioa_size", d.ioa.octets(), IoaSize::from_octets);
    Some(AsduSizes {
        cot: cot?,
        ca: ca?,
        ioa: ioa?,
    })
}

/// The IOA size of a device row as the signals' addresses are checked against (the default
/// when the cell is absent or bad: the row's own error is reported there).
pub(crate) fn ioa_size_of(row: &crate::raw::Row) -> IoaSize {
    row.get("ioa_size")
        .and_then(crate::cell::cell_int)
        .and_then(|n| u8::try_from(n).ok())
        .and_then(|n| IoaSize::from_octets(n).ok())
        .unwrap_or_else(default_ioa_size)
}

/// The IOA size of a device without a valid `ioa_size` (the stack's default).
pub(crate) fn default_ioa_size() -> IoaSize {
    AsduSizes::default().ioa
}

/// `asdu_address`: the station's common address, required and checked against the ASDU
/// sizes when they are valid (the error recorded at the column).
pub(crate) fn read_common_address(
    r: &mut RowReader<'_>,
    sizes: Option<AsduSizes>,
) -> Option<CommonAddress> {
    let ca = r
        .req_int("asdu_address", 0, 65_535)
        .and_then(|n| u16::try_from(n).ok())
        .map(CommonAddress)?;
    match sizes.map(|s| (s.check_common_address(ca), s.max_common_address())) {
        Some((Err(e), max)) => {
            stack_error(r, "asdu_address", format!("{e} (ca_size: at most {max})"));
            None
        }
        _ => Some(ca),
    }
}

/// `k`, `w`, `t0_s`-`t3_s`, checked by the stack ([`LinkConfig::problems`], each error at
/// its column).
pub(crate) fn read_link(r: &mut RowReader<'_>) -> Option<LinkConfig> {
    let defaults = LinkConfig::default();
    let k = r.int_or("k", i64::from(defaults.k), 0, 65_535);
    let w = r.int_or("w", i64::from(defaults.w), 0, 65_535);
    let t0 = secs(r, "t0_s", defaults.t0.as_secs());
    let t1 = secs(r, "t1_s", defaults.t1.as_secs());
    let t2 = secs(r, "t2_s", defaults.t2.as_secs());
    let t3 = secs(r, "t3_s", defaults.t3.as_secs());
    let link = LinkConfig {
        k: u16::try_from(k?).ok()?,
        w: u16::try_from(w?).ok()?,
        t0: t0?,
        t1: t1?,
        t2: t2?,
        t3: t3?,
    };
    let problems = link.problems();
    for e in &problems {
        stack_error(r, link_column(e.parameter()), e);
    }
    problems.is_empty().then_some(link)
}

/// A wait for a confirmation or a result in seconds (default 10), checked by the stack's
/// [`check_command_timeout`].
pub(crate) fn read_command_timeout(
    r: &mut RowReader<'_>,
    column: &'static str,
) -> Option<Duration> {
    secs(r, column, 10).filter(|d| {
        let checked = check_command_timeout(column, *d);
        checked.map_err(|e| stack_error(r, column, e)).is_ok()
    })
}

/// `command_max_age_ms`, checked by the stack's [`check_command_max_age`].
pub(crate) fn read_command_max_age(r: &mut RowReader<'_>) -> Option<Duration> {
    r.int(&crate::columns::COMMAND_MAX_AGE_MS)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_millis)
        .filter(|d| {
            let checked = check_command_max_age(*d);
            checked
                .map_err(|e| stack_error(r, "command_max_age_ms", e))
                .is_ok()
        })
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
    let tls = crate::tls104::read(r);
    let port = crate::tls104::read_port(r, matches!(tls, Some(Some(_))));
    let sizes = read_sizes(r);
    let common_address = read_common_address(r, sizes);
    let originator_address = octets(r, "originator_address", 0);
    if let (Some(sizes), Some(o)) = (sizes, originator_address) {
        if let Err(e) = sizes.check_originator(o) {
            stack_error(r, "originator_address", format!("{e} (cot_size 1: only 0)"));
        }
    }
    let link = read_link(r);
    let gi_interval = interval(r, "gi_interval_s");
    let clock_sync_interval = interval(r, "clock_sync_interval_s");
    let counter_interrogation_interval = interval(r, "counter_interrogation_interval_s");
    let command_timeout = read_command_timeout(r, "command_timeout_s");
    let command_max_age = read_command_max_age(r);
    let sizes = sizes?;
    let originator_address = originator_address.filter(|o| sizes.check_originator(*o).is_ok())?;
    Some(Iec104Device {
        hosts: hosts.filter(|h| !h.is_empty())?,
        port: port?,
        common_address: common_address?,
        originator_address,
        sizes,
        link: link?,
        gi_interval: gi_interval?,
        clock_sync_interval: clock_sync_interval?,
        counter_interrogation_interval: counter_interrogation_interval?,
        command_timeout: command_timeout?,
        command_max_age: command_max_age?,
        tls: tls?,
    })
}

pub(crate) fn type_id(r: &mut RowReader<'_>, column: &'static str) -> Option<Option<TypeId>> {
    let Some(s) = r.opt_string(column) else {
        return Some(None);
    };
    match s.parse::<TypeId>() {
        Ok(t) if t.is_monitor() || t.is_command() => Some(Some(t)),
        Ok(t) => {
            r.error(
                Some(column),
                format!(
                    "{} is neither process information (1-40) nor a process command (45-64)",
                    t.name()
                ),
            );
            None
        }
        Err(_) => {
            r.error(
                Some(column),
                format!("{s:?} is not a known type identification (e.g. M_SP_NA_1 or 1)"),
            );
            None
        }
    }
}

/// `info_address`: required, and fits the device's IOA size (checked by the stack).
pub(crate) fn read_ioa(r: &mut RowReader<'_>, ioa_size: IoaSize) -> Option<Ioa> {
    let sizes = AsduSizes {
        ioa: ioa_size,
        ..AsduSizes::default()
    };
    r.req_int("info_address", 0, i64::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .map(Ioa)
        .filter(|ioa| match sizes.check_ioa(*ioa) {
            Ok(()) => true,
            Err(e) => {
                let max = sizes.max_ioa();
                stack_error(r, "info_address", format!("{e} (ioa_size: at most {max})"));
                false
            }
        })
}

/// Reads a point; `ioa_size` is its device's.
pub(crate) fn read_signal(r: &mut RowReader<'_>, ioa_size: IoaSize) -> Option<Iec104Signal> {
    let ioa = read_ioa(r, ioa_size);
    let has_type = r.has("type_id");
    let tid = type_id(r, "type_id");
    if !has_type {
        r.error(Some("type_id"), "required, but empty");
    }
    let multiplier = r.float_or("multiplier", 1.0);
    let offset = r.float_or("offset", 0.0);
    let command_type = type_id(r, "command_type");
    let sbo = r.bool_or("select_before_operate", false);
    let qualifier = octets(r, "qualifier", 0);

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
    let qualifier = qualifier?;
    if let Some(ct) = command_tid {
        if ct.is_setpoint() && multiplier.is_some_and(|m| m == 0.0 || !m.is_finite()) {
            // set-points are inverse-scaled: raw = (out - offset) / multiplier
            r.error(
                Some("multiplier"),
                format!("must be a non-zero number for the set-point {}", ct.name()),
            );
            return None;
        }
        if let Err(e) = ct.check_qualifier(qualifier) {
            stack_error(r, "qualifier", e);
            return None;
        }
    }
    Some(Iec104Signal {
        ioa: ioa?,
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
