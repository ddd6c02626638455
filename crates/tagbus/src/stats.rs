//! The stats hash in Redis (the contract: [`contract::stats`]): written by the MQTT
//! publisher, read by `fieldbridge status`.

use std::time::Duration;

pub use contract::stats::*;

use crate::reader::timed;
use crate::TagBusError;

/// Writes [`PublisherStats`] to [`PUBLISHER_STATS_KEY`], keeping one connection and
/// reconnecting on the next write after a failure.
pub struct StatsWriter {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl StatsWriter {
    /// Checks the URL; connects on the first write.
    pub fn new(redis_url: &str) -> Result<Self, TagBusError> {
        Ok(Self {
            client: redis::Client::open(redis_url)?,
            conn: None,
        })
    }

    /// One `HSET` of every field.
    pub async fn write(&mut self, stats: &PublisherStats) -> Result<(), TagBusError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self
                .conn
                .insert(timed(self.client.get_multiplexed_async_connection()).await?),
        };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(PUBLISHER_STATS_KEY);
        for (field, value) in stats.to_fields() {
            cmd.arg(field).arg(value);
        }
        let written = timed(cmd.query_async::<()>(conn)).await;
        if written.is_err() {
            self.conn = None;
        }
        written
    }
}

/// Reads the stats hash (blocking, for a command-line tool without a runtime), each step
/// bounded by `timeout`; `None` when the hash does not exist.
pub fn read_publisher_stats(
    redis_url: &str,
    timeout: Duration,
) -> Result<Option<PublisherStats>, TagBusError> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(PUBLISHER_STATS_KEY)
        .query(&mut conn)?;
    if fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(PublisherStats::from_fields(
        fields.iter().map(|(f, v)| (f.as_str(), v.as_str())),
    )))
}
