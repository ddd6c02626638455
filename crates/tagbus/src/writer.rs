//! The tag writer: SET + PUBLISH + XADD of each value, a batch in one MULTI round trip.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{TagBusError, TagKey, TagValue, STREAM_KEY};

/// Settings of a writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Approximate cap of the durable stream (`XADD MAXLEN ~`).
    pub stream_max_len: u64,
}

impl WriterConfig {
    /// A writer config with the default stream cap.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            stream_max_len: crate::DEFAULT_STREAM_MAX_LEN,
        }
    }
}

/// A direct writer: one connection, reconnected on the next call after a failure.
pub struct TagWriter {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    stream_max_len: u64,
}

impl TagWriter {
    /// A writer for this Redis; it connects on first use.
    pub fn new(config: &WriterConfig) -> Result<Self, TagBusError> {
        Ok(Self {
            client: redis::Client::open(config.redis_url.as_str())?,
            conn: None,
            stream_max_len: config.stream_max_len,
        })
    }

    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, TagBusError> {
        if self.conn.is_none() {
            let conn = tokio::time::timeout(
                CONNECT_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await
            .map_err(|_| TagBusError::Timeout)??;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(TagBusError::Timeout)
    }

    /// One `PING`: whether Redis answers (the connection is dropped if not).
    pub async fn ping(&mut self) -> Result<(), TagBusError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING").ignore();
        self.execute(&pipe).await
    }

    /// Writes one value (SET, PUBLISH, XADD in one MULTI).
    pub async fn write(&mut self, key: &TagKey, value: &TagValue) -> Result<(), TagBusError> {
        self.write_batch(std::slice::from_ref(&(key.clone(), value.clone())))
            .await
    }

    /// Writes a batch of values in one round trip: for each, SET the key, PUBLISH on the
    /// channel of the same name and (for `in` and `out`) XADD to the capped stream.
    pub async fn write_batch(&mut self, batch: &[(TagKey, TagValue)]) -> Result<(), TagBusError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pipe = build_pipeline(batch, self.stream_max_len);
        self.execute(&pipe).await
    }

    /// Runs a pipeline; on failure drops the connection so the next call reconnects.
    async fn execute(&mut self, pipe: &redis::Pipeline) -> Result<(), TagBusError> {
        let conn = self.connection().await?;
        let result: Result<(), redis::RedisError> =
            tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async(conn))
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "write timed out",
                    )))
                });
        if let Err(e) = result {
            self.conn = None;
            return Err(e.into());
        }
        Ok(())
    }
}

/// The bytes [`TagWriter::write_batch`] sends for `batch` (its `MULTI` ... `EXEC` pipeline in
/// RESP), for a tool with a socket of its own: the publisher benchmark stamps each value just
/// before it goes to Redis, without an async client's hand-offs in between.
pub fn packed_batch(batch: &[(TagKey, TagValue)], stream_max_len: u64) -> Vec<u8> {
    build_pipeline(batch, stream_max_len).get_packed_pipeline()
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle writer waits before it PINGs Redis.
const IDLE_CHECK: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn build_pipeline(batch: &[(TagKey, TagValue)], stream_max_len: u64) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (tag, value) in batch {
        let key = tag.to_string();
        let text = value.to_string();
        pipe.cmd("SET").arg(&key).arg(&text).ignore();
        pipe.cmd("PUBLISH").arg(&key).arg(&text).ignore();
        if tag.direction.is_streamed() {
            pipe.cmd("XADD")
                .arg(STREAM_KEY)
                .arg("MAXLEN")
                .arg("~")
                .arg(stream_max_len)
                .arg("*")
                .arg(crate::STREAM_FIELD_KEY)
                .arg(&key)
                .arg(crate::STREAM_FIELD_VALUE)
                .arg(&text)
                .ignore();
        }
    }
    pipe
}

/// A request to the writer task.
enum Request {
    Write(TagKey, TagValue),
    Flush(oneshot::Sender<()>),
}

/// The handle of a writer task ([`spawn_writer`]): cheap to clone, sends over a bounded
/// channel, so a driver that outpaces Redis waits instead of growing memory.
#[derive(Clone)]
pub struct TagWriterHandle {
    tx: mpsc::Sender<Request>,
    recoveries: watch::Receiver<u64>,
}

impl TagWriterHandle {
    /// Counts the times the writer got through to Redis again after a failed write. The tag
    /// bus keeps nothing on disk, so a Redis that restarted has lost every tag: a driver
    /// watching this writes its current values again at once, instead of leaving the keys
    /// empty until each value changes or is refreshed.
    pub fn recoveries(&self) -> watch::Receiver<u64> {
        self.recoveries.clone()
    }

    /// Queues a value; waits while the queue is full. Fails only when the task has ended.
    pub async fn write(&self, key: TagKey, value: TagValue) -> Result<(), TagBusError> {
        self.tx
            .send(Request::Write(key, value))
            .await
            .map_err(|_| TagBusError::WriterGone)
    }

    /// Waits until every value queued before this call is in Redis.
    pub async fn flush(&self) -> Result<(), TagBusError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Flush(tx))
            .await
            .map_err(|_| TagBusError::WriterGone)?;
        rx.await.map_err(|_| TagBusError::WriterGone)
    }
}

/// The most values written in one MULTI by the writer task.
pub const MAX_BATCH: usize = 512;

/// Spawns a writer task with a queue of `capacity` values. It writes what is queued in
/// batches of up to [`MAX_BATCH`]; when Redis is unreachable it keeps the batch and retries
/// with backoff and jitter, so nothing queued is lost while Redis restarts.
pub fn spawn_writer(config: WriterConfig, capacity: usize) -> Result<TagWriterHandle, TagBusError> {
    let mut writer = TagWriter::new(&config)?;
    let (tx, mut rx) = mpsc::channel::<Request>(capacity.max(1));
    let (recovered, recoveries) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut failing = false;
        let mut batch: Vec<(TagKey, TagValue)> = Vec::with_capacity(MAX_BATCH);
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut backoff = backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            if batch.is_empty() && flushes.is_empty() {
                // Idle: a PING now and then, so a Redis that restarted is noticed (and
                // reported) even when no value changes.
                let wait = if failing {
                    backoff.next_delay()
                } else {
                    IDLE_CHECK
                };
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(req)) => push(req, &mut batch, &mut flushes),
                    Ok(None) => break,
                    Err(_) => {
                        match writer.ping().await {
                            Ok(()) => {
                                backoff.reset();
                                if std::mem::take(&mut failing) {
                                    recovered.send_modify(|n| *n = n.wrapping_add(1));
                                }
                            }
                            Err(_) => failing = true,
                        }
                        continue;
                    }
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(req) => push(req, &mut batch, &mut flushes),
                    Err(_) => break,
                }
            }
            match writer.write_batch(&batch).await {
                Ok(()) => {
                    backoff.reset();
                    batch.clear();
                    if std::mem::take(&mut failing) {
                        recovered.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    for f in flushes.drain(..) {
                        let _ = f.send(());
                    }
                }
                Err(e) => {
                    failing = true;
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, pending = batch.len(), retry_in_ms = delay.as_millis() as u64, "tag bus write failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::debug!("tag writer stopped");
    });
    Ok(TagWriterHandle { tx, recoveries })
}

fn push(req: Request, batch: &mut Vec<(TagKey, TagValue)>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match req {
        Request::Write(k, v) => batch.push((k, v)),
        Request::Flush(f) => flushes.push(f),
    }
}
