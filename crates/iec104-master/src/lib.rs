//! The fieldbridge IEC 60870-5-104 master driver: outstation points become tags on the Redis
//! tag bus, `out` tags become commands.
//! Where it fits: docs/architecture.md; what it writes and executes: docs/contracts.md.
//!
//! Layers: [`mapping`] (sans-IO: information objects -> tag values, `nt` bookkeeping),
//! [`command`] (sans-IO: `out` values -> command ASDUs, outcomes), [`device`] (tokio: one
//! connection task per enabled outstation, on the `iec60870` master), [`run`] (all devices,
//! one shared batching tag writer).
//!
//! # Connection
//! Each enabled `iec104-master` device gets its own `iec60870` master task: its `ip` list is
//! tried in turn (a redundant outstation), each connect bounded by `t0`; reconnection with
//! exponential backoff and jitter (1 s doubling to 30 s) is the stack's. After STARTDT con:
//! general interrogation (station, QOI 20), then clock synchronisation when
//! `clock_sync_interval_s` is set, then counter interrogation (RQT 5) when
//! `counter_interrogation_interval_s` is set; afterwards each runs at its interval
//! (`gi_interval_s` 0 = only after a connect). A failed GI is retried after 30 s (or the
//! shorter `gi_interval_s`). Devices are independent tasks: an unreachable one never delays another.
//!
//! # TLS
//! A row with `tls: 1` connects only with IEC 62351-3 TLS (the `iec62351` crate: mutual
//! authentication, no plaintext fallback); its files are read when the applet starts and a
//! refused file stops the applet ([`Error::Tls`]). A failed handshake is a security event and
//! counts as a failed connect (next address, backoff). `tls_renewal_s` renews the session:
//! a TLS 1.3 KeyUpdate, or on TLS 1.2 a planned reconnect through STOPDT (the new activation
//! interrogates again; values are not marked `nt` for it). The device's TLS stats hash is
//! written every [`device::TLS_STATS_INTERVAL`].
//!
//! # Values
//! Every monitor-direction object of the device's common address whose IOA a signal maps is
//! written to `tag/<dev>/<sig>/in` (engineering value) and `rin` (raw value), in one batch per
//! ASDU through the shared writer. A signal accepts its configured type and the other types
//! of the same family (with or without CP24/CP56 time tag, e.g. `M_ME_NC_1` also takes
//! `M_ME_TC_1` and `M_ME_TF_1`; `M_ME_NA_1` also takes `M_ME_ND_1`): an outstation answers a GI
//! with the untagged type and sends events tagged. An object of another family at a mapped
//! IOA is ignored and logged once as a type mismatch. Objects of no signal are counted and
//! logged once per (IOA, type) (at most 4096 pairs remembered). ASDUs with another common
//! address or the test bit are ignored (logged once).
//!
//! Numeric forms (`in` / `rin`):
//!
//! | type | `rin` | `in` |
//! |---|---|---|
//! | single point (1, 2, 30) | 0 / 1 | same |
//! | double point (3, 4, 31) | DPI 0-3: 0 intermediate, 1 off, 2 on, 3 indeterminate | same |
//! | step position (5, 6, 32) | -64..=63 | raw * multiplier + offset; flag `tr` when transient |
//! | bitstring (7, 8, 33) | unsigned 0..=2^32-1 | same |
//! | normalised (9, 10, 34, 21) | the raw integer -32768..=32767 | raw / 32768 * multiplier + offset |
//! | scaled (11, 12, 35) | the raw integer | raw * multiplier + offset |
//! | float (13, 14, 36) | the float | raw * multiplier + offset |
//! | integrated totals (15, 16, 37) | the counter (i32) | counter * multiplier + offset; flags `iv`, `cy`, `ca` (sequence number dropped) |
//! | protection event (17, 38) | event state 0-3 (as DPI) | same (elapsed time dropped) |
//! | packed start events (18, 39) | the six SPE bits | same |
//! | output circuits (19, 40) | the four OCI bits | same |
//! | packed single points (20) | status \| change-detection << 16 | the 16 status bits |
//!
//! Scaling applies to analog types, step positions and integrated totals only; with the
//! identity scaling (multiplier 1, offset 0) an integer stays an integer. Quality bits become
//! flags `iv nt sb bl ov` (and `ei` for protection). The timestamp is the object's CP56 time
//! tag read as UTC, or a CP24 tag placed in the hour nearest to the receive time; when there is
//! none, or it is marked invalid (IV), it is the gateway's receive time and the flag `gt` is
//! added.
//!
//! # Not topical
//! When the link drops, every signal that has a value is re-written once (`in` and `rin`)
//! with the gateway's link-loss mark (`tagbus::TagValue::marked_no_link`): same value and
//! timestamp, flags plus `nt nolink` (`nolink` tells it from the outstation's own `nt`). At
//! start the current values are read from Redis and marked the same way, and at SIGTERM/SIGINT
//! every `in`/`rin` value of the devices is marked once the queue is flushed (the supervisor
//! marks them when the driver dies without doing so). Any fresh value of a signal clears it,
//! so the next completed GI clears all points the outstation has (counters are refreshed by
//! the counter interrogation).
//!
//! # Logs
//! Every line of a device's tasks (the stack's included) is in a `device` span naming its
//! alias.
//!
//! # When Redis is slow or down
//! Values go through one bounded queue (8192 values) to the tag writer, which retries with
//! backoff and loses nothing it holds. When the queue is full, a device task waits: it stops
//! reading its link, the outstation's k window fills, and after the outstation's t1 it may drop
//! the connection (then the link-loss rules above apply). Memory stays bounded throughout.
//! At SIGTERM/SIGINT queued values get up to 3 s to reach Redis.
//!
//! # Commands
//! Live values on `tag/<dev>/*/out` (never the stored value: a restart replays nothing) are
//! executed one at a time per device, as the signal's command type (direct, or select then
//! execute with `select_before_operate`; ACT_TERM is not awaited); time-tagged command types
//! carry the current time. A value whose `timestamp_ms` is older than `command_max_age_ms` is
//! refused (`too_old`), also when the select took too long. The outcome goes to
//! `result/<dev>/<sig>` (see `tagbus::command`); a confirmed command also writes the
//! raw value sent to `rout`. Value forms are in [`command::command_element`]: double commands
//! take 1 = off, 2 = on (the DPI numbers, not 0/1), set-points are engineering values,
//! inverse-scaled with the signal's multiplier and offset.

pub mod command;
pub mod device;
pub mod mapping;

use std::collections::HashMap;
use std::time::Duration;

use iec60870::DecodeLevel;
use tagbus::{spawn_writer, WriterConfig};
use tracing::Instrument;

pub use device::DeviceSpec;

/// Options of the whole driver.
#[derive(Debug, Clone)]
pub struct Options {
    /// Redis URL of the tag bus.
    pub redis_url: String,
    /// Approximate cap of the tag bus stream.
    pub stream_max_len: u64,
    /// Frame tracing.
    pub decode_level: DecodeLevel,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Capacity of the shared tag writer's queue.
    pub writer_capacity: usize,
}

impl Options {
    /// Defaults for a Redis URL.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            stream_max_len: tagbus::DEFAULT_STREAM_MAX_LEN,
            decode_level: DecodeLevel::Off,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            writer_capacity: 8192,
        }
    }
}

/// Errors of the driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tag bus cannot be set up.
    #[error("tag bus: {0}")]
    TagBus(#[from] tagbus::TagBusError),
    /// Nothing to do.
    #[error("no enabled iec104-master device")]
    NoDevices,
    /// A device's TLS files are refused (the applet does not start).
    #[error("device {device}: TLS: {error}")]
    Tls {
        device: tagbus::Alias,
        error: iec62351::LoadError,
    },
}

/// The enabled IEC 104 devices of a validated config, with their enabled signals.
pub fn device_specs(config: &config::Config) -> Vec<DeviceSpec> {
    let mut out = Vec::new();
    for dev in config.enabled_devices(config::Protocol::Iec104Master) {
        let config::DeviceKind::Iec104Master(d) = &dev.kind else {
            continue;
        };
        let mut monitors = Vec::new();
        let mut commands = HashMap::new();
        for sig in config.signals_of(&dev.alias).filter(|s| s.enabled) {
            let config::SignalKind::Iec104(s) = &sig.kind else {
                continue;
            };
            if let Some(type_id) = s.type_id {
                monitors.push(mapping::MonitorSpec {
                    signal: sig.alias.clone(),
                    ioa: s.ioa.0,
                    type_id,
                    multiplier: s.multiplier,
                    offset: s.offset,
                    log: sig.log,
                });
            }
            if let Some(c) = &s.command {
                commands.insert(
                    sig.alias.clone(),
                    command::CommandSpec {
                        ioa: s.ioa,
                        type_id: c.type_id,
                        select_before_operate: c.select_before_operate,
                        qualifier: c.qualifier,
                        multiplier: s.multiplier,
                        offset: s.offset,
                    },
                );
            }
        }
        out.push(DeviceSpec {
            alias: dev.alias.clone(),
            name: dev.name.clone(),
            device: d.clone(),
            monitors,
            commands,
            tls: None,
        });
    }
    out
}

/// How long [`run`] waits at shutdown for queued values to reach Redis.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// Runs every device until `shutdown` completes; then waits up to [`SHUTDOWN_FLUSH`] for the
/// values already queued to reach Redis.
pub async fn run(
    devices: Vec<DeviceSpec>,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    if devices.is_empty() {
        return Err(Error::NoDevices);
    }
    let devices = load_tls(devices)?;
    let writer = spawn_writer(
        WriterConfig {
            redis_url: opts.redis_url.clone(),
            stream_max_len: opts.stream_max_len,
        },
        opts.writer_capacity,
    )?;
    let aliases: Vec<tagbus::Alias> = devices.iter().map(|d| d.alias.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for d in devices {
        let span = tracing::info_span!("device", device = %d.alias);
        span.in_scope(|| {
            tracing::info!(name = %d.name, hosts = ?d.device.hosts, port = d.device.port,
                signals = d.monitors.len(), commands = d.commands.len(), "starting")
        });
        tasks.spawn(device::run_device(d, writer.clone(), opts.clone()).instrument(span));
    }
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        () = shutdown => {}
    }
    tasks.abort_all();
    if tokio::time::timeout(SHUTDOWN_FLUSH, writer.flush())
        .await
        .is_err()
    {
        tracing::warn!("values still queued for Redis at shutdown were dropped");
    }
    mark_stopped(&opts, &aliases).await;
    Ok(())
}

/// Reads each TLS device's files (certificates, key, CRL) into its connector.
pub fn load_tls(mut devices: Vec<DeviceSpec>) -> Result<Vec<DeviceSpec>, Error> {
    for d in &mut devices {
        if let Some(tls) = &d.device.tls {
            let connector =
                iec62351::TlsConnector::load(d.alias.as_str(), tls).map_err(|error| {
                    Error::Tls {
                        device: d.alias.clone(),
                        error,
                    }
                })?;
            d.tls = Some(connector);
        }
    }
    Ok(devices)
}

/// Marks every `in`/`rin` value of the devices with the gateway's link-loss mark as the
/// driver stops: nothing refreshes them any more (see `tagbus::mark_no_link`).
async fn mark_stopped(opts: &Options, devices: &[tagbus::Alias]) {
    match tagbus::mark_no_link(&opts.redis_url, opts.stream_max_len, devices).await {
        Ok(n) => tracing::info!(
            values = n,
            "stopping: the devices' values are marked nt nolink"
        ),
        Err(e) => tracing::warn!(error = %e, "stopping: cannot mark the devices' values nt nolink"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use iec60870::TypeId;

    #[test]
    fn specs_from_the_config() {
        let raw = config::RawConfig::parse(
            r#"{"devices": [
                {"name": "R", "device_alias": "r", "protocol": "iec104-master",
                 "ip": "10.0.0.1, 10.0.0.2", "asdu_address": 7, "cot_size": 1, "ioa_size": 2,
                 "k": 20, "w": 10, "t1": 5, "t2": 2, "command_timeout": 3},
                {"name": "Off", "device_alias": "off", "protocol": "iec104-master", "enable": 0,
                 "ip": "10.0.0.3", "asdu_address": 1}],
              "signals": [
                {"signal_name": "a", "device_alias": "r", "signal_alias": "a", "info_address": 1,
                 "type_id": "M_ME_NB_1", "multiplier": 0.5, "command_type": "C_SE_NB_1",
                 "select_before_operate": 1, "qualifier": 3},
                {"signal_name": "b", "device_alias": "r", "signal_alias": "b", "info_address": 2,
                 "type_id": "C_DC_TA_1"},
                {"signal_name": "c", "device_alias": "r", "signal_alias": "c", "info_address": 3,
                 "type_id": "M_SP_NA_1", "enable": 0}]}"#,
        )
        .unwrap();
        let v = config::validate(&raw);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let specs = device_specs(&v.config);
        assert_eq!(specs.len(), 1);
        let d = &specs[0];
        assert_eq!(d.monitors.len(), 1);
        assert_eq!(d.monitors[0].type_id, TypeId::M_ME_NB_1);
        assert_eq!(d.monitors[0].multiplier, 0.5);
        let a = d.commands[&tagbus::Alias::new("a").unwrap()];
        assert_eq!(
            (
                a.type_id,
                a.select_before_operate,
                a.qualifier,
                a.multiplier
            ),
            (TypeId::C_SE_NB_1, true, 3, 0.5)
        );
        let b = d.commands[&tagbus::Alias::new("b").unwrap()];
        assert_eq!((b.type_id, b.ioa), (TypeId::C_DC_TA_1, iec60870::Ioa(2)));

        let mc = device::master_config(
            d,
            vec!["10.0.0.1:2404".parse().unwrap()],
            &Options::new("redis://x"),
        )
        .unwrap();
        assert_eq!((mc.link.k, mc.link.w), (20, 10));
        assert_eq!(mc.link.t1, Duration::from_secs(5));
        assert_eq!(mc.command_timeout, Duration::from_secs(3));
        assert_eq!(mc.sizes.ioa_len(), 2);
    }
}
