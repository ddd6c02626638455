//! Benchmark of the MQTT publisher (not a test: it prints numbers).
//!
//! ```text
//! cargo build --release -p fieldbridge
//! cargo run --release -p mqtt-client --example bench
//! ```
//! (`FIELDBRIDGE_BIN` overrides the binary, default `target/release/fieldbridge`;
//! `BENCH_WINDOW` the in-flight window of both clients, default 20.)
//!
//! Per QoS 0, 1 and 2, in one run against one mosquitto and one redis-server:
//! - the throughput of one raw rumqttc client publishing 200,000 messages over 10,000 topics
//!   (same in-flight window as the publisher), until a subscriber has them all;
//! - the publisher's throughput draining a backlog of 200,000 values over 10,000 signals
//!   already in the stream, until the subscriber has them all, and the ratio to the raw one.
//!   Both throughputs are arrival rates at the subscriber, first value to last: the drain
//!   itself. The publisher's start-up (process start, loading the 20,000-row config, Redis
//!   and MQTT connects) is printed apart, with the rate from process start it gives;
//! - p50/p99/p99.9 latency (Redis write -> subscriber) at a steady 10,000 values/s for 5 s,
//!   each batch stamped just before it goes to Redis, and the raw client's at the same rate
//!   (MQTT alone: the floor under the publisher's);
//! - the publisher's CPU time per value while draining (utime + stime from /proc, minus what
//!   loading the same config took) and its peak RSS (VmHWM of the child process);
//! - the Python alternative (`bench/python_bridge.py`, redis-py + paho, run with
//!   `FIELDBRIDGE_PEER_PYTHON` or `<repo>/.venv/bin/python`) under the same load: the same
//!   200,000 values written as fast as the tag writer goes (it can only follow the live PUBLISH
//!   feed, so there is no backlog to drain), how many arrived and at what rate, the same steady
//!   10,000/s latency, its CPU per value and RSS, and its own count of publishes paho refused.
//!
//! Two layouts (`BENCH_LAYOUT`, one per run; bench/run runs both): `shared` (default), every
//! process on every CPU, what a 2-core box running everything gets; `pinned`, the broker
//! side (mosquitto, the subscriber) on CPU 0 and the sender side (raw client, or publisher +
//! its redis-server, or Python bridge) on CPU 1, as when the broker is another machine: the
//! sender's own cost then decides its rate. Pinned figures are written as `pinned.q<N>.*`.
//!
//! Where the time goes, printed per QoS for both drains: the CPU time per value of the sender,
//! redis-server, mosquitto and the subscriber (this process), their voluntary context switches
//! (sleeps) per 1,000 values, and the Redis commands the publisher issued (calls, server time
//! per call). The subscriber is a paced blocking reader ([`subscriber`]), so that it costs the
//! same, and makes mosquitto pay the same wake-ups, whatever the sender: see bench/README.md,
//! "The measuring subscriber".
//!
//! The raw client is rumqttc as upstream ships it, one `write` per PUBLISH; the publisher's
//! rumqttc (vendor/rumqttc) writes the requests already queued together (64 at most).
//! `BENCH_RAW_BATCH=64` gives the raw client the same.
//!
//! Then the uplink figures ([`uplink`]): bytes per value of each payload option (CSV, CSV with
//! MQTT 5 topic aliases, `json_batch`, `csv_batch`) at the MQTT layer and as TCP payload
//! both ways, plain and TLS, for 100 signals at 1 change/s and for a 200,000-value backlog
//! drain, with the drain rate and CPU per value at QoS 1. `BENCH_UPLINK=only` runs only
//! these, `BENCH_UPLINK=0` leaves them out.
//!
//! `BENCH_OUT=FILE` also writes every figure as `key value` lines (read by `bench/run`);
//! `BENCH_SKIP_PYTHON=1` leaves the Python bridge out; `BENCH_QOS=0` (or `1,2`) runs only these
//! QoS levels.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tagbus::{TagKey, TagValue, TagWriter, WriterConfig};
use testrig::{KillOnDrop, MosquittoBuilder, RedisServer};

mod uplink;

const SIGNALS: usize = 10_000;
const BACKLOG: usize = 200_000;
/// The in-flight window of both clients: `max_inflight` (default 20, env `BENCH_WINDOW`).
fn window() -> u16 {
    env_or("BENCH_WINDOW", 20)
}

/// A number from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(default)
}
const RATE: usize = 10_000;
const LATENCY_SECS: u64 = 5;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[derive(Default)]
struct Received {
    distinct: HashSet<i64>,
    total: usize,
    latencies_us: Vec<i64>,
    measure_latency: bool,
    /// When the first and the last message arrived.
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

impl Received {
    /// Latency mode: the subscriber reads at once and records each value's latency.
    fn start_latency(&mut self) {
        self.latencies_us.clear();
        self.measure_latency = true;
    }

    /// Messages per second between the first and the last arrival: the rate of the drain
    /// itself, without the sender's start-up (process start, config load, connects).
    fn arrival_rate(&self) -> f64 {
        match (self.first_at, self.last_at) {
            (Some(a), Some(b)) if b > a => {
                self.distinct.len().saturating_sub(1) as f64 / (b - a).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// How often the measuring subscriber reads while a drain is measured.
const PACE: Duration = Duration::from_millis(1);

/// The measuring subscriber: a QoS 0 subscription to `tag/#` counting distinct integer values,
/// on its own OS thread with a blocking socket (CONNECT with keep-alive off, SUBSCRIBE, then
/// PUBLISH packets decoded by rumqttc's own codec from 64 KB reads; one lock and one clock
/// read per read, every message of a read stamped with that read's time).
///
/// It is the instrument, the same for every sender, so it must cost the same whatever the
/// sender: while a drain is measured it reads once per [`PACE`] (1 ms: a 0.1% error on the
/// first-to-last arrival time of a drain of a second or more), so it takes about the same CPU
/// and makes the broker pay the same wake-ups for every sender. A subscriber that reads as
/// soon as data arrives wakes once per few messages when a core is idle and once per thousands
/// when none is; the sender that leaves a core idle (the publisher, with less CPU per value
/// than the raw client) then paid for it in broker CPU (bench/README.md, "The measuring
/// subscriber"). While latency is measured it reads at once.
struct Subscriber {
    stream: std::net::TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Closes the connection and joins the thread.
    fn abort(mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn subscriber(port: u16, id: &str) -> (Arc<Mutex<Received>>, Subscriber) {
    use rumqttc::{Connect, Packet, QoS, Subscribe};
    use std::io::{Read, Write};
    let rec = Arc::new(Mutex::new(Received::default()));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut connect = Connect::new(id);
    connect.keep_alive = 0; // a reader that sleeps between reads sends no PINGREQ
    let mut out = bytes::BytesMut::new();
    Packet::Connect(connect).write(&mut out, 1 << 10).unwrap();
    let mut subscribe = Subscribe::new("tag/#", QoS::AtMostOnce);
    subscribe.pkid = 1;
    Packet::Subscribe(subscribe)
        .write(&mut out, 1 << 10)
        .unwrap();
    stream.write_all(&out).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let r = rec.clone();
    let mut reader = stream.try_clone().unwrap();
    let thread = std::thread::spawn(move || {
        let mut buf = bytes::BytesMut::with_capacity(1 << 17);
        let mut chunk = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = reader.read(&mut chunk) {
            let now = now_us();
            let at = Instant::now();
            buf.extend_from_slice(&chunk[..n]);
            let mut g = r.lock().unwrap();
            // Every whole packet read so far; a partial one waits for the next read.
            while let Ok(packet) = Packet::read(&mut buf, 1 << 20) {
                match packet {
                    Packet::SubAck(_) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Packet::Publish(p) => {
                        let text = std::str::from_utf8(&p.payload).unwrap_or("");
                        if let Some(v) = text.split(',').next().and_then(|v| v.parse::<i64>().ok())
                        {
                            g.total += 1;
                            g.first_at.get_or_insert(at);
                            g.last_at = Some(at);
                            g.distinct.insert(v);
                            if g.measure_latency && v > 1_000_000_000_000 {
                                g.latencies_us.push(now - v);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Draining, it reads at most once per PACE (what arrived meanwhile waits in the
            // socket); measuring latency, at once.
            let pace = !g.measure_latency;
            drop(g);
            if pace {
                std::thread::sleep(PACE);
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    (
        rec,
        Subscriber {
            stream,
            thread: Some(thread),
        },
    )
}

async fn wait_distinct(rec: &Arc<Mutex<Received>>, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if rec.lock().unwrap().distinct.len() >= n {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn topic(i: usize) -> String {
    format!("tag/rtu1/s{}/in", i % SIGNALS)
}

/// The raw client's side, run as a child process of this bench (`BENCH_ROLE=raw-client`,
/// args: port, QoS), so it can get its own CPU like the publisher: one rumqttc client
/// publishing the 200,000 values itself, until rumqttc wrote them all (QoS 0) or the broker
/// acknowledged them all (QoS 1/2).
///
/// With `steady`, it publishes `RATE` values/s for `LATENCY_SECS` instead (10 every
/// millisecond, each the time it is handed to rumqttc in microseconds): the latency of MQTT
/// alone, the reference for the publisher's (which adds Redis and the stream read).
async fn raw_sender(port: u16, qos: u8, steady: bool) {
    let mut o = rumqttc::MqttOptions::new(format!("bench-raw{qos}"), "127.0.0.1", port);
    // rumqttc as upstream ships it (one write per PUBLISH) unless BENCH_RAW_BATCH sets the
    // patched event loop's batch (the publisher's is 64).
    let batch = std::env::var("BENCH_RAW_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    o.set_inflight(window())
        .set_max_request_batch(batch)
        .set_max_packet_size(1 << 20, 1 << 20);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 512);
    el.set_network_options(net);
    let q = [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ][usize::from(qos)];
    let total = if steady {
        RATE * LATENCY_SECS as usize
    } else {
        BACKLOG
    };
    let evl = tokio::spawn(async move {
        let mut done = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while done < total && Instant::now() < deadline {
            match el.poll().await {
                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(_))) if qos == 0 => {
                    done += 1
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) if qos == 1 => done += 1,
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubComp(_))) if qos == 2 => done += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    if steady {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for t in 0..total / (RATE / 1000) {
            tick.tick().await;
            let stamp = now_us();
            for j in 0..RATE / 1000 {
                let payload = format!("{stamp},1700000000000,1");
                let i = t * (RATE / 1000) + j;
                client.publish(topic(i), q, false, payload).await.unwrap();
            }
        }
    } else {
        for i in 0..BACKLOG {
            let payload = format!("{i},1700000000000,1");
            client.publish(topic(i), q, false, payload).await.unwrap();
        }
    }
    let _ = evl.await;
}

/// The raw client ceiling: [`raw_sender`] in a child process (on the sender CPU when
/// pinned), measured by the subscriber's arrival rate.
async fn raw_client(port: u16, qos: u8, pids: Pids) -> (f64, usize, [f64; 4], Latency) {
    let (rec, sub) = subscriber(port, &format!("bench-sub-raw{qos}")).await;
    let exe = std::env::current_exe().unwrap();
    let mut child = KillOnDrop(
        sender_command(&exe)
            .env("BENCH_ROLE", "raw-client")
            .args([port.to_string(), qos.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let before = CpuSplit::now(child.0.id(), pids);
    let ok = wait_distinct(&rec, BACKLOG, Duration::from_secs(120)).await;
    let after = CpuSplit::now(child.0.id(), pids);
    let split = before.per_value(&after, BACKLOG);
    println!(
        "  QoS {qos} raw client: sleeps per 1,000 values: {}",
        before.sleeps_per_1000(&after, BACKLOG)
    );
    let (got, rate) = {
        let g = rec.lock().unwrap();
        (g.distinct.len(), g.arrival_rate())
    };
    let _ = child.0.kill();
    let _ = child.0.wait();
    if !ok {
        println!("  raw client QoS {qos}: only {got} of {BACKLOG} arrived");
    }
    // The same subscriber, then the raw client's steady 10,000/s: the latency reference.
    rec.lock().unwrap().start_latency();
    let mut child = KillOnDrop(
        sender_command(&exe)
            .env("BENCH_ROLE", "raw-client")
            .args([port.to_string(), qos.to_string(), "steady".to_owned()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sent = RATE * LATENCY_SECS as usize;
    let deadline = Instant::now() + Duration::from_secs(LATENCY_SECS + 10);
    while child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lat = collect_latency(&rec, sent).await;
    sub.abort();
    (rate, got, split, lat)
}

/// Where the processes run (`BENCH_LAYOUT`):
/// - `pinned` (default with 2+ CPUs): the broker side (mosquitto and the subscriber, this
///   process) on CPU 0, the sender side (the raw client, or the publisher with its
///   redis-server, or the Python bridge) on CPU 1. A deployed gateway's broker is another
///   machine: this keeps the broker's capacity the same for every sender, so the ratio
///   measures the sender, not which sender leaves the broker more CPU.
/// - `shared`: every process on every CPU (what a 2-core box running everything gets).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Pinned,
    Shared,
}

static LAYOUT: Mutex<Layout> = Mutex::new(Layout::Shared);

fn layout() -> Layout {
    *LAYOUT.lock().unwrap()
}

/// A command for a sender-side process: under `taskset -c 1` when pinned.
fn sender_command(program: &Path) -> Command {
    match layout() {
        Layout::Pinned => {
            let mut c = Command::new("taskset");
            c.args(["-c", "1"]).arg(program);
            c
        }
        Layout::Shared => Command::new(program),
    }
}

/// Moves a running process (all its threads) to these CPUs.
fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset -a -p -c {cpus} {pid} failed");
}

/// Applies a layout to the running broker, redis-server and this process.
fn set_layout(l: Layout, broker: u32, redis: u32) {
    *LAYOUT.lock().unwrap() = l;
    if l == Layout::Pinned {
        pin(broker, "0");
        pin(std::process::id(), "0");
        pin(redis, "1");
    }
}

fn write_config(dir: &Path, redis_url: &str, port: u16, alias: &str, qos: u8) -> PathBuf {
    let mut devices = vec![
        json!({"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master",
        "ip": "127.0.0.1", "port": 2404, "asdu_address": 1}),
    ];
    devices.push(json!({"name": alias, "device_alias": alias, "protocol": "mqtt", "ip": "127.0.0.1", "port": port,
        "mqtt_qos": qos, "enable_threshold": 0, "client_id": alias, "max_inflight": window()}));
    let mut signals = Vec::with_capacity(2 * SIGNALS);
    for i in 0..SIGNALS {
        signals.push(json!({"signal_name": format!("S{i}"), "device_alias": "rtu1", "signal_alias": format!("s{i}"),
            "info_address": 100 + i, "type_id": "M_ME_NC_1"}));
    }
    for i in 0..SIGNALS {
        signals.push(json!({"signal_name": format!("U{i}"), "device_alias": alias, "signal_alias": format!("u{i}"),
            "source_device_alias": "rtu1", "source_signal_alias": format!("s{i}")}));
    }
    let path = dir.join(format!("{alias}.json"));
    std::fs::write(
        &path,
        json!({"redis_url": redis_url, "devices": devices, "signals": signals}).to_string(),
    )
    .unwrap();
    path
}

fn start_publisher(bin: &Path, cfg: &Path, redis_url: &str, log: &Path) -> KillOnDrop {
    let err = std::fs::File::create(log).unwrap();
    KillOnDrop(
        sender_command(bin)
            .args(["mqtt-client", "-c"])
            .arg(cfg)
            .args(["--redis-url", redis_url, "-d", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

async fn wait_log(log: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn vm_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn key(i: usize) -> TagKey {
    format!("tag/rtu1/s{}/in", i % SIGNALS).parse().unwrap()
}

/// utime + stime of a process in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// The CPU time (ticks) of the processes of one measurement, to print where the time goes.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    sender: u64,
    redis: u64,
    broker: u64,
    /// This process: the subscriber (and the idle tag writer).
    subscriber: u64,
    /// Voluntary context switches (sleeps) of the broker and of this process.
    broker_sleeps: u64,
    subscriber_sleeps: u64,
    sender_sleeps: u64,
    redis_sleeps: u64,
}

/// Voluntary context switches of all threads of a process.
fn sleeps(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

impl CpuSplit {
    fn now(sender: u32, p: Pids) -> Self {
        Self {
            sender: cpu_ticks(sender),
            redis: cpu_ticks(p.redis),
            broker: cpu_ticks(p.broker),
            subscriber: cpu_ticks(std::process::id()),
            broker_sleeps: sleeps(p.broker),
            subscriber_sleeps: sleeps(std::process::id()),
            sender_sleeps: sleeps(sender),
            redis_sleeps: sleeps(p.redis),
        }
    }

    /// Sleeps per 1,000 values of the broker, the subscriber, the sender and redis-server.
    fn sleeps_per_1000(&self, later: &Self, values: usize) -> String {
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1000.0 / values.max(1) as f64;
        format!(
            "mosquitto {:.1}, subscriber {:.1}, sender {:.1}, redis {:.1}",
            per(self.broker_sleeps, later.broker_sleeps),
            per(self.subscriber_sleeps, later.subscriber_sleeps),
            per(self.sender_sleeps, later.sender_sleeps),
            per(self.redis_sleeps, later.redis_sleeps)
        )
    }

    /// Microseconds per value of each process between `self` and `later`.
    fn per_value(&self, later: &Self, values: usize) -> [f64; 4] {
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 * 10_000.0 / values.max(1) as f64;
        [
            us(self.sender, later.sender),
            us(self.redis, later.redis),
            us(self.broker, later.broker),
            us(self.subscriber, later.subscriber),
        ]
    }
}

/// The pids of the shared servers.
#[derive(Clone, Copy)]
struct Pids {
    broker: u32,
    redis: u32,
}

/// Percentiles in milliseconds of latencies in microseconds.
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    arrived: usize,
    sent: usize,
}

/// Writes `RATE` values/s for `LATENCY_SECS` (batches of 10 every millisecond, the tag
/// writer's own `MULTI` pipeline, [`tagbus::packed_batch`]) on a plain socket of a thread of
/// its own, each value the time just before its batch goes to Redis, in microseconds; then
/// collects what the subscriber saw (waits at most 3 s more). The latency is the publisher's,
/// from Redis to the subscriber: stamped before an async client's hand-offs in this busy bench
/// process, it also held that client's round trip (p50 265 us, p99 591 us on the 2-core box).
async fn steady_latency(redis_port: u16, rec: &Arc<Mutex<Received>>) -> Latency {
    use std::io::{Read, Write};
    rec.lock().unwrap().start_latency();
    let per_tick = RATE / 1000;
    let ticks = LATENCY_SECS * 1000;
    let n = per_tick * ticks as usize;
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut replies = s.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(1..) = replies.read(&mut buf) {}
        });
        let start = Instant::now();
        for t in 0..ticks {
            let due = start + Duration::from_millis(t);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let stamp = now_us();
            let batch: Vec<(TagKey, TagValue)> = (0..per_tick)
                .map(|j| {
                    (
                        key(t as usize * per_tick + j),
                        TagValue::new(stamp, 1_700_000_000_000),
                    )
                })
                .collect();
            s.write_all(&tagbus::packed_batch(
                &batch,
                tagbus::DEFAULT_STREAM_MAX_LEN,
            ))
            .unwrap();
        }
        // Redis answers what it has, then sees the end and closes.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = drain.join();
    });
    while !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.join().unwrap();
    collect_latency(rec, n).await
}

/// Waits (3 s at most) until the subscriber saw `n` latency values, then their percentiles;
/// the subscriber goes back to draining mode.
async fn collect_latency(rec: &Arc<Mutex<Received>>, n: usize) -> Latency {
    let deadline = Instant::now() + Duration::from_secs(3);
    while rec.lock().unwrap().latencies_us.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lat = std::mem::take(&mut rec.lock().unwrap().latencies_us);
    rec.lock().unwrap().measure_latency = false;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    Latency {
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        arrived: lat.len(),
        sent: n,
    }
}

struct Row {
    layout: Layout,
    qos: u8,
    /// Arrival rates at the subscriber, first to last value.
    raw: f64,
    publisher: f64,
    /// The publisher's rate from process start to the last value (start-up included).
    from_start: f64,
    /// Process start to the first value at the subscriber.
    startup_s: f64,
    received: usize,
    lat: Latency,
    cpu_us: f64,
    rss_kb: u64,
    rss_now_kb: u64,
    /// CPU us/value while draining: publisher, redis-server, mosquitto, subscriber.
    split: [f64; 4],
    /// The same for the raw client's run (the raw client first).
    raw_split: [f64; 4],
}

async fn publisher_run(
    bin: &Path,
    dir: &Path,
    redis: &RedisServer,
    port: u16,
    qos: u8,
    pids: Pids,
) -> Row {
    let alias = format!("bench{qos}");
    let cfg = write_config(dir, &redis.url(), port, &alias, qos);
    let log = dir.join(format!("{alias}.log"));
    // First start creates the consumer group; then the backlog is written while it is down.
    // Its CPU time up to here is the cost of loading the config, subtracted below.
    let mut p = start_publisher(bin, &cfg, &redis.url(), &log);
    wait_log(&log, "forwarding live values").await;
    let startup_ticks = cpu_ticks(p.pid());
    p.kill();
    let mut w = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let batch: Vec<(TagKey, TagValue)> = (0..BACKLOG)
        .map(|i| (key(i), TagValue::new(i as i64, 1_700_000_000_000)))
        .collect();
    for chunk in batch.chunks(1000) {
        w.write_batch(chunk).await.unwrap();
    }
    let (rec, sub) = subscriber(port, &format!("bench-sub-{alias}")).await;
    let log2 = dir.join(format!("{alias}-2.log"));
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let t0 = Instant::now();
    let p = start_publisher(bin, &cfg, &redis.url(), &log2);
    let before = CpuSplit::now(p.pid(), pids);
    let ok = wait_distinct(&rec, BACKLOG, Duration::from_secs(120)).await;
    let secs = t0.elapsed().as_secs_f64();
    let drain_ticks = cpu_ticks(p.pid()).saturating_sub(startup_ticks);
    let after = CpuSplit::now(p.pid(), pids);
    let mut split = before.per_value(&after, BACKLOG);
    println!(
        "  QoS {qos} publisher: sleeps per 1,000 values: {}",
        before.sleeps_per_1000(&after, BACKLOG)
    );
    // What the publisher asked of Redis while draining (calls, server time per call).
    let calls: Vec<String> = redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("?")
                    .to_owned()
            };
            Some(format!(
                "{name} {} calls {} us/call",
                field("calls"),
                field("usec_per_call")
            ))
        })
        .collect();
    println!("  QoS {qos} drain, Redis: {}", calls.join("; "));
    split[0] = drain_ticks as f64 * 10_000.0 / BACKLOG as f64;
    if !ok {
        println!(
            "  publisher QoS {qos}: only {} of {BACKLOG} arrived",
            rec.lock().unwrap().distinct.len()
        );
    }
    let (received, publisher, startup_s) = {
        let g = rec.lock().unwrap();
        let startup = g.first_at.map_or(secs, |f| (f - t0).as_secs_f64());
        (g.distinct.len(), g.arrival_rate(), startup)
    };
    let from_start = received as f64 / secs;
    wait_log(&log2, "forwarding live values").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let lat = steady_latency(redis.port(), &rec).await;
    if lat.arrived < lat.sent {
        println!(
            "  latency QoS {qos}: {} of {} values arrived",
            lat.arrived, lat.sent
        );
    }
    let rss_kb = vm_kb(p.pid(), "VmHWM:");
    let rss_now_kb = vm_kb(p.pid(), "VmRSS:");
    sub.abort();
    drop(p);
    Row {
        layout: layout(),
        qos,
        raw: 0.0,
        publisher,
        from_start,
        startup_s,
        received,
        lat,
        cpu_us: drain_ticks as f64 * 10_000.0 / BACKLOG as f64,
        rss_kb,
        rss_now_kb,
        split,
        raw_split: [0.0; 4],
    }
}

struct PyRow {
    rate: f64,
    received: usize,
    lat: Latency,
    cpu_us: f64,
    rss_kb: u64,
    refused: String,
}

/// The Python bridge under the same load: 200,000 values written as fast as the tag writer
/// goes (it follows the live feed), then the steady 10,000/s.
async fn python_run(dir: &Path, redis: &RedisServer, port: u16, qos: u8) -> Option<PyRow> {
    let py = testrig::peer_python();
    let script = testrig::workspace_root().join("bench/python_bridge.py");
    let ready = dir.join(format!("py{qos}.ready"));
    let errlog = dir.join(format!("py{qos}.log"));
    let mut child = KillOnDrop(
        sender_command(Path::new(&py))
            .arg(&script)
            .args(["--redis-port", &redis.port().to_string()])
            .args(["--mqtt-port", &port.to_string()])
            .args([
                "--qos",
                &qos.to_string(),
                "--max-secs",
                "240",
                "--ready-file",
            ])
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errlog).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = child.pid();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        if Instant::now() > deadline {
            println!("  python bridge QoS {qos}: not ready after 30 s");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let startup_ticks = cpu_ticks(pid);
    let (rec, sub) = subscriber(port, &format!("bench-sub-py{qos}")).await;
    let mut w = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let batch: Vec<(TagKey, TagValue)> = (0..BACKLOG)
        .map(|i| (key(i), TagValue::new(i as i64, 1_700_000_000_000)))
        .collect();
    let t0 = Instant::now();
    for chunk in batch.chunks(1000) {
        w.write_batch(chunk).await.unwrap();
    }
    // until all arrived, or nothing for 3 s, or 150 s
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let (n, last) = {
            let g = rec.lock().unwrap();
            (g.distinct.len(), g.last_at)
        };
        let quiet = last.map_or(t0, |l| l).elapsed() > Duration::from_secs(3);
        if n >= BACKLOG || quiet || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (received, last) = {
        let g = rec.lock().unwrap();
        (g.distinct.len(), g.last_at)
    };
    let secs = last
        .map_or(t0.elapsed(), |l| l.duration_since(t0))
        .as_secs_f64();
    let cpu_ticks_flood = cpu_ticks(pid).saturating_sub(startup_ticks);
    let lat = steady_latency(redis.port(), &rec).await;
    let rss_kb = vm_kb(pid, "VmHWM:");
    sub.abort();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = std::fs::read_to_string(&errlog)
        .unwrap_or_default()
        .split("refused ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("?")
        .to_owned();
    Some(PyRow {
        rate: received as f64 / secs,
        received,
        lat,
        cpu_us: cpu_ticks_flood as f64 * 10_000.0 / received.max(1) as f64,
        rss_kb,
        refused,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("raw-client") {
        let mut args = std::env::args().skip(1);
        let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap();
        let qos: u8 = args.next().and_then(|a| a.parse().ok()).unwrap();
        let steady = args.next().as_deref() == Some("steady");
        raw_sender(port, qos, steady).await;
        return;
    }
    let bin = std::env::var("FIELDBRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| testrig::workspace_root().join("target/release/fieldbridge"));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p fieldbridge",
        bin.display()
    );
    let out = std::env::var_os("BENCH_OUT").map(PathBuf::from);
    let skip_python = std::env::var_os("BENCH_SKIP_PYTHON").is_some();
    let redis = RedisServer::start();
    let broker = MosquittoBuilder::new()
        .config_line("max_queued_messages 0")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let mut kv = String::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let can_pin = cpus >= 2
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    // One layout per run (moving processes back and forth between layouts in one run
    // proved unreliable): bench/run runs both.
    let layouts: Vec<Layout> = match std::env::var("BENCH_LAYOUT").as_deref() {
        Ok("pinned") if can_pin => vec![Layout::Pinned],
        Ok("pinned") => {
            println!("BENCH_LAYOUT=pinned needs 2 CPUs and taskset; nothing to do");
            return;
        }
        _ => vec![Layout::Shared],
    };
    let (broker_pid, redis_pid) = (broker.pid().unwrap(), redis.pid().unwrap());
    println!("in-flight window {} (BENCH_WINDOW)", window());
    kv.push_str(&format!("window {}\n", window()));
    let mut rows = Vec::new();
    // BENCH_QOS=0,1 runs only these levels (profiling one level); default all three.
    let uplink_only = std::env::var("BENCH_UPLINK").as_deref() == Ok("only");
    let levels: Vec<u8> = std::env::var("BENCH_QOS")
        .ok()
        .map(|v| v.split(',').filter_map(|q| q.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1, 2])
        .into_iter()
        .filter(|_| !uplink_only)
        .collect();
    for (qos, l) in layouts
        .iter()
        .flat_map(|l| levels.iter().map(move |q| (*q, *l)))
    {
        if l == Layout::Pinned && rows.is_empty() {
            set_layout(l, broker_pid, redis_pid);
        }
        let prefix = match l {
            Layout::Pinned => "pinned.".to_owned(),
            Layout::Shared => String::new(),
        };
        let pids = Pids {
            broker: broker_pid,
            redis: redis_pid,
        };
        let (raw, _, raw_split, raw_lat) = raw_client(broker.port(), qos, pids).await;
        println!(
            "{l:?} QoS {qos}: raw client latency at {RATE}/s p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms ({} of {})",
            raw_lat.p50, raw_lat.p99, raw_lat.p999, raw_lat.arrived, raw_lat.sent
        );
        let mut row = publisher_run(&bin, dir.path(), &redis, broker.port(), qos, pids).await;
        row.raw = raw;
        row.raw_split = raw_split;
        row.layout = l;
        println!(
            "{l:?} QoS {qos}: raw {:.0}/s, publisher {:.0}/s (ratio {:.2}; from process start {:.0}/s, first value after {:.2} s), {:.2} us CPU/value, latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms ({} of {}), peak RSS {:.1} MB, RSS at the end {:.1} MB",
            row.raw,
            row.publisher,
            row.publisher / row.raw,
            row.from_start,
            row.startup_s,
            row.cpu_us,
            row.lat.p50,
            row.lat.p99,
            row.lat.p999,
            row.lat.arrived,
            row.lat.sent,
            row.rss_kb as f64 / 1024.0,
            row.rss_now_kb as f64 / 1024.0
        );
        let [rs, rr, rb, rsub] = row.raw_split;
        let [fs, fr, fbk, fsub] = row.split;
        println!(
            "{l:?} QoS {qos}: CPU us/value (sender / redis-server / mosquitto / subscriber): raw client {rs:.2} / {rr:.2} / {rb:.2} / {rsub:.2} = {:.2}; publisher {fs:.2} / {fr:.2} / {fbk:.2} / {fsub:.2} = {:.2}",
            rs + rr + rb + rsub,
            fs + fr + fbk + fsub
        );
        for (k, v) in [
            ("raw", format!("{:.0}", row.raw)),
            (
                "raw_cpu_split",
                format!("{rs:.2},{rr:.2},{rb:.2},{rsub:.2}"),
            ),
            (
                "fb_cpu_split",
                format!("{fs:.2},{fr:.2},{fbk:.2},{fsub:.2}"),
            ),
            ("raw_p50", format!("{:.3}", raw_lat.p50)),
            ("raw_p99", format!("{:.3}", raw_lat.p99)),
            ("raw_p999", format!("{:.3}", raw_lat.p999)),
            ("fb", format!("{:.0}", row.publisher)),
            ("fb_from_start", format!("{:.0}", row.from_start)),
            ("fb_startup_s", format!("{:.2}", row.startup_s)),
            ("fb_received", row.received.to_string()),
            ("fb_cpu_us", format!("{:.2}", row.cpu_us)),
            ("fb_p50", format!("{:.3}", row.lat.p50)),
            ("fb_p99", format!("{:.3}", row.lat.p99)),
            ("fb_p999", format!("{:.3}", row.lat.p999)),
            ("fb_lat_arrived", row.lat.arrived.to_string()),
            ("fb_lat_sent", row.lat.sent.to_string()),
            ("fb_rss_kb", row.rss_kb.to_string()),
            ("fb_rss_end_kb", row.rss_now_kb.to_string()),
        ] {
            kv.push_str(&format!("{prefix}q{qos}.{k} {v}\n"));
        }
        if !skip_python && l == layouts[0] {
            if let Some(py) = python_run(dir.path(), &redis, broker.port(), qos).await {
                println!(
                    "QoS {qos}: python bridge {:.0}/s, {} of {BACKLOG} arrived, {:.2} us CPU/value, latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms ({} of {}), peak RSS {:.1} MB, refused {}",
                    py.rate,
                    py.received,
                    py.cpu_us,
                    py.lat.p50,
                    py.lat.p99,
                    py.lat.p999,
                    py.lat.arrived,
                    py.lat.sent,
                    py.rss_kb as f64 / 1024.0,
                    py.refused
                );
                for (k, v) in [
                    ("py", format!("{:.0}", py.rate)),
                    ("py_received", py.received.to_string()),
                    ("py_sent", BACKLOG.to_string()),
                    ("py_cpu_us", format!("{:.2}", py.cpu_us)),
                    ("py_p50", format!("{:.3}", py.lat.p50)),
                    ("py_p99", format!("{:.3}", py.lat.p99)),
                    ("py_p999", format!("{:.3}", py.lat.p999)),
                    ("py_lat_arrived", py.lat.arrived.to_string()),
                    ("py_lat_sent", py.lat.sent.to_string()),
                    ("py_rss_kb", py.rss_kb.to_string()),
                    ("py_refused", py.refused.clone()),
                ] {
                    kv.push_str(&format!("q{qos}.{k} {v}\n"));
                }
            }
        }
        if let Some(out) = &out {
            std::fs::write(out, &kv).unwrap();
        }
        rows.push(row);
    }
    if !rows.is_empty() {
        println!("\n| layout | QoS | raw client msg/s | publisher msg/s | ratio | CPU us/value | p50 ms @10k/s | p99 ms @10k/s | p99.9 ms @10k/s | peak RSS MB | RSS at end MB |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for r in rows {
            println!(
                "| {:?} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
                r.layout,
                r.qos,
                r.raw,
                r.publisher,
                r.publisher / r.raw,
                r.cpu_us,
                r.lat.p50,
                r.lat.p99,
                r.lat.p999,
                r.rss_kb as f64 / 1024.0,
                r.rss_now_kb as f64 / 1024.0
            );
        }
    }
    if std::env::var("BENCH_UPLINK").as_deref() != Ok("0") && layouts[0] == Layout::Shared {
        kv.push_str(&uplink::run(&bin, dir.path(), &redis).await);
        if let Some(out) = &out {
            std::fs::write(out, &kv).unwrap();
        }
    }
}
