//! The IEC 60870-5-104 controlled station (slave) of the gateway: SCADA masters connect to it
//! and see the tag bus values; their commands go to the `out` tags of field devices.
//!
//! - [`station`]: the sans-IO station core (connections, redundancy groups, the event queue
//!   acknowledged by N(R), interrogations, commands, negative causes) and its tokio layer;
//!   its module docs state the rules, the order of GI answers and buffered events, and the
//!   redundancy behaviour.
//! - [`map`]: tag bus values to IEC points (quality bits, CP56Time2a, scaling) and IEC
//!   commands to `out` values.
//! - [`bridge`]: the applet: the tag bus feed per redundancy group, acknowledged on the
//!   stream only once the master's N(R) covered it, commands answered from the field
//!   drivers' results, the stats for the status displays.
//!
//! What a SCADA engineer can count on:
//! - **No event lost toward SCADA**: events while no master is started (an outage, a STOPDT,
//!   a restart or a SIGKILL of this applet) are sent after the next STARTDT, in stream order,
//!   bounded by the stream cap (what it trimmed unsent is counted as `dropped`). A master may
//!   see an event twice after a link loss, never miss one.
//! - **Quality never lies**: a source the gateway lost carries `nolink` on the bus, which the
//!   slave sends as NT; a point whose source never had a value is sent invalid (IV); when the
//!   tag bus itself is lost for [`bridge::BUS_LOSS_MARK_AFTER`] (no driver can write then),
//!   every point is sent NT, and its current value again once the bus is back.
//! - **Spontaneous only on change**: an unchanged value or quality (a poll repeating the last
//!   reading) is no event; interrogations answer from the current values.
//! - **A command is confirmed by the device**: ACT_CON positive (and ACT_TERM) only when the
//!   field driver reported the write `confirmed`; a refusal, a timeout (`command_timeout_s`)
//!   or a link down answers ACT_CON negative. The link to the master is never closed for it.
//! - **Clock sync** is confirmed; it sets the system clock only with `accept_clock_sync`.
//! - **TLS** (`tls: 1`, IEC 62351-3 through the `iec62351` crate): every master must present a
//!   certificate the row accepts; a failed handshake closes only that socket, is logged and
//!   counted in the device's TLS stats hash (written with the slave's stats). TLS 1.3
//!   sessions get a KeyUpdate every `tls_renewal_s`; a TLS 1.2 session is renewed by the
//!   master (a fieldbridge master reconnects through STOPDT), never forced by the slave.

pub mod bridge;
mod clock;
pub mod map;
mod plan;
pub mod station;

pub use bridge::{run, run_all, SlaveError, SlaveSettings};
pub use plan::{slave_settings, station_config};
