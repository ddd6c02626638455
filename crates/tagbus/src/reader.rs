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

/// Spawns a reader task: it subscribes to the pattern's channels, then reads the current
/// value of every matching key (the snapshot), then forwards the live values. Subscribing
/// before reading means no value written during the snapshot is missed (it may come twice).
/// When Redis goes away it says so, reconnects with backoff and jitter, and starts over.
/// Malformed keys or values on the bus are logged and skipped, never fatal.
pub fn spawn_reader(config: ReaderConfig, capacity: usize) -> Result<TagFeed, TagBusError> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    tokio::spawn(async move {
        let mut backoff =
            backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match run_once(&client, &config.pattern, &tx, &mut backoff).await {
                Ok(()) => return, // the consumer is gone
                Err(e) => {
                    if tx.send(FeedEvent::Disconnected).await.is_err() {
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "tag bus reader lost Redis; reconnecting");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
    Ok(TagFeed { rx })
}

/// Runs one connection's life. `Ok` means the consumer went away; `Err` means Redis did.
async fn run_once(
    client: &redis::Client,
    pattern: &str,
    tx: &mpsc::Sender<FeedEvent>,
    backoff: &mut backoff::Backoff,
) -> Result<(), TagBusError> {
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| TagBusError::Timeout)??;
    pubsub.psubscribe(pattern).await?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| TagBusError::Timeout)??;

    // The snapshot: SCAN the keyspace, MGET in chunks.
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<String> = redis::AsyncCommands::scan_options(
            &mut conn,
            redis::ScanOptions::default()
                .with_pattern(pattern)
                .with_count(SCAN_COUNT),
        )
        .await?;
        while let Some(item) = iter.next_item().await {
            keys.push(item?);
        }
    }
    let mut count = 0usize;
    for chunk in keys.chunks(MGET_CHUNK) {
        let values: Vec<Option<Vec<u8>>> = conn.mget(chunk).await?;
        for (key, value) in chunk.iter().zip(values) {
            let Some(value) = value else { continue };
            if let Some(event) = decode(key.as_bytes(), &value, Origin::Snapshot) {
                count = count.saturating_add(1);
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    if tx
        .send(FeedEvent::SnapshotComplete { count })
        .await
        .is_err()
    {
        return Ok(());
    }
    backoff.reset();

    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let channel = msg.get_channel_name().as_bytes().to_vec();
        if let Some(event) = decode(&channel, msg.get_payload_bytes(), Origin::Live) {
            if tx.send(event).await.is_err() {
                return Ok(());
            }
        }
    }
    Err(TagBusError::ConnectionLost)
}

fn decode(key: &[u8], value: &[u8], origin: Origin) -> Option<FeedEvent> {
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
