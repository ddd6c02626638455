//! The fieldbridge tag bus: the only code that knows how tags live in Redis.
//!
//! - [`TagKey`]: `tag/<device_alias>/<signal_alias>/<direction>` with [`Direction`] `in`,
//!   `out`, `rin`, `rout`; aliases validated by [`Alias`].
//! - [`TagValue`]: the CSV text `value,timestamp_ms,flags` (`23.5,1732280000000,` or
//!   `1,1732280000000,iv nt`, `nan`), [`Flags`] with unknown codes kept, and the WCC Lite
//!   quality (`1`, or `0` when the flags hold `iv`, `nt`, `ov` or `nolink`).
//! - The gateway's link-loss mark ([`TagValue::marked_no_link`]): the value and timestamp
//!   kept, flags plus `nt nolink` (`1,1732280000000,gt nt nolink`). `nolink` says the gateway
//!   lost the device (link down, no answer, or the applet reading it stopped); a device's own
//!   not-topical value has `nt` without it (`1,1732280000000,nt gt` for an untagged one).
//! - [`mark_no_link`]: that mark for every `in`/`rin` value of some devices, written only where
//!   the value is still the one read (an applet that stops, and the supervisor for one that
//!   died without doing it).
//! - [`TagWriter`] / [`spawn_writer`]: each write is `SET` (the latest value), `PUBLISH` on the
//!   channel of the same name (the live feed) and `XADD` to the capped stream [`STREAM_KEY`]
//!   (the durable feed the MQTT publisher reads with a consumer group), a batch in one
//!   `MULTI`/`EXEC` round trip.
//! - [`spawn_reader`]: the snapshot of current values plus the live feed, reconnecting with
//!   backoff when Redis restarts.
//!
//! - [`command`]: the command-outcome contract every master driver follows
//!   ([`command::CommandResult`] on `result/<device>/<signal>`).
//!
//! Decision: only `in` and `out` values are added to the stream. `rin`/`rout` (the raw twins)
//! are SET and PUBLISHed like every value but not streamed: nothing forwards them durably, and
//! streaming them would halve how long an outage the capped stream can bridge.

pub mod command;
mod key;
mod mark;
mod reader;
mod resp;
pub mod stream;
mod value;
mod writer;

pub use command::{CommandOutcome, CommandResult};
pub use key::{
    Alias, Direction, KeyError, TagKey, FORBIDDEN_ALIAS_CHARS, MAX_ALIAS_LEN, TAG_PREFIX,
};
pub use mark::{mark_no_link, MARK_TIMEOUT};
pub use reader::{spawn_reader, FeedEvent, Origin, ReaderConfig, TagFeed};
pub use stream::{EntryBody, EntryId, StreamAcker, StreamConsumer, StreamEntry, TrimCounter};
pub use value::{
    now_ms, scale, widen_f32, Flag, Flags, TagValue, Value, ValueError, MAX_CSV_LEN, SCALED_DIGITS,
};
pub use writer::{packed_batch, spawn_writer, TagWriter, TagWriterHandle, WriterConfig, MAX_BATCH};

/// The Redis stream every `in` and `out` value is appended to.
pub const STREAM_KEY: &str = "tagbus:stream";
/// The stream entry field holding the tag key.
pub const STREAM_FIELD_KEY: &str = "k";
/// The stream entry field holding the CSV value.
pub const STREAM_FIELD_VALUE: &str = "v";
/// The default approximate cap of the stream: about 250,000 entries (roughly 40 MB of Redis
/// memory), a 4 minute outage at 1,000 values/s or a 200,000 value backlog.
pub const DEFAULT_STREAM_MAX_LEN: u64 = 250_000;

/// Errors of the tag bus.
#[derive(Debug, thiserror::Error)]
pub enum TagBusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer in time")]
    Timeout,
    #[error("the connection to redis was lost")]
    ConnectionLost,
    #[error("the tag writer task has stopped")]
    WriterGone,
    #[error("bad tag key: {0}")]
    Key(#[from] KeyError),
    #[error("bad tag value: {0}")]
    Value(#[from] ValueError),
    #[error("redis connection: {0}")]
    Io(String),
    #[error("redis: {0}")]
    Protocol(String),
}
