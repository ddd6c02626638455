//! The tag reader: the snapshot of current values, then the live feed, across reconnects.

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;

use crate::{TagBusError, TagKey, TagValue};

/// Where a value in the feed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the key (the value current when the reader (re)connected).
    Snapshot,
    /// Received on the PUBLISH channel as it was written.
    Live,
}

/// What a reader delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A value, from the snapshot or the live feed.
    Value {
        key: TagKey,
        value: TagValue,
        origin: Origin,
    },
    /// The snapshot after a (re)connect is complete; live values follow.
    SnapshotComplete { count: usize },
    /// The connection to Redis was lost; the reader reconnects by itself and sends a new
    /// snapshot. Values written meanwhile are in that snapshot (latest value per key).
    Disconnected,
}

/// Settings of a reader.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub redis_url: String,
    /// The Redis glob of the keys to read, e.g. `tag/*/*/in` (see [`TagKey::pattern`]).
    pub pattern: String,
}

/// The receiving end of a reader task; the task stops when this is dropped.
pub struct TagFeed {
    rx: mpsc::Receiver<FeedEvent>,
}

impl TagFeed {
    /// The next event; `None` only after the task has stopped.
    pub async fn recv(&mut self) -> Option<FeedEvent> {
        self.rx.recv().await
    }
}

const SCAN_COUNT: usize = 1000;
const MGET_CHUNK: usize = 500;
/// How long connecting, subscribing, one snapshot read or one stats write may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Spawns a reader task: it subscribes to the pattern's channels, then reads the current
/// value of every matching key (the snapshot), then forwards the live values. Subscribing
/// before reading means no value written during the snapshot is missed (it may come twice).
/// When Redis goes away it says so, reconnects with backoff and jitter, and starts over.
/// Malformed keys or values on the bus are logged and skipped, never fatal.
pub fn spawn_reader(config: ReaderConfig, capacity: usize) -> Result<TagFeed, TagBusError> {
    let rx = spawn_feed::<TagDecoder>(
        &config.redis_url,
        Selection::Pattern(config.pattern),
        capacity,
    )?;
    Ok(TagFeed { rx })
}

/// Reads the stored text of each key in one pass (`MGET` in chunks), in the order of `keys`:
/// `None` where a key holds nothing. Fails when Redis does not answer within 5 s per step.
pub async fn read_stored(
    redis_url: &str,
    keys: &[TagKey],
) -> Result<Vec<Option<Vec<u8>>>, TagBusError> {
    let mut stored = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(stored);
    }
    let client = redis::Client::open(redis_url)?;
    let mut conn = timed(client.get_multiplexed_async_connection()).await?;
    let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
    for chunk in names.chunks(MGET_CHUNK) {
        let values: Vec<Option<Vec<u8>>> = timed(conn.mget(chunk)).await?;
        stored.extend(values);
    }
    Ok(stored)
}

/// The current values of `keys` that hold a well-formed value (see [`read_stored`]); a
/// malformed one is logged and left out.
pub async fn read_values(
    redis_url: &str,
    keys: &[TagKey],
) -> Result<Vec<(TagKey, TagValue)>, TagBusError> {
    let stored = read_stored(redis_url, keys).await?;
    Ok(keys
        .iter()
        .zip(stored)
        .filter_map(|(key, bytes)| match TagValue::from_bytes(&bytes?) {
            Ok(value) => Some((key.clone(), value)),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "skipping a malformed value on the tag bus");
                None
            }
        })
        .collect())
}

/// `f` bounded by 5 s ([`TagBusError::Timeout`]): every Redis step of the readers and the
/// stats writer.
pub(crate) async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, TagBusError> {
    Ok(tokio::time::timeout(REDIS_TIMEOUT, f)
        .await
        .map_err(|_| TagBusError::Timeout)??)
}

/// What a feed follows.
pub(crate) enum Selection {
    /// The keys matching a glob: `PSUBSCRIBE`, the snapshot by `SCAN`.
    Pattern(String),
    /// A fixed list of keys: `SUBSCRIBE`, the snapshot by `MGET`.
    Keys(Vec<String>),
}

/// How a feed turns what it reads into the events it delivers.
pub(crate) trait Decoder {
    type Event: Send + 'static;
    /// Names the feed in its log lines.
    const NAME: &'static str;
    /// A key (or channel) and its value, read from the snapshot or received live.
    fn value(key: &[u8], value: &[u8], origin: Origin) -> Option<Self::Event>;
    /// The snapshot after a (re)connect is complete.
    fn snapshot_complete(count: usize) -> Option<Self::Event>;
    /// The connection was lost (the feed reconnects by itself).
    fn disconnected() -> Option<Self::Event>;
}

/// Spawns the task of a feed (the one subscribe-snapshot-live loop every Redis reader
/// shares). The task ends when the receiver is dropped.
pub(crate) fn spawn_feed<D: Decoder>(
    redis_url: &str,
    selection: Selection,
    capacity: usize,
) -> Result<mpsc::Receiver<D::Event>, TagBusError> {
    let client = redis::Client::open(redis_url)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    tokio::spawn(async move {
        let mut backoff =
            backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let result = tokio::select! {
                r = run_once::<D>(&client, &selection, &tx, &mut backoff) => r,
                () = tx.closed() => return,
            };
            match result {
                Ok(()) => return, // the consumer is gone
                Err(e) => {
                    if let Some(event) = D::disconnected() {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "{} lost Redis; reconnecting", D::NAME);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
    Ok(rx)
}

/// Runs one connection's life. `Ok` means the consumer went away; `Err` means Redis did.
async fn run_once<D: Decoder>(
    client: &redis::Client,
    selection: &Selection,
    tx: &mpsc::Sender<D::Event>,
    backoff: &mut backoff::Backoff,
) -> Result<(), TagBusError> {
    if let Selection::Keys(keys) = selection {
        if keys.is_empty() {
            // Nothing to follow: wait for the consumer to go.
            tx.closed().await;
            return Ok(());
        }
    }
    let mut pubsub = timed(client.get_async_pubsub()).await?;
    match selection {
        Selection::Pattern(pattern) => timed(pubsub.psubscribe(pattern)).await?,
        Selection::Keys(keys) => timed(pubsub.subscribe(keys)).await?,
    }
    let mut conn = timed(client.get_multiplexed_async_connection()).await?;

    // The snapshot: the matching keys (SCAN for a pattern), their values by MGET in chunks.
    let scanned: Vec<String>;
    let keys = match selection {
        Selection::Keys(keys) => keys,
        Selection::Pattern(pattern) => {
            let mut found = Vec::new();
            let mut iter: redis::AsyncIter<String> = timed(redis::AsyncCommands::scan_options(
                &mut conn,
                redis::ScanOptions::default()
                    .with_pattern(pattern)
                    .with_count(SCAN_COUNT),
            ))
            .await?;
            while let Some(item) = iter.next_item().await {
                found.push(item?);
            }
            scanned = found;
            &scanned
        }
    };
    let mut count = 0usize;
    for chunk in keys.chunks(MGET_CHUNK) {
        let values: Vec<Option<Vec<u8>>> = timed(conn.mget(chunk)).await?;
        for (key, value) in chunk.iter().zip(values) {
            let Some(value) = value else { continue };
            if let Some(event) = D::value(key.as_bytes(), &value, Origin::Snapshot) {
                count = count.saturating_add(1);
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    drop(conn);
    if let Some(event) = D::snapshot_complete(count) {
        if tx.send(event).await.is_err() {
            return Ok(());
        }
    }
    backoff.reset();

    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        if let Some(event) = D::value(
            msg.get_channel_name().as_bytes(),
            msg.get_payload_bytes(),
            Origin::Live,
        ) {
            if tx.send(event).await.is_err() {
                return Ok(());
            }
        }
    }
    Err(TagBusError::ConnectionLost)
}

/// The tag feed: keys that are tags, values in the CSV codec.
struct TagDecoder;

impl Decoder for TagDecoder {
    type Event = FeedEvent;
    const NAME: &'static str = "tag bus reader";

    fn value(key: &[u8], value: &[u8], origin: Origin) -> Option<FeedEvent> {
        let key_text = String::from_utf8_lossy(key);
        let key: TagKey = match key_text.parse() {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(key = %key_text, error = %e, "skipping a key that is not a tag");
                return None;
            }
        };
        match TagValue::from_bytes(value) {
            Ok(value) => Some(FeedEvent::Value { key, value, origin }),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "skipping a malformed value on the tag bus");
                None
            }
        }
    }

    fn snapshot_complete(count: usize) -> Option<FeedEvent> {
        Some(FeedEvent::SnapshotComplete { count })
    }

    fn disconnected() -> Option<FeedEvent> {
        Some(FeedEvent::Disconnected)
    }
}
