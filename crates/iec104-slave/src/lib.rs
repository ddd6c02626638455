//! The IEC 60870-5-104 controlled station (slave) of the gateway: SCADA masters connect to it
//! and see the tag bus values; their commands go to the `out` tags of field devices.
//!
//! - [`station`]: the sans-IO station core (connections, redundancy groups, event buffer
//!   acknowledged by N(R), interrogations, commands) and its tokio layer.
//! - [`map`]: tag bus values to IEC points and IEC commands to `out` values.
//! - [`bridge`]: the applet: the tag bus stream per redundancy group, commands and results.

pub mod map;
pub mod station;
