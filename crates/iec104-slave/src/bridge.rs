//! The applet: one slave device's station fed from the tag bus, its commands written to the
//! field devices' `out` tags.
//!
//! - **Values**: at start the current value of every point's source tag is read (a point
//!   without one is served invalid); then each redundancy group reads the stream through
//!   its own consumer group ([`ConsumerGroup::iec104_slave`], [`tagbus::feed`]): pending
//!   entries, backlog, snapshot, live. A mapped entry becomes a spontaneous event of that
//!   group; an entry is acknowledged (`XACK`) only once the master's N(R) covered every
//!   event made from it. Unmapped, malformed and trimmed entries are acknowledged at once.
//!   So events of a master outage, and of a killed slave, are sent after the next STARTDT,
//!   in stream order; the stream cap bounds them, and what it trimmed unsent is counted.
//! - **Commands**: an executed command becomes the `out` value of its source signal (see
//!   [`crate::map`]), written with a timestamp unique per signal; the field driver's result
//!   (the tag bus command contract) answers it: `confirmed` -> ACT_CON positive and ACT_TERM,
//!   anything else, or no result within `command_timeout` -> ACT_CON negative.
//! - **Clock sync** is always confirmed; it sets the system clock only with
//!   `accept_clock_sync`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tagbus::feed::{self, FeedItem, FeedSetup, GroupState, SnapshotKeys};
use tagbus::{
    CommandOutcome, CommandResult, ConsumerGroup, EntryBody, EntryId, StreamAcker, TagKey, TagValue,
};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::map::{CommandSpec, PointSpec};
use crate::station::{
    self, Action, CommandPoint, CommandToken, EventToken, GroupId, StationConfig, StationError,
    StationHandle, StationStatus,
};
use iec60870::{InformationElement, Ioa, Point, PointDb};
use tagbus::stats::{MasterState, SlaveStats, StatsWriter};

/// The stream consumer name of every slave group (stable across restarts).
pub const CONSUMER_NAME: &str = "iec104-slave";
/// Stream entries per read.
pub const READ_BATCH: usize = 512;
/// How long the tag bus may be lost before every point is sent not topical (NT): no driver
/// can write a value (or its link-loss mark) then, so the slave's values age unseen. A Redis
/// restart is shorter; when the bus is back, the current values are sent as events.
pub const BUS_LOSS_MARK_AFTER: Duration = Duration::from_secs(10);
/// How often the slave writes its stats (the supervisor reads them every 5 s).
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// Commands awaiting their driver's result at once; more are answered negative at once.
pub const MAX_PENDING_COMMANDS: usize = 256;

/// Errors that end the applet.
#[derive(Debug, Error)]
pub enum SlaveError {
    #[error("tag bus: {0}")]
    TagBus(#[from] tagbus::TagBusError),
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the station task has ended")]
    StationGone,
    /// The device's TLS files are refused (the applet does not start).
    #[error("device {device}: TLS: {error}")]
    Tls {
        device: tagbus::Alias,
        error: iec62351::LoadError,
    },
}

/// A monitor point with its source tag (the `in` value).
#[derive(Debug, Clone)]
pub struct MonitorRoute {
    pub source: TagKey,
    pub spec: PointSpec,
}

/// A command point with its target (the source signal's `out` tag).
#[derive(Debug, Clone)]
pub struct CommandRoute {
    pub out: TagKey,
    pub spec: CommandSpec,
    pub select_before_operate: bool,
}

/// Everything one slave device runs with.
#[derive(Debug, Clone)]
pub struct SlaveSettings {
    pub device: tagbus::Alias,
    pub bind: SocketAddr,
    pub station: StationConfig,
    pub monitors: Vec<MonitorRoute>,
    pub commands: Vec<CommandRoute>,
    pub accept_clock_sync: bool,
    pub command_timeout: Duration,
    pub redis_url: String,
    /// IEC 62351-3 TLS of the listener (`tls: 1`); its files are read when the device starts.
    pub tls: Option<config::tls104::Iec104Tls>,
}

/// The points by source tag (one tag may feed several points).
#[derive(Debug, Default)]
pub struct PointIndex {
    by_key: HashMap<TagKey, Vec<PointSpec>>,
}

impl PointIndex {
    /// The index of these routes.
    pub fn new(routes: &[MonitorRoute]) -> Self {
        let mut by_key: HashMap<TagKey, Vec<PointSpec>> = HashMap::new();
        for r in routes {
            by_key.entry(r.source.clone()).or_default().push(r.spec);
        }
        Self { by_key }
    }

    /// The points a tag feeds (empty when unmapped).
    pub fn points_of(&self, key: &TagKey) -> &[PointSpec] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Every source tag.
    pub fn keys(&self) -> impl Iterator<Item = &TagKey> + Send + '_ {
        self.by_key.keys()
    }
}

impl SnapshotKeys for PointIndex {
    fn snapshot_keys(&self) -> Box<dyn Iterator<Item = &TagKey> + Send + '_> {
        Box::new(self.keys())
    }
}

/// Stream entries sent as events and not yet acknowledged by the master, oldest first, each
/// with the last event token made from it.
#[derive(Debug, Default)]
pub struct AckLedger {
    entries: VecDeque<(EntryId, EventToken)>,
}

impl AckLedger {
    /// Records an entry whose events end with `last`.
    pub fn record(&mut self, id: EntryId, last: EventToken) {
        self.entries.push_back((id, last));
    }

    /// The entries whose every event is acknowledged once the master acknowledged events up
    /// to and including `up_to`.
    pub fn acknowledged(&mut self, up_to: EventToken) -> Vec<EntryId> {
        let mut out = Vec::new();
        while let Some((_, last)) = self.entries.front() {
            if last.0 > up_to.0 {
                break;
            }
            if let Some((id, _)) = self.entries.pop_front() {
                out.push(id);
            }
        }
        out
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `id` waits for its events' acknowledgement.
    pub fn holds(&self, id: &EntryId) -> bool {
        self.entries.iter().any(|(e, _)| e == id)
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Commands written to `out` tags, awaiting their results (sans-IO); `T` names a command
/// (the station's [`CommandToken`]).
#[derive(Debug)]
pub struct PendingCommands<T> {
    by_key: HashMap<(TagKey, u64), (T, Instant)>,
    /// The last command timestamp used per `out` tag: each command gets a later one, so a
    /// result names exactly one command.
    last_ts: HashMap<TagKey, u64>,
}

impl<T> Default for PendingCommands<T> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            last_ts: HashMap::new(),
        }
    }
}

impl<T: Copy> PendingCommands<T> {
    /// The timestamp for a new command on `out`: `now_ms`, or one past the previous one.
    pub fn stamp(&mut self, out: &TagKey, now_ms: u64) -> u64 {
        let ts = match self.last_ts.get(out) {
            Some(&last) if last >= now_ms => last.saturating_add(1),
            _ => now_ms,
        };
        self.last_ts.insert(out.clone(), ts);
        ts
    }

    /// Registers a command; false when too many are pending.
    pub fn add(&mut self, out: TagKey, ts: u64, token: T, deadline: Instant) -> bool {
        if self.by_key.len() >= MAX_PENDING_COMMANDS {
            return false;
        }
        self.by_key.insert((out, ts), (token, deadline));
        true
    }

    /// The command a result answers, and whether it is positive.
    pub fn on_result(&mut self, out: &TagKey, r: &CommandResult) -> Option<(T, bool)> {
        let (token, _) = self.by_key.remove(&(out.clone(), r.command_timestamp_ms))?;
        Some((token, r.outcome == CommandOutcome::Confirmed))
    }

    /// Removes and returns the commands whose deadline passed.
    pub fn expire(&mut self, now: Instant) -> Vec<(TagKey, T)> {
        let due: Vec<(TagKey, u64)> = self
            .by_key
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.by_key.remove(&k).map(|(t, _)| (k.0, t)))
            .collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_key.values().map(|(_, d)| *d).min()
    }

    /// Commands waiting.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The events of one redundancy group as they are offered to the station: a point is queued
/// only when its value or quality differs from the last one queued, with the group's next
/// token.
struct GroupEvents {
    group: GroupId,
    station: StationHandle,
    next_token: u64,
    /// The element last queued per point.
    sent: HashMap<Ioa, InformationElement>,
}

impl GroupEvents {
    /// Queues `point` unless it repeats the last one queued: its token, or `None` for a
    /// repeat. Waits while the group's queue is full; fails only when the station is gone.
    async fn offer(&mut self, point: Point) -> Result<Option<EventToken>, StationError> {
        if self.sent.get(&point.ioa) == Some(&point.element) {
            return Ok(None);
        }
        self.sent.insert(point.ioa, point.element);
        let token = EventToken(self.next_token);
        self.next_token = self.next_token.wrapping_add(1);
        self.station.queue_event(self.group, token, point).await?;
        Ok(Some(token))
    }
}

/// The initial database: every point with its source's current value, or invalid.
async fn initial_points(redis_url: &str, monitors: &[MonitorRoute]) -> Result<PointDb, SlaveError> {
    let keys: Vec<TagKey> = monitors.iter().map(|m| m.source.clone()).collect();
    let values: HashMap<TagKey, TagValue> = tagbus::read_values(redis_url, &keys)
        .await?
        .into_iter()
        .collect();
    let mut db = PointDb::new();
    for m in monitors {
        db.insert(match values.get(&m.source) {
            Some(v) => m.spec.point(v),
            None => m.spec.placeholder(),
        });
    }
    Ok(db)
}

/// Feeds one redundancy group from its consumer group until the station ends.
async fn pump_group(
    group: GroupId,
    setup: FeedSetup<PointIndex>,
    station: StationHandle,
    mut acked: watch::Receiver<Option<EventToken>>,
    initial: Arc<Vec<Point>>,
) {
    let label = setup.group.clone();
    let consumer = loop {
        match feed::open_consumer(&setup.redis_url, &setup.group, CONSUMER_NAME, &setup.state).await
        {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(group = %label, error = %e, "tag bus stream: cannot reach Redis or create the consumer group; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut acker = match StreamAcker::new(&setup.redis_url, &setup.group) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(group = %label, error = %e, "cannot acknowledge stream entries");
            return;
        }
    };
    let index = setup.keys.clone();
    let (tx, mut items) = mpsc::channel::<FeedItem>(2);
    let reader = tokio::spawn(feed::run_feed(consumer, setup, tx));
    let _abort = AbortOnDrop(reader);
    let mut ledger = AckLedger::default();
    let mut events = GroupEvents {
        group,
        station: station.clone(),
        next_token: 0,
        sent: HashMap::new(),
    };
    // the newest entry handled, as (ms, seq)
    let mut newest: Option<(u64, u64)> = None;
    // the latest point per IOA (queued or not), to mark them all when the tag bus is lost
    let mut known: HashMap<Ioa, Point> = initial.iter().map(|p| (p.ioa, *p)).collect();
    // since when the tag bus is lost (None: it is there), and whether the points are marked
    let mut lost_since: Option<Instant> = None;
    let mut marked = false;
    loop {
        let mark_at = lost_since
            .filter(|_| !marked)
            .and_then(|t| t.checked_add(BUS_LOSS_MARK_AFTER));
        tokio::select! {
            _ = sleep_until(mark_at) => {
                marked = true;
                tracing::warn!(group = %label, after = ?BUS_LOSS_MARK_AFTER, "tag bus still lost: every point is sent not topical (NT) until it is back");
                for point in known.values() {
                    if events.offer(crate::map::not_topical(point)).await.is_err() {
                        return;
                    }
                }
            }
            changed = acked.changed() => {
                if changed.is_err() {
                    return;
                }
                let up_to = *acked.borrow_and_update();
                if let Some(up_to) = up_to {
                    let ids = ledger.acknowledged(up_to);
                    ack(&mut acker, &ids, &label).await;
                }
            }
            item = items.recv() => match item {
                None => return,
                Some(FeedItem::Entries(entries)) => {
                    let mut unmapped = Vec::new();
                    for entry in entries {
                        // after a Redis reconnect the feed reads this consumer's pending
                        // entries again: those queued already are in the station (and the
                        // ledger) and are not queued twice
                        let order = entry.id.parts();
                        if order.is_some() && order <= newest {
                            if !ledger.holds(&entry.id) {
                                unmapped.push(entry.id); // handled before; its XACK failed
                            }
                            continue;
                        }
                        newest = order.or(newest);
                        let EntryBody::Tag { key, value } = &entry.body else {
                            unmapped.push(entry.id);
                            continue;
                        };
                        let mut last = None;
                        for spec in index.points_of(key) {
                            let point = spec.point(value);
                            known.insert(point.ioa, point);
                            match events.offer(point).await {
                                Ok(token) => last = token.or(last),
                                Err(_) => return,
                            }
                        }
                        match last {
                            Some(token) => ledger.record(entry.id, token),
                            None => unmapped.push(entry.id),
                        }
                    }
                    ack(&mut acker, &unmapped, &label).await;
                }
                Some(FeedItem::Snapshot(values)) => {
                    for (key, value) in values {
                        for spec in index.points_of(&key) {
                            let point = spec.point(&value);
                            known.insert(point.ioa, point);
                            if !marked {
                                if station.set_point(point).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                            // the points were sent NT while the bus was lost: their current
                            // values go out as events
                            if events.offer(point).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Some(FeedItem::Live { snapshot }) => {
                    tracing::info!(group = %label, snapshot, "backlog and snapshot read; serving live values");
                    lost_since = None;
                    marked = false;
                }
                Some(FeedItem::Restarted(e)) => {
                    tracing::warn!(group = %label, error = %e, "tag bus (Redis) lost; the stream reader reconnects (masters stay connected)");
                    lost_since = lost_since.or_else(|| Some(Instant::now()));
                }
            }
        }
    }
}

async fn ack(acker: &mut StreamAcker, ids: &[EntryId], label: &str) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = acker.ack(ids).await {
        // not lost: the entries stay pending and are sent again after a restart
        tracing::warn!(group = %label, error = %e, entries = ids.len(), "cannot acknowledge stream entries");
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs every slave device until `shutdown` resolves; a device that fails (e.g. its port
/// cannot be bound) ends the applet, so the supervisor restarts it with backoff.
pub async fn run_all(
    slaves: Vec<SlaveSettings>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SlaveError> {
    let mut tasks = tokio::task::JoinSet::new();
    for s in slaves {
        tasks.spawn(run(s));
    }
    tokio::select! {
        () = shutdown => Ok(()),
        r = tasks.join_next() => match r {
            Some(Ok(r)) => r,
            Some(Err(_)) | None => Err(SlaveError::StationGone),
        },
    }
}

/// Runs the slave device until the station fails.
pub async fn run(settings: SlaveSettings) -> Result<(), SlaveError> {
    let device = settings.device.clone();
    // the TLS files first: a refused key stops the device before anything else
    let tls = match &settings.tls {
        Some(t) => Some(
            iec62351::TlsAcceptor::load(device.as_str(), t).map_err(|error| SlaveError::Tls {
                device: device.clone(),
                error,
            })?,
        ),
        None => None,
    };
    let db = initial_points(&settings.redis_url, &settings.monitors).await?;
    let initial: Arc<Vec<Point>> = Arc::new(db.iter().copied().collect());
    let commands: Vec<CommandPoint> = settings
        .commands
        .iter()
        .map(|c| CommandPoint {
            ioa: c.spec.ioa,
            type_id: c.spec.type_id,
            select_before_operate: c.select_before_operate,
        })
        .collect();
    let groups = settings.station.groups.len();
    let acceptor = tls
        .clone()
        .map(|a| Arc::new(a) as Arc<dyn iec60870::transport::Acceptor>);
    let (station, mut actions) = station::spawn_secured_station(
        settings.bind,
        settings.station.clone(),
        db,
        commands,
        acceptor,
    )
    .await
    .map_err(|error| SlaveError::Listen {
        addr: settings.bind,
        error,
    })?;
    tracing::info!(device = %device, listen = %station.local_addr(), points = settings.monitors.len(),
        commands = settings.commands.len(), groups, "iec104-slave listening");

    let index = Arc::new(PointIndex::new(&settings.monitors));
    let mut ack_senders = Vec::with_capacity(groups);
    let mut pumps = Vec::with_capacity(groups);
    let feed_states: Vec<GroupState> = (0..groups).map(|_| GroupState::default()).collect();
    for (g, state) in feed_states.iter().enumerate() {
        let (ack_tx, ack_rx) = watch::channel(None);
        ack_senders.push(ack_tx);
        let setup = FeedSetup {
            redis_url: settings.redis_url.clone(),
            group: ConsumerGroup::iec104_slave(&device, g).to_string(),
            consumer: CONSUMER_NAME,
            state: state.clone(),
            keys: index.clone(),
            read_batch: READ_BATCH,
            trace: false,
        };
        pumps.push(AbortOnDrop(tokio::spawn(pump_group(
            GroupId(g),
            setup,
            station.clone(),
            ack_rx,
            initial.clone(),
        ))));
    }

    let writer = tagbus::spawn_writer(tagbus::WriterConfig::new(settings.redis_url.clone()), 64)?;
    let out_keys: Vec<TagKey> = settings.commands.iter().map(|c| c.out.clone()).collect();
    let mut results = tagbus::results::spawn_result_listener(&settings.redis_url, &out_keys, 64)?;
    let routes: HashMap<_, _> = settings
        .commands
        .iter()
        .map(|c| (c.spec.ioa, c.clone()))
        .collect();
    let mut pending: PendingCommands<CommandToken> = PendingCommands::default();
    let mut stats = StatsWriter::new(&settings.redis_url)?;
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    let mut commands_received = 0u64;

    loop {
        let deadline = pending.next_deadline();
        tokio::select! {
            _ = stats_tick.tick() => {
                let status = station.status().await.map_err(|_| SlaveError::StationGone)?;
                let dropped = feed_states.iter().map(|s| s.trimmed().get()).fold(0u64, u64::saturating_add);
                let s = slave_stats(&status, dropped, commands_received);
                if let Err(e) = stats.write_slave(&device, &s).await {
                    tracing::debug!(device = %device, error = %e, "cannot write the slave's stats");
                }
                if let Some(tls) = &tls {
                    // warns at most once a day
                    tls.check_own_certificate();
                    if let Err(e) = stats.write_tls(&device, &tls.log().stats()).await {
                        tracing::debug!(device = %device, error = %e, "cannot write the TLS stats");
                    }
                }
            }
            action = actions.recv() => {
                let Some(action) = action else { return Err(SlaveError::StationGone) };
                match action {
                    Action::Acknowledged { group, up_to } => {
                        if let Some(tx) = ack_senders.get(group.0) {
                            let _ = tx.send(Some(up_to));
                        }
                    }
                    Action::Command { token, request, .. } => {
                        commands_received = commands_received.saturating_add(1);
                        let Some(route) = routes.get(&request.ioa) else {
                            station.command_result(token, false).await.map_err(|_| SlaveError::StationGone)?;
                            continue;
                        };
                        let value = match route.spec.out_value(&request.element) {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::info!(device = %device, ioa = %request.ioa, error = %e, "command refused");
                                station.command_result(token, false).await.map_err(|_| SlaveError::StationGone)?;
                                continue;
                            }
                        };
                        let ts = pending.stamp(&route.out, tagbus::now_ms());
                        let deadline = Instant::now().checked_add(settings.command_timeout).unwrap_or_else(Instant::now);
                        if !pending.add(route.out.clone(), ts, token, deadline) {
                            tracing::warn!(device = %device, ioa = %request.ioa, "too many commands pending; refused");
                            station.command_result(token, false).await.map_err(|_| SlaveError::StationGone)?;
                            continue;
                        }
                        tracing::info!(device = %device, ioa = %request.ioa, tag = %route.out, value = %value, "command from the master");
                        if writer.write(route.out.clone(), TagValue::new(value, ts)).await.is_err() {
                            return Err(SlaveError::TagBus(tagbus::TagBusError::WriterGone));
                        }
                    }
                    Action::ClockSync { time } => {
                        if settings.accept_clock_sync {
                            set_clock(&device, time);
                        } else {
                            tracing::info!(device = %device, time = ?time, "clock sync confirmed (not applied: accept_clock_sync is off)");
                        }
                    }
                    other => tracing::info!(device = %device, event = ?other, "station"),
                }
            }
            result = results.recv() => {
                let Some((out, result)) = result else { return Err(SlaveError::TagBus(tagbus::TagBusError::ConnectionLost)) };
                if let Some((token, positive)) = pending.on_result(&out, &result) {
                    station.command_result(token, positive).await.map_err(|_| SlaveError::StationGone)?;
                }
            }
            _ = sleep_until(deadline) => {
                for (out, token) in pending.expire(Instant::now()) {
                    tracing::warn!(device = %device, tag = %out, "no command result in time; answered negative");
                    station.command_result(token, false).await.map_err(|_| SlaveError::StationGone)?;
                }
            }
        }
    }
}

/// The slave's stats for the status displays: its masters and counters.
fn slave_stats(status: &StationStatus, dropped: u64, commands: u64) -> SlaveStats {
    let sum = |f: fn(&crate::station::GroupStatus) -> u64| {
        status.groups.iter().map(f).fold(0u64, u64::saturating_add)
    };
    let mut masters: Vec<MasterState> = status
        .connections
        .iter()
        .map(|c| MasterState {
            address: c.peer,
            group: u16::try_from(c.group.0).unwrap_or(u16::MAX),
            started: c.started,
            since_ms: c
                .since_unix_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .unwrap_or(0),
        })
        .collect();
    masters.sort_by_key(|m| (m.group, m.address));
    SlaveStats {
        updated_ms: tagbus::now_ms(),
        masters,
        sent: sum(|g| g.sent),
        // waiting for a started master: queued, and sent but not acknowledged
        buffered: sum(|g| u64::try_from(g.queued.saturating_add(g.unacked)).unwrap_or(u64::MAX)),
        dropped,
        refused: status.refused,
        commands,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn set_clock(device: &tagbus::Alias, time: iec60870::Cp56Time2a) {
    match time.to_unix_ms() {
        Ok(ms) => match crate::clock::set_system_time_ms(ms) {
            Ok(()) => {
                tracing::info!(device = %device, time = ?time, "system clock set from the master's clock sync")
            }
            Err(e) => {
                tracing::warn!(device = %device, time = ?time, error = %e, "cannot set the system clock")
            }
        },
        Err(e) => tracing::warn!(device = %device, error = %e, "clock sync time not usable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagbus::{Alias, Direction};

    fn key(s: &str) -> TagKey {
        TagKey::new(
            Alias::new("rtu").unwrap_or_else(|_| unreachable!()),
            Alias::new(s).unwrap_or_else(|_| unreachable!()),
            Direction::Out,
        )
    }

    #[test]
    fn entries_are_acknowledged_when_all_their_events_are() {
        let mut l = AckLedger::default();
        let id = |s: &str| EntryId::new(s);
        l.record(id("1-0"), EventToken(0));
        l.record(id("2-0"), EventToken(2)); // two points from one entry: tokens 1 and 2
        l.record(id("3-0"), EventToken(3));
        assert_eq!(l.acknowledged(EventToken(1)), vec![id("1-0")]);
        assert_eq!(l.acknowledged(EventToken(2)), vec![id("2-0")]);
        assert!(l.acknowledged(EventToken(2)).is_empty());
        assert_eq!(l.acknowledged(EventToken(9)), vec![id("3-0")]);
        assert!(l.is_empty());
    }

    #[test]
    fn command_stamps_are_unique_and_results_match_them() {
        let mut p = PendingCommands::default();
        let k = key("sp");
        let a = p.stamp(&k, 1000);
        let b = p.stamp(&k, 1000);
        assert_eq!((a, b), (1000, 1001));
        let now = Instant::now();
        assert!(p.add(k.clone(), a, 1u64, now));
        assert!(p.add(k.clone(), b, 2u64, now + Duration::from_secs(5)));
        let r: CommandResult = "confirmed,1001,1002,"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(p.on_result(&k, &r), Some((2u64, true)));
        assert_eq!(p.on_result(&k, &r), None);
        assert_eq!(p.expire(now), vec![(k, 1u64)]);
        assert!(p.is_empty());
    }
}
