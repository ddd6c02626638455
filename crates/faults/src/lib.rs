//! The fault-injection harness of fieldbridge (docs/reliability.md): real `fieldbridge` applets,
//! redis-server and mosquitto (via `testrig`), values with sequence numbers written at a fixed
//! rate, faults injected (SIGKILL and restart, stalled peers), and a subscriber that checks
//! every sequence number arrived. The scenarios are `#[ignore]`d tests in `tests/`; run them
//! all with `tests/reliability` (one command: it builds the binary, runs them one at a time
//! and prints the summary table, also written to `target/faults/results.md`).
//!
//! Decisions:
//! - The `fieldbridge` binary is found at `$FIELDBRIDGE_BIN`, else next to the test
//!   executable's `deps/` directory (the same `target/<profile>/`), so `cargo build -p
//!   fieldbridge` in the same profile must come first (the script does it).
//! - Values are written through `tagbus::spawn_writer`, the writer task the drivers use
//!   (batches, retries with backoff while Redis is down), to 10 keys `tag/rtu1/s0..s9/in`;
//!   the value is the sequence number.
//! - RSS is sampled every 500 ms from `/proc/<pid>/status` (VmRSS) for every process by
//!   role, across restarts (the maximum of all its incarnations); Redis' own accounting is
//!   `INFO memory` `used_memory`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use tagbus::{TagKey, TagValue, WriterConfig};
use tempfile::TempDir;
use testrig::{Mosquitto, MosquittoBuilder, RedisServer, SeqSubscriber};

/// The `fieldbridge` binary under test.
pub fn fieldbridge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FIELDBRIDGE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("fieldbridge");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p fieldbridge` in the same profile first (tests/reliability does)",
        bin.display()
    );
    bin
}

/// Number of source signals the values rotate over.
pub const SIGNALS: u64 = 10;

/// A config: field device `rtu1` (signals s0..s9) and one MQTT device `cloud` at QoS `qos`
/// forwarding all ten; `extra_top` is merged into the top level (e.g. `stream_max_len`).
pub fn write_config(
    dir: &Path,
    redis_url: &str,
    broker_port: u16,
    qos: u8,
    extra_top: J,
) -> PathBuf {
    let mut signals: Vec<J> = (0..SIGNALS)
        .map(|i| json!({"signal_name": format!("S{i}"), "device_alias": "rtu1", "signal_alias": format!("s{i}"),
            "info_address": 100 + i, "type_id": "M_ME_NC_1"}))
        .collect();
    signals.extend((0..SIGNALS).map(|i| {
        json!({"signal_name": format!("up {i}"), "device_alias": "cloud", "signal_alias": format!("u{i}"),
            "source_device_alias": "rtu1", "source_signal_alias": format!("s{i}")})
    }));
    let mut cfg = json!({
        "redis_url": redis_url,
        "devices": [
            {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1",
             "port": 2404, "asdu_address": 1},
            {"name": "cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "127.0.0.1",
             "port": broker_port, "client_id": "fb-cloud", "enable_threshold": 0, "keepalive": 10,
             "mqtt_qos": qos}
        ],
        "signals": signals,
    });
    if let (Some(obj), J::Object(e)) = (cfg.as_object_mut(), extra_top) {
        obj.extend(e);
    }
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    path
}

/// A mosquitto that survives SIGKILL as well as mosquitto can: persistence on, autosaved
/// every second, no queue limit (so the subscriber's persistent session keeps everything).
pub fn persistent_broker(dir: &Path) -> Mosquitto {
    MosquittoBuilder::new()
        .config_line("persistence true")
        .config_line(&format!("persistence_location {}/", dir.display()))
        .config_line("autosave_interval 1")
        .config_line("max_queued_messages 0")
        .config_line("max_queued_bytes 0")
        .start()
}

/// A `fieldbridge <applet>` child process, stderr appended to a log file; killed on drop.
pub type Applet = testrig::AppletProcess;

/// Starts `fieldbridge <args...>` (this workspace's binary).
pub fn applet(args: &[&str], log: PathBuf) -> Applet {
    Applet::spawn(&fieldbridge_bin(), args, log)
}

/// `fieldbridge mqtt-client -c CONFIG --redis-url URL -d info`.
pub fn mqtt_client(config: &Path, redis_url: &str, log: PathBuf) -> Applet {
    Applet::start(&fieldbridge_bin(), "mqtt-client", config, redis_url, log)
}

/// The processes of a scenario: Redis, a [`persistent_broker`], a QoS 1 config
/// ([`write_config`]), a [`SeqSubscriber`] on `tag/rtu1/#` and the publisher (`mqtt-client`,
/// log `pub.log`). The fields drop in the order they are declared: publisher first, Redis last.
pub struct Rig {
    /// The publisher, forwarding live values once [`Rig::start`] returns.
    pub p: Applet,
    pub sub: SeqSubscriber,
    pub cfg: PathBuf,
    /// Holds the config and the publisher's log.
    pub dir: TempDir,
    pub broker: Mosquitto,
    _persist: TempDir,
    pub redis: RedisServer,
}

impl Rig {
    /// Starts everything on `redis`; the subscriber connects as `sub_id` (QoS 1) before the
    /// publisher starts, which is waited for (`ready`) until it forwards live values.
    pub fn start(redis: RedisServer, sub_id: &str, ready: Duration) -> Self {
        let persist = tempfile::tempdir().unwrap();
        let broker = persistent_broker(persist.path());
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), &redis.url(), broker.port(), 1, json!({}));
        let sub = SeqSubscriber::start(broker.port(), "tag/rtu1/#", 1, sub_id);
        let p = mqtt_client(&cfg, &redis.url(), dir.path().join("pub.log"));
        p.wait_log("forwarding live values", 1, ready);
        Self {
            p,
            sub,
            cfg,
            dir,
            broker,
            _persist: persist,
            redis,
        }
    }

    /// A [`Sampler`] of Redis' memory tracking the publisher, Redis and the broker.
    pub fn sampler(&self) -> Sampler {
        let sampler = Sampler::start(Some(self.redis.port()));
        sampler.track("mqtt-client", self.p.pid());
        sampler.track("redis", self.redis.pid());
        sampler.track("mosquitto", self.broker.pid());
        sampler
    }
}

/// Writes sequence numbers `0..` at `rate` values/s for `duration` in a thread, through the
/// drivers' writer task. `join` returns how many were queued (all of them reach Redis: the
/// writer retries until they do, which `join` waits for, bounded by 120 s).
pub struct SeqWriter {
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SeqWriter {
    /// Starts writing to `redis_url`, `stream_max_len` as the cap.
    pub fn start(redis_url: &str, rate: u64, duration: Duration, stream_max_len: u64) -> Self {
        Self::start_from(0, redis_url, rate, duration, stream_max_len)
    }

    /// The same, numbering from `first`; `join` then returns the next number.
    pub fn start_from(
        first: u64,
        redis_url: &str,
        rate: u64,
        duration: Duration,
        stream_max_len: u64,
    ) -> Self {
        let sent = Arc::new(AtomicU64::new(0));
        let s = sent.clone();
        let mut cfg = WriterConfig::new(redis_url);
        cfg.stream_max_len = stream_max_len;
        let keys: Vec<TagKey> = (0..SIGNALS)
            .map(|i| format!("tag/rtu1/s{i}/in").parse().unwrap())
            .collect();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let w = tagbus::spawn_writer(cfg, 4096).unwrap();
                let t0 = Instant::now();
                let mut seq: u64 = first;
                let total = first + rate * duration.as_millis() as u64 / 1000;
                while seq < total {
                    let due = (first + rate * t0.elapsed().as_millis() as u64 / 1000).min(total);
                    while seq < due {
                        let v: TagValue = format!("{seq},{},", 1_700_000_000_000u64 + seq)
                            .parse()
                            .unwrap();
                        w.write(keys[(seq % SIGNALS) as usize].clone(), v)
                            .await
                            .unwrap();
                        seq += 1;
                        s.store(seq, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(120), w.flush()).await;
            });
        });
        Self {
            sent,
            thread: Some(thread),
        }
    }
    /// Values queued so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Waits for the end of the run and for everything to be in Redis; returns the count.
    pub fn join(mut self) -> u64 {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.sent()
    }
}

/// RSS samples by role: (seconds since start, kB).
type Series = BTreeMap<String, Vec<(f64, u64)>>;

/// Samples the RSS of processes by role every 500 ms, and Redis' `used_memory`.
pub struct Sampler {
    pids: Arc<Mutex<BTreeMap<String, Option<u32>>>>,
    max_rss_kb: Arc<Mutex<BTreeMap<String, u64>>>,
    series: Arc<Mutex<Series>>,
    cpu_ticks: Arc<Mutex<BTreeMap<String, u64>>>,
    redis_used_max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// VmRSS of a pid in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a pid in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after the command: state is 3rd overall => index 0 here; utime 14th => 11; stime => 12
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `used_memory` of the Redis on `port` (bytes), via redis-cli.
pub fn redis_used_memory(port: u16) -> Option<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "memory"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

impl Sampler {
    /// Starts sampling; `redis_port` for `used_memory`.
    pub fn start(redis_port: Option<u16>) -> Self {
        let pids: Arc<Mutex<BTreeMap<String, Option<u32>>>> = Arc::default();
        let max_rss_kb: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let series: Arc<Mutex<Series>> = Arc::default();
        let cpu: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let used = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, m, se, u, st) = (
            pids.clone(),
            max_rss_kb.clone(),
            series.clone(),
            used.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let snapshot = p.lock().unwrap().clone();
                for (role, pid) in snapshot {
                    if let Some(kb) = pid.and_then(rss_kb) {
                        let mut m = m.lock().unwrap();
                        let e = m.entry(role.clone()).or_insert(0);
                        *e = (*e).max(kb);
                        se.lock()
                            .unwrap()
                            .entry(role)
                            .or_default()
                            .push((t0.elapsed().as_secs_f64(), kb));
                    }
                }
                if let Some(port) = redis_port {
                    if let Some(b) = redis_used_memory(port) {
                        u.fetch_max(b, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Self {
            pids,
            max_rss_kb,
            series,
            cpu_ticks: cpu,
            redis_used_max: used,
            stop,
            thread: Some(thread),
        }
    }
    /// Sets (or clears) the current pid of a role.
    pub fn track(&self, role: &str, pid: Option<u32>) {
        self.pids.lock().unwrap().insert(role.to_owned(), pid);
    }
    /// The largest RSS seen per role, kB.
    pub fn max_rss_kb(&self) -> BTreeMap<String, u64> {
        self.max_rss_kb.lock().unwrap().clone()
    }
    /// The RSS samples of a role (seconds since start, kB).
    pub fn series(&self, role: &str) -> Vec<(f64, u64)> {
        self.series
            .lock()
            .unwrap()
            .get(role)
            .cloned()
            .unwrap_or_default()
    }
    /// Records CPU ticks of a role (for a report).
    pub fn note_cpu(&self, role: &str, ticks: u64) {
        self.cpu_ticks
            .lock()
            .unwrap()
            .insert(role.to_owned(), ticks);
    }
    /// The largest Redis `used_memory` seen, bytes.
    pub fn redis_used_max(&self) -> u64 {
        self.redis_used_max.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line of the summary table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub sent: u64,
    pub received: u64,
    pub missing: u64,
    pub duplicates: u64,
    /// Max RSS per role, kB.
    pub max_rss_kb: BTreeMap<String, u64>,
    /// Max Redis used_memory, bytes (0 when not sampled).
    pub redis_used_max: u64,
    pub note: String,
}

/// The table header (markdown).
pub const TABLE_HEADER: &str = "| scenario | sent | received | missing | duplicates | max RSS per process (MB) | Redis used_memory max (MB) | notes |\n|---|---:|---:|---:|---:|---|---:|---|\n";

impl Row {
    /// The row of `scenario`: `sent` values of which `missing` did not arrive, the received
    /// and duplicate counts of `sub`, the maxima `sampler` saw.
    pub fn measured(
        scenario: impl Into<String>,
        sent: u64,
        missing: u64,
        sub: &SeqSubscriber,
        sampler: &Sampler,
        note: impl Into<String>,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            sent,
            received: sub.received(),
            missing,
            duplicates: sub.duplicates(),
            max_rss_kb: sampler.max_rss_kb(),
            redis_used_max: sampler.redis_used_max(),
            note: note.into(),
        }
    }

    /// The row as a markdown table line.
    pub fn markdown(&self) -> String {
        let rss: Vec<String> = self
            .max_rss_kb
            .iter()
            .map(|(k, v)| format!("{k} {:.1}", *v as f64 / 1024.0))
            .collect();
        format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            self.scenario,
            self.sent,
            self.received,
            self.missing,
            self.duplicates,
            rss.join(", "),
            self.redis_used_max as f64 / 1_048_576.0,
            self.note
        )
    }

    /// Prints the row and appends it to `$FAULTS_RESULTS` (default `target/faults/results.md`).
    pub fn report(&self) {
        let path = std::env::var_os("FAULTS_RESULTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| testrig::workspace_root().join("target/faults/results.md"));
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let line = self.markdown();
        print!("{TABLE_HEADER}{line}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
