//! The tokio layer: one connection task per outstation, its scheduler and its command task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iec60870::command::{check_command_max_age, deadline_for_age};
use iec60870::{
    spawn_master, ActTerm, Command, Cp56Time2a, Ioa, MasterConfig, MasterEvent, MasterHandle,
};
use tagbus::{
    now_ms, Alias, CommandOutcome, CommandResult, Direction, FeedEvent, Origin, ReaderConfig,
    TagKey, TagValue, TagWriter, TagWriterHandle, WriterConfig,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::command::{self, CommandSpec};
use crate::mapping::{Mapper, MonitorSpec, Notice};
use crate::Options;

/// Everything one outstation needs: its config row and its signals.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The device alias (`tag/<alias>/...`).
    pub alias: Alias,
    /// The device's name (for logs).
    pub name: String,
    /// The device row.
    pub device: config::iec104::Iec104Device,
    /// Signals with a monitor type.
    pub monitors: Vec<MonitorSpec>,
    /// Signals that take commands, by signal alias.
    pub commands: HashMap<Alias, CommandSpec>,
    /// The TLS of a `tls: 1` row, its files loaded ([`crate::load_tls`]).
    pub tls: Option<iec62351::TlsConnector>,
}

/// The link state the connection task tells the scheduler: `generation` counts activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkState {
    active: bool,
    generation: u64,
}

/// Retry delay of a failed general interrogation when no shorter `gi_interval_s` is set.
const GI_RETRY: Duration = Duration::from_secs(30);

/// A device the stack would refuse (never one that passed config validation, which
/// checks with the same rules of the stack).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The link parameters or the command timing.
    #[error("{0}")]
    Master(#[from] iec60870::ConfigError),
    /// An address that does not fit its field.
    #[error("{0}")]
    Address(#[from] iec60870::AsduError),
    /// A command qualifier that does not fit its type.
    #[error("signal {signal}: {error}")]
    Qualifier {
        /// The signal.
        signal: Alias,
        /// What is wrong.
        error: iec60870::BadQualifier,
    },
}

/// The device start: the master configuration of a device, checked by the stack's rules
/// (link parameters, command timing, addresses against the ASDU field sizes, qualifiers).
pub fn master_config(
    spec: &DeviceSpec,
    addrs: Vec<SocketAddr>,
    opts: &Options,
) -> Result<MasterConfig, StartError> {
    let d = &spec.device;
    let mut mc = MasterConfig::new(addrs);
    mc.link = d.link;
    mc.connect_timeout = d.link.t0;
    mc.sizes = d.sizes;
    mc.decode_level = opts.decode_level;
    mc.originator = d.originator_address;
    mc.command_timeout = d.command_timeout;
    mc.reconnect_min = opts.reconnect_min;
    mc.reconnect_max = opts.reconnect_max;
    mc.transport = spec
        .tls
        .clone()
        .map(|c| Arc::new(c) as Arc<dyn iec60870::transport::Connector>);
    mc.validate()?;
    check_command_max_age(d.command_max_age)?;
    d.sizes.check_originator(d.originator_address)?;
    d.sizes.check_common_address(d.common_address)?;
    for m in &spec.monitors {
        d.sizes.check_ioa(Ioa(m.ioa))?;
    }
    for (signal, c) in &spec.commands {
        d.sizes.check_ioa(c.ioa)?;
        c.type_id
            .check_qualifier(c.qualifier)
            .map_err(|error| StartError::Qualifier {
                signal: signal.clone(),
                error,
            })?;
    }
    Ok(mc)
}

/// Resolves the device's hosts (IP addresses, or names looked up now); retries with backoff
/// until at least one resolves.
async fn resolve(spec: &DeviceSpec) -> Vec<SocketAddr> {
    let mut backoff = backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let mut addrs = Vec::new();
        for host in &spec.device.hosts {
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                addrs.push(SocketAddr::new(ip, spec.device.port.get()));
                continue;
            }
            match tokio::net::lookup_host((host.as_str(), spec.device.port.get())).await {
                Ok(found) => addrs.extend(found.take(4)),
                Err(e) => tracing::warn!(device = %spec.alias, %host, error = %e, "cannot resolve"),
            }
        }
        if !addrs.is_empty() {
            return addrs;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Reads the current `in`/`rin` values of the device's signals (to mark them `nt` until
/// the first interrogation). A Redis that does not answer is skipped.
async fn read_current(alias: &Alias, redis_url: &str, keys: &[TagKey]) -> Vec<(TagKey, TagValue)> {
    match tagbus::read_values(redis_url, keys).await {
        Ok(values) => values,
        Err(e) => {
            tracing::warn!(device = %alias, error = %e, "cannot read the current values; not marking them nt");
            Vec::new()
        }
    }
}

/// Runs one outstation for ever: the master, its scheduler, its command task, the mapping.
pub async fn run_device(spec: DeviceSpec, writer: TagWriterHandle, opts: Options) {
    let alias = spec.alias.clone();
    let ca = spec.device.common_address.0;
    let mut mapper = Mapper::new(&alias, ca, spec.monitors.clone());
    let mut out: Vec<(TagKey, TagValue)> = Vec::new();

    // Values already on the bus are not topical until the first interrogation.
    let keys: Vec<TagKey> = mapper.keys().cloned().collect();
    for (k, v) in read_current(&alias, &opts.redis_url, &keys).await {
        mapper.seed(&k, v);
    }
    mapper.mark_not_topical(&mut out);
    if !out.is_empty() {
        tracing::info!(
            values = out.len(),
            "marked the values from before the start nt"
        );
    }
    flush(&writer, &mut out).await;

    let addrs = resolve(&spec).await;
    let master = match master_config(&spec, addrs, &opts) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(device = %alias, error = %e, "invalid configuration: not started");
            return;
        }
    };
    let (handle, mut events) = spawn_master(master);
    let (link_tx, link_rx) = watch::channel(LinkState {
        active: false,
        generation: 0,
    });
    // The device's span (set by the caller) names the device in every line of its tasks.
    tokio::spawn(
        schedule(
            handle.clone(),
            spec.alias.clone(),
            spec.device.clone(),
            link_rx,
        )
        .in_current_span(),
    );
    if !spec.commands.is_empty() {
        tokio::spawn(
            commands(handle.clone(), spec.clone(), opts.redis_url.clone()).in_current_span(),
        );
    }
    if let Some(tls) = &spec.tls {
        tokio::spawn(
            tls_stats(alias.clone(), tls.clone(), opts.redis_url.clone()).in_current_span(),
        );
    }

    let mut generation = 0u64;
    let mut last_stats = Instant::now();
    while let Some(ev) = events.recv().await {
        let now = now_ms();
        match ev {
            MasterEvent::Connected(addr) => {
                tracing::info!(device = %alias, %addr, "connected");
            }
            MasterEvent::Active => {
                generation = generation.wrapping_add(1);
                tracing::info!(device = %alias, "data transfer started");
                let _ = link_tx.send(LinkState {
                    active: true,
                    generation,
                });
            }
            MasterEvent::Disconnected { reason } => {
                let was_active = link_tx.borrow().active;
                if was_active {
                    tracing::warn!(device = %alias, %reason, "link down");
                } else {
                    tracing::debug!(device = %alias, %reason, "no link");
                }
                let _ = link_tx.send(LinkState {
                    active: false,
                    generation,
                });
                mapper.mark_not_topical(&mut out);
            }
            MasterEvent::Asdu(asdu) => {
                for notice in mapper.on_asdu(&asdu, now, &mut out) {
                    log_notice(&alias, &notice);
                }
                for (k, v) in out.iter().filter(|(k, _)| mapper.is_logged(k)) {
                    tracing::info!(tag = %k, value = %v, cause = asdu.cot.cause.value(), "value");
                }
            }
        }
        flush(&writer, &mut out).await;
        if last_stats.elapsed() >= Duration::from_secs(300) {
            last_stats = Instant::now();
            let s = mapper.stats();
            tracing::info!(device = %alias, objects = s.objects, mapped = s.mapped, unmapped = s.unmapped,
                type_mismatch = s.type_mismatch, foreign_ca = s.foreign_ca, test = s.test, "statistics");
        }
    }
    tracing::error!(device = %alias, "the master task ended");
}

/// How often a TLS device's security counters are written to its stats hash.
pub const TLS_STATS_INTERVAL: Duration = Duration::from_secs(5);

/// Writes the device's TLS stats every [`TLS_STATS_INTERVAL`] (and checks the own
/// certificate's expiry, which warns at most once a day).
async fn tls_stats(alias: Alias, tls: iec62351::TlsConnector, redis_url: String) {
    let mut writer = match tagbus::stats::StatsWriter::new(&redis_url) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(device = %alias, error = %e, "cannot write the TLS stats");
            return;
        }
    };
    let mut tick = tokio::time::interval(TLS_STATS_INTERVAL);
    loop {
        tick.tick().await;
        tls.check_own_certificate();
        if let Err(e) = writer.write_tls(&alias, &tls.log().stats()).await {
            tracing::debug!(device = %alias, error = %e, "cannot write the TLS stats");
        }
    }
}

async fn flush(writer: &TagWriterHandle, out: &mut Vec<(TagKey, TagValue)>) {
    for (k, v) in out.drain(..) {
        if writer.write(k, v).await.is_err() {
            tracing::error!("the tag writer has stopped");
        }
    }
}

fn log_notice(alias: &Alias, notice: &Notice) {
    match notice {
        Notice::Unmapped { ioa, type_id } => {
            tracing::info!(device = %alias, ioa, type_id = %type_id,
            "information object not mapped by any signal (logged once; counted)")
        }
        Notice::TypeMismatch {
            ioa,
            type_id,
            configured,
        } => tracing::warn!(device = %alias, ioa, received = %type_id, configured = %configured,
            "information object of another type than configured: ignored (logged once; counted)"),
        Notice::ForeignCommonAddress { common_address } => tracing::warn!(device = %alias,
            common_address, "data of another common address ignored (logged once)"),
        Notice::Test => {
            tracing::warn!(device = %alias, "test-mode data (T bit) ignored (logged once)")
        }
        Notice::TooManyUnmapped => tracing::warn!(device = %alias,
            "too many distinct unmapped objects; no longer logging each (still counted)"),
        Notice::InterrogationComplete { still_stale: 0 } => {
            tracing::debug!(device = %alias, "general interrogation complete")
        }
        Notice::InterrogationComplete { still_stale } => tracing::info!(device = %alias,
            still_not_topical = still_stale, "general interrogation complete; some signals got no value"),
    }
}

/// `d` from now (`None` only if that is beyond what the clock represents: never).
fn from_now(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// On each activation: general interrogation, clock sync, counter interrogation (each when
/// configured); then the periodic ones until the link drops.
async fn schedule(
    handle: MasterHandle,
    alias: Alias,
    device: config::iec104::Iec104Device,
    mut link: watch::Receiver<LinkState>,
) {
    let ca = device.common_address;
    let period = |i: Option<config::iec104::Interval>| i.map(config::iec104::Interval::duration);
    let gi_interval = period(device.gi_interval);
    let clock_sync_interval = period(device.clock_sync_interval);
    let counter_interrogation_interval = period(device.counter_interrogation_interval);
    loop {
        // wait for an active link
        let state = loop {
            let s = *link.borrow_and_update();
            if s.active {
                break s;
            }
            if link.changed().await.is_err() {
                return;
            }
        };
        let now = Instant::now();
        let mut next_gi = Some(now);
        let mut next_cs = clock_sync_interval.map(|_| now);
        let mut next_ci = counter_interrogation_interval.map(|_| now);
        loop {
            let due = [next_gi, next_cs, next_ci].into_iter().flatten().min();
            let sleep = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = link.changed() => {
                    if r.is_err() { return; }
                    let s = *link.borrow();
                    if !s.active || s.generation != state.generation { break; }
                    continue;
                }
                _ = sleep => {}
            }
            let now = Instant::now();
            if next_gi.is_some_and(|t| t <= now) {
                let r = handle.general_interrogation(ca).await;
                let ok = matches!(r, Ok(ref c) if c.is_confirmed());
                if ok {
                    tracing::debug!(device = %alias, "general interrogation confirmed");
                } else {
                    tracing::warn!(device = %alias, result = ?r, "general interrogation failed");
                }
                let after = if ok {
                    gi_interval
                } else {
                    Some(gi_interval.map_or(GI_RETRY, |i| i.min(GI_RETRY)))
                };
                next_gi = after.and_then(from_now);
            }
            if next_cs.is_some_and(|t| t <= Instant::now()) {
                let time = Cp56Time2a::from_unix_ms(i64::try_from(now_ms()).unwrap_or(0));
                match time {
                    Ok(t) => {
                        let r = handle.clock_sync(ca, t).await;
                        if !matches!(r, Ok(ref c) if c.is_confirmed()) {
                            tracing::warn!(device = %alias, result = ?r, "clock synchronisation failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(device = %alias, error = %e, "system time cannot be sent")
                    }
                }
                next_cs = clock_sync_interval.and_then(from_now);
            }
            if next_ci.is_some_and(|t| t <= Instant::now()) {
                let r = handle.counter_interrogation(ca).await;
                if !matches!(r, Ok(ref c) if c.is_confirmed()) {
                    tracing::warn!(device = %alias, result = ?r, "counter interrogation failed");
                }
                next_ci = counter_interrogation_interval.and_then(from_now);
            }
        }
    }
}

/// Executes the live `out` values of the device's signals, one at a time, and reports each
/// outcome on `result/<dev>/<sig>`.
async fn commands(handle: MasterHandle, spec: DeviceSpec, redis_url: String) {
    let alias = spec.alias.clone();
    let pattern = TagKey::device_pattern(&alias, Direction::Out);
    let mut feed = match tagbus::spawn_reader(
        ReaderConfig {
            redis_url: redis_url.clone(),
            pattern,
        },
        64,
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(device = %alias, error = %e, "cannot read commands");
            return;
        }
    };
    let reporter = match tagbus::results::spawn_result_writer(&redis_url, 64) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(device = %alias, error = %e, "cannot write command results");
            return;
        }
    };
    let mut results = match TagWriter::new(&WriterConfig::new(redis_url)) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(device = %alias, error = %e, "cannot write command results");
            return;
        }
    };
    while let Some(ev) = feed.recv().await {
        let FeedEvent::Value {
            key,
            value,
            origin: Origin::Live,
        } = ev
        else {
            continue;
        };
        if key.direction != Direction::Out || key.device != alias {
            continue;
        }
        let (outcome, raw) = execute(&handle, &spec, &key, &value).await;
        tracing::info!(device = %alias, signal = %key.signal, value = %value.value, %outcome, "command");
        // The result writer retries with backoff by itself.
        if reporter
            .report(&key, CommandResult::now(outcome, value.timestamp_ms))
            .await
            .is_err()
        {
            tracing::error!(device = %alias, "command result writer stopped");
            return;
        }
        if let Some(raw) = raw {
            let rout = key.with_direction(Direction::RawOut);
            if let Err(e) = results
                .write(&rout, &TagValue::new(raw, value.timestamp_ms))
                .await
            {
                tracing::warn!(device = %alias, key = %rout, error = %e, "cannot write rout");
            }
        }
    }
}

/// Sends one command; returns the outcome and, when confirmed, the raw value sent.
async fn execute(
    handle: &MasterHandle,
    spec: &DeviceSpec,
    key: &TagKey,
    value: &TagValue,
) -> (CommandOutcome, Option<tagbus::Value>) {
    let alias = &spec.alias;
    let Some(cmd) = spec.commands.get(&key.signal) else {
        tracing::warn!(device = %alias, signal = %key.signal, "command to a signal without command type");
        return (CommandOutcome::NotWritable, None);
    };
    let age = Duration::from_millis(now_ms().saturating_sub(value.timestamp_ms));
    let now = Instant::now().into_std();
    let Some(deadline) = deadline_for_age(now, age, spec.device.command_max_age) else {
        tracing::warn!(device = %alias, signal = %key.signal, ts = value.timestamp_ms, "command too old: refused");
        return (CommandOutcome::TooOld, None);
    };
    let (element, raw) = match command::command_element(cmd, value.value) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(device = %alias, signal = %key.signal, error = %e, "invalid command");
            return (CommandOutcome::Invalid, None);
        }
    };
    let command = Command {
        type_id: cmd.type_id,
        common_address: spec.device.common_address,
        ioa: cmd.ioa,
        element,
        select_before_operate: cmd.select_before_operate,
        // outstations differ (c104 sends ACT_TERM only for set-points)
        act_term: ActTerm::Skip,
        deadline: Some(deadline),
    };
    match handle.execute(command).await {
        Ok(r) => {
            if r == iec60870::CommandResult::Expired {
                tracing::warn!(device = %alias, signal = %key.signal, ts = value.timestamp_ms,
                    "command too old before its execute: not sent");
            }
            let o = command::outcome(&r);
            (o, (o == CommandOutcome::Confirmed).then_some(raw))
        }
        Err(e) => (master_error(alias, e), None),
    }
}

fn master_error(alias: &Alias, e: iec60870::MasterError) -> CommandOutcome {
    use iec60870::MasterError as M;
    match e {
        M::Shutdown | M::LinkDown => CommandOutcome::LinkDown,
        M::QueueFull => {
            tracing::warn!(device = %alias, "command queue full");
            CommandOutcome::Rejected
        }
        M::Encode(err) => {
            tracing::warn!(device = %alias, error = %err, "command cannot be encoded");
            CommandOutcome::Invalid
        }
        M::NotACommand => CommandOutcome::Invalid,
    }
}
