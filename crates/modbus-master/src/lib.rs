//! The fieldbridge Modbus master: Modbus RTU devices on serial (RS-485) ports and Modbus TCP
//! servers, polled into the tag bus; `out` tags written back to them.
//! Where it fits: docs/architecture.md; what it writes and executes: docs/contracts.md.
//!
//! # Layers
//! - [`pdu`], [`rtu`], [`tcp`]: a sans-IO codec (requests encoded, answers found in received
//!   bytes and decoded), tested with exact byte vectors.
//! - [`data`]: register contents <-> values (types, byte/word order, scaling); [`plan`]:
//!   merging signals into reads.
//! - [`link`]: the thin tokio layer (tokio-serial or a TCP stream, one transaction at a time);
//!   [`bus`]: one task per bus that polls and writes; [`run`]: wiring to the tag bus.
//!
//! # Why our own codec and not tokio-modbus
//! tokio-modbus (0.17) was evaluated first. It does several things right (exceptions come
//! back as a result, the RTU decoder resyncs past a bad CRC by dropping bytes, the read
//! buffer is cleared before a request). It falls short for a shared RS-485 bus:
//! - it keeps no inter-frame silence between transactions and has no per-request timeout;
//!   a timeout must be put around the call from outside, which cancels the future inside its
//!   `Framed` reader; and after its decoder reports an error (an undecodable answer) the
//!   `Framed` stream yields end-of-stream once (tokio-util 0.7), so the next call fails with
//!   `BrokenPipe` as if the port were gone: the "garbage leads to a reconnect" behaviour
//!   this driver must not have;
//! - a slave that answers late (after our timeout) is mixed into the next transaction;
//!   we drain and log stale bytes before each request instead;
//! - it pulls in tokio-util, bytes, futures sinks, async-trait, smallvec, byteorder and log
//!   for about 300 lines of framing we need.
//!
//! The codec here is ~500 lines including tests; the bus task owns timing, retries and
//! backoff, which is where the hard requirements are.
//!
//! Binary cost (release profile, measured on x86_64): the applet adds about 160 KiB to the
//! `fieldbridge` binary (1,868,248 -> 2,032,608 bytes); tokio-serial with serialport,
//! mio-serial and nix (no libudev) is about 6 KiB of that.
//!
//! # Decisions
//! - **Bus = serial port or TCP address.** RTU devices sharing `serial_port` are one bus (the
//!   first device's line settings are used; a mismatch is logged). TCP devices sharing
//!   `ip:port` (a gateway with several unit ids) share one connection and are polled in turn.
//! - **Inter-frame delay**: `inter_frame_delay_ms`, default 3.5 character times at the line's
//!   baud rate and framing, at least 2 ms (on a bus the largest of its devices' values is
//!   kept); 0 by default on TCP. It is kept before every request, counted from the end of the
//!   last frame sent or received.
//! - **Scheduling**: each device is polled every `poll_interval_ms` (fixed rate; a late
//!   cycle is not caught up in a burst); the earliest due device goes first; queued writes go
//!   before the next poll, never inside a transaction.
//! - **Not answering**: after `retries` + 1 timeouts the device is backed off on its own
//!   (exponential with jitter, from max(poll interval, 1 s) up to 60 s, one try per probe, no
//!   retries while backed off) and every tag it has is re-written with the gateway's
//!   link-loss mark (`nt nolink` added, keeping the value and its timestamp; a tag never read
//!   gets `nan`). At SIGTERM/SIGINT every `in`/`rin` value of the devices gets the same mark
//!   (the supervisor writes it when the driver dies without doing so). Other devices keep their
//!   rate: a dead device costs one timeout per probe, not per poll.
//! - **Exceptions** are answers: the signals of that read get `iv` (last value kept, stamped
//!   with the answer's time), the device counts as answering, the link is never reopened.
//!   The port or connection is reopened only on an I/O error or a corrupt TCP stream.
//! - **Malformed frames** on a serial line (bad CRC, short frames, another slave's frame,
//!   garbage) are skipped with a `warn` log line naming the reason and the bytes; the search
//!   for the answer goes on until the timeout, and the next poll starts clean.
//! - **Merging**: see [`plan`]: adjacent/overlapping signals only, unless the device sets
//!   `max_gap` (a new device column, 0-100 registers or bits).
//! - **Values**: `in` = scaled, `rin` = raw, timestamp = receive time, flag `gt`. A value is
//!   written when it or its flags change, and re-written unchanged every
//!   [`bus::REFRESH_INTERVAL`] (60 s) as a heartbeat: a meter polled every second with steady
//!   values adds one stream entry a minute per signal, not 60.
//! - **Writes** follow [`tagbus::command`]: live `out` values only, refused when older than
//!   `command_max_age_ms` (`too_old`), executed with function 5 (coil, or a writable fn-1
//!   signal), 15 (when configured), 6 (one register) or 16 (when configured, or for a
//!   multi-register type), value unscaled with `(value - offset) / multiplier` and rounded for
//!   integer types. A bit inside a register is not written (`rejected`, `bit_in_register`): a
//!   read-modify-write is not atomic on a shared device. After a confirmed write the device is
//!   read again at once.

pub mod bus;
pub mod data;
pub mod link;
pub mod pdu;
pub mod plan;
pub mod rtu;
pub mod tcp;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use config::modbus::{
    ModbusSignal, ModbusTiming, ADDRESS, ADDRESS_SPACE, BIT, COMMAND_MAX_AGE_MS,
    INTER_FRAME_DELAY_MS, MAX_GAP, POLL_INTERVAL_MS, RETRIES, RTU_UNIT_ID, TCP_PORT, TCP_UNIT_ID,
    TIMEOUT_MS,
};
use config::{Config, DeviceKind, IntColumn, Protocol, SignalKind};
use tagbus::results::ResultWriterHandle;
use tagbus::{Alias, Direction, FeedEvent, Origin, ReaderConfig, TagKey, WriterConfig};
use tagbus::{CommandOutcome, CommandResult};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::bus::{Bus, Command, DeviceState, Outputs, SignalState};
use crate::link::{Endpoint, SerialSettings, SettingError};

/// Errors starting the driver.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    #[error("tag bus: {0}")]
    TagBus(#[from] tagbus::TagBusError),
    #[error("no enabled Modbus device in the configuration")]
    NoDevices,
    /// A setting the driver cannot run with (validation refuses it too: both check the
    /// rules of [`config::modbus`]).
    #[error("device {device}: {error}")]
    Device { device: Alias, error: SettingError },
    #[error("device {device}, signal {signal}: {error}")]
    Signal {
        device: Alias,
        signal: Alias,
        error: SettingError,
    },
}

/// Checks a device's timing against the Modbus rules (`unit_id`: the RTU or TCP range).
pub fn check_timing(t: &ModbusTiming, unit_id: &IntColumn) -> Result<(), SettingError> {
    if !unit_id.accepts(t.modbus_id) {
        return Err(SettingError::out_of_range(unit_id, t.modbus_id));
    }
    let durations = [
        (&TIMEOUT_MS, Some(t.timeout)),
        (&POLL_INTERVAL_MS, Some(t.poll_interval)),
        (&INTER_FRAME_DELAY_MS, t.inter_frame_delay),
        (&COMMAND_MAX_AGE_MS, Some(t.command_max_age)),
    ];
    for (c, d) in durations {
        if let Some(d) = d.filter(|d| !c.accepts_duration(*d)) {
            return Err(SettingError::out_of_range(
                c,
                format!("{} ms", d.as_millis()),
            ));
        }
    }
    if !RETRIES.accepts(t.retries) {
        return Err(SettingError::out_of_range(&RETRIES, t.retries));
    }
    if !MAX_GAP.accepts(t.max_gap) {
        return Err(SettingError::out_of_range(&MAX_GAP, t.max_gap));
    }
    Ok(())
}

/// Checks a signal against the Modbus rules: its registers or bits inside the address
/// space, a register bit inside the register.
pub fn check_signal(s: &ModbusSignal) -> Result<(), SettingError> {
    let end = u32::from(s.address).saturating_add(u32::from(plan::span(s)));
    if end > ADDRESS_SPACE {
        return Err(SettingError {
            column: ADDRESS.name,
            message: format!("{} runs past address {}", s.address, ADDRESS_SPACE - 1),
        });
    }
    match s.bit {
        Some(b) if !BIT.accepts(b) => Err(SettingError::out_of_range(&BIT, b)),
        _ => Ok(()),
    }
}

/// Queue of values to the tag writer.
const WRITER_CAPACITY: usize = 4096;
/// Queue of commands from the `out` feed to a bus.
const COMMAND_CAPACITY: usize = 64;

/// Groups the configuration's enabled Modbus devices and signals into buses: the driver's
/// start. Every setting is checked against the Modbus rules first; a device or signal
/// validation would refuse is an error here too, never run with a substitute.
pub fn buses(config: &Config) -> Result<Vec<Bus>, ModbusError> {
    let mut by_endpoint: BTreeMap<String, Bus> = BTreeMap::new();
    for device in config
        .devices
        .iter()
        .filter(|d| d.enabled && matches!(d.protocol(), Protocol::ModbusRtu | Protocol::ModbusTcp))
    {
        let mut signals: Vec<SignalState> = Vec::new();
        for s in config.signals_of(&device.alias).filter(|s| s.enabled) {
            if let SignalKind::Modbus(m) = &s.kind {
                check_signal(m).map_err(|error| ModbusError::Signal {
                    device: device.alias.clone(),
                    signal: s.alias.clone(),
                    error,
                })?;
                let mut state = SignalState::new(&device.alias, s.alias.clone(), m.clone());
                state.log = s.log;
                signals.push(state);
            }
        }
        let device_error = |error| ModbusError::Device {
            device: device.alias.clone(),
            error,
        };
        let (endpoint, timing, ifd) = match &device.kind {
            DeviceKind::ModbusRtu(r) => {
                let settings = SerialSettings::of(r).map_err(device_error)?;
                check_timing(&r.timing, &RTU_UNIT_ID).map_err(device_error)?;
                let ifd = r
                    .timing
                    .inter_frame_delay
                    .unwrap_or_else(|| settings.default_inter_frame_delay());
                (Endpoint::Serial(settings), r.timing, ifd)
            }
            DeviceKind::ModbusTcp(t) => {
                if !TCP_PORT.accepts(t.port) {
                    return Err(device_error(SettingError::out_of_range(&TCP_PORT, t.port)));
                }
                check_timing(&t.timing, &TCP_UNIT_ID).map_err(device_error)?;
                (
                    Endpoint::Tcp {
                        host: t.host.clone(),
                        port: t.port,
                    },
                    t.timing,
                    t.timing.inter_frame_delay.unwrap_or(Duration::ZERO),
                )
            }
            _ => continue,
        };
        let key = match &endpoint {
            Endpoint::Serial(s) => format!("serial:{}", s.path),
            Endpoint::Tcp { host, port } => format!("tcp:{host}:{port}"),
        };
        let state = DeviceState::new(device.alias.clone(), timing, signals, timing.max_gap);
        let bus = by_endpoint.entry(key).or_insert_with(|| Bus {
            endpoint: endpoint.clone(),
            inter_frame: ifd,
            devices: Vec::new(),
        });
        if bus.endpoint != endpoint {
            tracing::warn!(device = %device.alias, bus = %bus.endpoint, "line settings differ from the first device on this port; the first device's are used");
        }
        bus.inter_frame = bus.inter_frame.max(ifd);
        bus.devices.push(state);
    }
    Ok(by_endpoint.into_values().collect())
}

/// How long a shutdown waits for queued values to reach Redis.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// Runs the driver: one task per bus, one `out` reader per device with writable signals,
/// until `shutdown` resolves; then the values already queued are flushed to Redis (for at
/// most [`SHUTDOWN_FLUSH`]). Returns early only when a task cannot be started.
pub async fn run(
    config: &Config,
    redis_url: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ModbusError> {
    let buses = buses(config)?;
    if buses.is_empty() {
        return Err(ModbusError::NoDevices);
    }
    let values = tagbus::spawn_writer(
        WriterConfig {
            redis_url: redis_url.to_owned(),
            stream_max_len: config.stream_max_len,
        },
        WRITER_CAPACITY,
    )?;
    let results = tagbus::results::spawn_result_writer(redis_url, COMMAND_CAPACITY)?;
    let outputs = Outputs { values, results };
    let aliases: Vec<Alias> = buses
        .iter()
        .flat_map(|b| b.devices.iter().map(|d| d.alias.clone()))
        .collect();
    let mut tasks = Vec::new();
    for bus in buses {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        for (index, device) in bus.devices.iter().enumerate() {
            let writable: HashMap<Alias, (usize, bool)> = device
                .signals
                .iter()
                .enumerate()
                .map(|(i, s)| (s.alias.clone(), (i, s.signal.writable)))
                .collect();
            if !writable.values().any(|(_, w)| *w) {
                continue;
            }
            let feed = tagbus::spawn_reader(
                ReaderConfig {
                    redis_url: redis_url.to_owned(),
                    pattern: TagKey::device_pattern(&device.alias, Direction::Out),
                },
                COMMAND_CAPACITY,
            )?;
            let span = tracing::info_span!("device", device = %device.alias);
            tasks.push(tokio::spawn(
                forward_commands(feed, index, writable, tx.clone(), outputs.results.clone())
                    .instrument(span),
            ));
        }
        // A bus task serves several devices: its lines name the device (or the tag) each.
        let span = tracing::info_span!("bus", bus = %bus.endpoint);
        span.in_scope(|| {
            tracing::info!(
                devices = bus.devices.len(),
                inter_frame_ms = bus.inter_frame.as_millis() as u64,
                "starting bus"
            )
        });
        tasks.push(tokio::spawn(
            bus::run_bus(bus, outputs.clone(), rx).instrument(span),
        ));
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    tokio::select! {
        () = all => {}
        () = shutdown => {}
    }
    for a in aborts {
        a.abort();
    }
    if tokio::time::timeout(SHUTDOWN_FLUSH, outputs.values.flush())
        .await
        .is_err()
    {
        tracing::warn!("values still queued for Redis at shutdown were not written");
    }
    // Nothing refreshes the devices' values any more: the gateway's link-loss mark on all.
    match tagbus::mark_no_link(redis_url, config.stream_max_len, &aliases).await {
        Ok(n) => tracing::info!(
            values = n,
            "stopping: the devices' values are marked nt nolink"
        ),
        Err(e) => tracing::warn!(error = %e, "stopping: cannot mark the devices' values nt nolink"),
    }
    Ok(())
}

/// Turns live `out` values of one device into commands for its bus. Snapshot values (what
/// the key held when the reader connected) are ignored: an old command is never replayed.
async fn forward_commands(
    mut feed: tagbus::TagFeed,
    device: usize,
    signals: HashMap<Alias, (usize, bool)>,
    tx: mpsc::Sender<Command>,
    results: ResultWriterHandle,
) {
    while let Some(event) = feed.recv().await {
        let FeedEvent::Value {
            key,
            value,
            origin: Origin::Live,
        } = event
        else {
            continue;
        };
        match signals.get(&key.signal) {
            Some((signal, true)) => {
                let cmd = Command {
                    device,
                    signal: *signal,
                    key,
                    value,
                };
                if tx.send(cmd).await.is_err() {
                    return;
                }
            }
            _ => {
                tracing::warn!(tag = %key, "command for a signal that is not writable");
                let _ = results
                    .report(
                        &key,
                        CommandResult::now(CommandOutcome::NotWritable, value.timestamp_ms),
                    )
                    .await;
            }
        }
    }
}
