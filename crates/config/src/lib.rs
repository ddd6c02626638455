//! The fieldbridge configuration (its place: docs/architecture.md). Every column, with its
//! unit, range and default, is listed in `docs/config-columns.md`, generated from these readers
//! ([`column_reference`]).
//!
//! Three steps, kept apart:
//! 1. **parse** JSON text into a [`RawConfig`] ([`RawConfig::parse`]), or **load** a file
//!    layered with figment: defaults, then the file, then `FIELDBRIDGE_REDIS_URL` /
//!    `FIELDBRIDGE_STREAM_MAX_LEN` ([`RawConfig::load`]);
//! 2. the raw config is two lists of rows (column -> cell), exactly the `Devices` and
//!    `Signals` sheets of the workbook, so the workbook importer and the JSON share one model;
//! 3. [`validate`] turns rows into typed [`Device`]s and [`Signal`]s per protocol and returns
//!    **all** errors, each with its path (`signals[3].source_device_alias: no device "rtu9"
//!    in devices`) and the protocol it belongs to, so the supervisor can start the protocols
//!    whose part is valid and hold back the others.
//!
//! Cells are read leniently, as a spreadsheet writes them: numbers as text (`"1883"`),
//! integral floats (`1883.0`), booleans as `0/1`, `true/false`, `yes/no`, `on/off`; an empty
//! cell is an absent one (its default applies). Unknown columns and columns of another
//! protocol are warnings, not errors. Durations carry their unit in the column name (`_s`,
//! `_ms`); a column renamed for that is still read under its old name ([`RENAMED`]) with a
//! warning naming the new one.

mod cell;
mod columns;
mod error;
pub mod iec104;
pub mod iec104_slave;
pub mod modbus;
mod model;
pub mod mqtt;
mod raw;
pub mod report;
mod row;
pub mod tls104;
mod validate;

pub use cell::{
    cell_bool, cell_float, cell_int, cell_text, exact_integer, redact_url, IntColumn,
    SECRET_COLUMNS,
};
pub use columns::{column_reference, renamed_to, unit_of, upgrade_columns, Renamed, RENAMED};
pub use error::{ConfigError, ConfigErrors, ConfigPath, Section};
pub use model::{Applet, Config, Device, DeviceKind, Protocol, Secret, Signal, SignalKind};
pub use raw::{
    LoadError, RawConfig, Row, DEFAULT_CONFIG_PATH, DEFAULT_REDIS_URL, ENV_KEYS, ENV_PREFIX,
};
pub use validate::{
    device_columns, signal_columns, validate, validate_owned, Validated, DEVICE_COMMON_COLUMNS,
    SIGNAL_COMMON_COLUMNS, STREAM_MAX_LEN_RANGE,
};
