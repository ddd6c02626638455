//! The stats hashes in Redis (the contract: [`contract::stats`]): the MQTT publisher's,
//! read by `fieldbridge status`, and each IEC 104 slave device's and each TLS IEC 104
//! device's, read by the supervisor for its status file.

use std::collections::BTreeMap;
use std::time::Duration;

use contract::Alias;

pub use contract::stats::*;

use crate::reader::timed;
use crate::TagBusError;

/// Writes [`PublisherStats`] to [`PUBLISHER_STATS_KEY`], [`SlaveStats`] to each device's
/// [`SlaveStatsKey`] and [`TlsStats`] to each device's [`TlsStatsKey`], keeping one connection and reconnecting on the next write after a
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
        self.replace(SlaveStatsKey::new(device).as_str(), &stats.to_fields())
            .await
    }

    /// Replaces `device`'s TLS hash, as [`StatsWriter::write_slave`] does.
    pub async fn write_tls(&mut self, device: &Alias, stats: &TlsStats) -> Result<(), TagBusError> {
        self.replace(TlsStatsKey::new(device).as_str(), &stats.to_fields())
            .await
    }

    /// `DEL` and one `HSET` of `fields` in one `MULTI`/`EXEC`.
    async fn replace(&mut self, key: &str, fields: &[(String, String)]) -> Result<(), TagBusError> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(key).ignore();
        pipe.hset_multiple(key, fields).ignore();
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
    read_hashes(
        redis_url,
        devices,
        |device| SlaveStatsKey::new(device).as_str().to_owned(),
        |fields| SlaveStats::from_fields(pairs(fields)),
    )
    .await
}

/// Reads the TLS hash of each of `devices`, as [`read_slave_stats`] does.
pub async fn read_tls_stats(
    redis_url: &str,
    devices: &[Alias],
) -> Result<BTreeMap<Alias, TlsStats>, TagBusError> {
    read_hashes(
        redis_url,
        devices,
        |device| TlsStatsKey::new(device).as_str().to_owned(),
        |fields| TlsStats::from_fields(pairs(fields)),
    )
    .await
}

/// One `HGETALL` per device in one pipeline, each hash decoded by `decode`; empty hashes
/// (never written) are left out.
async fn read_hashes<T>(
    redis_url: &str,
    devices: &[Alias],
    key: impl Fn(&Alias) -> String,
    decode: impl Fn(&[(String, String)]) -> T,
) -> Result<BTreeMap<Alias, T>, TagBusError> {
    if devices.is_empty() {
        return Ok(BTreeMap::new());
    }
    let client = redis::Client::open(redis_url)?;
    let mut conn = timed(client.get_multiplexed_async_connection()).await?;
    let mut pipe = redis::pipe();
    for device in devices {
        pipe.hgetall(key(device));
    }
    let hashes: Vec<Vec<(String, String)>> = timed(pipe.query_async(&mut conn)).await?;
    Ok(devices
        .iter()
        .zip(hashes)
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(device, fields)| (device.clone(), decode(&fields)))
        .collect())
}

/// The `(field, value)` pairs of a hash as the contract's decoders take them.
fn pairs(fields: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    fields.iter().map(|(f, v)| (f.as_str(), v.as_str()))
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
