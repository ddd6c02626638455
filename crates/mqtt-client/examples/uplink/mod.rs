//! The uplink figures of the benchmark: bytes per value for each payload option, at the
//! MQTT layer and as TCP payload bytes in both directions (PUBACKs included), plain and TLS,
//! for 100 signals at 1 change/s each and for a 200,000-value backlog drain; the drain rate
//! and the publisher's CPU per value (QoS 1), all in one run (`BENCH_UPLINK`).
//!
//! How it counts: the publisher connects to a [`CountingProxy`] on loopback in front of
//! mosquitto's plain or TLS listener, which counts the bytes it forwards each way. Over plain
//! TCP these are exactly the MQTT packets (what mosquitto's `$SYS/broker/bytes/received`
//! counts for this client); over TLS, the TLS records (handshake included). A subscriber on
//! the plain listener counts the values that arrived (decoding batches) to know when a case
//! is done. The drain's rate and CPU are the existing measure of `bench.rs` (arrival rate
//! first to last value; utime + stime of the publisher minus what loading the same config
//! took, per value).
//!
//! The options are [`options`]: one line each (its device columns and how a subscriber
//! counts the values of one message), so another payload format is one more line.
#![allow(clippy::too_many_lines)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as J};
use tagbus::{TagKey, TagValue, TagWriter, WriterConfig};
use testrig::{CountingProxy, Listener, MosquittoBuilder, RedisServer, TestCerts};

use super::{cpu_ticks, env_or, start_publisher, wait_log};

/// Signals of the live case, each changing once per second.
const LIVE_SIGNALS: usize = 100;
/// Seconds of the live case (`BENCH_UPLINK_SECS`, default 10).
fn live_secs() -> u64 {
    env_or("BENCH_UPLINK_SECS", 10)
}
/// The backlog of the drain case, over `DRAIN_SIGNALS` signals.
const DRAIN_VALUES: usize = 200_000;
const DRAIN_SIGNALS: usize = 10_000;
/// Aliases the broker allows (mosquitto's default is 10; EMQX's 65535).
const BROKER_ALIASES: u16 = 65_535;

/// One payload option of the table.
pub struct UplinkOption {
    pub name: &'static str,
    /// Device columns on top of the bench device's (QoS 1, no threshold).
    pub columns: J,
    /// Values in one received message (topic, payload).
    pub count: fn(&str, &[u8]) -> usize,
}

/// One value per message (`csv`, `json`).
fn one(_: &str, _: &[u8]) -> usize {
    1
}

/// A `json_batch` array or `csv_batch` lines.
fn batch(_: &str, p: &[u8]) -> usize {
    if p.first() == Some(&b'[') {
        p.windows(8).filter(|w| w == b"\"topic\":").count()
    } else {
        p.iter().filter(|b| **b == b'\n').count()
    }
}

/// A zlib-compressed batch (`batch_compression: zlib`).
fn zlib_batch(topic: &str, p: &[u8]) -> usize {
    use std::io::Read;
    let mut inflated = Vec::new();
    match flate2::read::ZlibDecoder::new(p).read_to_end(&mut inflated) {
        Ok(_) => batch(topic, &inflated),
        Err(_) => 0,
    }
}

/// The metrics of a Sparkplug NDATA/DDATA payload (births carry the current values again:
/// not counted).
fn sparkplug_data(topic: &str, p: &[u8]) -> usize {
    use prost::Message;
    if !topic.contains("DATA/") {
        return 0;
    }
    sparkplug::Payload::decode(p).map_or(0, |m| m.metrics.len())
}

/// The options, in table order.
pub fn options() -> Vec<UplinkOption> {
    vec![
        UplinkOption {
            name: "csv",
            columns: json!({}),
            count: one,
        },
        UplinkOption {
            name: "csv + topic aliases",
            columns: json!({"mqtt_version": "5", "topic_alias": 1}),
            count: one,
        },
        UplinkOption {
            name: "json_batch",
            columns: json!({"payload_format": "json_batch"}),
            count: batch,
        },
        UplinkOption {
            name: "csv_batch",
            columns: json!({"payload_format": "csv_batch"}),
            count: batch,
        },
        UplinkOption {
            name: "json_batch + zlib",
            columns: json!({"payload_format": "json_batch", "batch_compression": "zlib"}),
            count: zlib_batch,
        },
        UplinkOption {
            name: "csv_batch + zlib",
            columns: json!({"payload_format": "csv_batch", "batch_compression": "zlib"}),
            count: zlib_batch,
        },
        UplinkOption {
            name: "sparkplug",
            // Sparkplug sends its data at QoS 0 (the specification's rule).
            columns: json!({"payload_format": "sparkplug", "mqtt_qos": 0,
                "sparkplug_group_id": "bench", "sparkplug_edge_node_id": "gw"}),
            count: sparkplug_data,
        },
    ]
}

/// The bytes one case cost.
#[derive(Clone, Copy, Default)]
struct Bytes {
    up: u64,
    down: u64,
    values: usize,
}

impl Bytes {
    fn up_per_value(self) -> f64 {
        self.up as f64 / self.values.max(1) as f64
    }
    fn both_per_value(self) -> f64 {
        (self.up + self.down) as f64 / self.values.max(1) as f64
    }
}

/// The figures of one option.
#[derive(Default)]
struct Row {
    live: [Bytes; 2],
    drain: [Bytes; 2],
    /// Drain arrival rate (values/s) and CPU us/value, plain and TLS.
    rate: [f64; 2],
    cpu_us: [f64; 2],
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A measured value like the ones of a feeder: `231.123`-like, a current timestamp.
fn measured(i: usize, ts: i64) -> TagValue {
    let v = 220.0 + (i % 20_000) as f64 * 0.001;
    format!("{v:.3},{ts},").parse().unwrap()
}

fn key(i: usize, signals: usize) -> TagKey {
    format!("tag/rtu1/ua{}/in", i % signals).parse().unwrap()
}

/// The values that arrived at the subscriber and when the first and last came.
#[derive(Default)]
struct Arrivals {
    values: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// A subscriber to `#` on the plain listener, in a thread with a blocking socket, counting
/// values with the option's counter.
struct Counter {
    arrivals: Arc<Mutex<Arrivals>>,
    stream: std::net::TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Counter {
    fn start(port: u16, count: fn(&str, &[u8]) -> usize) -> Self {
        use rumqttc::{Connect, Packet, QoS, Subscribe};
        use std::io::{Read, Write};
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut connect = Connect::new(format!("uplink-counter-{}", now_ms()));
        connect.keep_alive = 0;
        let mut out = bytes::BytesMut::new();
        Packet::Connect(connect).write(&mut out, 1 << 10).unwrap();
        let mut sub = Subscribe::new("#", QoS::AtMostOnce);
        sub.pkid = 1;
        Packet::Subscribe(sub).write(&mut out, 1 << 10).unwrap();
        stream.write_all(&out).unwrap();
        let (a, mut reader) = (arrivals.clone(), stream.try_clone().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut buf = bytes::BytesMut::with_capacity(1 << 17);
            let mut chunk = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                let at = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                let mut g = a.lock().unwrap();
                while let Ok(packet) = Packet::read(&mut buf, 1 << 20) {
                    match packet {
                        Packet::SubAck(_) => {
                            let _ = tx.send(());
                        }
                        Packet::Publish(p) if !p.topic.starts_with("$SYS") => {
                            g.values += count(&p.topic, &p.payload);
                            g.first.get_or_insert(at);
                            g.last = Some(at);
                        }
                        _ => {}
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            arrivals,
            stream,
            thread: Some(thread),
        }
    }

    fn values(&self) -> usize {
        self.arrivals.lock().unwrap().values
    }

    async fn wait(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.values() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Values per second between the first and the last arrival.
    fn rate(&self) -> f64 {
        let g = self.arrivals.lock().unwrap();
        match (g.first, g.last) {
            (Some(a), Some(b)) if b > a => g.values as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The broker end of one case: the port the publisher connects to and the device columns.
struct Link<'a> {
    tls: Option<&'a TestCerts>,
    broker_port: u16,
}

/// One case's device `alias` with `signals` signals, connected through a new counting
/// proxy: the proxy and the config file.
fn setup(
    dir: &Path,
    redis_url: &str,
    alias: &str,
    signals: usize,
    opt: &UplinkOption,
    link: &Link<'_>,
) -> (CountingProxy, std::path::PathBuf) {
    let proxy = CountingProxy::start(link.broker_port);
    let port = proxy.port();
    let mut device = json!({"name": alias, "device_alias": alias, "protocol": "mqtt", "ip": "127.0.0.1",
        "port": port, "mqtt_qos": 1, "enable_threshold": 0, "client_id": alias});
    let d = device.as_object_mut().unwrap();
    d.extend(opt.columns.as_object().unwrap().clone());
    if let Some(certs) = link.tls {
        d.insert("auth".into(), json!("tls"));
        d.insert("ca_certificate".into(), json!(certs.ca_cert));
    }
    let mut rows = Vec::with_capacity(2 * signals);
    for i in 0..signals {
        rows.push(json!({"signal_name": format!("U{i}"), "device_alias": "rtu1", "signal_alias": format!("ua{i}"),
            "info_address": 100 + i, "type_id": "M_ME_NC_1"}));
        rows.push(json!({"signal_name": format!("M{i}"), "device_alias": alias, "signal_alias": format!("m{i}"),
            "source_device_alias": "rtu1", "source_signal_alias": format!("ua{i}")}));
    }
    let rtu = json!({"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master",
        "ip": "127.0.0.1", "port": 2404, "asdu_address": 1});
    let path = dir.join(format!("{alias}.json"));
    std::fs::write(
        &path,
        json!({"redis_url": redis_url, "devices": [rtu, device], "signals": rows}).to_string(),
    )
    .unwrap();
    (proxy, path)
}

/// 100 signals at 1 change/s each for `live_secs`: one value every 10 ms, round robin.
async fn live_case(
    bin: &Path,
    dir: &Path,
    redis: &RedisServer,
    plain_port: u16,
    opt: &UplinkOption,
    link: &Link<'_>,
    alias: &str,
) -> Bytes {
    let (proxy, cfg) = setup(dir, &redis.url(), alias, LIVE_SIGNALS, opt, link);
    let counter = Counter::start(plain_port, opt.count);
    let log = dir.join(format!("{alias}.log"));
    let p = start_publisher(bin, &cfg, &redis.url(), &log);
    wait_log(&log, "forwarding live values").await;
    // The snapshot (held up to batch_ms in a batch) goes out before counting starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (up0, down0, got0) = (proxy.up(), proxy.down(), counter.values());
    let mut w = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let n = LIVE_SIGNALS * live_secs() as usize;
    let start = Instant::now();
    let per_value = Duration::from_secs(1) / LIVE_SIGNALS as u32;
    for i in 0..n {
        let due = start + per_value * i as u32;
        tokio::time::sleep_until(due.into()).await;
        w.write_batch(&[(key(i, LIVE_SIGNALS), measured(i, now_ms()))])
            .await
            .unwrap();
    }
    let (b, _) = collect(&counter, &proxy, (up0, down0, got0), n, opt.name).await;
    drop(p);
    b
}

/// Waits until `n` more values than `got0` arrived (30 s at most after the last one), then
/// for the last PUBACKs: the bytes through `proxy` since `(up0, down0)` and the arrival rate.
async fn collect(
    counter: &Counter,
    proxy: &CountingProxy,
    (up0, down0, got0): (u64, u64, usize),
    n: usize,
    what: &str,
) -> (Bytes, f64) {
    let mut seen = counter.values();
    while !counter.wait(got0 + n, Duration::from_secs(30)).await {
        if counter.values() == seen {
            println!(
                "  uplink {what}: only {} of {n} values arrived",
                counter.values() - got0
            );
            break;
        }
        seen = counter.values();
    }
    let rate = counter.rate();
    tokio::time::sleep(Duration::from_millis(300)).await; // the last PUBACKs
    let b = Bytes {
        up: proxy.up() - up0,
        down: proxy.down() - down0,
        values: counter.values() - got0,
    };
    (b, rate)
}

/// The drain of a 200,000-value backlog over 10,000 signals: bytes, arrival rate, CPU.
async fn drain_case(
    bin: &Path,
    dir: &Path,
    redis: &RedisServer,
    plain_port: u16,
    opt: &UplinkOption,
    link: &Link<'_>,
    alias: &str,
) -> (Bytes, f64, f64) {
    let (proxy, cfg) = setup(dir, &redis.url(), alias, DRAIN_SIGNALS, opt, link);
    // The first start creates the consumer group; its CPU up to "live" is the cost of
    // loading the config, subtracted below. Then the backlog is written while it is down.
    let log = dir.join(format!("{alias}.log"));
    let mut p = start_publisher(bin, &cfg, &redis.url(), &log);
    wait_log(&log, "forwarding live values").await;
    let startup_ticks = cpu_ticks(p.pid());
    p.kill();
    let mut w = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let ts = now_ms();
    let backlog: Vec<(TagKey, TagValue)> = (0..DRAIN_VALUES)
        .map(|i| (key(i, DRAIN_SIGNALS), measured(i, ts + (i / 100) as i64)))
        .collect();
    for chunk in backlog.chunks(1000) {
        w.write_batch(chunk).await.unwrap();
    }
    let counter = Counter::start(plain_port, opt.count);
    let (up0, down0) = (proxy.up(), proxy.down());
    let log2 = dir.join(format!("{alias}-2.log"));
    let p = start_publisher(bin, &cfg, &redis.url(), &log2);
    let (b, rate) = collect(&counter, &proxy, (up0, down0, 0), DRAIN_VALUES, opt.name).await;
    let ticks = cpu_ticks(p.pid()).saturating_sub(startup_ticks);
    let cpu_us = ticks as f64 * 10_000.0 / DRAIN_VALUES as f64;
    drop(p);
    (b, rate, cpu_us)
}

/// Runs every option, plain and TLS, live and drain; prints the table and returns the
/// `key value` lines for `BENCH_OUT`.
pub async fn run(bin: &Path, dir: &Path, redis: &RedisServer) -> String {
    let certs = TestCerts::generate();
    let broker = MosquittoBuilder::new()
        .listener(Listener::Tcp)
        .listener(Listener::Tls(certs.server_files(false)))
        .listener_line(&format!("max_topic_alias {BROKER_ALIASES}"))
        .config_line("max_queued_messages 0")
        .start();
    let (plain, tls) = (broker.listener_port(0), broker.listener_port(1));
    let opts = options();
    let mut rows: Vec<Row> = Vec::new();
    let mut kv = String::new();
    println!(
        "uplink: QoS 1, {LIVE_SIGNALS} signals x 1 change/s for {} s; a {DRAIN_VALUES}-value backlog over {DRAIN_SIGNALS} signals; broker max_topic_alias {BROKER_ALIASES}",
        live_secs()
    );
    for (n, opt) in opts.iter().enumerate() {
        let mut row = Row::default();
        for (t, link) in [
            Link {
                tls: None,
                broker_port: plain,
            },
            Link {
                tls: Some(&certs),
                broker_port: tls,
            },
        ]
        .iter()
        .enumerate()
        {
            let live = live_case(bin, dir, redis, plain, opt, link, &format!("live{n}t{t}")).await;
            let (drain, rate, cpu) =
                drain_case(bin, dir, redis, plain, opt, link, &format!("drain{n}t{t}")).await;
            println!(
                "  {} {}: live {:.1} B/value up, {:.1} up+down ({} values); drain {:.1} up, {:.1} up+down, {rate:.0} values/s, {cpu:.2} us CPU/value",
                opt.name,
                if t == 0 { "tcp" } else { "tls" },
                live.up_per_value(),
                live.both_per_value(),
                live.values,
                drain.up_per_value(),
                drain.both_per_value()
            );
            row.live[t] = live;
            row.drain[t] = drain;
            row.rate[t] = rate;
            row.cpu_us[t] = cpu;
        }
        let id = opt.name.replace([' ', '+'], "");
        for (k, v) in [
            ("live_up", row.live[0].up_per_value()),
            ("live_both", row.live[0].both_per_value()),
            ("live_tls_both", row.live[1].both_per_value()),
            ("drain_up", row.drain[0].up_per_value()),
            ("drain_both", row.drain[0].both_per_value()),
            ("drain_tls_both", row.drain[1].both_per_value()),
            ("drain_rate", row.rate[0]),
            ("drain_tls_rate", row.rate[1]),
            ("cpu_us", row.cpu_us[0]),
        ] {
            kv.push_str(&format!("uplink.{id}.{k} {v:.2}\n"));
        }
        rows.push(row);
    }
    println!("\nBytes per value on the uplink (QoS 1; MQTT = TCP payload over plain TCP, up = gateway to broker, both = incl. PUBACKs etc.):\n");
    println!("| option | 100 signals: MQTT up | MQTT both | TLS both | drain: MQTT up | MQTT both | TLS both | drain values/s | TLS values/s | CPU us/value |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (opt, r) in opts.iter().zip(&rows) {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} |",
            opt.name,
            r.live[0].up_per_value(),
            r.live[0].both_per_value(),
            r.live[1].both_per_value(),
            r.drain[0].up_per_value(),
            r.drain[0].both_per_value(),
            r.drain[1].both_per_value(),
            r.rate[0],
            r.rate[1],
            r.cpu_us[0]
        );
    }
    kv
}
