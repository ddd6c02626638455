//! The fieldbridge contracts on the tag bus: what every applet and every consumer (a
//! script, `redis-cli`, the WCC Lite tools) agrees on, with no I/O. `tagbus` is the one crate
//! that reads and writes them in Redis; `fieldbridge-config` uses the key types to validate
//! aliases. This crate depends on nothing that does I/O (no Redis client, no async runtime).
//!
//! - [`TagKey`]: `tag/<device_alias>/<signal_alias>/<direction>` with [`Direction`] `in`,
//!   `out`, `rin`, `rout`; aliases validated by [`Alias`].
//! - [`TagValue`]: the CSV text `value,timestamp_ms,flags` (`23.5,1732280000000,` or
//!   `1,1732280000000,iv nt`, `nan`), [`Flags`] with unknown codes kept, and the WCC Lite
//!   quality (`1`, or `0` when the flags hold `iv`, `nt` or `ov`).
//! - The durable feed: every `in` and `out` value is appended to the capped stream
//!   [`STREAM_KEY`] as the fields [`STREAM_FIELD_KEY`] and [`STREAM_FIELD_VALUE`]. Only `in`
//!   and `out` ([`Direction::is_streamed`]): `rin`/`rout` (the raw twins) are SET and
//!   PUBLISHed like every value but not streamed; nothing forwards them durably, and streaming
//!   them would halve how long an outage the capped stream can bridge.
//! - [`command`]: the command-outcome contract every master driver follows
//!   ([`command::CommandResult`] on `result/<device>/<signal>`).
//! - [`stats`]: the hashes the MQTT publisher's counters and each `iec104-slave` device's
//!   masters and counters are written to, for `fieldbridge status` and the status file.
//! - [`sparkplug`]: the key of a Sparkplug edge node's persisted bdSeq counter.

pub mod command;
mod key;
pub mod sparkplug;
pub mod stats;
mod value;

pub use command::{CommandOutcome, CommandResult};
pub use key::{
    Alias, ConsumerGroup, Direction, KeyError, TagKey, FORBIDDEN_ALIAS_CHARS, MAX_ALIAS_LEN,
    TAG_PREFIX,
};
pub use value::{
    now_ms, scale, widen_f32, Flag, Flags, TagValue, Value, ValueError, WccPayload, MAX_CSV_LEN,
    SCALED_DIGITS,
};

/// The Redis stream every `in` and `out` value is appended to.
pub const STREAM_KEY: &str = "tagbus:stream";
/// The stream entry field holding the tag key.
pub const STREAM_FIELD_KEY: &str = "k";
/// The stream entry field holding the CSV value.
pub const STREAM_FIELD_VALUE: &str = "v";
/// The default approximate cap of the stream: about 250,000 entries (roughly 40 MB of Redis
/// memory), a 4 minute outage at 1,000 values/s or a 200,000 value backlog.
pub const DEFAULT_STREAM_MAX_LEN: u64 = 250_000;
