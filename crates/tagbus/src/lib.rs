//! The fieldbridge tag bus: the one crate that talks to Redis. Every applet reads and writes
//! Redis through it, for every access; the contracts it speaks (keys, the value CSV, the
//! stream fields, command results, the stats hash) live in the pure crate `contract`
//! (package `fieldbridge-contract`), re-exported here.
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
//!   backoff when Redis restarts; [`read_values`] / [`read_stored`]: one read of given keys.
//! - [`stream`]: the consumer-group reader and acker of the durable feed; [`feed`]: the
//!   reading order over it (pending, backlog, snapshot, live) with reconnects.
//! - [`results`]: the command results writer (drivers) and listener (the MQTT command path).
//! - [`stats`]: the stats hash writers (the MQTT publisher, the IEC 104 slave) and readers
//!   (`fieldbridge status`, the supervisor).

/// Every contract type and constant (`tagbus::TagKey`, `tagbus::command`, ...); the module
/// [`stats`] here extends `contract::stats` with its Redis I/O.
pub use contract::*;

pub mod counter;
pub mod feed;
mod mark;
mod reader;
mod resp;
pub mod results;
pub mod stats;
pub mod stream;
mod writer;

pub use mark::{mark_no_link, MARK_TIMEOUT};
pub use reader::{
    read_stored, read_values, spawn_reader, FeedEvent, Origin, ReaderConfig, TagFeed,
};
pub use stream::{EntryBody, EntryId, StreamAcker, StreamConsumer, StreamEntry, TrimCounter};
pub use writer::{packed_batch, spawn_writer, TagWriter, TagWriterHandle, WriterConfig, MAX_BATCH};

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
