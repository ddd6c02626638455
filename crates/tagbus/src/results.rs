//! Command results in Redis (the contract: [`contract::command`]): the writer every master
//! driver reports through, and the listener the MQTT command path waits on.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::command::Detail;
use crate::reader::{spawn_feed, Decoder, Origin, Selection};
use crate::{CommandResult, TagBusError, TagKey};

/// The handle of a result writer task ([`spawn_result_writer`]).
#[derive(Clone)]
pub struct ResultWriterHandle {
    tx: mpsc::Sender<(TagKey, CommandResult)>,
}

impl ResultWriterHandle {
    /// Queues a result for `key`'s signal; waits while the queue is full. Fails only when the
    /// task has ended.
    pub async fn report(&self, key: &TagKey, result: CommandResult) -> Result<(), TagBusError> {
        tracing::info!(tag = %key, outcome = %result.outcome, detail = ?result.detail.as_ref().map(Detail::as_str), "command result");
        self.tx
            .send((key.clone(), result))
            .await
            .map_err(|_| TagBusError::WriterGone)
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per result before it is dropped with an error log (results answer a live caller;
/// one that could not be written for a minute is of no use to it any more).
const RESULT_ATTEMPTS: u32 = 8;

/// Spawns a task that writes command results (SET + PUBLISH in one MULTI), reconnecting
/// with backoff when Redis is away.
pub fn spawn_result_writer(
    redis_url: &str,
    capacity: usize,
) -> Result<ResultWriterHandle, TagBusError> {
    let client = redis::Client::open(redis_url)?;
    let (tx, mut rx) = mpsc::channel::<(TagKey, CommandResult)>(capacity.max(1));
    tokio::spawn(async move {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        let mut backoff = backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while let Some((key, result)) = rx.recv().await {
            let (rkey, text) = (key.result_key(), result.to_string());
            let mut attempt = 0u32;
            loop {
                attempt = attempt.saturating_add(1);
                match write_result(&client, &mut conn, &rkey, &text).await {
                    Ok(()) => {
                        backoff.reset();
                        break;
                    }
                    Err(e) if attempt >= RESULT_ATTEMPTS => {
                        tracing::error!(key = %rkey, result = %text, error = %e, "command result dropped: redis unreachable");
                        break;
                    }
                    Err(e) => {
                        conn = None;
                        let delay = backoff.next_delay();
                        tracing::warn!(key = %rkey, error = %e, retry_in_ms = delay.as_millis() as u64, "command result write failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    });
    Ok(ResultWriterHandle { tx })
}

async fn write_result(
    client: &redis::Client,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    key: &str,
    text: &str,
) -> Result<(), TagBusError> {
    if conn.is_none() {
        let c = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| TagBusError::Timeout)??;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err(TagBusError::ConnectionLost);
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("SET").arg(key).arg(text).ignore();
    pipe.cmd("PUBLISH").arg(key).arg(text).ignore();
    tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(c))
        .await
        .map_err(|_| TagBusError::Timeout)??;
    Ok(())
}

/// The receiving end of a result listener ([`spawn_result_listener`]); the task stops when
/// this is dropped.
pub struct ResultFeed {
    rx: mpsc::Receiver<(TagKey, CommandResult)>,
}

impl ResultFeed {
    /// The next result (stored or live) of one of the listened signals, with the `out` key
    /// it answers; `None` only after the task has stopped.
    pub async fn recv(&mut self) -> Option<(TagKey, CommandResult)> {
        self.rx.recv().await
    }
}

/// Spawns a task that listens to the `result/` channels of `out_keys`' signals and forwards
/// each result. After every (re)subscribe it also reads the stored results, so a result
/// written while the listener was away still reaches its caller (one may come twice: the
/// caller matches by the command's timestamp). Reconnects with backoff, like the reader.
pub fn spawn_result_listener(
    redis_url: &str,
    out_keys: &[TagKey],
    capacity: usize,
) -> Result<ResultFeed, TagBusError> {
    let keys = out_keys.iter().map(TagKey::result_key).collect();
    let rx = spawn_feed::<ResultDecoder>(redis_url, Selection::Keys(keys), capacity)?;
    Ok(ResultFeed { rx })
}

struct ResultDecoder;

impl Decoder for ResultDecoder {
    type Event = (TagKey, CommandResult);
    const NAME: &'static str = "command result listener";

    fn value(key: &[u8], value: &[u8], _origin: Origin) -> Option<Self::Event> {
        let channel = std::str::from_utf8(key).ok()?;
        let key = TagKey::from_result_key(channel).ok()?;
        match String::from_utf8_lossy(value).parse::<CommandResult>() {
            Ok(r) => Some((key, r)),
            Err(e) => {
                tracing::warn!(key = %channel, error = %e, "malformed command result ignored");
                None
            }
        }
    }

    fn snapshot_complete(_count: usize) -> Option<Self::Event> {
        None
    }

    fn disconnected() -> Option<Self::Event> {
        None
    }
}
