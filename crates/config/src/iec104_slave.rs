//! The IEC 60870-5-104 slave part: the gateway as a controlled station (`protocol:
//! iec104-slave`) that SCADA masters connect to, and the points it serves.
//!
//! # Device row
//! The station listens on `ip`:`port` (one IP address, default `0.0.0.0`, port 2404) with its
//! common address `asdu_address`, the ASDU field sizes and the link parameters (`k`, `w`,
//! `t0_s`-`t3_s`), read and checked exactly as the IEC 104 master's columns (one reader,
//! the stack's own rules). `allowed_masters` lists the masters' IP addresses (comma or space
//! separated; empty: any master). `redundancy_groups` splits masters into groups (IEC
//! 60870-5-104 Ed.2 clause 10): groups separated by `;`, each a list of IP addresses
//! (`10.0.0.1 10.0.0.2; 10.0.0.3`); every master of a group may connect, one of them is
//! started at a time. Empty: one group of `allowed_masters` (or of any master). An address
//! is in at most one group; at most [`MAX_REDUNDANCY_GROUPS`] groups; when both columns are
//! set they list the same masters. [`Iec104SlaveDevice::groups`] is the resolved list.
//!
//! # Signal rows
//! A signal row of a slave device maps a source signal (`source_device_alias`,
//! `source_signal_alias`, a signal of a field device: modbus-rtu, modbus-tcp or
//! iec104-master) to an information object (`info_address`, `type_id`). The type decides
//! the row's kind: a monitor type (`M_*`) serves the source's `in` value; a command type
//! (`C_*`) writes the master's commands to the source's `out` tag
//! ([`Iec104SlaveSignal::source_tag`]).
//!
//! # Scaling
//! `multiplier` and `offset` always map the wire value to the engineering (tag) value, as
//! on the master side: `engineering = wire * multiplier + offset`, so `wire = (engineering -
//! offset) / multiplier` for monitor points (the multiplier is never 0). The wire value is
//! the information element's number: single point 0/1, double point the DPI 0-3 (1 = off,
//! 2 = on), step position -64..=63, bitstring the 32 bits as an unsigned number, normalised
//! value the fraction in [-1, 1) (M_ME_NA/C_SE_NA), scaled value the integer, short float the
//! float, integrated total the counter reading; single command 0/1, double command 1 (off) /
//! 2 (on), regulating step 1 (lower) / 2 (higher), set-points as the measured values.
//!
//! # What fits a source
//! A monitor point needs a source with an `in` value (not a Modbus write function, not a
//! command-only IEC 104 signal); a command needs a writable source (a Modbus signal with a
//! write function or `writable: 1`, not a bit of a register; an IEC 104 signal with a
//! command type). The type must fit the source's value ([`fit`]):
//!
//! | type | Modbus source | iec104-master source |
//! |---|---|---|
//! | `M_SP_*` | bool | `M_SP_*` |
//! | `M_DP_*` | integer register (the DPI) | `M_DP_*` |
//! | `M_ST_*`, `M_ME_*`, `M_IT_*` | any register (not bool) | `M_ST_*`, `M_ME_*`, `M_IT_*` |
//! | `M_BO_*` | integer register | `M_BO_*` |
//! | `C_SC_*` | bool or integer register | `C_SC_*` |
//! | `C_DC_*`, `C_RC_*` | integer register | the same command |
//! | `C_SE_*` | any register (not bool) | any `C_SE_*` |
//!
//! Integer registers are the `data_type`s u16, i16, u32, i32, u64, i64. A single, double or
//! regulating step command onto an iec104-master command is passed on as the value the
//! master sends, so its row keeps `multiplier` 1 and `offset` 0.

use std::net::IpAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use contract::{Alias, Direction, TagKey};
use iec60870::{AsduSizes, CommonAddress, Ioa, IoaSize, LinkConfig, TypeId};

use crate::cell::RowReader;
use crate::iec104;
use crate::modbus::{DataType, ModbusSignal};
use crate::model::SignalKind;

/// Device columns of the IEC 104 slave.
pub const DEVICE_COLUMNS: &[&str] = &[
    "ip",
    "port",
    "asdu_address",
    "cot_size",
    "ca_size",
    "ioa_size",
    "k",
    "w",
    "t0_s",
    "t1_s",
    "t2_s",
    "t3_s",
    "allowed_masters",
    "redundancy_groups",
    "accept_clock_sync",
    "command_max_age_ms",
    "select_timeout_s",
    "command_timeout_s",
];

/// Signal columns of the IEC 104 slave.
pub const SIGNAL_COLUMNS: &[&str] = &[
    "source_device_alias",
    "source_signal_alias",
    "info_address",
    "type_id",
    "multiplier",
    "offset",
    "select_before_operate",
];

/// The most redundancy groups of one slave device.
pub const MAX_REDUNDANCY_GROUPS: usize = 8;

/// The monitor types a slave serves.
pub const MONITOR_TYPES: &[TypeId] = &[
    TypeId::M_SP_NA_1,
    TypeId::M_SP_TB_1,
    TypeId::M_DP_NA_1,
    TypeId::M_DP_TB_1,
    TypeId::M_ST_NA_1,
    TypeId::M_ST_TB_1,
    TypeId::M_BO_NA_1,
    TypeId::M_BO_TB_1,
    TypeId::M_ME_NA_1,
    TypeId::M_ME_TD_1,
    TypeId::M_ME_NB_1,
    TypeId::M_ME_TE_1,
    TypeId::M_ME_NC_1,
    TypeId::M_ME_TF_1,
    TypeId::M_IT_NA_1,
    TypeId::M_IT_TB_1,
];

/// The command types a slave accepts.
pub const COMMAND_TYPES: &[TypeId] = &[
    TypeId::C_SC_NA_1,
    TypeId::C_DC_NA_1,
    TypeId::C_RC_NA_1,
    TypeId::C_SE_NA_1,
    TypeId::C_SE_NB_1,
    TypeId::C_SE_NC_1,
    TypeId::C_SC_TA_1,
    TypeId::C_DC_TA_1,
    TypeId::C_RC_TA_1,
    TypeId::C_SE_TA_1,
    TypeId::C_SE_TB_1,
    TypeId::C_SE_TC_1,
];

/// A controlled station SCADA masters connect to.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104SlaveDevice {
    /// `ip`: the listen address (default `0.0.0.0`).
    pub bind: IpAddr,
    /// `port` (default 2404).
    pub port: NonZeroU16,
    /// `asdu_address`: the station's common address (fits `ca_size`).
    pub common_address: CommonAddress,
    /// `cot_size`, `ca_size`, `ioa_size`.
    pub sizes: AsduSizes,
    /// `k`, `w`, `t0`-`t3`.
    pub link: LinkConfig,
    /// `allowed_masters` (empty: any master may connect).
    pub allowed_masters: Vec<IpAddr>,
    /// `redundancy_groups` as written (empty: see [`Iec104SlaveDevice::groups`]).
    pub redundancy_groups: Vec<Vec<IpAddr>>,
    /// `accept_clock_sync` (default off): a clock synchronisation sets the system clock;
    /// off, it is only confirmed.
    pub accept_clock_sync: bool,
    /// `command_max_age_ms`: a time-tagged command older than this is refused.
    pub command_max_age: Duration,
    /// `select_timeout_s` (default 10): how long a selection stays valid.
    pub select_timeout: Duration,
    /// `command_timeout_s` (default 10): how long the slave waits for the field driver's
    /// result before it answers ACT_CON negative.
    pub command_timeout: Duration,
}

impl Iec104SlaveDevice {
    /// The redundancy groups: `redundancy_groups` when set, else one group of
    /// `allowed_masters`. Never empty; an empty group admits any master.
    pub fn groups(&self) -> Vec<Vec<IpAddr>> {
        if self.redundancy_groups.is_empty() {
            vec![self.allowed_masters.clone()]
        } else {
            self.redundancy_groups.clone()
        }
    }

    /// The index in [`Iec104SlaveDevice::groups`] of the group a peer belongs to; `None`: the
    /// peer is not allowed. An IPv4 address seen as IPv4-mapped IPv6 (a listener on `::`)
    /// is the IPv4 address.
    pub fn group_of(&self, peer: IpAddr) -> Option<usize> {
        let peer = peer.to_canonical();
        self.groups()
            .iter()
            .position(|g| g.is_empty() || g.iter().any(|a| a.to_canonical() == peer))
    }
}

/// The signal a slave row refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSignal {
    /// `source_device_alias`.
    pub device: Alias,
    /// `source_signal_alias`.
    pub signal: Alias,
}

/// A point (or command) of a slave device.
#[derive(Debug, Clone, PartialEq)]
pub struct Iec104SlaveSignal {
    /// The field signal served (monitor) or commanded (command).
    pub source: SourceSignal,
    /// `info_address` (fits the device's `ioa_size`).
    pub ioa: Ioa,
    /// One of [`MONITOR_TYPES`] or [`COMMAND_TYPES`]; it decides the row's kind.
    pub type_id: TypeId,
    /// engineering = wire * multiplier + offset (never 0).
    pub multiplier: f64,
    pub offset: f64,
    /// Commands only: an execute is accepted only after a select.
    pub select_before_operate: bool,
}

impl Iec104SlaveSignal {
    /// Whether this row is a command (a `C_*` type) rather than a monitor point.
    pub fn is_command(&self) -> bool {
        self.type_id.is_command()
    }

    /// The tag this row reads (monitor: the source's `in`) or writes (command: the
    /// source's `out`).
    pub fn source_tag(&self) -> TagKey {
        let direction = if self.is_command() {
            Direction::Out
        } else {
            Direction::In
        };
        TagKey::new(
            self.source.device.clone(),
            self.source.signal.clone(),
            direction,
        )
    }
}

/// A list of IP addresses (comma or space separated); `None` when one is bad (recorded).
fn ip_list(r: &mut RowReader<'_>, column: &'static str, text: &str) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in text
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item.parse::<IpAddr>() {
            Ok(ip) if out.contains(&ip) => {
                r.error(Some(column), format!("{ip} is listed twice"));
                ok = false;
            }
            Ok(ip) => out.push(ip),
            Err(_) => {
                r.error(
                    Some(column),
                    format!("{item:?} is not an IP address (e.g. 10.0.0.1 or fd00::1)"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `redundancy_groups`: `;`-separated groups of IP addresses, checked against each other
/// and against `allowed_masters`.
fn read_groups(r: &mut RowReader<'_>, allowed: Option<&[IpAddr]>) -> Option<Vec<Vec<IpAddr>>> {
    const COLUMN: &str = "redundancy_groups";
    r.computed_default(COLUMN, "one group of allowed_masters");
    let text = r.opt_string(COLUMN).unwrap_or_default();
    let mut groups: Vec<Vec<IpAddr>> = Vec::new();
    let mut ok = true;
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let Some(group) = ip_list(r, COLUMN, part) else {
            ok = false;
            continue;
        };
        for ip in &group {
            if let Some(other) = groups.iter().position(|g| g.contains(ip)) {
                let n = other.saturating_add(1);
                r.error(
                    Some(COLUMN),
                    format!("{ip} is in two groups (also group {n})"),
                );
                ok = false;
            }
        }
        groups.push(group);
    }
    if groups.len() > MAX_REDUNDANCY_GROUPS {
        r.error(
            Some(COLUMN),
            format!("{} groups: at most {MAX_REDUNDANCY_GROUPS}", groups.len()),
        );
        ok = false;
    }
    match allowed {
        Some(allowed) if !allowed.is_empty() && !groups.is_empty() => {
            for ip in groups.iter().flatten() {
                if !allowed.contains(ip) {
                    r.error(Some(COLUMN), format!("{ip} is not in allowed_masters"));
                    ok = false;
                }
            }
            for ip in allowed {
                if !groups.iter().flatten().any(|g| g == ip) {
                    r.error(
                        Some("allowed_masters"),
                        format!("{ip} is in no redundancy group: it could never connect"),
                    );
                    ok = false;
                }
            }
        }
        Some(_) => {}
        None => ok = false,
    }
    ok.then_some(groups)
}

pub(crate) fn read_device(r: &mut RowReader<'_>) -> Option<Iec104SlaveDevice> {
    let bind = r.string_or("ip", "0.0.0.0");
    let bind = match bind.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            r.error(
                Some("ip"),
                format!("{bind:?}: the listen address is one IP address (e.g. 0.0.0.0 or ::)"),
            );
            None
        }
    };
    let port = r.int_or("port", 2404, 1, 65_535);
    let sizes = iec104::read_sizes(r);
    let common_address = iec104::read_common_address(r, sizes);
    let link = iec104::read_link(r);
    let allowed_text = r.opt_string("allowed_masters");
    r.computed_default("allowed_masters", "any master");
    let allowed = match allowed_text {
        Some(t) => ip_list(r, "allowed_masters", &t),
        None => Some(Vec::new()),
    };
    let groups = read_groups(r, allowed.as_deref());
    let accept_clock_sync = r.bool_or("accept_clock_sync", false);
    let command_max_age = iec104::read_command_max_age(r);
    let select_timeout = iec104::read_command_timeout(r, "select_timeout_s");
    let command_timeout = iec104::read_command_timeout(r, "command_timeout_s");
    Some(Iec104SlaveDevice {
        bind: bind?,
        port: u16::try_from(port?).ok().and_then(NonZeroU16::new)?,
        common_address: common_address?,
        sizes: sizes?,
        link: link?,
        allowed_masters: allowed?,
        redundancy_groups: groups?,
        accept_clock_sync: accept_clock_sync?,
        command_max_age: command_max_age?,
        select_timeout: select_timeout?,
        command_timeout: command_timeout?,
    })
}

/// Reads a slave row's own columns; whether its source exists and fits is checked once
/// every signal is read ([`fit`]).
pub(crate) fn read_signal(r: &mut RowReader<'_>, ioa_size: IoaSize) -> Option<Iec104SlaveSignal> {
    let device = r.req_alias("source_device_alias");
    let signal = r.req_alias("source_signal_alias");
    let ioa = iec104::read_ioa(r, ioa_size);
    let has_type = r.has("type_id");
    let type_id = iec104::type_id(r, "type_id");
    if !has_type {
        r.error(Some("type_id"), "required, but empty");
    }
    let type_id = type_id.flatten().filter(|t| {
        let known = MONITOR_TYPES.contains(t) || COMMAND_TYPES.contains(t);
        if !known {
            let names = |ts: &[TypeId]| ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
            let message = format!(
                "{} is not served by the slave; monitor types: {}; command types: {}",
                t.name(),
                names(MONITOR_TYPES),
                names(COMMAND_TYPES)
            );
            r.error(Some("type_id"), message);
        }
        known
    });
    let multiplier = r.float_or("multiplier", 1.0);
    if multiplier == Some(0.0) {
        r.error(
            Some("multiplier"),
            "must not be 0 (engineering = wire * multiplier + offset)",
        );
    }
    let offset = r.float_or("offset", 0.0);
    let sbo = r.bool_or("select_before_operate", false);
    if let (Some(t), Some(true)) = (type_id, sbo) {
        if !t.is_command() {
            r.error(
                Some("select_before_operate"),
                format!(
                    "applies to command rows only; {} is a monitor type",
                    t.name()
                ),
            );
            return None;
        }
    }
    Some(Iec104SlaveSignal {
        source: SourceSignal {
            device: device?,
            signal: signal?,
        },
        ioa: ioa?,
        type_id: type_id?,
        multiplier: multiplier.filter(|m| *m != 0.0)?,
        offset: offset?,
        select_before_operate: sbo?,
    })
}

/// Whether a Modbus signal's type is an integer register.
fn integer_register(m: &ModbusSignal) -> bool {
    !matches!(m.data_type, DataType::Bool | DataType::F32 | DataType::F64)
}

/// Checks a slave row against its source signal (the table in the module docs): the
/// column the error belongs to and its message.
pub(crate) fn fit(
    row: &Iec104SlaveSignal,
    source: &SignalKind,
) -> Result<(), (&'static str, String)> {
    use TypeId::*;
    let t = row.type_id.without_time();
    let name = row.type_id.name();
    let src = format!("{}/{}", row.source.device, row.source.signal);
    let misfit = |what: &str| Err(("type_id", format!("{name} does not fit {src}: {what}")));
    match source {
        SignalKind::Modbus(m) if row.is_command() => {
            if !m.writable {
                return Err((
                    "source_signal_alias",
                    format!(
                        "{src} is not writable (Modbus function {}, writable: 0)",
                        m.function.code()
                    ),
                ));
            }
            if m.bit.is_some() {
                return Err((
                    "source_signal_alias",
                    format!("{src} is a bit of a register, which cannot be written"),
                ));
            }
            match t {
                C_SC_NA_1 if m.data_type == DataType::Bool || integer_register(m) => Ok(()),
                C_DC_NA_1 | C_RC_NA_1 if integer_register(m) => Ok(()),
                C_SE_NA_1 | C_SE_NB_1 | C_SE_NC_1 if m.data_type != DataType::Bool => Ok(()),
                C_DC_NA_1 | C_RC_NA_1 => {
                    misfit("a double or step command writes 1 or 2, it needs an integer register")
                }
                _ => misfit("a set-point needs a register, not a coil"),
            }
        }
        SignalKind::Modbus(m) => {
            if m.function.is_write() {
                return Err((
                    "source_signal_alias",
                    format!(
                        "{src} has no monitor value (Modbus function {} only writes)",
                        m.function.code()
                    ),
                ));
            }
            match t {
                M_SP_NA_1 if m.data_type == DataType::Bool => Ok(()),
                M_DP_NA_1 | M_BO_NA_1 if integer_register(m) => Ok(()),
                M_ST_NA_1 | M_ME_NA_1 | M_ME_NB_1 | M_ME_NC_1 | M_IT_NA_1
                    if m.data_type != DataType::Bool =>
                {
                    Ok(())
                }
                M_SP_NA_1 => misfit("a single point needs a bool (coil, input or register bit)"),
                M_DP_NA_1 | M_BO_NA_1 => misfit("it needs an integer register"),
                _ => misfit("a bool is served as M_SP_NA_1 or M_SP_TB_1"),
            }
        }
        SignalKind::Iec104(s) if row.is_command() => {
            let Some(c) = s.command else {
                return Err((
                    "source_signal_alias",
                    format!("{src} is not writable (no C_* type_id or command_type)"),
                ));
            };
            let target = c.type_id.without_time();
            let fits = if t.is_setpoint() {
                target.is_setpoint()
            } else {
                target == t
            };
            if !fits {
                return misfit(&format!("its command is {}", c.type_id.name()));
            }
            if !t.is_setpoint() && (row.multiplier != 1.0 || row.offset != 0.0) {
                return Err((
                    "multiplier",
                    format!(
                        "{name} onto the IEC 104 command {src} is passed on as it is: \
                         multiplier 1 and offset 0"
                    ),
                ));
            }
            Ok(())
        }
        SignalKind::Iec104(s) => {
            let Some(st) = s.type_id else {
                return Err((
                    "source_signal_alias",
                    format!("{src} has no monitor value (it is a command only)"),
                ));
            };
            let number =
                |x: TypeId| matches!(x, M_ST_NA_1 | M_ME_NA_1 | M_ME_NB_1 | M_ME_NC_1 | M_IT_NA_1);
            let st = st.without_time();
            let fits = match t {
                M_SP_NA_1 | M_DP_NA_1 | M_BO_NA_1 => st == t,
                other => number(other) && number(st),
            };
            if fits {
                Ok(())
            } else {
                misfit(&format!("its type is {}", st.name()))
            }
        }
        SignalKind::Mqtt(_) | SignalKind::Iec104Slave(_) => Err((
            "source_device_alias",
            format!("{src} is not a field device's signal"),
        )),
    }
}
