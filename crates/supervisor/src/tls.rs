//! The TLS IEC 104 devices' security events in the status file.
//!
//! The `iec104-master` and `iec104-slave` applets write each device with `tls` 1 a
//! [`TlsStats`] hash on the tag bus (`tagbus::stats`); the supervisor reads them with the
//! slave stats, every [`crate::slaves::SLAVE_STATS_EVERY`], in a task of its own, and writes
//! them into the status file under `tls`. As for the slaves, only what the current run of
//! the device's applet wrote is shown (its counters start at 0 with each process), and
//! nothing while the applet does not run.

use std::collections::BTreeMap;

use config::Applet;
use tagbus::stats::{read_tls_stats, TlsStats};
use tagbus::{Alias, TagBusError};

/// A TLS device of a running applet: whose hash to read and what makes it current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDevice {
    pub alias: Alias,
    pub applet: Applet,
    /// The generation of the applet's child.
    pub generation: u64,
    /// When that child started (Unix ms): an older hash was left by a run that ended.
    pub started_ms: u64,
}

/// The stats read for a device, with the applet run that wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRead {
    pub applet: Applet,
    pub generation: u64,
    pub stats: TlsStats,
}

/// The stats of `devices` their applet's current run wrote, by device alias.
pub async fn read_current(
    redis_url: &str,
    devices: &[TlsDevice],
) -> Result<BTreeMap<String, TlsRead>, TagBusError> {
    let aliases: Vec<Alias> = devices.iter().map(|d| d.alias.clone()).collect();
    let mut read = read_tls_stats(redis_url, &aliases).await?;
    Ok(devices
        .iter()
        .filter_map(|d| {
            let stats = read.remove(&d.alias)?;
            (stats.updated_ms >= d.started_ms).then(|| {
                (
                    d.alias.to_string(),
                    TlsRead {
                        applet: d.applet,
                        generation: d.generation,
                        stats,
                    },
                )
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagbus::stats::{SecurityEvent, SecurityEventKind, StatsWriter};

    #[tokio::test]
    async fn only_the_current_runs_stats_are_read() {
        let redis = testrig::RedisServer::start();
        let alias = |a: &str| Alias::new(a).unwrap();
        let stats = |updated_ms| {
            let mut s = TlsStats {
                updated_ms,
                handshakes: 3,
                ..Default::default()
            };
            s.record(SecurityEvent {
                kind: SecurityEventKind::CertificateUnknown,
                peer: "127.0.0.1:40001".into(),
                subject: "CN=intruder".into(),
                detail: "not on peer_certificates".into(),
                at_ms: updated_ms,
            });
            s
        };
        let mut writer = StatsWriter::new(&redis.url()).unwrap();
        for (device, at) in [("old", 999), ("rtu", 1000), ("scada", 2000)] {
            writer.write_tls(&alias(device), &stats(at)).await.unwrap();
        }
        let device = |a: &str, applet, started_ms| TlsDevice {
            alias: alias(a),
            applet,
            generation: 7,
            started_ms,
        };
        let devices = [
            device("old", Applet::Iec104Master, 1000),
            device("rtu", Applet::Iec104Master, 1000),
            device("scada", Applet::Iec104Slave, 1500),
            device("gone", Applet::Iec104Slave, 0),
        ];
        let read = read_current(&redis.url(), &devices).await.unwrap();
        assert_eq!(read.keys().collect::<Vec<_>>(), ["rtu", "scada"]);
        assert_eq!(
            read.get("scada"),
            Some(&TlsRead {
                applet: Applet::Iec104Slave,
                generation: 7,
                stats: stats(2000)
            })
        );
        assert!(read_current(&redis.url(), &[]).await.unwrap().is_empty());
        drop(redis);
        assert!(read_current("redis://127.0.0.1:1/", &devices)
            .await
            .is_err());
    }
}
