//! The supervisor's event loop: children, backoff timers, signals, the status file.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use backoff::Backoff;
use config::{Applet, RawConfig};
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::child::{signal_group, Launcher};
use crate::plan::{Bus, Desired, Part, Plan};
use crate::slaves::SLAVE_STATS_EVERY;
use crate::status::{
    to_unix, to_unix_ms, unix_now, AppletStatus, ExitInfo, State, Status, SupervisorStatus,
    STATUS_VERSION,
};
use crate::tls::{TlsDevice, TlsRead};

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file (read at start and on SIGHUP; passed to the children as `-c`).
    pub config: PathBuf,
    /// The status file.
    pub status_file: PathBuf,
    /// How the children are started.
    pub launcher: Launcher,
    /// The first restart delay (then doubling, with jitter).
    pub backoff_min: Duration,
    /// The longest restart delay.
    pub backoff_max: Duration,
    /// A child that ran this long before it exited is restarted after `backoff_min` again.
    pub stable_after: Duration,
    /// How long a child may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
}

impl Options {
    /// The defaults: restarts after 1 s doubling up to 60 s, a run of 60 s resets the
    /// backoff, 5 s from SIGTERM to SIGKILL.
    pub fn new(config: PathBuf, status_file: PathBuf, log_level: String) -> Self {
        Self {
            launcher: Launcher::new(config.clone(), log_level),
            config,
            status_file,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot install the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
}

/// A running child, as the loop sees it; its process is owned by a watcher task.
#[derive(Debug)]
struct ChildRef {
    pid: u32,
    generation: u64,
    started: Instant,
    /// Signals for the watcher to send to the child's process group.
    ctl: mpsc::Sender<Signal>,
    /// The devices whose values it writes, and where: marked when it is gone.
    devices: Vec<tagbus::Alias>,
}

#[derive(Debug)]
enum Run {
    /// No process, none planned.
    Idle,
    Running(ChildRef),
    /// Asked to stop; SIGKILL at `kill_at`; `then_start`: start it again once it exited.
    Stopping {
        child: ChildRef,
        kill_at: Instant,
        killed: bool,
        then_start: bool,
    },
    /// Exited; start again at `at`.
    Backoff {
        at: Instant,
        wall: SystemTime,
    },
}

#[derive(Debug)]
struct Slot {
    applet: Applet,
    desired: Desired,
    run: Run,
    restarts: u64,
    backoff: Backoff,
    last_exit: Option<ExitInfo>,
    since: SystemTime,
}

/// A child's end, reported by its watcher task.
#[derive(Debug)]
struct Exit {
    applet: Applet,
    generation: u64,
    status: std::io::Result<ExitStatus>,
}

struct Supervisor {
    opts: Options,
    slots: BTreeMap<Applet, Slot>,
    generation: u64,
    exits_tx: mpsc::Sender<Exit>,
    started: SystemTime,
    config_loaded: SystemTime,
    config_error: Option<String>,
    status_warned: bool,
    /// The tag bus of the last config read.
    bus: Bus,
    /// The running marks of gone children's values.
    marks: tokio::task::JoinSet<()>,
    /// The slave devices' stats by alias, with the generation of the child that wrote them.
    slaves: Option<(u64, BTreeMap<String, tagbus::stats::SlaveStats>)>,
    /// The read of them in flight, with the generation of the child it is for.
    slave_read: tokio::task::JoinSet<(u64, SlaveRead)>,
    /// The TLS devices' stats by alias, each with the applet run that wrote them.
    tls: BTreeMap<String, TlsRead>,
    /// The read of them in flight.
    tls_read: tokio::task::JoinSet<TlsStatsRead>,
}

type SlaveRead = Result<BTreeMap<String, tagbus::stats::SlaveStats>, tagbus::TagBusError>;
type TlsStatsRead = Result<BTreeMap<String, TlsRead>, tagbus::TagBusError>;

/// Runs the supervisor until SIGTERM or SIGINT; then stops every child and returns.
/// Must run on a current-thread runtime (see [`crate::child`]: the parent-death signal is
/// tied to the thread that spawned the child).
pub async fn supervise(opts: Options) -> Result<(), SuperviseError> {
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| SuperviseError::Signal("SIGTERM", e))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| SuperviseError::Signal("SIGINT", e))?;
    let mut sighup =
        signal(SignalKind::hangup()).map_err(|e| SuperviseError::Signal("SIGHUP", e))?;
    // Each child has one watcher; they report at most one exit each.
    let (exits_tx, mut exits_rx) = mpsc::channel::<Exit>(16);
    let now = SystemTime::now();
    let mut sup = Supervisor {
        slots: Applet::ALL
            .iter()
            .map(|&applet| {
                (
                    applet,
                    Slot {
                        applet,
                        desired: Desired::Disabled,
                        run: Run::Idle,
                        restarts: 0,
                        backoff: Backoff::new(opts.backoff_min, opts.backoff_max),
                        last_exit: None,
                        since: now,
                    },
                )
            })
            .collect(),
        opts,
        generation: 0,
        exits_tx,
        started: now,
        config_loaded: now,
        config_error: None,
        status_warned: false,
        bus: Bus {
            redis_url: config::DEFAULT_REDIS_URL.to_owned(),
            stream_max_len: tagbus::DEFAULT_STREAM_MAX_LEN,
        },
        marks: tokio::task::JoinSet::new(),
        slaves: None,
        slave_read: tokio::task::JoinSet::new(),
        tls: BTreeMap::new(),
        tls_read: tokio::task::JoinSet::new(),
    };
    info!(
        pid = std::process::id(),
        config = %sup.opts.config.display(),
        status_file = %sup.opts.status_file.display(),
        "supervisor starting"
    );
    let plan = sup
        .load_plan(true)
        .unwrap_or_else(|message| Plan::unreadable(&message));
    sup.apply(plan, true);
    sup.write_status(true);
    let mut slave_stats_tick = tokio::time::interval(SLAVE_STATS_EVERY);
    slave_stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let deadline = sup.next_deadline();
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sighup.recv() => {
                info!(config = %sup.opts.config.display(), "SIGHUP: reloading the config");
                match sup.load_plan(false) {
                    Ok(plan) => sup.apply(plan, false),
                    Err(_) => warn!("the config could not be read; everything keeps running as it was"),
                }
            }
            Some(exit) = exits_rx.recv() => sup.on_exit(exit),
            _ = sleep_until_opt(deadline) => sup.on_timers(),
            _ = slave_stats_tick.tick() => {
                sup.read_slave_stats();
                sup.read_tls_stats();
                continue;
            }
            Some(read) = sup.slave_read.join_next(), if !sup.slave_read.is_empty() => {
                if !sup.on_slave_stats(read) {
                    continue;
                }
            }
            Some(read) = sup.tls_read.join_next(), if !sup.tls_read.is_empty() => {
                if !sup.on_tls_stats(read) {
                    continue;
                }
            }
        }
        sup.write_status(true);
    }
    sup.shutdown(&mut exits_rx, &mut sigint, &mut sigterm).await;
    sup.finish_marks().await;
    sup.write_status(false);
    info!("supervisor stopped");
    Ok(())
}

/// `base + d`, saturating at a day later (delays here are seconds).
fn after(base: Instant, d: Duration) -> Instant {
    base.checked_add(d.min(Duration::from_secs(86_400)))
        .unwrap_or(base)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    /// Reads and validates the config. On failure, logs it and returns the message; at
    /// startup (`initial`) the failure is also what the status file shows.
    fn load_plan(&mut self, initial: bool) -> Result<Plan, String> {
        match RawConfig::load(&self.opts.config) {
            Ok(raw) => {
                self.config_loaded = SystemTime::now();
                self.config_error = None;
                let plan = Plan::from_raw(&raw);
                for w in &plan.warnings {
                    warn!(path = %w.path, "config warning: {}", w.message);
                }
                Ok(plan)
            }
            Err(e) => {
                let message = format!("cannot read the config: {e}");
                error!("{message}");
                if initial {
                    self.config_error = Some(message.clone());
                } else {
                    self.config_error = Some(format!("{message} (still running the previous one)"));
                }
                Err(message)
            }
        }
    }

    /// Makes every applet follow the plan: start what became runnable, stop what became
    /// invalid or disabled, restart what changed, leave the rest alone.
    fn apply(&mut self, plan: Plan, initial: bool) {
        if let Some(bus) = &plan.bus {
            self.bus = bus.clone();
        }
        let applets: Vec<Applet> = self.slots.keys().copied().collect();
        for applet in applets {
            let desired = plan.get(applet).clone();
            let Some(slot) = self.slots.get_mut(&applet) else {
                continue;
            };
            let changed = slot.desired != desired;
            if !changed && !initial {
                info!(
                    applet = applet.as_str(),
                    "{applet}: its part of the config is unchanged ({})",
                    desired.describe()
                );
                if let Desired::Invalid(errors) = &desired {
                    for e in errors {
                        error!(applet = applet.as_str(), "config error: {e}");
                    }
                }
                // One waiting to be restarted is tried again now: a reload often follows a
                // fix outside the config (a certificate, a serial port).
                if matches!(slot.run, Run::Backoff { .. }) && matches!(desired, Desired::Run(_)) {
                    info!(
                        applet = applet.as_str(),
                        "{applet}: starting it now instead of after the backoff"
                    );
                    slot.backoff.reset();
                    slot.run = Run::Idle;
                    self.start(applet, true);
                }
                continue;
            }
            match &desired {
                Desired::Invalid(errors) => {
                    for e in errors {
                        error!(applet = applet.as_str(), "config error: {e}");
                    }
                    error!(
                        applet = applet.as_str(),
                        errors = errors.len(),
                        "{applet} is not started: its part of the config has errors"
                    );
                }
                Desired::Disabled => info!(
                    applet = applet.as_str(),
                    "{applet}: no enabled device, not started"
                ),
                Desired::Run(_) if matches!(slot.desired, Desired::Run(_)) => {
                    info!(
                        applet = applet.as_str(),
                        "{applet}: its part of the config changed"
                    )
                }
                Desired::Run(_) => {}
            }
            let run_it = matches!(desired, Desired::Run(_));
            slot.desired = desired;
            slot.since = SystemTime::now();
            // A new config gets a fresh start: no leftover backoff.
            slot.backoff.reset();
            let run = std::mem::replace(&mut slot.run, Run::Idle);
            slot.run = match run {
                Run::Running(child) => {
                    info!(
                        applet = applet.as_str(),
                        pid = child.pid,
                        "stopping {applet}{}",
                        if run_it {
                            " to restart it with the new config"
                        } else {
                            ""
                        }
                    );
                    let _ = child.ctl.try_send(Signal::SIGTERM);
                    Run::Stopping {
                        child,
                        kill_at: after(Instant::now(), self.opts.stop_timeout),
                        killed: false,
                        then_start: run_it,
                    }
                }
                Run::Stopping {
                    child,
                    kill_at,
                    killed,
                    ..
                } => Run::Stopping {
                    child,
                    kill_at,
                    killed,
                    then_start: run_it,
                },
                Run::Idle | Run::Backoff { .. } => Run::Idle,
            };
            if run_it && matches!(slot.run, Run::Idle) {
                self.start(applet, false);
            }
        }
    }

    /// Starts an applet now. `restart`: after an exit (counted in `restarts`).
    fn start(&mut self, applet: Applet, restart: bool) {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let Some(slot) = self.slots.get_mut(&applet) else {
            return;
        };
        if restart {
            slot.restarts = slot.restarts.saturating_add(1);
        }
        slot.since = SystemTime::now();
        // What a master writes to the tag bus: its part's devices (the MQTT client and the
        // IEC 104 slave write none of their own).
        let devices = match (&slot.desired, applet) {
            (_, Applet::MqttClient | Applet::Iec104Slave) => Vec::new(),
            (Desired::Run(part), _) => part.device_aliases(),
            _ => Vec::new(),
        };
        match self.opts.launcher.spawn(applet) {
            Ok(child) => {
                let pid = child.id().unwrap_or(0);
                info!(
                    applet = applet.as_str(),
                    pid,
                    restarts = slot.restarts,
                    "started {applet}"
                );
                let (ctl_tx, ctl_rx) = mpsc::channel(4);
                tokio::spawn(watch(
                    applet,
                    generation,
                    child,
                    ctl_rx,
                    self.exits_tx.clone(),
                ));
                slot.run = Run::Running(ChildRef {
                    pid,
                    generation,
                    started: Instant::now(),
                    ctl: ctl_tx,
                    devices,
                });
            }
            Err(e) => {
                let delay = slot.backoff.next_delay();
                let description = format!(
                    "could not start {}: {e}",
                    self.opts.launcher.program.display()
                );
                error!(
                    applet = applet.as_str(),
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "{description}; trying again in {:.1} s",
                    delay.as_secs_f64()
                );
                slot.last_exit = Some(ExitInfo {
                    at: unix_now(),
                    code: None,
                    signal: None,
                    ran_ms: 0,
                    description,
                });
                slot.run = Run::Backoff {
                    at: after(Instant::now(), delay),
                    wall: SystemTime::now()
                        .checked_add(delay)
                        .unwrap_or_else(SystemTime::now),
                };
            }
        }
    }

    fn on_exit(&mut self, exit: Exit) {
        let applet = exit.applet;
        let Some(slot) = self.slots.get_mut(&applet) else {
            return;
        };
        let (pid, started, stopping, then_start, devices) = match &slot.run {
            Run::Running(c) if c.generation == exit.generation => {
                (c.pid, c.started, false, false, c.devices.clone())
            }
            Run::Stopping {
                child, then_start, ..
            } if child.generation == exit.generation => (
                child.pid,
                child.started,
                true,
                *then_start,
                child.devices.clone(),
            ),
            // A child of an older generation: already dealt with.
            _ => return,
        };
        let ran = started.elapsed();
        // Nothing the child started outlives it.
        signal_group(pid, Signal::SIGKILL);
        // Nothing refreshes its devices' values now. A child that stopped cleanly marked them
        // itself (then this finds nothing to do); one killed or crashed did not.
        self.mark_gone(applet, devices);
        let Some(slot) = self.slots.get_mut(&applet) else {
            return;
        };
        let (code, sig, description) = describe(&exit.status);
        slot.last_exit = Some(ExitInfo {
            at: unix_now(),
            code,
            signal: sig,
            ran_ms: u64::try_from(ran.as_millis()).unwrap_or(u64::MAX),
            description: description.clone(),
        });
        slot.since = SystemTime::now();
        if stopping {
            info!(
                applet = applet.as_str(),
                pid, "{applet} stopped ({description})"
            );
            slot.run = Run::Idle;
            if then_start && matches!(slot.desired, Desired::Run(_)) {
                self.start(applet, false);
            }
            return;
        }
        if ran >= self.opts.stable_after {
            slot.backoff.reset();
        }
        let delay = slot.backoff.next_delay();
        warn!(
            applet = applet.as_str(),
            pid,
            exit = %description,
            ran_ms = u64::try_from(ran.as_millis()).unwrap_or(u64::MAX),
            restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "{applet} exited ({description}) after {:.1} s; restarting in {:.1} s",
            ran.as_secs_f64(),
            delay.as_secs_f64()
        );
        slot.run = Run::Backoff {
            at: after(Instant::now(), delay),
            wall: SystemTime::now()
                .checked_add(delay)
                .unwrap_or_else(SystemTime::now),
        };
    }

    /// Marks the values of a gone child's devices with the gateway's link-loss mark, in a
    /// task of its own (bounded by `tagbus::MARK_TIMEOUT`): a Redis that is down never stalls
    /// the loop. A value the next child writes first is kept (the mark is compare-and-set).
    fn mark_gone(&mut self, applet: Applet, devices: Vec<tagbus::Alias>) {
        while self.marks.try_join_next().is_some() {}
        if devices.is_empty() {
            return;
        }
        let bus = self.bus.clone();
        self.marks.spawn(async move {
            match tagbus::mark_no_link(&bus.redis_url, bus.stream_max_len, &devices).await {
                Ok(0) => debug!(
                    applet = applet.as_str(),
                    "{applet}: its values were already marked"
                ),
                Ok(n) => info!(
                    applet = applet.as_str(),
                    values = n,
                    "{applet} is gone: marked the values of its devices nt nolink"
                ),
                Err(e) => warn!(
                    applet = applet.as_str(),
                    error = %e,
                    "{applet} is gone: cannot mark the values of its devices nt nolink"
                ),
            }
        });
    }

    /// A running applet: its child's generation, its part and when it started (Unix ms).
    fn running(&self, applet: Applet) -> Option<(u64, &Part, u64)> {
        let slot = self.slots.get(&applet)?;
        match (&slot.run, &slot.desired) {
            (Run::Running(child), Desired::Run(part)) => {
                Some((child.generation, part, to_unix_ms(slot.since)))
            }
            _ => None,
        }
    }

    /// The running slave applet: its child's generation, its devices and when it started
    /// (Unix ms).
    fn running_slave(&self) -> Option<(u64, Vec<tagbus::Alias>, u64)> {
        self.running(Applet::Iec104Slave)
            .map(|(generation, part, since)| (generation, part.device_aliases(), since))
    }

    /// The TLS devices of the running IEC 104 applets (master and slave).
    fn running_tls_devices(&self) -> Vec<TlsDevice> {
        [Applet::Iec104Master, Applet::Iec104Slave]
            .into_iter()
            .filter_map(|applet| Some((applet, self.running(applet)?)))
            .flat_map(|(applet, (generation, part, started_ms))| {
                part.tls_device_aliases()
                    .into_iter()
                    .map(move |alias| TlsDevice {
                        alias,
                        applet,
                        generation,
                        started_ms,
                    })
            })
            .collect()
    }

    /// Starts a read of the TLS devices' stats (unless one is in flight or none runs).
    fn read_tls_stats(&mut self) {
        let devices = self.running_tls_devices();
        if devices.is_empty() || !self.tls_read.is_empty() {
            return;
        }
        let url = self.bus.redis_url.clone();
        self.tls_read
            .spawn(async move { crate::tls::read_current(&url, &devices).await });
    }

    /// Keeps a finished read; true when the stats changed.
    fn on_tls_stats(&mut self, read: Result<TlsStatsRead, tokio::task::JoinError>) -> bool {
        match read {
            Ok(Ok(stats)) => {
                let changed = stats != self.tls;
                self.tls = stats;
                changed
            }
            Ok(Err(e)) => {
                debug!(error = %e, "cannot read the TLS devices' stats");
                false
            }
            Err(_) => false,
        }
    }

    /// The TLS stats written by applet runs that still run (a stopped or restarted run's
    /// counters are gone with it).
    fn current_tls(&self) -> BTreeMap<String, tagbus::stats::TlsStats> {
        self.tls
            .iter()
            .filter(|(_, read)| {
                self.running(read.applet)
                    .is_some_and(|(generation, ..)| generation == read.generation)
            })
            .map(|(device, read)| (device.clone(), read.stats.clone()))
            .collect()
    }

    /// Starts a read of the slave devices' stats (unless one is in flight or the slave
    /// applet does not run), bounded by the tag bus timeout.
    fn read_slave_stats(&mut self) {
        let Some((generation, devices, started_ms)) = self.running_slave() else {
            return;
        };
        if !self.slave_read.is_empty() {
            return;
        }
        let url = self.bus.redis_url.clone();
        self.slave_read.spawn(async move {
            let read = crate::slaves::read_current(&url, &devices, started_ms).await;
            (generation, read)
        });
    }

    /// Keeps a finished read when it is for the running child; true when the stats changed.
    fn on_slave_stats(&mut self, read: Result<(u64, SlaveRead), tokio::task::JoinError>) -> bool {
        let current = self.running_slave().map(|(generation, ..)| generation);
        match read {
            Ok((generation, Ok(stats))) if Some(generation) == current => {
                let read = Some((generation, stats));
                let changed = read != self.slaves;
                self.slaves = read;
                changed
            }
            Ok((_, Err(e))) => {
                debug!(error = %e, "cannot read the slave devices' stats");
                false
            }
            _ => false,
        }
    }

    /// Waits for the marks still running (each is bounded by `tagbus::MARK_TIMEOUT`).
    async fn finish_marks(&mut self) {
        let wait = async { while self.marks.join_next().await.is_some() {} };
        let bound = tagbus::MARK_TIMEOUT.saturating_add(Duration::from_secs(1));
        if tokio::time::timeout(bound, wait).await.is_err() {
            self.marks.abort_all();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| match &s.run {
                Run::Backoff { at, .. } => Some(*at),
                Run::Stopping {
                    kill_at,
                    killed: false,
                    ..
                } => Some(*kill_at),
                _ => None,
            })
            .min()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for slot in self.slots.values_mut() {
            match &mut slot.run {
                Run::Backoff { at, .. } if *at <= now => due.push(slot.applet),
                Run::Stopping {
                    child,
                    kill_at,
                    killed,
                    ..
                } if !*killed && *kill_at <= now => {
                    warn!(
                        applet = slot.applet.as_str(),
                        pid = child.pid,
                        "{} did not stop within {:.1} s; killing it",
                        slot.applet,
                        self.opts.stop_timeout.as_secs_f64()
                    );
                    let _ = child.ctl.try_send(Signal::SIGKILL);
                    *killed = true;
                }
                _ => {}
            }
        }
        for applet in due {
            if let Some(slot) = self.slots.get_mut(&applet) {
                slot.run = Run::Idle;
            }
            self.start(applet, true);
        }
    }

    /// Stops every child: SIGTERM to each process group, SIGKILL to those still there after
    /// the stop timeout. A second SIGINT/SIGTERM kills at once.
    async fn shutdown(
        &mut self,
        exits: &mut mpsc::Receiver<Exit>,
        sigint: &mut tokio::signal::unix::Signal,
        sigterm: &mut tokio::signal::unix::Signal,
    ) {
        let kill_at = after(Instant::now(), self.opts.stop_timeout);
        for slot in self.slots.values_mut() {
            slot.run = match std::mem::replace(&mut slot.run, Run::Idle) {
                Run::Running(child) => {
                    info!(
                        applet = slot.applet.as_str(),
                        pid = child.pid,
                        "stopping {}",
                        slot.applet
                    );
                    let _ = child.ctl.try_send(Signal::SIGTERM);
                    Run::Stopping {
                        child,
                        kill_at,
                        killed: false,
                        then_start: false,
                    }
                }
                Run::Stopping {
                    child,
                    kill_at,
                    killed,
                    ..
                } => Run::Stopping {
                    child,
                    kill_at,
                    killed,
                    then_start: false,
                },
                Run::Idle | Run::Backoff { .. } => Run::Idle,
            };
        }
        self.write_status(true);
        // Bounded: stop timeout, then at most as long again for the killed ones to be reaped.
        let give_up = after(kill_at, self.opts.stop_timeout.max(Duration::from_secs(1)));
        while self
            .slots
            .values()
            .any(|s| matches!(s.run, Run::Stopping { .. }))
        {
            let deadline = self.next_deadline();
            tokio::select! {
                Some(exit) = exits.recv() => self.on_exit(exit),
                _ = sleep_until_opt(deadline) => self.on_timers(),
                _ = sigint.recv() => self.kill_all("SIGINT again"),
                _ = sigterm.recv() => self.kill_all("SIGTERM again"),
                _ = tokio::time::sleep_until(give_up) => {
                    error!("children did not go away after SIGKILL; giving up waiting");
                    break;
                }
            }
        }
        for slot in self.slots.values_mut() {
            if let Run::Stopping { child, .. } = &slot.run {
                signal_group(child.pid, Signal::SIGKILL);
            }
            slot.run = Run::Idle;
            slot.since = SystemTime::now();
        }
    }

    fn kill_all(&mut self, why: &str) {
        warn!("{why}: killing the children now");
        for slot in self.slots.values_mut() {
            if let Run::Stopping { child, killed, .. } = &mut slot.run {
                let _ = child.ctl.try_send(Signal::SIGKILL);
                *killed = true;
            }
        }
    }

    fn status(&self, running: bool) -> Status {
        let applets = self
            .slots
            .values()
            .map(|slot| {
                let (state, pid, next_start, message) = match (&slot.run, &slot.desired) {
                    (Run::Running(c), _) => {
                        (State::Running, Some(c.pid), None, "running".to_owned())
                    }
                    (
                        Run::Stopping {
                            child, then_start, ..
                        },
                        _,
                    ) => (
                        State::Stopping,
                        Some(child.pid),
                        None,
                        if *then_start {
                            "stopping, to restart with the new config".to_owned()
                        } else {
                            "stopping".to_owned()
                        },
                    ),
                    (Run::Backoff { wall, .. }, _) => (
                        State::Backoff,
                        None,
                        Some(to_unix(*wall)),
                        format!(
                            "{}; restarting in {} s",
                            slot.last_exit
                                .as_ref()
                                .map_or("exited", |e| e.description.as_str()),
                            to_unix(*wall).saturating_sub(unix_now())
                        ),
                    ),
                    (Run::Idle, Desired::Invalid(errors)) => (
                        State::InvalidConfig,
                        None,
                        None,
                        format!(
                            "not started: {} config error{} (first: {})",
                            errors.len(),
                            if errors.len() == 1 { "" } else { "s" },
                            errors.first().map_or("?", String::as_str)
                        ),
                    ),
                    (Run::Idle, Desired::Disabled) => (
                        State::Disabled,
                        None,
                        None,
                        format!(
                            "no enabled device of protocol {}",
                            slot.applet
                                .protocols()
                                .iter()
                                .map(|p| p.as_str())
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ),
                    (Run::Idle, Desired::Run(_)) => (
                        State::Stopped,
                        None,
                        None,
                        "stopped with the supervisor".to_owned(),
                    ),
                };
                let errors = match &slot.desired {
                    Desired::Invalid(errors) => errors.clone(),
                    _ => Vec::new(),
                };
                (
                    slot.applet.as_str().to_owned(),
                    AppletStatus {
                        state,
                        pid,
                        restarts: slot.restarts,
                        since: to_unix(slot.since),
                        next_start,
                        last_exit: slot.last_exit.clone(),
                        errors,
                        message,
                    },
                )
            })
            .collect();
        Status {
            version: STATUS_VERSION,
            supervisor: SupervisorStatus {
                pid: std::process::id(),
                config: self.opts.config.clone(),
                started: to_unix(self.started),
                updated: unix_now(),
                running,
                config_loaded: to_unix(self.config_loaded),
                config_error: self.config_error.clone(),
            },
            applets,
            // Only the running child's: the masters of one that ended are gone.
            slaves: match (&self.slaves, self.running_slave()) {
                (Some((written_by, stats)), Some((generation, ..)))
                    if running && *written_by == generation =>
                {
                    stats.clone()
                }
                _ => BTreeMap::new(),
            },
            tls: if running {
                self.current_tls()
            } else {
                BTreeMap::new()
            },
        }
    }

    /// Writes the status file; a failure is logged once (the gateway runs on without it).
    fn write_status(&mut self, running: bool) {
        match self.status(running).write_atomic(&self.opts.status_file) {
            Ok(()) => self.status_warned = false,
            Err(e) if !self.status_warned => {
                warn!("cannot write the status file: {e}");
                self.status_warned = true;
            }
            Err(e) => debug!("cannot write the status file: {e}"),
        }
    }
}

/// Owns a child: reaps it and reports its exit once; sends it (its process group) the
/// signals the loop asks for while it runs, so a signal never reaches a reaped pid.
async fn watch(
    applet: Applet,
    generation: u64,
    mut child: tokio::process::Child,
    mut ctl: mpsc::Receiver<Signal>,
    exits: mpsc::Sender<Exit>,
) {
    let pgid = child.id().unwrap_or(0);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(sig) = ctl.recv() => signal_group(pgid, sig),
        }
    };
    let _ = exits
        .send(Exit {
            applet,
            generation,
            status,
        })
        .await;
}

/// (exit code, signal, text) of an exit.
fn describe(status: &std::io::Result<ExitStatus>) -> (Option<i32>, Option<i32>, String) {
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => (Some(code), None, format!("exit code {code}")),
            (None, Some(sig)) => {
                let name = Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?");
                (None, Some(sig), format!("killed by signal {sig} ({name})"))
            }
            (None, None) => (None, None, "ended".to_owned()),
        },
        Err(e) => (None, None, format!("could not wait for it: {e}")),
    }
}
