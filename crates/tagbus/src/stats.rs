//! The stats hashes in Redis (the contract: [`contract::stats`]): the MQTT publisher's,
//! read by `fieldbridge status`, and each IEC 104 slave device's, read by the supervisor for
//! its status file.

use std::collections::BTreeMap;
use std::time::Duration;

use contract::Alias;

pub use contract::stats::*;

use crate::reader::timed;
use crate::TagBusError;

/// Writes [`PublisherStats`] to [`PUBLISHER_STATS_KEY`] and [`SlaveStats`] to each device's
/// [`SlaveStatsKey`], keeping one connection and reconnecting on the next write after a
/// failure.
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
        let mut cmd = redis::cmd("HSET");
        cmd.arg(PUBLISHER_STATS_KEY);
        for (field, value) in stats.to_fields() {
            cmd.arg(field).arg(value);
        }
        let mut conn = self.connection().await?;
        let written = timed(cmd.query_async::<()>(&mut conn)).await;
        self.settle(written)
    }

    /// Replaces `device`'s slave hash: `DEL` and one `HSET` in one `MULTI`/`EXEC`, so a
    /// reader never sees a master that went away, nor half a write.
    pub async fn write_slave(
        &mut self,
        device: &Alias,
        stats: &SlaveStats,
    ) -> Result<(), TagBusError> {
        let key = SlaveStatsKey::new(device);
        let mut pipe = redis::pipe();
        pipe.atomic().del(key.as_str()).ignore();
        pipe.hset_multiple(key.as_str(), &stats.to_fields())
            .ignore();
        let mut conn = self.connection().await?;
        let written = timed(pipe.query_async::<()>(&mut conn)).await;
        self.settle(written)
    }

    /// The connection (a clone of the multiplexed one), made first if there is none.
    async fn connection(&mut self) -> Result<redis::aio::MultiplexedConnection, TagBusError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let conn = timed(self.client.get_multiplexed_async_connection()).await?;
        Ok(self.conn.insert(conn).clone())
    }

    /// Drops the connection after a failed write: the next one reconnects.
    fn settle(&mut self, written: Result<(), TagBusError>) -> Result<(), TagBusError> {
        if written.is_err() {
            self.conn = None;
        }
        written
    }
}

/// Reads the slave hash of each of `devices` in one round trip, bounded by the tag bus
/// timeout; a device whose hash does not exist (its applet has not written it yet) is left
/// out.
pub async fn read_slave_stats(
    redis_url: &str,
    devices: &[Alias],
) -> Result<BTreeMap<Alias, SlaveStats>, TagBusError> {
    if devices.is_empty() {
        return Ok(BTreeMap::new());
    }
    let client = redis::Client::open(redis_url)?;
    let mut conn = timed(client.get_multiplexed_async_connection()).await?;
    let mut pipe = redis::pipe();
    for device in devices {
        pipe.hgetall(SlaveStatsKey::new(device).as_str());
    }
    let hashes: Vec<Vec<(String, String)>> = timed(pipe.query_async(&mut conn)).await?;
    Ok(devices
        .iter()
        .zip(hashes)
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(device, fields)| {
            let stats =
                SlaveStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str())));
            (device.clone(), stats)
        })
        .collect())
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
