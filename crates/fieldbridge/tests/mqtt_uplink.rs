//! End-to-end tests of the uplink options of `fieldbridge mqtt-client` (MQTT 5 topic aliases,
//! `json_batch` / `csv_batch`): the real binary against a real redis-server and mosquitto,
//! counting the bytes on the wire with a loopback proxy.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use tagbus::{TagKey, TagValue};
use testrig::{CountingProxy, MosquittoBuilder, RedisServer};

/// Signals of the field device `rtu1` in every test.
const SIGNALS: usize = 10;

/// A config: `rtu1` with `s0..s9`, and per MQTT device (alias, port, extra columns, topic
/// prefix) one MQTT signal per source signal on `<prefix>/s<i>`.
fn config(dir: &Path, redis_url: &str, devices: &[(&str, u16, J, &str)]) -> PathBuf {
    let mut all = vec![
        json!({"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master",
        "ip": "127.0.0.1", "port": 2404, "asdu_address": 1}),
    ];
    let mut signals: Vec<J> = (0..SIGNALS)
        .map(|i| json!({"signal_name": format!("S{i}"), "device_alias": "rtu1", "signal_alias": format!("s{i}"),
            "info_address": 100 + i, "type_id": "M_ME_NC_1"}))
        .collect();
    for (alias, port, extra, prefix) in devices {
        let mut d = json!({"name": alias, "device_alias": alias, "protocol": "mqtt", "ip": "127.0.0.1",
            "port": port, "client_id": format!("fb-{alias}"), "enable_threshold": 0, "mqtt_qos": 1});
        d.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        all.push(d);
        for i in 0..SIGNALS {
            signals.push(
                json!({"signal_name": format!("{alias} {i}"), "device_alias": alias,
                "signal_alias": format!("u{i}"), "source_device_alias": "rtu1",
                "source_signal_alias": format!("s{i}"), "topic": format!("{prefix}/s{i}")}),
            );
        }
    }
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        json!({"redis_url": redis_url, "devices": all, "signals": signals}).to_string(),
    )
    .unwrap();
    path
}

fn start_publisher(cfg: &Path, redis_url: &str, dir: &Path) -> testrig::AppletProcess {
    testrig::AppletProcess::start(
        Path::new(env!("CARGO_BIN_EXE_fieldbridge")),
        "mqtt-client",
        cfg,
        redis_url,
        dir.join("pub.log"),
    )
}

/// Writes value `i` (timestamp `1700000000000 + i`, flags `iv` for every 7th) to signal
/// `s<i % 10>`, for `i` in `range`.
fn write_values(redis_url: &str, range: std::ops::Range<usize>) {
    let batch: Vec<(TagKey, TagValue)> = range
        .map(|i| {
            let flags = if i.is_multiple_of(7) { "iv" } else { "" };
            (
                format!("tag/rtu1/s{}/in", i % SIGNALS).parse().unwrap(),
                format!("{i},{},{flags}", 1_700_000_000_000u64 + i as u64)
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    common::bus::write_tags(redis_url, &batch);
}

/// One value as a subscriber decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    topic: String,
    value: usize,
    ts: u64,
    quality: u8,
}

impl Got {
    /// What [`write_values`] wrote as value `i` on `<prefix>/s<i % 10>`.
    fn expected(prefix: &str, i: usize) -> Self {
        Self {
            topic: format!("{prefix}/s{}", i % SIGNALS),
            value: i,
            ts: 1_700_000_000_000 + i as u64,
            quality: u8::from(!i.is_multiple_of(7)),
        }
    }
}

/// The values of one message: a `json_batch` array, `csv_batch` lines, or a plain CSV
/// payload on the value's own topic.
fn decode(topic: &str, payload: &[u8]) -> Vec<Got> {
    let text = std::str::from_utf8(payload).unwrap();
    if text.starts_with('[') {
        let items: Vec<J> = serde_json::from_str(text).unwrap();
        return items
            .iter()
            .map(|o| Got {
                topic: o["topic"].as_str().unwrap().to_owned(),
                value: o["value"].as_u64().unwrap() as usize,
                ts: o["ts"].as_u64().unwrap(),
                quality: o["quality"].as_u64().unwrap() as u8,
            })
            .collect();
    }
    let lines: Vec<&str> = text.lines().collect();
    if text.ends_with('\n') {
        // csv_batch: the topic is everything before the last three commas
        return lines
            .iter()
            .map(|l| {
                let mut f = l.rsplitn(4, ',');
                let (q, ts, v, t) = (f.next(), f.next(), f.next(), f.next());
                Got {
                    topic: t.unwrap().to_owned(),
                    value: v.unwrap().parse().unwrap(),
                    ts: ts.unwrap().parse().unwrap(),
                    quality: q.unwrap().parse().unwrap(),
                }
            })
            .collect();
    }
    let f: Vec<&str> = text.split(',').collect();
    vec![Got {
        topic: topic.to_owned(),
        value: f[0].parse().unwrap(),
        ts: f[1].parse().unwrap(),
        quality: f[2].parse().unwrap(),
    }]
}

/// Messages as (topic, payload).
type Messages = Vec<(String, Vec<u8>)>;

/// An MQTT 5 subscriber in a thread (rumqttc v5, reconnecting, re-subscribing on every
/// CONNACK), keeping every message as (topic, payload).
struct Sub5 {
    msgs: Arc<Mutex<Messages>>,
    subacks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sub5 {
    fn start(port: u16, filter: &str, id: &str) -> Self {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{Client, Event, MqttOptions};
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subacks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, st) = (msgs.clone(), subacks.clone(), stop.clone());
        let filter = filter.to_owned();
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(Some(1 << 20));
        let thread = std::thread::spawn(move || {
            let (client, mut conn) = Client::new(o, 100);
            while !st.load(Ordering::Relaxed) {
                match conn.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => m.lock().unwrap().push((
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        p.payload.to_vec(),
                    )),
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        let sub = Self {
            msgs,
            subacks,
            stop,
            thread: Some(thread),
        };
        sub.wait_subscribed(1);
        sub
    }

    fn wait_subscribed(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.subacks.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "subscriber did not subscribe");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the messages decode to at least `n` values; returns every message.
    fn wait_values(&self, n: usize, timeout: Duration) -> Messages {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.msgs.lock().unwrap().clone();
            let got: usize = msgs.iter().map(|(t, p)| decode(t, p).len()).sum();
            if got >= n {
                return msgs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out: {got} of {n} values in {} messages",
                msgs.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sub5 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The values of the messages on topics under `prefix` (or, for batches, on `prefix`).
fn values_under(msgs: &[(String, Vec<u8>)], prefix: &str) -> Vec<Got> {
    msgs.iter()
        .filter(|(t, _)| t.starts_with(prefix))
        .flat_map(|(t, p)| decode(t, p))
        .collect()
}

#[test]
fn topic_aliases_cut_the_bytes_a_v5_subscriber_sees_full_topics_and_a_restart_sets_them_again() {
    let redis = RedisServer::start();
    // 10 signal topics, 4 aliases: the first 4 topics published get one, the others not.
    let mut broker = MosquittoBuilder::new()
        .listener_line("max_topic_alias 4")
        .start();
    let (aliased, plain) = (
        CountingProxy::start(broker.port()),
        CountingProxy::start(broker.port()),
    );
    let dir = tempfile::tempdir().unwrap();
    let v5 = |alias: bool| json!({"mqtt_version": "5", "topic_alias": u8::from(alias)});
    let cfg = config(
        dir.path(),
        &redis.url(),
        &[
            ("al", aliased.port(), v5(true), "al/site/feeder"),
            ("pl", plain.port(), v5(false), "pl/site/feeder"),
        ],
    );
    let sub = Sub5::start(broker.port(), "+/site/#", "sub5-alias");
    let p = start_publisher(&cfg, &redis.url(), dir.path());
    p.wait_log("forwarding live values", 2, Duration::from_secs(15));
    assert!(p.log().contains("aliases=4"), "{}", p.log());
    let (a0, p0) = (aliased.up(), plain.up());
    let n = 200;
    write_values(&redis.url(), 0..n);
    let msgs = sub.wait_values(2 * n, Duration::from_secs(20));
    let expected: Vec<Got> = (0..n).map(|i| Got::expected("al/site/feeder", i)).collect();
    let mut got = values_under(&msgs, "al/");
    got.sort_by_key(|g| g.value);
    assert_eq!(got, expected, "every topic arrives in full");
    let (a1, p1) = (aliased.up() - a0, plain.up() - p0);
    // An aliased publish carries no topic (17 bytes) but a 3-byte property: 14 bytes less
    // for each of the 4 x 20 publishes on an aliased topic but the 4 that set the aliases,
    // which cost 3 bytes more. The other 6 topics cost the same (a PINGREQ is 2 bytes).
    println!("bytes up for {n} values: aliased {a1}, plain {p1}");
    let saved = (4 * 19) * (17 - 3) - 4 * 3;
    assert!(
        (saved - 4..=saved + 4).contains(&(p1 as i64 - a1 as i64)),
        "aliased {a1} bytes, plain {p1}: {saved} saved expected"
    );

    // A broker restart: a new connection, whose publishes set their aliases again (a
    // broker that got an alias it does not know would close the connection).
    broker.restart();
    sub.wait_subscribed(2);
    p.wait_log("connected to the broker", 4, Duration::from_secs(30));
    write_values(&redis.url(), n..2 * n);
    // Counting values is not enough here: the reconnect also sends the snapshot again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = sub.msgs.lock().unwrap().clone();
        let got: BTreeSet<usize> = values_under(&msgs, "al/")
            .into_iter()
            .filter(|g| *g == Got::expected("al/site/feeder", g.value))
            .map(|g| g.value)
            .collect();
        if (n..2 * n).all(|i| got.contains(&i)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "values after the restart arrive with their full topics: {} of {n}",
            (n..2 * n).filter(|i| got.contains(i)).count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !broker.log().to_lowercase().contains("protocol error"),
        "{}",
        broker.log()
    );
}

#[test]
fn json_and_csv_batches_carry_every_value_on_the_batch_topic() {
    let redis = RedisServer::start();
    let broker = MosquittoBuilder::new().start();
    let dir = tempfile::tempdir().unwrap();
    let batch = |format: &str, topic: &str| json!({"payload_format": format, "batch_topic": topic, "batch_ms": 300, "batch_max": 50});
    let cfg = config(
        dir.path(),
        &redis.url(),
        &[
            (
                "js",
                broker.port(),
                batch("json_batch", "up/json"),
                "plant/js",
            ),
            (
                "cs",
                broker.port(),
                batch("csv_batch", "up/csv"),
                "plant/cs",
            ),
        ],
    );
    let sub = Sub5::start(broker.port(), "up/#", "sub5-batch");
    let p = start_publisher(&cfg, &redis.url(), dir.path());
    p.wait_log("forwarding live values", 2, Duration::from_secs(15));
    let n = 120;
    write_values(&redis.url(), 0..n);
    let msgs = sub.wait_values(2 * n, Duration::from_secs(20));
    for (batch_topic, prefix) in [("up/json", "plant/js"), ("up/csv", "plant/cs")] {
        let mine: Vec<&(String, Vec<u8>)> = msgs.iter().filter(|(t, _)| t == batch_topic).collect();
        let sizes: Vec<usize> = mine.iter().map(|(t, p)| decode(t, p).len()).collect();
        println!("{batch_topic}: {} messages of {sizes:?} values", mine.len());
        assert!(sizes.iter().all(|s| (1..=50).contains(s)), "{sizes:?}");
        assert!(mine.len() >= 3 && mine.len() < 20, "{sizes:?}");
        let mut got = values_under(&msgs, batch_topic);
        got.sort_by_key(|g| g.value);
        let expected: Vec<Got> = (0..n).map(|i| Got::expected(prefix, i)).collect();
        assert_eq!(got, expected);
    }
    // The exact forms (docs/payloads.md).
    let first = |t: &str| {
        let (_, p) = msgs.iter().find(|(topic, _)| topic == t).unwrap();
        String::from_utf8(p.clone()).unwrap()
    };
    assert!(
        first("up/json").starts_with(
            r#"[{"topic":"plant/js/s0","value":0,"ts":1700000000000,"quality":0},{"topic":"plant/js/s1","value":1,"ts":1700000000001,"quality":1},"#
        ),
        "{}",
        first("up/json")
    );
    assert!(
        first("up/csv")
            .starts_with("plant/cs/s0,0,1700000000000,0\nplant/cs/s1,1,1700000000001,1\n"),
        "{}",
        first("up/csv")
    );
}

/// The payloads inflated by Python's `zlib.decompress` (CPython's zlib: a decoder
/// independent of the publisher's), in order.
fn inflate_with_python(payloads: &[&[u8]]) -> Vec<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = "import sys, zlib\nfor line in sys.stdin:\n    print(zlib.decompress(bytes.fromhex(line.strip())).hex())\n";
    let mut child = Command::new(testrig::peer_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for p in payloads {
        input.extend(p.iter().map(|b| format!("{b:02x}")));
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python zlib: {out:?}");
    let hex_byte = |h: &[u8]| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().chunks(2).map(hex_byte).collect())
        .collect()
}

#[test]
fn zlib_batches_inflate_with_pythons_zlib_to_the_same_batches_in_fewer_bytes() {
    let redis = RedisServer::start();
    let broker = MosquittoBuilder::new().start();
    let dir = tempfile::tempdir().unwrap();
    let batch = |format: &str, topic: &str, zlib: bool| {
        json!({"payload_format": format, "batch_topic": topic, "batch_ms": 500, "batch_max": 100,
            "batch_compression": if zlib { "zlib" } else { "none" }})
    };
    let cfg = config(
        dir.path(),
        &redis.url(),
        &[
            (
                "zj",
                broker.port(),
                batch("json_batch", "z/json", true),
                "plant/zj",
            ),
            (
                "zc",
                broker.port(),
                batch("csv_batch", "z/csv", true),
                "plant/zc",
            ),
            (
                "pc",
                broker.port(),
                batch("csv_batch", "p/csv", false),
                "plant/zc",
            ),
        ],
    );
    let sub = Sub5::start(broker.port(), "z/#", "sub5-zlib");
    let plain = Sub5::start(broker.port(), "p/#", "sub5-plain");
    let p = start_publisher(&cfg, &redis.url(), dir.path());
    p.wait_log("forwarding live values", 3, Duration::from_secs(15));
    let n = 400;
    write_values(&redis.url(), 0..n);
    let plain_msgs = plain.wait_values(n, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (msgs, inflated) = loop {
        let msgs = sub.msgs.lock().unwrap().clone();
        let payloads: Vec<&[u8]> = msgs.iter().map(|(_, p)| p.as_slice()).collect();
        let inflated = inflate_with_python(&payloads);
        let got: usize = msgs
            .iter()
            .zip(&inflated)
            .map(|((t, _), p)| decode(t, p).len())
            .sum();
        if got >= 2 * n {
            break (msgs, inflated);
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {got} of {} values",
            2 * n
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let inflated_msgs: Messages = msgs
        .iter()
        .zip(inflated)
        .map(|((t, _), p)| (t.clone(), p))
        .collect();
    for (topic, prefix) in [("z/json", "plant/zj"), ("z/csv", "plant/zc")] {
        let mut got = values_under(&inflated_msgs, topic);
        got.sort_by_key(|g| g.value);
        let expected: Vec<Got> = (0..n).map(|i| Got::expected(prefix, i)).collect();
        assert_eq!(got, expected, "{topic}");
    }
    // The same lines as the uncompressed device's, in a fraction of the bytes.
    let bytes = |m: &Messages, topic: &str| -> usize {
        m.iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.len())
            .sum()
    };
    let (zlib, csv) = (bytes(&msgs, "z/csv"), bytes(&plain_msgs, "p/csv"));
    let lines = |m: &Messages, topic: &str| -> BTreeSet<String> {
        m.iter()
            .filter(|(t, _)| t == topic)
            .flat_map(|(_, p)| {
                String::from_utf8(p.clone())
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(lines(&inflated_msgs, "z/csv"), lines(&plain_msgs, "p/csv"));
    println!(
        "{n} values: csv_batch {csv} bytes ({:.1}/value), with zlib {zlib} ({:.1}/value)",
        csv as f64 / n as f64,
        zlib as f64 / n as f64
    );
    assert!(zlib * 3 < csv, "zlib {zlib} bytes, csv_batch {csv}");
}

#[test]
fn a_broker_outage_with_batching_loses_nothing_and_keeps_each_signals_order() {
    let redis = RedisServer::start();
    let mut broker = MosquittoBuilder::new()
        .persistent()
        .config_line("max_queued_messages 0")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &redis.url(),
        &[(
            "js",
            broker.port(),
            json!({"payload_format": "json_batch", "batch_topic": "up/json", "batch_ms": 100, "batch_max": 200}),
            "plant/js",
        )],
    );
    let (sub_seen, sub) = {
        let seen = Arc::new(Mutex::new(Vec::<Got>::new()));
        let s = seen.clone();
        let t = testrig::SubscriberThread::start(
            broker.port(),
            "up/#",
            1,
            "sub-outage",
            None,
            move |p| {
                s.lock().unwrap().extend(decode(&p.topic, &p.payload));
            },
        );
        (seen, t)
    };
    let p = start_publisher(&cfg, &redis.url(), dir.path());
    p.wait_log("forwarding live values", 1, Duration::from_secs(15));
    let total = 20_000;
    write_values(&redis.url(), 0..5_000);
    let wait_distinct = |n: usize, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        loop {
            let distinct: BTreeSet<usize> =
                sub_seen.lock().unwrap().iter().map(|g| g.value).collect();
            if distinct.len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} distinct values arrived",
                distinct.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_distinct(5_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2)); // the subscriber's session is saved
    broker.kill();
    write_values(&redis.url(), 5_000..total);
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    wait_distinct(total, Duration::from_secs(90));
    drop(sub);
    let seen = sub_seen.lock().unwrap().clone();
    let mut first_seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for g in &seen {
        assert_eq!(*g, Got::expected("plant/js", g.value));
        if distinct.insert(g.value) {
            first_seen.entry(g.topic.clone()).or_default().push(g.value);
        }
    }
    println!(
        "{} values received, {} distinct of {total}",
        seen.len(),
        distinct.len()
    );
    assert_eq!(distinct.len(), total);
    for (topic, values) in first_seen {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{topic}: values out of order"
        );
    }
}
