//! The durable feed: reading the capped stream [`STREAM_KEY`](crate::STREAM_KEY) with a Redis
//! consumer group, acknowledging entries, and counting what the cap trimmed unread.
//!
//! Decisions:
//! - A group that does not exist yet is created at `$` (the current end of the stream, with
//!   `MKSTREAM`): a consumer that starts for the first time takes the current state from the
//!   keys (its snapshot), not a replay of an old backlog. An existing group is never reset:
//!   its pending entries (delivered, not acknowledged) and everything after its position are
//!   read again after a reconnect or a restart.
//! - A consumer name is stable across restarts (the caller picks it, e.g. `mqtt-client`), so
//!   `XREADGROUP ... 0` returns the entries a killed process left unacknowledged.
//! - Trimmed entries are detected before reads, at most once per [`TRIM_CHECK_INTERVAL`]:
//!   when the stream's first entry is newer than the group's last delivered id, the entries
//!   in between were trimmed before the group read them; their number is `entries-added -
//!   length - entries-read` (Redis 7 `XINFO`). Pending entries whose body was trimmed come back
//!   from `XREADGROUP` without fields ([`EntryBody::Trimmed`]); the caller acknowledges them
//!   and they are counted too. Both go to one [`TrimCounter`] shared by the group's consumers
//!   (a gap is counted once, across reconnects) and a warn log line. Limit: a trim that lands
//!   between a check and the next read (the group then jumps the gap while reading) is not
//!   seen; the cap has to be outrun by more than a full stream within one check interval for
//!   that, which needs a consumer already far behind.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portable_atomic::AtomicU64;
use redis::aio::MultiplexedConnection;
use redis::Value as RV;

use crate::{TagBusError, TagKey, TagValue, STREAM_KEY};

/// The count of entries the cap trimmed before a group read or acknowledged them; shared by
/// the consumers of one group (across reconnects) so a gap is counted once.
#[derive(Debug, Default)]
pub struct TrimCounter {
    count: AtomicU64,
    /// The group position at which the last gap was counted.
    counted_at: std::sync::Mutex<Option<EntryId>>,
}

impl TrimCounter {
    /// A new counter at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Entries lost so far.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn add(&self, n: u64) -> u64 {
        self.count.fetch_add(n, Ordering::Relaxed).saturating_add(n)
    }
    /// Records that the gap before `at` is counted; false if it was already.
    fn first_count_at(&self, at: &EntryId) -> bool {
        match self.counted_at.lock() {
            Ok(g) if g.as_ref() == Some(at) => false,
            Ok(mut g) => {
                *g = Some(at.clone());
                true
            }
            Err(_) => true,
        }
    }
}

/// How often, at most, the consumer asks Redis whether the cap trimmed unread entries.
pub const TRIM_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A stream entry id (`<ms>-<seq>`), as Redis gave it. Held inline, without an allocation
/// per entry (the publishers read thousands per second): Redis' ids are at most
/// [`INLINE_ID`] bytes; a longer text (never from Redis) is kept on the heap. Compared,
/// ordered and hashed as its text.
#[derive(Clone)]
pub struct EntryId(IdText);

/// Room for `<u64>-<u64>`.
const INLINE_ID: usize = 41;

#[derive(Clone)]
enum IdText {
    /// The first `len` bytes of `bytes` (whole UTF-8: a `&str` copied whole).
    Inline {
        len: u8,
        bytes: [u8; INLINE_ID],
    },
    Heap(Box<str>),
}

impl EntryId {
    /// An id from its text (as Redis gives it).
    pub fn new(id: &str) -> Self {
        let mut bytes = [0u8; INLINE_ID];
        match (bytes.get_mut(..id.len()), u8::try_from(id.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(id.as_bytes());
                Self(IdText::Inline { len, bytes })
            }
            _ => Self(IdText::Heap(id.into())),
        }
    }
    /// The id text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            IdText::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            IdText::Heap(s) => s,
        }
    }
    /// `(ms, seq)`, or `None` for a malformed id.
    pub fn parts(&self) -> Option<(u64, u64)> {
        let (ms, seq) = self.as_str().split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EntryId").field(&self.as_str()).finish()
    }
}

impl PartialEq for EntryId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EntryId {}

impl std::hash::Hash for EntryId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for EntryId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntryId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// What an entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryBody {
    /// A well formed tag value.
    Tag { key: TagKey, value: TagValue },
    /// An entry that is not a tag value (logged by the reader; acknowledge and skip it).
    Malformed(String),
    /// A pending entry whose body the cap trimmed before it was acknowledged (counted).
    Trimmed,
}

/// One entry read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: EntryId,
    pub body: EntryBody,
}

/// The socket `XREADGROUP` and `XACK` run on: a plain connection whose replies
/// [`crate::resp`] reads (redis-rs' generic reply parser cost a third of the publisher's CPU).
/// Opened on first use, dropped on any error (see [`plain_command`]).
struct PlainConn {
    io: Box<dyn ReadWrite>,
    buf: Vec<u8>,
    /// How far the reply at the start of `buf` was walked (`resp::reply_len_from`).
    walk: crate::resp::Walk,
}

trait ReadWrite: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ReadWrite for T {}

impl PlainConn {
    /// Connects like redis-rs would to `info` (TCP or Unix socket; AUTH and SELECT as the URL
    /// says).
    async fn open(info: &redis::ConnectionInfo) -> Result<Self, TagBusError> {
        let io: Box<dyn ReadWrite> = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_error)?;
                s.set_nodelay(true).map_err(io_error)?;
                Box::new(s)
            }
            redis::ConnectionAddr::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_error)?,
            ),
            _ => {
                return Err(TagBusError::Protocol(
                    "the stream reader supports redis:// and unix:// addresses".into(),
                ))
            }
        };
        let mut conn = Self {
            io,
            buf: Vec::with_capacity(64 * 1024),
            walk: crate::resp::Walk::START,
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.status(&args).await?;
        }
        if settings.db() != 0 {
            let db = settings.db().to_string();
            conn.status(&[b"SELECT", db.as_bytes()]).await?;
        }
        Ok(conn)
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), TagBusError> {
        use tokio::io::AsyncWriteExt;
        let mut out = Vec::with_capacity(128);
        crate::resp::encode_command(args, &mut out);
        self.io.write_all(&out).await.map_err(io_error)
    }

    /// Reads until `parse` has a whole reply; keeps the bytes after it.
    async fn reply<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> crate::resp::Parsed<T>,
    ) -> Result<T, TagBusError> {
        use tokio::io::AsyncReadExt;
        loop {
            // Decoded once, when the whole reply is in (see `resp::reply_len_from`).
            if crate::resp::reply_len_from(&self.buf, &mut self.walk)
                .map_err(resp_error)?
                .is_some()
            {
                self.walk = crate::resp::Walk::START;
                let Some((value, used)) = parse(&self.buf).map_err(resp_error)? else {
                    return Err(resp_error(crate::resp::RespError::Protocol(
                        "a whole reply of the wrong shape",
                    )));
                };
                self.buf.drain(..used.min(self.buf.len()));
                return Ok(value);
            }
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(self.buf.capacity().max(64 * 1024));
            }
            let n = self.io.read_buf(&mut self.buf).await.map_err(io_error)?;
            if n == 0 {
                return Err(TagBusError::ConnectionLost);
            }
        }
    }

    async fn status(&mut self, args: &[&[u8]]) -> Result<String, TagBusError> {
        self.send(args).await?;
        self.reply(crate::resp::parse_status).await
    }
}

fn io_error(e: std::io::Error) -> TagBusError {
    TagBusError::Io(e.to_string())
}

fn resp_error(e: crate::resp::RespError) -> TagBusError {
    TagBusError::Protocol(e.to_string())
}

/// Sends one command on the plain socket (opened on first use) and reads its reply with
/// `parse`, within `timeout`. On any error the socket is dropped: whatever was half read
/// goes with it, and the next command opens a new one.
async fn plain_command<T>(
    slot: &mut Option<PlainConn>,
    info: &redis::ConnectionInfo,
    args: &[&[u8]],
    timeout: Duration,
    parse: impl Fn(&[u8]) -> crate::resp::Parsed<T>,
) -> Result<T, TagBusError> {
    let command = async {
        if slot.is_none() {
            *slot = Some(PlainConn::open(info).await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(TagBusError::ConnectionLost);
        };
        conn.send(args).await?;
        conn.reply(parse).await
    };
    let result = match tokio::time::timeout(timeout, command).await {
        Ok(r) => r,
        Err(_) => Err(TagBusError::Timeout),
    };
    if result.is_err() {
        *slot = None;
    }
    result
}

/// The acknowledging side of a consumer group: `XACK` on a plain socket of its own, opened
/// on first use and again after an error. Making one does no I/O.
pub struct StreamAcker {
    info: redis::ConnectionInfo,
    plain_conn: Option<PlainConn>,
    group: String,
}

impl StreamAcker {
    /// An acker of `group` on the Redis at `redis_url` (only the URL is checked here).
    pub fn new(redis_url: &str, group: &str) -> Result<Self, TagBusError> {
        let info = redis::Client::open(redis_url)?
            .get_connection_info()
            .clone();
        Ok(Self {
            info,
            plain_conn: None,
            group: group.to_owned(),
        })
    }

    /// Acknowledges entries (`XACK`); returns how many Redis still had pending.
    pub async fn ack(&mut self, ids: &[EntryId]) -> Result<u64, TagBusError> {
        xack(&mut self.plain_conn, &self.info, &self.group, ids).await
    }
}

/// `XACK` of `ids` in `group` on the plain socket in `slot`.
async fn xack(
    slot: &mut Option<PlainConn>,
    info: &redis::ConnectionInfo,
    group: &str,
    ids: &[EntryId],
) -> Result<u64, TagBusError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut args: Vec<&[u8]> = Vec::with_capacity(ids.len().saturating_add(3));
    args.extend_from_slice(&[b"XACK", STREAM_KEY.as_bytes(), group.as_bytes()]);
    args.extend(ids.iter().map(|id| id.as_str().as_bytes()));
    let n = plain_command(
        slot,
        info,
        &args,
        Duration::from_secs(5),
        crate::resp::parse_integer,
    )
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A consumer of the tag bus stream in one consumer group.
pub struct StreamConsumer {
    conn: MultiplexedConnection,
    info: redis::ConnectionInfo,
    plain_conn: Option<PlainConn>,
    group: String,
    consumer: String,
    trimmed: Arc<TrimCounter>,
    last_trim_check: Option<Instant>,
}

/// Keys per `MGET` of [`StreamConsumer::snapshot`].
pub const SNAPSHOT_CHUNK: usize = 500;

/// The longest a blocking read waits (the connection's response timeout is above it).
pub const MAX_BLOCK: Duration = Duration::from_secs(5);

impl StreamConsumer {
    /// Connects to Redis for group `group`, consumer `consumer`. `trimmed` is the counter of
    /// entries lost to the cap (shared so it survives reconnects).
    pub async fn connect(
        redis_url: &str,
        group: &str,
        consumer: &str,
        trimmed: Arc<TrimCounter>,
    ) -> Result<Self, TagBusError> {
        let client = redis::Client::open(redis_url)?;
        let info = client.get_connection_info().clone();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(MAX_BLOCK.saturating_add(Duration::from_secs(5))));
        let conn = tokio::time::timeout(
            Duration::from_secs(6),
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| TagBusError::Timeout)??;
        Ok(Self {
            conn,
            info,
            plain_conn: None,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            trimmed,
            last_trim_check: None,
        })
    }

    /// Creates the group at the end of the stream (`$`, `MKSTREAM`) unless it exists.
    /// Returns whether it was created now.
    pub async fn ensure_group(&mut self) -> Result<bool, TagBusError> {
        self.ensure_group_from("$").await
    }

    /// Creates the group at `start` (`$`: the end; `0`: every entry in the stream) unless it
    /// exists. Returns whether it was created now. A consumer whose group vanished (Redis
    /// restarted without persistence) re-creates it at `0`: the new stream holds only values
    /// written since the restart, and they must all go out.
    pub async fn ensure_group_from(&mut self, start: &str) -> Result<bool, TagBusError> {
        let r: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM_KEY)
            .arg(&self.group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads up to `count` of this consumer's pending entries with ids above `after` (start
    /// with `None`, then pass the last id returned). Empty when all were read.
    pub async fn read_pending(
        &mut self,
        after: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, TagBusError> {
        let start = after.map_or("0", EntryId::as_str).to_owned();
        let entries = self.xreadgroup(&start, count, Duration::ZERO).await?;
        self.count_trimmed_pending(&entries);
        Ok(entries)
    }

    /// Reads up to `count` entries never delivered to the group, waiting up to `block`
    /// (capped at [`MAX_BLOCK`]; zero: not at all) when there are none. Checks for trimmed entries first (at
    /// most once per [`TRIM_CHECK_INTERVAL`]).
    pub async fn read_new(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, TagBusError> {
        let due = self
            .last_trim_check
            .is_none_or(|t| t.elapsed() >= TRIM_CHECK_INTERVAL);
        if due {
            self.last_trim_check = Some(Instant::now());
            self.check_trimmed().await?;
        }
        self.xreadgroup(">", count, block).await
    }

    /// Acknowledges entries (`XACK`); returns how many Redis still had pending.
    pub async fn ack(&mut self, ids: &[EntryId]) -> Result<u64, TagBusError> {
        xack(&mut self.plain_conn, &self.info, &self.group, ids).await
    }

    /// The current values of these keys (`MGET` in chunks): the snapshot a consumer sends
    /// before the live feed. Keys without a value are left out; malformed values are logged
    /// and left out.
    pub async fn snapshot<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k TagKey>,
    ) -> Result<Vec<(TagKey, TagValue)>, TagBusError> {
        let mut out = Vec::new();
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let chunk: Vec<&TagKey> = keys.by_ref().take(SNAPSHOT_CHUNK).collect();
            let mut cmd = redis::cmd("MGET");
            for k in &chunk {
                cmd.arg(k.to_string());
            }
            let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut self.conn).await?;
            for (key, value) in chunk.into_iter().zip(values) {
                let Some(value) = value else { continue };
                match TagValue::from_bytes(&value) {
                    Ok(v) => out.push((key.clone(), v)),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "skipping a malformed value on the tag bus")
                    }
                }
            }
        }
        Ok(out)
    }

    /// Compares the stream's first entry with the group's last delivered id; adds entries
    /// trimmed before the group read them to the counter and returns how many were new.
    pub async fn check_trimmed(&mut self) -> Result<u64, TagBusError> {
        let stream: RV = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(STREAM_KEY)
            .query_async(&mut self.conn)
            .await
        {
            Ok(v) => v,
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => return Ok(0), // no stream yet
            Err(e) => return Err(e.into()),
        };
        let groups: RV = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(STREAM_KEY)
            .query_async(&mut self.conn)
            .await?;
        let length = map_get(&stream, "length").and_then(as_u64).unwrap_or(0);
        let added = map_get(&stream, "entries-added").and_then(as_u64);
        let first = map_get(&stream, "first-entry").and_then(|e| match e {
            RV::Array(items) => items.first().and_then(as_string),
            _ => None,
        });
        let group = match &groups {
            RV::Array(gs) => gs.iter().find(|g| {
                map_get(g, "name").and_then(as_string).as_deref() == Some(self.group.as_str())
            }),
            _ => None,
        };
        let Some(group) = group else { return Ok(0) };
        let last_delivered = map_get(group, "last-delivered-id")
            .and_then(as_string)
            .map(|s| EntryId::new(&s));
        let mut entries_read = map_get(group, "entries-read").and_then(as_u64);
        // A group created on a stream that never had an entry (MKSTREAM) and that has not read
        // one yet has `entries-read` nil and `last-delivered-id` 0-0: it read nothing.
        if entries_read.is_none()
            && last_delivered.as_ref().and_then(EntryId::parts) == Some((0, 0))
        {
            entries_read = Some(0);
        }
        let (Some(first), Some(last)) = (first.map(|s| EntryId::new(&s)), last_delivered) else {
            return Ok(0);
        };
        match (first.parts(), last.parts()) {
            (Some(f), Some(l)) if f > l => {}
            _ => return Ok(0),
        }
        if !self.trimmed.first_count_at(&last) {
            return Ok(0); // this gap was counted already; the group has not read past it yet
        }
        // Everything up to `last` was read and is gone; the entries between were never read.
        let lost = match (added, entries_read) {
            (Some(added), Some(read)) => added.saturating_sub(length).saturating_sub(read),
            _ => 0,
        };
        if lost > 0 {
            let total = self.trimmed.add(lost);
            tracing::warn!(
                group = %self.group,
                lost,
                last_delivered = %last,
                first_in_stream = %first,
                total,
                "the tag bus stream cap trimmed entries before this consumer read them: those values are lost"
            );
        } else {
            tracing::warn!(group = %self.group, last_delivered = %last, first_in_stream = %first,
                "the tag bus stream was trimmed past this consumer's position (count unknown)");
        }
        Ok(lost)
    }

    fn count_trimmed_pending(&self, entries: &[StreamEntry]) {
        let n = entries
            .iter()
            .filter(|e| e.body == EntryBody::Trimmed)
            .count() as u64;
        if n > 0 {
            let total = self.trimmed.add(n);
            tracing::warn!(group = %self.group, lost = n, total,
                "pending tag bus stream entries were trimmed by the cap before they were acknowledged: those values are lost");
        }
    }

    /// `XREADGROUP` from `start`, waiting up to `block` (capped at [`MAX_BLOCK`]; zero: not
    /// at all) when there is nothing.
    async fn xreadgroup(
        &mut self,
        start: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, TagBusError> {
        let block = block.min(MAX_BLOCK);
        let count = count.max(1).to_string();
        // Below MAX_BLOCK, so the milliseconds fit; at least 1 (BLOCK 0 would wait forever).
        let block_ms = (!block.is_zero()).then(|| block.as_millis().max(1).to_string());
        let mut args: Vec<&[u8]> = vec![
            b"XREADGROUP",
            b"GROUP",
            self.group.as_bytes(),
            self.consumer.as_bytes(),
            b"COUNT",
            count.as_bytes(),
        ];
        if let Some(ms) = &block_ms {
            args.extend_from_slice(&[b"BLOCK", ms.as_bytes()]);
        }
        args.extend_from_slice(&[b"STREAMS", STREAM_KEY.as_bytes(), start.as_bytes()]);
        let timeout = block.saturating_add(Duration::from_secs(5));
        plain_command(
            &mut self.plain_conn,
            &self.info,
            &args,
            timeout,
            crate::resp::parse_read_reply,
        )
        .await
    }
}

/// An entry's body from its `k` and `v` fields.
pub(crate) fn decode_entry_fields(key: Option<&[u8]>, value: Option<&[u8]>) -> EntryBody {
    let (Some(key), Some(value)) = (key, value) else {
        return EntryBody::Malformed("entry without k and v fields".into());
    };
    let key: TagKey = match std::str::from_utf8(key).map(str::parse) {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            return EntryBody::Malformed(format!("key {:?}: {e}", String::from_utf8_lossy(key)))
        }
        Err(_) => {
            return EntryBody::Malformed(format!(
                "key {:?}: not UTF-8",
                String::from_utf8_lossy(key)
            ))
        }
    };
    match TagValue::from_bytes(value) {
        Ok(value) => EntryBody::Tag { key, value },
        Err(e) => EntryBody::Malformed(format!("{key}: {e}")),
    }
}

fn as_bytes(v: &RV) -> Option<&[u8]> {
    match v {
        RV::BulkString(b) => Some(b),
        RV::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn as_string(v: &RV) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn as_u64(v: &RV) -> Option<u64> {
    match v {
        RV::Int(i) => u64::try_from(*i).ok(),
        other => as_string(other)?.parse().ok(),
    }
}

/// Looks a field up in a RESP2 flat `[name, value, ...]` array or a RESP3 map.
fn map_get<'a>(v: &'a RV, name: &str) -> Option<&'a RV> {
    match v {
        RV::Array(items) => items.chunks(2).find_map(|pair| match pair {
            [k, val] if as_bytes(k) == Some(name.as_bytes()) => Some(val),
            _ => None,
        }),
        RV::Map(m) => m
            .iter()
            .find(|(k, _)| as_bytes(k) == Some(name.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_id_is_its_text_inline_or_not() {
        let longest = format!("{}-{}", u64::MAX, u64::MAX);
        let longer = format!("{longest}0");
        for text in [
            "0-0",
            "1700000000000-12",
            longest.as_str(),
            longer.as_str(),
            "",
        ] {
            let id = EntryId::new(text);
            assert_eq!(id.as_str(), text);
            assert_eq!(id.to_string(), text);
            assert_eq!(format!("{id:?}"), format!("EntryId({text:?})"));
            assert_eq!(id, id.clone());
        }
        assert!(matches!(EntryId::new(&longest).0, IdText::Inline { .. }));
        assert!(matches!(EntryId::new(&longer).0, IdText::Heap(_)));
        assert_eq!(EntryId::new(&longest).parts(), Some((u64::MAX, u64::MAX)));
        assert_eq!(EntryId::new("5-x").parts(), None);
        // ordered, compared and hashed as the text, whichever way it is held
        assert!(EntryId::new("1-10") < EntryId::new("1-9"));
        assert!(EntryId::new(&longest) < EntryId::new(&longer));
        let set: std::collections::HashSet<EntryId> = ["1-0", "1-0", &longer, &longer]
            .into_iter()
            .map(EntryId::new)
            .collect();
        assert_eq!(set.len(), 2);
    }
}
