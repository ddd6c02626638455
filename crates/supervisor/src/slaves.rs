//! The IEC 104 slave devices' state in the status file.
//!
//! The applet writes each device's [`SlaveStats`] to the tag bus (`tagbus::stats`); the
//! supervisor reads them every [`SLAVE_STATS_EVERY`] while the applet runs, in a task of its
//! own (a Redis that is down never stalls the loop), and writes them into the status file
//! under `slaves`. Only what the applet's current run wrote is shown: a hash older than the
//! run's start was left by a run that ended (its masters are gone), and while the applet does
//! not run there is no `slaves` at all.

use std::collections::BTreeMap;
use std::time::Duration;

use tagbus::stats::{read_slave_stats, SlaveStats};
use tagbus::{Alias, TagBusError};

/// How often the supervisor reads the slave devices' stats.
pub const SLAVE_STATS_EVERY: Duration = Duration::from_secs(5);

/// The stats of `devices` written since `run_started_ms` (Unix ms), by device alias.
pub async fn read_current(
    redis_url: &str,
    devices: &[Alias],
    run_started_ms: u64,
) -> Result<BTreeMap<String, SlaveStats>, TagBusError> {
    Ok(read_slave_stats(redis_url, devices)
        .await?
        .into_iter()
        .filter(|(_, stats)| stats.updated_ms >= run_started_ms)
        .map(|(device, stats)| (device.to_string(), stats))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagbus::stats::{MasterState, StatsWriter};

    #[tokio::test]
    async fn only_the_current_runs_stats_are_read() {
        let redis = testrig::RedisServer::start();
        let alias = |a: &str| Alias::new(a).unwrap();
        let stats = |updated_ms| SlaveStats {
            updated_ms,
            masters: vec![MasterState {
                address: "127.0.0.1:40001".parse().unwrap(),
                group: 0,
                started: true,
                since_ms: 900,
            }],
            sent: 5,
            ..Default::default()
        };
        let mut writer = StatsWriter::new(&redis.url()).unwrap();
        writer
            .write_slave(&alias("old"), &stats(999))
            .await
            .unwrap();
        writer
            .write_slave(&alias("scada"), &stats(1000))
            .await
            .unwrap();
        writer
            .write_slave(&alias("other"), &stats(2000))
            .await
            .unwrap();
        let devices = [alias("old"), alias("scada"), alias("gone")];
        let read = read_current(&redis.url(), &devices, 1000).await.unwrap();
        assert_eq!(read.keys().collect::<Vec<_>>(), ["scada"]);
        assert_eq!(read.get("scada"), Some(&stats(1000)));
        assert!(read_current(&redis.url(), &[], 0).await.unwrap().is_empty());
        drop(redis);
        assert!(read_current("redis://127.0.0.1:1/", &devices, 0)
            .await
            .is_err());
    }
}
