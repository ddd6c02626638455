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
//!   already in the stream, until the subscriber has them all, and the ratio to the raw one;
//! - p50/p99 latency (Redis write -> subscriber) at a steady 10,000 values/s for 5 s;
//! - the publisher's peak RSS (VmHWM of the child process).
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

const SIGNALS: usize = 10_000;
const BACKLOG: usize = 200_000;
/// The in-flight window of both clients: `max_inflight` (default 20, env `BENCH_WINDOW`).
fn window() -> u16 {
    std::env::var("BENCH_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(20)
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
}

/// A QoS 0 subscriber to `tag/#` counting distinct integer values.
async fn subscriber(port: u16, id: &str) -> (Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let rec = Arc::new(Mutex::new(Received::default()));
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
    client
        .subscribe("tag/#", rumqttc::QoS::AtMostOnce)
        .await
        .unwrap();
    let r = rec.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let task = tokio::spawn(async move {
        let _client = client;
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let now = now_us();
                    let text = std::str::from_utf8(&p.payload).unwrap_or("");
                    if let Some(v) = text.split(',').next().and_then(|v| v.parse::<i64>().ok()) {
                        let mut g = r.lock().unwrap();
                        g.total += 1;
                        g.distinct.insert(v);
                        if g.measure_latency && v > 1_000_000_000_000 {
                            g.latencies_us.push(now - v);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    (rec, task)
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

async fn raw_client(port: u16, qos: u8) -> (f64, usize) {
    let (rec, sub) = subscriber(port, &format!("bench-sub-raw{qos}")).await;
    let mut o = rumqttc::MqttOptions::new(format!("bench-raw{qos}"), "127.0.0.1", port);
    o.set_inflight(window())
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
    let evl = tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let t0 = Instant::now();
    for i in 0..BACKLOG {
        let payload = format!("{i},1700000000000,1");
        client.publish(topic(i), q, false, payload).await.unwrap();
    }
    let ok = wait_distinct(&rec, BACKLOG, Duration::from_secs(300)).await;
    let secs = t0.elapsed().as_secs_f64();
    let got = rec.lock().unwrap().distinct.len();
    evl.abort();
    sub.abort();
    if !ok {
        println!("  raw client QoS {qos}: only {got} of {BACKLOG} arrived");
    }
    (BACKLOG as f64 / secs, got)
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
        Command::new(bin)
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

struct Row {
    qos: u8,
    raw: f64,
    publisher: f64,
    p50: f64,
    p99: f64,
    rss_kb: u64,
    rss_now_kb: u64,
}

async fn publisher_run(bin: &Path, dir: &Path, redis: &RedisServer, port: u16, qos: u8) -> Row {
    let alias = format!("bench{qos}");
    let cfg = write_config(dir, &redis.url(), port, &alias, qos);
    let log = dir.join(format!("{alias}.log"));
    // First start creates the consumer group; then the backlog is written while it is down.
    let mut p = start_publisher(bin, &cfg, &redis.url(), &log);
    wait_log(&log, "forwarding live values").await;
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
    let t0 = Instant::now();
    let p = start_publisher(bin, &cfg, &redis.url(), &log2);
    let ok = wait_distinct(&rec, BACKLOG, Duration::from_secs(600)).await;
    let secs = t0.elapsed().as_secs_f64();
    if !ok {
        println!(
            "  publisher QoS {qos}: only {} of {BACKLOG} arrived",
            rec.lock().unwrap().distinct.len()
        );
    }
    let publisher = BACKLOG as f64 / secs;
    wait_log(&log2, "forwarding live values").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Latency at a steady rate: batches of 10 every millisecond.
    rec.lock().unwrap().measure_latency = true;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = RATE / 1000;
    let ticks = LATENCY_SECS * 1000;
    let mut n = 0usize;
    for _ in 0..ticks {
        tick.tick().await;
        let stamp = now_us();
        let batch: Vec<(TagKey, TagValue)> = (0..per_tick)
            .map(|j| (key(n + j), TagValue::new(stamp, 1_700_000_000_000)))
            .collect();
        n += per_tick;
        w.write_batch(&batch).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lat = std::mem::take(&mut rec.lock().unwrap().latencies_us);
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    if lat.len() < n {
        println!("  latency QoS {qos}: {} of {n} values arrived", lat.len());
    }
    let rss_kb = vm_kb(p.pid(), "VmHWM:");
    let rss_now_kb = vm_kb(p.pid(), "VmRSS:");
    sub.abort();
    drop(p);
    Row {
        qos,
        raw: 0.0,
        publisher,
        p50: pct(0.5),
        p99: pct(0.99),
        rss_kb,
        rss_now_kb,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = std::env::var("FIELDBRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| testrig::workspace_root().join("target/release/fieldbridge"));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p fieldbridge",
        bin.display()
    );
    let redis = RedisServer::start();
    let broker = MosquittoBuilder::new()
        .config_line("max_queued_messages 0")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    println!("in-flight window {} (BENCH_WINDOW)", window());
    for qos in [0u8, 1, 2] {
        let (raw, _) = raw_client(broker.port(), qos).await;
        let mut row = publisher_run(&bin, dir.path(), &redis, broker.port(), qos).await;
        row.raw = raw;
        println!(
            "QoS {qos}: raw {:.0}/s, publisher {:.0}/s (ratio {:.2}), latency p50 {:.3} ms p99 {:.3} ms, peak RSS {:.1} MB, RSS at the end {:.1} MB",
            row.raw,
            row.publisher,
            row.publisher / row.raw,
            row.p50,
            row.p99,
            row.rss_kb as f64 / 1024.0,
            row.rss_now_kb as f64 / 1024.0
        );
        rows.push(row);
    }
    println!("\n| QoS | raw client msg/s | publisher msg/s | ratio | p50 ms @10k/s | p99 ms @10k/s | peak RSS MB | RSS at end MB |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {:.1} | {:.1} |",
            r.qos,
            r.raw,
            r.publisher,
            r.publisher / r.raw,
            r.p50,
            r.p99,
            r.rss_kb as f64 / 1024.0,
            r.rss_now_kb as f64 / 1024.0
        );
    }
}
