//! The durable feed of one consumer: what a publisher that must not lose a value reads (the
//! MQTT publisher per broker, the IEC 104 slave per redundancy group).
//!
//! [`run_feed`] reads, in this order, and starts over from 1 after Redis failed:
//! 1. the consumer's pending entries (delivered before, not acknowledged: left by a lost
//!    connection or a killed process);
//! 2. the backlog: entries never delivered to the group, until a read comes back short;
//! 3. the snapshot: the current value of every key the consumer serves, a chunk at a time
//!    (never all of them in RAM at once);
//! 4. the live feed.
//!
//! Items go to a bounded channel: a read of up to `read_batch` entries (or one snapshot chunk)
//! is one item, so at most the channel's capacity + 1 batches are in RAM. The consumer
//! acknowledges entries itself ([`StreamConsumer::ack`] / [`crate::StreamAcker`]) once their
//! values are delivered; whatever it has not acknowledged is read again in step 1.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::stream::{StreamConsumer, TrimCounter, SNAPSHOT_CHUNK};
use crate::{EntryBody, EntryId, StreamEntry, TagBusError, TagKey, TagValue};

/// One step of the durable feed.
#[derive(Debug)]
pub enum FeedItem {
    /// Stream entries, as one read returned them.
    Entries(Vec<StreamEntry>),
    /// Current values from the keys (the snapshot after the backlog), a chunk at a time.
    Snapshot(Vec<(TagKey, TagValue)>),
    /// The snapshot was sent; live entries follow.
    Live { snapshot: usize },
    /// Redis failed; the feed reconnects by itself and starts over from the pending entries.
    Restarted(TagBusError),
}

/// What a feed keeps across reconnects (cheap to clone, shared by its reconnects): the trim
/// counter of its group and where a missing group is created.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    trimmed: Arc<TrimCounter>,
    /// The consumer group existed or was created once in this process.
    ready: Arc<AtomicBool>,
}

impl GroupState {
    /// The group's count of entries the cap trimmed unread.
    pub fn trimmed(&self) -> Arc<TrimCounter> {
        self.trimmed.clone()
    }

    /// Where a missing consumer group is created: `$` the first time in this process (no
    /// old backlog on a first start), `0` afterwards (the group vanished with a Redis that
    /// restarted without persistence: every entry of the new stream is new and must go out).
    fn group_start(&self) -> &'static str {
        if self.ready.load(Ordering::Relaxed) {
            "0"
        } else {
            "$"
        }
    }
}

/// The keys whose current values make the snapshot (shared, not copied: they are thousands).
pub trait SnapshotKeys: Send + Sync + 'static {
    fn snapshot_keys(&self) -> Box<dyn Iterator<Item = &TagKey> + Send + '_>;
}

/// What the feed needs to reconnect.
pub struct FeedSetup<K> {
    pub redis_url: String,
    pub group: String,
    /// Stable across restarts, so a restarted process reads what it left pending.
    pub consumer: &'static str,
    pub state: GroupState,
    pub keys: Arc<K>,
    /// Entries per read.
    pub read_batch: usize,
    /// Print every entry and snapshot value to stdout (`redis <id> <key> <value>`).
    pub trace: bool,
}

/// Connects a stream consumer of the group and makes sure the group exists (created at
/// [`GroupState`]'s rule).
pub async fn open_consumer(
    redis_url: &str,
    group: &str,
    consumer: &str,
    state: &GroupState,
) -> Result<StreamConsumer, TagBusError> {
    let mut c = StreamConsumer::connect(redis_url, group, consumer, state.trimmed()).await?;
    let start = state.group_start();
    if c.ensure_group_from(start).await? {
        if start == "$" {
            tracing::info!(group = %group, "created the stream consumer group at the end of the stream");
        } else {
            tracing::warn!(group = %group, "the stream consumer group was gone (Redis restarted without persistence?): re-created at the start of the stream; values not forwarded before the restart are lost");
        }
    }
    state.ready.store(true, Ordering::Relaxed);
    Ok(c)
}

/// Runs the feed on `consumer` (opened with [`open_consumer`]) until the receiver is gone.
/// When Redis fails it says so ([`FeedItem::Restarted`]), reconnects with backoff and starts
/// over.
pub async fn run_feed<K: SnapshotKeys>(
    mut consumer: StreamConsumer,
    setup: FeedSetup<K>,
    tx: mpsc::Sender<FeedItem>,
) {
    let mut backoff = backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let Err(e) = read_all(&mut consumer, &setup, &tx).await else {
            return; // the receiver is gone
        };
        if tx.send(FeedItem::Restarted(e)).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if tx.is_closed() {
                return;
            }
            match open_consumer(&setup.redis_url, &setup.group, setup.consumer, &setup.state).await
            {
                Ok(c) => {
                    consumer = c;
                    break;
                }
                Err(e) => {
                    tracing::warn!(group = %setup.group, error = %e, "tag bus stream: cannot reach Redis or create the consumer group; retrying")
                }
            }
        }
    }
}

async fn read_all<K: SnapshotKeys>(
    consumer: &mut StreamConsumer,
    setup: &FeedSetup<K>,
    tx: &mpsc::Sender<FeedItem>,
) -> Result<(), TagBusError> {
    let batch_len = setup.read_batch.max(1);
    // 1. This consumer's pending entries.
    let mut after: Option<EntryId> = None;
    let mut pending = 0usize;
    loop {
        let batch = consumer.read_pending(after.as_ref(), batch_len).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id.clone());
        pending = pending.saturating_add(batch.len());
        if !forward(batch, tx, setup.trace).await {
            return Ok(());
        }
    }
    if pending > 0 {
        tracing::info!(group = %setup.group, pending, "sending stream entries not acknowledged before again");
    }
    // 2. The backlog.
    loop {
        let batch = consumer.read_new(batch_len, Duration::ZERO).await?;
        let short = batch.len() < batch_len;
        if !forward(batch, tx, setup.trace).await {
            return Ok(());
        }
        if short {
            break;
        }
    }
    // 3. The snapshot.
    let mut n = 0usize;
    let mut keys = setup.keys.snapshot_keys().peekable();
    while keys.peek().is_some() {
        let snapshot = consumer
            .snapshot(keys.by_ref().take(SNAPSHOT_CHUNK))
            .await?;
        n = n.saturating_add(snapshot.len());
        if setup.trace {
            for (key, value) in &snapshot {
                print_line(&format!("redis snapshot {key} {value}\n"));
            }
        }
        if tx.send(FeedItem::Snapshot(snapshot)).await.is_err() {
            return Ok(());
        }
    }
    if tx.send(FeedItem::Live { snapshot: n }).await.is_err() {
        return Ok(());
    }
    // 4. The live feed.
    loop {
        let batch = consumer.read_new(batch_len, Duration::from_secs(1)).await?;
        if !forward(batch, tx, setup.trace).await {
            return Ok(());
        }
    }
}

async fn forward(batch: Vec<StreamEntry>, tx: &mpsc::Sender<FeedItem>, trace: bool) -> bool {
    if trace {
        for entry in &batch {
            let line = match &entry.body {
                EntryBody::Tag { key, value } => format!("redis {} {key} {value}\n", entry.id),
                EntryBody::Malformed(why) => format!("redis {} malformed: {why}\n", entry.id),
                EntryBody::Trimmed => format!("redis {} trimmed\n", entry.id),
            };
            print_line(&line);
        }
    }
    if batch.is_empty() {
        return !tx.is_closed();
    }
    tx.send(FeedItem::Entries(batch)).await.is_ok()
}

/// Writes a trace line to stdout (ignoring a closed stdout).
pub fn print_line(line: &str) {
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}
