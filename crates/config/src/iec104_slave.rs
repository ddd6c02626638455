//! The IEC 60870-5-104 slave part: the gateway as a controlled station (`protocol:
//! iec104-slave`) that SCADA masters connect to, and the points it serves.
//!
//! # Device row
//! The station listens on `ip`:`port` (one IP address, default `0.0.0.0`, port 2404, or 19998
//! with `tls` 1: see [`crate::tls104`]) with its common address `asdu_address`, the ASDU field
//! sizes and the link parameters (`k`, `w`, `t0_s`-`t3_s`), read and checked exactly as the
//! IEC 104 master's columns (one reader, the stack's own rules). `allowed_masters` lists the
//! masters' IP addresses (comma or space separated; empty: any master).
//! `redundancy_groups` splits masters into groups (IEC 60870-5-104 Ed.2 clause 10): groups
//! separated by `;`, each a list of IP addresses (`10.0.0.1 10.0.0.2; 10.0.0.3`); every
//! master of a group may connect, one of them is started at a time. Empty: one group of
//! `allowed_masters` (or of any master). An address is in at most one group; at most
//! [`MAX_REDUNDANCY_GROUPS`] groups; when both columns are set they list the same masters.
//! [`Iec104SlaveDevice::groups`] is the resolved list.
//!
//! # Signal rows
//! A signal row of a slave device maps a source signal (`source_device_alias`,
//! `source_signal_alias`, a signal of a field device: modbus-rtu, modbus-tcp or
//! iec104-master) to an information object (`info_address`, `type_id`). The type decides
//! the row's kind: a monitor type (`M_*`) serves the source's `in` value; a command type
//! (`C_*`) writes the master's commands to the source's `out` tag
//! ([`Iec104SlaveSignal::source_tag`]).
//!
//! # Scaling and what fits a source
//! [`REFERENCE`] (also in `docs/config-columns.md`): `engineering = wire * multiplier +
//! offset`, and which source each type fits (checked when the config is validated).

use std::net::IpAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use contract::{Alias, Direction, TagKey};
use iec60870::{AsduSizes, CommonAddress, Ioa, IoaSize, LinkConfig, TypeId};

use crate::cell::RowReader;
use crate::iec104;
use crate::modbus::{DataType, ModbusSignal};
use crate::model::SignalKind;

/// The slave rows' scaling convention and fit table, in Markdown (a section of the column
/// reference).
pub const REFERENCE: &str = r#"### Scaling
`multiplier` and `offset` always map the wire value to the engineering (tag) value, as
on the master side: `engineering = wire * multiplier + offset`, so `wire = (engineering -
offset) / multiplier` for monitor points (the multiplier is never 0). The wire value is
the information element's number: single point 0/1, double point the DPI 0-3 (1 = off,
2 = on), step position -64..=63, bitstring the 32 bits as an unsigned number, normalised
value the fraction in [-1, 1) (M_ME_NA/C_SE_NA), scaled value the integer, short float the
float, integrated total the counter reading; single command 0/1, double command 1 (off) /
2 (on), regulating step 1 (lower) / 2 (higher), set-points as the measured values.

### What fits a source
A monitor point needs a source with an `in` value (not a Modbus write function, not a
command-only IEC 104 signal); a command needs a writable source (a Modbus signal with a
write function or `writable: 1`, not a bit of a register; an IEC 104 signal with a
command type). The type must fit the source's value:

| type | Modbus source | iec104-master source |
|---|---|---|
| `M_SP_*` | bool | `M_SP_*` |
| `M_DP_*` | integer register (the DPI) | `M_DP_*` |
| `M_ST_*`, `M_ME_*`, `M_IT_*` | any register (not bool) | `M_ST_*`, `M_ME_*`, `M_IT_*` |
| `M_BO_*` | integer register | `M_BO_*` |
| `C_SC_*` | bool or integer register | `C_SC_*` |
| `C_DC_*`, `C_RC_*` | integer register | the same command |
| `C_SE_*` | any register (not bool) | any `C_SE_*` |

Integer registers are the `data_type`s u16, i16, u32, i32, u64, i64. A single, double or
regulating step command onto an iec104-master command is passed on as the value the
master sends, so its row keeps `multiplier` 1 and `offset` 0.
"#;

/// The IEC 104 slave's own device columns (without the TLS ones).
const OWN_DEVICE_COLUMNS: &[&str] = &[
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

/// Device columns of the IEC 104 slave: its own, then the TLS ones ([`crate::tls104::COLUMNS`]).
pub const DEVICE_COLUMNS: &[&str] = &crate::columns::concat::<
    { OWN_DEVICE_COLUMNS.len() + crate::tls104::COLUMNS.len() },
>(OWN_DEVICE_COLUMNS, crate::tls104::COLUMNS);

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
    /// `tls: 1` and its columns: masters connect with TLS (IEC 62351-3), never plaintext.
    pub tls: Option<crate::tls104::Iec104Tls>,
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

/// The enabled slave devices that cannot listen next to an earlier one: (later, earlier)
/// positions in `devices`. Two listeners clash on one port when their addresses are equal or
/// either is unspecified (`0.0.0.0` or `::`, which on Linux takes IPv4 too).
pub(crate) fn listen_clashes(devices: &[crate::Device]) -> Vec<(usize, usize)> {
    let listeners: Vec<(usize, IpAddr, u16)> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.enabled)
        .filter_map(|(i, d)| match &d.kind {
            crate::DeviceKind::Iec104Slave(s) => Some((i, s.bind, s.port.get())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (n, (i, ip, port)) in listeners.iter().enumerate() {
        let earlier = listeners.iter().take(n).find(|(_, other, p)| {
            p == port && (other == ip || other.is_unspecified() || ip.is_unspecified())
        });
        if let Some((e, _, _)) = earlier {
            out.push((*i, *e));
        }
    }
    out
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
    let tls = crate::tls104::read(r);
    let port = crate::tls104::read_port(r, matches!(tls, Some(Some(_))));
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
        port: port?,
        common_address: common_address?,
        sizes: sizes?,
        link: link?,
        allowed_masters: allowed?,
        redundancy_groups: groups?,
        accept_clock_sync: accept_clock_sync?,
        command_max_age: command_max_age?,
        select_timeout: select_timeout?,
        command_timeout: command_timeout?,
        tls: tls?,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::*;
    use crate::{validate, Applet, DeviceKind, Protocol, RawConfig, Validated};

    /// Field devices with one signal of every kind a slave row may point at, and two slaves.
    fn config(slave_device: Value, slave_rows: Vec<Value>) -> RawConfig {
        let mut signals = vec![
            json!({"device_alias": "rtu", "signal_alias": "sp", "info_address": 1, "type_id": "M_SP_NA_1"}),
            json!({"device_alias": "rtu", "signal_alias": "dp", "info_address": 2, "type_id": "M_DP_TB_1"}),
            json!({"device_alias": "rtu", "signal_alias": "me", "info_address": 3, "type_id": "M_ME_NC_1"}),
            json!({"device_alias": "rtu", "signal_alias": "sc", "info_address": 10, "type_id": "C_SC_NA_1"}),
            json!({"device_alias": "rtu", "signal_alias": "dc", "info_address": 11, "type_id": "C_DC_TA_1"}),
            json!({"device_alias": "rtu", "signal_alias": "se", "info_address": 12, "type_id": "C_SE_NC_1"}),
            json!({"device_alias": "mb", "signal_alias": "coil", "function": 1, "address": 0, "writable": 1}),
            json!({"device_alias": "mb", "signal_alias": "coil_w", "function": 5, "address": 1}),
            json!({"device_alias": "mb", "signal_alias": "di", "function": 2, "address": 0}),
            json!({"device_alias": "mb", "signal_alias": "ir", "function": 4, "address": 0, "data_type": "f32"}),
            json!({"device_alias": "mb", "signal_alias": "hr", "function": 3, "address": 10, "writable": 1}),
            json!({"device_alias": "mb", "signal_alias": "hr_ro", "function": 3, "address": 11}),
            json!({"device_alias": "mb", "signal_alias": "hr_f", "function": 16, "address": 12, "data_type": "f32"}),
            json!({"device_alias": "mb", "signal_alias": "bit", "function": 3, "address": 20, "data_type": "bool", "bit": 3, "writable": 1}),
            json!({"device_alias": "cloud", "signal_alias": "up", "source_device_alias": "rtu", "source_signal_alias": "sp"}),
            json!({"device_alias": "s2", "signal_alias": "x", "source_device_alias": "rtu", "source_signal_alias": "sp", "info_address": 1, "type_id": "M_SP_NA_1"}),
        ];
        signals.extend(slave_rows.into_iter().enumerate().map(|(i, mut row)| {
            row["device_alias"] = json!("s");
            if row.get("signal_alias").is_none() {
                row["signal_alias"] = json!(format!("p{i}"));
            }
            row
        }));
        let mut slave = json!({"name": "S", "device_alias": "s", "protocol": "iec104-slave", "asdu_address": 1});
        for (k, v) in slave_device.as_object().unwrap() {
            slave[k] = v.clone();
        }
        RawConfig::parse(
            &json!({
                "devices": [
                    {"name": "C", "device_alias": "cloud", "protocol": "mqtt", "ip": "b"},
                    {"name": "R", "device_alias": "rtu", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
                    {"name": "M", "device_alias": "mb", "protocol": "modbus-tcp", "ip": "h"},
                    slave,
                    {"name": "S2", "device_alias": "s2", "protocol": "iec104-slave", "port": 2405, "asdu_address": 2}
                ],
                "signals": signals
            })
            .to_string(),
        )
        .unwrap()
    }

    /// One slave row onto a source.
    fn row(source: &str, type_id: &str) -> Value {
        let (d, s) = source.split_once('/').unwrap();
        json!({"source_device_alias": d, "source_signal_alias": s, "info_address": 100, "type_id": type_id})
    }

    fn errors(v: &Validated) -> Vec<String> {
        v.errors.iter().map(ToString::to_string).collect()
    }

    /// The one error of a config, which must be at `column` of the first slave row.
    fn one_error(raw: &RawConfig, column: &str) -> String {
        let v = validate(raw);
        let e = errors(&v);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(v.errors[0].path.column.as_deref(), Some(column), "{e:?}");
        assert_eq!(v.errors[0].protocol, Some(Protocol::Iec104Slave));
        e[0].clone()
    }

    fn slave_device(v: &Validated) -> Iec104SlaveDevice {
        match &v.config.device(&"s".parse().unwrap()).unwrap().kind {
            DeviceKind::Iec104Slave(d) => d.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn slave_signals(v: &Validated) -> Vec<Iec104SlaveSignal> {
        v.config
            .signals_of(&"s".parse().unwrap())
            .map(|s| match &s.kind {
                SignalKind::Iec104Slave(x) => (**x).clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn device_defaults() {
        let v = validate(&config(json!({}), vec![]));
        assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:?}");
        let d = slave_device(&v);
        assert_eq!(d.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(d.port.get(), 2404);
        assert_eq!(d.common_address, CommonAddress(1));
        assert_eq!(d.sizes, AsduSizes::default());
        assert_eq!(d.link, LinkConfig::default());
        assert!(d.allowed_masters.is_empty() && d.redundancy_groups.is_empty());
        assert!(!d.accept_clock_sync);
        assert_eq!(d.command_max_age, Duration::from_secs(10));
        assert_eq!(d.select_timeout, Duration::from_secs(10));
        assert_eq!(d.command_timeout, Duration::from_secs(10));
        assert_eq!(d.groups(), vec![Vec::<IpAddr>::new()]);
        assert_eq!(d.group_of("192.0.2.7".parse().unwrap()), Some(0));
        assert!(v.config.applet_has_work(Applet::Iec104Slave));
        assert_eq!(Protocol::Iec104Slave.applet(), Applet::Iec104Slave);
        assert_eq!(Applet::Iec104Slave.as_str(), "iec104-slave");
    }

    #[test]
    fn masters_and_redundancy_groups() {
        let v = validate(&config(
            json!({"ip": "::", "port": 2410, "accept_clock_sync": 1, "select_timeout_s": 5,
                   "command_timeout_s": 20, "allowed_masters": "10.0.0.1, 10.0.0.2 10.0.0.3",
                   "redundancy_groups": "10.0.0.1 10.0.0.2; 10.0.0.3;"}),
            vec![],
        ));
        assert!(v.errors.is_empty(), "{:?}", errors(&v));
        let d = slave_device(&v);
        assert_eq!(d.bind, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert!(d.accept_clock_sync);
        assert_eq!(
            (d.select_timeout, d.command_timeout),
            (Duration::from_secs(5), Duration::from_secs(20))
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            d.groups(),
            vec![vec![ip("10.0.0.1"), ip("10.0.0.2")], vec![ip("10.0.0.3")]]
        );
        assert_eq!(d.group_of(ip("10.0.0.2")), Some(0));
        assert_eq!(d.group_of(ip("::ffff:10.0.0.3")), Some(1));
        assert_eq!(d.group_of(ip("10.0.0.4")), None);

        // Only allowed_masters: one group of them.
        let v = validate(&config(
            json!({"allowed_masters": "10.0.0.1 10.0.0.2"}),
            vec![],
        ));
        let d = slave_device(&v);
        assert_eq!(d.groups(), vec![vec![ip("10.0.0.1"), ip("10.0.0.2")]]);
        assert_eq!(d.group_of(ip("10.0.0.9")), None);
        // Only groups: they are the allow-list.
        let v = validate(&config(
            json!({"redundancy_groups": "10.0.0.1; 10.0.0.2"}),
            vec![],
        ));
        assert!(v.errors.is_empty(), "{:?}", errors(&v));
        assert_eq!(slave_device(&v).group_of(ip("10.0.0.9")), None);
    }

    #[test]
    fn bad_device_cells_are_errors_at_their_column() {
        for (cells, column, text) in [
            (json!({"ip": "gateway.local"}), "ip", "one IP address"),
            (json!({"ip": "0.0.0.0, ::"}), "ip", "one IP address"),
            (
                json!({"allowed_masters": "10.0.0.1 10.0.0"}),
                "allowed_masters",
                "\"10.0.0\" is not an IP address",
            ),
            (
                json!({"allowed_masters": "10.0.0.1;10.0.0.2"}),
                "allowed_masters",
                "is not an IP address",
            ),
            (
                json!({"redundancy_groups": "10.0.0.1; scada"}),
                "redundancy_groups",
                "\"scada\" is not an IP address",
            ),
            (
                json!({"redundancy_groups": "10.0.0.1 10.0.0.2; 10.0.0.2"}),
                "redundancy_groups",
                "10.0.0.2 is in two groups (also group 1)",
            ),
            (
                json!({"redundancy_groups": "10.0.0.1 10.0.0.1"}),
                "redundancy_groups",
                "10.0.0.1 is listed twice",
            ),
            (
                json!({"allowed_masters": "10.0.0.1", "redundancy_groups": "10.0.0.1; 10.0.0.2"}),
                "redundancy_groups",
                "10.0.0.2 is not in allowed_masters",
            ),
            (
                json!({"allowed_masters": "10.0.0.1 10.0.0.2", "redundancy_groups": "10.0.0.1"}),
                "allowed_masters",
                "10.0.0.2 is in no redundancy group",
            ),
            (
                json!({"redundancy_groups": "10.0.0.1;10.0.0.2;10.0.0.3;10.0.0.4;10.0.0.5;10.0.0.6;10.0.0.7;10.0.0.8;10.0.0.9"}),
                "redundancy_groups",
                "9 groups: at most 8",
            ),
            (
                json!({"ca_size": 1, "asdu_address": 300}),
                "asdu_address",
                "ca_size: at most 255",
            ),
            (json!({"cot_size": 3}), "cot_size", ""),
            (json!({"k": 4, "w": 8}), "w", ""),
            (json!({"t1_s": 300}), "t1_s", ""),
            (json!({"port": 0}), "port", "out of range 1..=65535"),
            (
                json!({"accept_clock_sync": 2}),
                "accept_clock_sync",
                "expected 0/1",
            ),
            (json!({"select_timeout_s": 0}), "select_timeout_s", ""),
            (json!({"command_timeout_s": 601}), "command_timeout_s", ""),
            (json!({"command_max_age_ms": 0}), "command_max_age_ms", ""),
        ] {
            let raw = config(cells.clone(), vec![]);
            let v = validate(&raw);
            let e = errors(&v);
            assert_eq!(e.len(), 1, "{cells}: {e:#?}");
            assert_eq!(
                v.errors[0].path.to_string(),
                format!("devices[3].{column}"),
                "{cells}: {e:?}"
            );
            assert!(e[0].contains(text), "{cells}: {e:?}");
            assert!(v.config.device(&"s".parse().unwrap()).is_none());
            assert!(v.errors_for(Applet::Iec104Master).is_empty());
        }
    }

    #[test]
    fn two_slaves_cannot_listen_on_one_port() {
        let v = validate(&config(json!({"port": 2405, "ip": "127.0.0.1"}), vec![]));
        let e = errors(&v);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("devices[4].port: device \"s\" (devices[3]) listens on the same"),
            "{e:?}"
        );
        assert!(v.config.device(&"s2".parse().unwrap()).is_none());
        assert!(v.config.signals_of(&"s2".parse().unwrap()).next().is_none());
        // Another port, or a disabled device, is fine.
        assert!(validate(&config(json!({"port": 2406}), vec![]))
            .errors
            .is_empty());
        let v = validate(&config(json!({"port": 2405, "enable": 0}), vec![]));
        assert!(v.errors.is_empty(), "{:?}", errors(&v));
    }

    #[test]
    fn rows_that_fit_their_source() {
        let rows = vec![
            row("rtu/sp", "M_SP_TB_1"),
            row("rtu/dp", "M_DP_NA_1"),
            row("rtu/me", "M_ME_NA_1"),
            row("mb/coil", "M_SP_NA_1"),
            row("mb/di", "M_SP_TB_1"),
            row("mb/bit", "M_SP_NA_1"),
            row("mb/ir", "M_ME_TF_1"),
            row("mb/hr", "M_DP_TB_1"),
            row("mb/hr_ro", "M_IT_TB_1"),
            row("mb/hr_ro", "M_BO_NA_1"),
            row("rtu/sc", "C_SC_TA_1"),
            row("rtu/dc", "C_DC_NA_1"),
            row("rtu/se", "C_SE_NB_1"),
            row("mb/coil", "C_SC_NA_1"),
            row("mb/coil_w", "C_SC_TA_1"),
            row("mb/hr", "C_SE_NA_1"),
            row("mb/hr", "C_DC_NA_1"),
            row("mb/hr_f", "C_SE_TC_1"),
        ];
        let n = rows.len();
        let rows: Vec<Value> = rows
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r["info_address"] = json!(100 + i);
                r
            })
            .collect();
        let mut raw = config(json!({}), rows);
        raw.signals[26].insert("select_before_operate".into(), json!(1));
        raw.signals[18].insert("multiplier".into(), json!(0.5));
        raw.signals[18].insert("offset".into(), json!(-3));
        let v = validate(&raw);
        assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:?}");
        let s = slave_signals(&v);
        assert_eq!(s.len(), n);
        assert!(!s[0].is_command() && s[10].is_command());
        assert_eq!(s[0].source_tag().to_string(), "tag/rtu/sp/in");
        assert_eq!(s[10].source_tag().to_string(), "tag/rtu/sc/out");
        assert_eq!(s[0].ioa, Ioa(100));
        assert_eq!(s[0].type_id, TypeId::M_SP_TB_1);
        assert!(s[10].select_before_operate && !s[0].select_before_operate);
        assert_eq!((s[2].multiplier, s[2].offset), (0.5, -3.0));
        // Row order is kept although slave rows are checked last.
        let rows: Vec<usize> = v.config.signals.iter().map(|s| s.index).collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    }

    #[test]
    fn two_objects_on_one_address() {
        let mut point = row("rtu/sp", "M_SP_NA_1");
        point["info_address"] = json!(7);
        let mut command = row("mb/hr", "C_SE_NB_1");
        command["info_address"] = json!("7");
        let raw = config(json!({}), vec![point.clone(), command]);
        let e = one_error(&raw, "info_address");
        assert!(e.starts_with("signals[17].info_address: duplicate info_address 7 on device \"s\" (also signals[16])"), "{e}");
        // The same address on another slave device is fine (s2 uses 1 as well).
        point["info_address"] = json!(1);
        assert!(validate(&config(json!({}), vec![point])).errors.is_empty());
        // An address that does not fit ioa_size.
        let mut r = row("rtu/sp", "M_SP_NA_1");
        r["info_address"] = json!(70_000);
        let e = one_error(&config(json!({"ioa_size": 2}), vec![r]), "info_address");
        assert!(e.contains("ioa_size: at most 65535"), "{e}");
    }

    #[test]
    fn a_source_must_exist_and_be_a_field_signal() {
        for (source, column, text) in [
            (
                "rtu9/sp",
                "source_device_alias",
                "no device \"rtu9\" in devices",
            ),
            (
                "rtu/nope",
                "source_signal_alias",
                "no signal \"nope\" on device \"rtu\"",
            ),
            (
                "cloud/up",
                "source_device_alias",
                "\"cloud\" is an MQTT device; a source must be a field device",
            ),
            (
                "s2/x",
                "source_device_alias",
                "\"s2\" is an iec104-slave device",
            ),
            (
                "s/p1",
                "source_device_alias",
                "\"s\" is an iec104-slave device",
            ),
        ] {
            let raw = config(
                json!({}),
                vec![row(source, "M_SP_NA_1"), row("rtu/sp", "M_SP_TB_1")],
            );
            let mut raw = raw;
            raw.signals[17].insert("info_address".into(), json!(101));
            let e = one_error(&raw, column);
            assert!(
                e.starts_with("signals[16]") && e.contains(text),
                "{source}: {e}"
            );
        }
        // An MQTT row cannot forward a slave's row either (it has no tag of its own).
        let mut raw = config(json!({}), vec![]);
        raw.signals[14].insert("source_device_alias".into(), json!("s2"));
        raw.signals[14].insert("source_signal_alias".into(), json!("x"));
        let e = errors(&validate(&raw));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("\"s2\" is an iec104-slave device"), "{e:?}");
    }

    #[test]
    fn a_monitor_point_needs_a_monitor_value() {
        for source in ["rtu/sc", "mb/coil_w", "mb/hr_f"] {
            let t = if source == "mb/hr_f" {
                "M_ME_NC_1"
            } else {
                "M_SP_NA_1"
            };
            let e = one_error(
                &config(json!({}), vec![row(source, t)]),
                "source_signal_alias",
            );
            assert!(e.contains("has no monitor value"), "{source}: {e}");
        }
    }

    #[test]
    fn a_command_needs_a_writable_source() {
        for (source, t, text) in [
            (
                "mb/hr_ro",
                "C_SE_NB_1",
                "is not writable (Modbus function 3, writable: 0)",
            ),
            (
                "mb/ir",
                "C_SE_NC_1",
                "is not writable (Modbus function 4, writable: 0)",
            ),
            ("mb/di", "C_SC_NA_1", "is not writable (Modbus function 2"),
            (
                "mb/bit",
                "C_SC_NA_1",
                "a bit of a register, which cannot be written",
            ),
            (
                "rtu/me",
                "C_SE_NC_1",
                "is not writable (no C_* type_id or command_type)",
            ),
        ] {
            let e = one_error(
                &config(json!({}), vec![row(source, t)]),
                "source_signal_alias",
            );
            assert!(e.contains(text), "{source}: {e}");
        }
        let e = one_error(
            &config(json!({}), vec![row("cloud/up", "C_SC_NA_1")]),
            "source_device_alias",
        );
        assert!(e.contains("is an MQTT device"), "{e}");
    }

    #[test]
    fn a_type_must_fit_its_source() {
        for (source, t, text) in [
            (
                "mb/coil",
                "C_SE_NC_1",
                "a set-point needs a register, not a coil",
            ),
            (
                "mb/coil_w",
                "C_DC_NA_1",
                "a double or step command writes 1 or 2",
            ),
            (
                "mb/hr_f",
                "C_RC_NA_1",
                "a double or step command writes 1 or 2",
            ),
            ("rtu/sc", "C_SE_NA_1", "its command is C_SC_NA_1"),
            ("rtu/se", "C_SC_NA_1", "its command is C_SE_NC_1"),
            ("rtu/se", "C_DC_TA_1", "its command is C_SE_NC_1"),
            ("rtu/dc", "C_SC_NA_1", "its command is C_DC_TA_1"),
            ("mb/ir", "M_SP_NA_1", "a single point needs a bool"),
            ("mb/ir", "M_BO_NA_1", "it needs an integer register"),
            ("mb/ir", "M_DP_NA_1", "it needs an integer register"),
            ("mb/coil", "M_ME_NC_1", "a bool is served as M_SP_NA_1"),
            ("mb/coil", "M_DP_NA_1", "it needs an integer register"),
            ("rtu/dp", "M_SP_NA_1", "its type is M_DP_NA_1"),
            ("rtu/sp", "M_ME_NC_1", "its type is M_SP_NA_1"),
            ("rtu/me", "M_DP_TB_1", "its type is M_ME_NC_1"),
        ] {
            let e = one_error(&config(json!({}), vec![row(source, t)]), "type_id");
            assert!(
                e.contains(&format!("{t} does not fit {source}: {text}")),
                "{e}"
            );
        }
        // A single command onto an IEC 104 command is passed on as it is.
        let mut r = row("rtu/sc", "C_SC_NA_1");
        r["multiplier"] = json!(2);
        let e = one_error(&config(json!({}), vec![r]), "multiplier");
        assert!(e.contains("multiplier 1 and offset 0"), "{e}");
    }

    #[test]
    fn own_cells_of_a_row() {
        for (cells, column, text) in [
            (
                json!({"type_id": "M_SP_TA_1"}),
                "type_id",
                "M_SP_TA_1 is not served by the slave",
            ),
            (
                json!({"type_id": "C_BO_NA_1"}),
                "type_id",
                "C_BO_NA_1 is not served by the slave",
            ),
            (
                json!({"type_id": "C_IC_NA_1"}),
                "type_id",
                "neither process information",
            ),
            (
                json!({"type_id": "M_NOPE"}),
                "type_id",
                "not a known type identification",
            ),
            (json!({"type_id": null}), "type_id", "required, but empty"),
            (json!({"multiplier": 0}), "multiplier", "must not be 0"),
            (json!({"offset": "x"}), "offset", "expected a number"),
            (
                json!({"select_before_operate": 1}),
                "select_before_operate",
                "applies to command rows only",
            ),
            (
                json!({"source_signal_alias": null}),
                "source_signal_alias",
                "required, but empty",
            ),
        ] {
            let mut r = row("rtu/sp", "M_SP_NA_1");
            for (k, v) in cells.as_object().unwrap() {
                r[k] = v.clone();
            }
            let e = one_error(&config(json!({}), vec![r]), column);
            assert!(e.contains(text), "{cells}: {e}");
        }
        // 0 on a monitor row is no selection: accepted.
        let mut r = row("rtu/sp", "M_SP_NA_1");
        r["select_before_operate"] = json!(0);
        assert!(validate(&config(json!({}), vec![r])).errors.is_empty());
    }

    #[test]
    fn a_row_whose_source_has_errors_is_left_out_with_a_warning() {
        let mut raw = config(
            json!({}),
            vec![row("mb/hr", "M_ME_NB_1"), row("rtu/sp", "M_SP_NA_1")],
        );
        raw.signals[17].insert("info_address".into(), json!(101));
        raw.signals[10].insert("data_type".into(), json!("u17"));
        let v = validate(&raw);
        assert_eq!(errors(&v).len(), 1, "{:?}", errors(&v));
        assert_eq!(v.errors[0].protocol, Some(Protocol::ModbusTcp));
        assert!(v.errors_for(Applet::Iec104Slave).is_empty());
        let w: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("signals[16].source_signal_alias: mb/hr has errors of its own"),
            "{w:?}"
        );
        let s = slave_signals(&v);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].source.signal.as_str(), "sp");
    }
}
