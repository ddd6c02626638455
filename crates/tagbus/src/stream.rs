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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value as RV;

use crate::{TagBusError, TagKey, TagValue, STREAM_FIELD_KEY, STREAM_FIELD_VALUE, STREAM_KEY};

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

/// A stream entry id (`<ms>-<seq>`), as Redis gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(String);

impl EntryId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `(ms, seq)`, or `None` for a malformed id.
    pub fn parts(&self) -> Option<(u64, u64)> {
        let (ms, seq) = self.0.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

/// A consumer of the tag bus stream in one consumer group.
pub struct StreamConsumer {
    conn: MultiplexedConnection,
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
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            trimmed,
            last_trim_check: None,
        })
    }

    /// The shared counter of entries the cap trimmed before this group acknowledged them.
    pub fn trimmed_counter(&self) -> Arc<TrimCounter> {
        self.trimmed.clone()
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
        let entries = self.xreadgroup(&start, count, None).await?;
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
        self.xreadgroup(">", count, Some(block.min(MAX_BLOCK)))
            .await
    }

    /// Acknowledges entries (`XACK`); returns how many Redis still had pending.
    pub async fn ack(&mut self, ids: &[EntryId]) -> Result<u64, TagBusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(STREAM_KEY).arg(&self.group);
        for id in ids {
            cmd.arg(id.as_str());
        }
        Ok(cmd.query_async(&mut self.conn).await?)
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
            .map(EntryId);
        let mut entries_read = map_get(group, "entries-read").and_then(as_u64);
        // A group created on a stream that never had an entry (MKSTREAM) and that has not read
        // one yet has `entries-read` nil and `last-delivered-id` 0-0: it read nothing.
        if entries_read.is_none()
            && last_delivered.as_ref().and_then(EntryId::parts) == Some((0, 0))
        {
            entries_read = Some(0);
        }
        let (Some(first), Some(last)) = (first.map(EntryId), last_delivered) else {
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

    async fn xreadgroup(
        &mut self,
        start: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<StreamEntry>, TagBusError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count.max(1));
        if let Some(block) = block.filter(|b| !b.is_zero()) {
            cmd.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(5000).max(1));
        }
        cmd.arg("STREAMS").arg(STREAM_KEY).arg(start);
        let reply: RV = cmd.query_async(&mut self.conn).await?;
        Ok(parse_read_reply(&reply))
    }
}

/// Decodes an `XREADGROUP` reply (RESP2 or RESP3): `[[stream, [[id, [f, v, ...]], ...]]]`.
fn parse_read_reply(reply: &RV) -> Vec<StreamEntry> {
    let mut out = Vec::new();
    let streams: Vec<&RV> = match reply {
        RV::Array(s) => s.iter().collect(),
        RV::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return out,
    };
    for s in streams {
        let entries = match s {
            RV::Array(pair) if pair.len() == 2 => pair.get(1),
            RV::Array(_) => None,
            other => Some(other),
        };
        let Some(RV::Array(entries)) = entries else {
            continue;
        };
        for e in entries {
            let RV::Array(parts) = e else { continue };
            let Some(id) = parts.first().and_then(as_string) else {
                continue;
            };
            let body = match parts.get(1) {
                Some(RV::Array(fields)) => decode_fields(fields),
                Some(RV::Map(m)) => {
                    let flat: Vec<RV> =
                        m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
                    decode_fields(&flat)
                }
                _ => EntryBody::Trimmed,
            };
            out.push(StreamEntry {
                id: EntryId(id),
                body,
            });
        }
    }
    out
}

fn decode_fields(fields: &[RV]) -> EntryBody {
    let mut key = None;
    let mut value = None;
    for pair in fields.chunks(2) {
        if let [name, v] = pair {
            match as_bytes(name) {
                Some(n) if n == STREAM_FIELD_KEY.as_bytes() => key = as_bytes(v),
                Some(n) if n == STREAM_FIELD_VALUE.as_bytes() => value = as_bytes(v),
                _ => {}
            }
        }
    }
    let (Some(key), Some(value)) = (key, value) else {
        return EntryBody::Malformed("entry without k and v fields".into());
    };
    let key_text = String::from_utf8_lossy(key);
    let key: TagKey = match key_text.parse() {
        Ok(k) => k,
        Err(e) => return EntryBody::Malformed(format!("key {key_text:?}: {e}")),
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

    fn bs(s: &str) -> RV {
        RV::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_entries_trimmed_and_malformed() {
        let reply = RV::Array(vec![RV::Array(vec![
            bs(STREAM_KEY),
            RV::Array(vec![
                RV::Array(vec![
                    bs("1-0"),
                    RV::Array(vec![bs("k"), bs("tag/a/b/in"), bs("v"), bs("1,2,iv")]),
                ]),
                RV::Array(vec![bs("1-1"), RV::Nil]),
                RV::Array(vec![
                    bs("1-2"),
                    RV::Array(vec![bs("k"), bs("nope"), bs("v"), bs("1,2,")]),
                ]),
            ]),
        ])]);
        let e = parse_read_reply(&reply);
        assert_eq!(e.len(), 3);
        assert!(
            matches!(&e[0].body, EntryBody::Tag { key, value } if key.to_string() == "tag/a/b/in" && value.quality() == 0)
        );
        assert_eq!(e[1].body, EntryBody::Trimmed);
        assert!(matches!(e[2].body, EntryBody::Malformed(_)));
        assert_eq!(e[0].id.parts(), Some((1, 0)));
        assert!(parse_read_reply(&RV::Nil).is_empty());
    }
}
