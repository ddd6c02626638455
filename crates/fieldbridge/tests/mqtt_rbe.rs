//! End-to-end tests of report by exception (`deadband`, `deadband_percent`,
//! `max_interval_s`) and of MQTT 3.1 over TCP and over WebSocket (`ws_subprotocol`):
//! the real `fieldbridge mqtt-client` against a real redis-server and mosquitto, with a
//! rumqttc subscriber in the test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};
use testrig::{Listener, MosquittoBuilder, RedisServer};

/// Every message a subscriber got: (topic, payload, retain).
struct Sub {
    msgs: Arc<Mutex<Vec<(String, String, bool)>>>,
    _thread: testrig::SubscriberThread,
}

impl Sub {
    fn start(port: u16, client_id: &str) -> Self {
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        let thread = testrig::SubscriberThread::start(port, "#", 1, client_id, None, move |p| {
            m.lock().unwrap().push((
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.retain,
            ));
        });
        Self {
            msgs,
            _thread: thread,
        }
    }

    /// The payloads received on `topic`, in order.
    fn on(&self, topic: &str) -> Vec<String> {
        let msgs = self.msgs.lock().unwrap();
        msgs.iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, p, _)| p.clone())
            .collect()
    }

    fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&Sub) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}",
                self.msgs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A config with field device `rtu1` (signals `s0..s{n}`) and the MQTT devices; `mqtt`
/// rows are (device, source signal, topic, extra cells).
fn write_config(
    dir: &Path,
    redis_url: &str,
    n: usize,
    devices: Vec<J>,
    mqtt: Vec<(&str, &str, &str, J)>,
) -> PathBuf {
    let mut all = vec![json!({"name": "RTU", "device_alias": "rtu1",
        "protocol": "iec104-master", "ip": "127.0.0.1", "port": 2404, "asdu_address": 1})];
    all.extend(devices);
    let mut signals: Vec<J> = (0..n)
        .map(|i| {
            json!({"signal_name": format!("S{i}"), "device_alias": "rtu1",
            "signal_alias": format!("s{i}"), "info_address": 100 + i, "type_id": "M_ME_NC_1"})
        })
        .collect();
    for (i, (dev, sig, topic, extra)) in mqtt.into_iter().enumerate() {
        let mut row = json!({"signal_name": format!("up {i}"), "device_alias": dev,
            "signal_alias": format!("u{i}"), "source_device_alias": "rtu1",
            "source_signal_alias": sig, "topic": topic});
        if let (Some(obj), J::Object(e)) = (row.as_object_mut(), extra) {
            obj.extend(e);
        }
        signals.push(row);
    }
    let cfg = json!({"redis_url": redis_url, "devices": all, "signals": signals});
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    path
}

fn mqtt_device(alias: &str, port: u16, extra: J) -> J {
    let mut d = json!({"name": alias, "device_alias": alias, "protocol": "mqtt",
        "ip": "127.0.0.1", "port": port, "client_id": format!("fb-{alias}"),
        "enable_threshold": 0, "keepalive_s": 10, "mqtt_qos": 1});
    if let (Some(obj), J::Object(e)) = (d.as_object_mut(), extra) {
        obj.extend(e);
    }
    d
}

fn start_publisher(
    config: &Path,
    redis_url: &str,
    dir: &Path,
    devices: usize,
) -> testrig::AppletProcess {
    let p = testrig::AppletProcess::start(
        Path::new(env!("CARGO_BIN_EXE_fieldbridge")),
        "mqtt-client",
        config,
        redis_url,
        dir.join("pub.log"),
    );
    p.wait_log("forwarding live values", devices, Duration::from_secs(15));
    p
}

/// Writes `(signal, value)` through the tag bus, in order.
fn write(redis_url: &str, values: &[(&str, &str)]) {
    common::bus::write_rtu1(redis_url, values);
}

/// The publisher's counters of `device` as `fieldbridge status` reads them (the stats hash).
fn counters(redis_url: &str, device: &str) -> Option<tagbus::stats::Counters> {
    let stats = tagbus::stats::read_publisher_stats(redis_url, Duration::from_secs(2)).ok()??;
    stats.devices.get(&device.parse().ok()?).copied()
}

#[test]
fn deadband_heartbeat_and_flag_changes() {
    let redis = RedisServer::start();
    let broker = MosquittoBuilder::new().start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &redis.url(),
        4,
        vec![mqtt_device("rbe", broker.port(), json!({"mqtt_retain": 1}))],
        vec![
            ("rbe", "s0", "rbe/abs", json!({"deadband": 0.5})),
            ("rbe", "s1", "rbe/pct", json!({"deadband_percent": 10})),
            ("rbe", "s2", "rbe/hb", json!({"max_interval_s": 2})),
            (
                "rbe",
                "s3",
                "rbe/held",
                json!({"deadband": 1, "max_interval_s": 2}),
            ),
        ],
    );
    let sub = Sub::start(broker.port(), "sub-rbe");
    let mut p = start_publisher(&cfg, &redis.url(), dir.path(), 1);
    let t0 = Instant::now();
    write(
        &redis.url(),
        &[
            ("s0", "10,1,"),     // first: sent
            ("s0", "10.3,2,"),   // inside the band: held back
            ("s0", "10.6,3,"),   // 0.6 from 10: sent
            ("s0", "10.6,4,nt"), // a flag change: sent
            ("s0", "10.7,5,nt"), // inside the band, same flags: held back
            ("s0", "20,6,"),     // sent
            ("s1", "100,1,"),    // sent
            ("s1", "109,2,"),    // 9 <= 10% of 100: held back
            ("s1", "111,3,"),    // 11 > 10: sent
            ("s1", "0,4,"),      // sent
            ("s1", "0.5,5,"),    // any change from 0 is sent
            ("s2", "5,1,"),      // sent, then re-sent unchanged every 2 s
            ("s3", "1,1,"),      // sent
            ("s3", "1.5,2,"),    // held back, and sent by the heartbeat
        ],
    );
    sub.wait_for("two heartbeats", Duration::from_secs(15), |s| {
        s.on("rbe/hb").len() >= 3 && s.on("rbe/held").len() >= 2 && s.on("rbe/pct").len() >= 4
    });
    let waited = t0.elapsed();
    assert_eq!(
        sub.on("rbe/abs"),
        ["10,1,1", "10.6,3,1", "10.6,4,0", "20,6,1"]
    );
    assert_eq!(
        sub.on("rbe/pct"),
        ["100,1,1", "111,3,1", "0,4,1", "0.5,5,1"]
    );
    let hb = sub.on("rbe/hb");
    assert!(hb.iter().all(|p| p == "5,1,1"), "{hb:?}");
    assert!(
        waited >= Duration::from_secs(4),
        "two heartbeats 2 s apart came after {waited:?}"
    );
    // The held-back 1.5 goes out with the heartbeat, as received (its own timestamp).
    assert_eq!(sub.on("rbe/held")[..2], ["1,1,1", "1.5,2,1"]);

    // Counted where `fieldbridge status` reads it: 10.3, 10.7, 109 and 1.5.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = counters(&redis.url(), "rbe");
        if c.is_some_and(|c| c.suppressed_deadband == 4) {
            break;
        }
        assert!(Instant::now() < deadline, "suppressed_deadband: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The broker's retained values are the last ones sent, never an older one.
    let late = Sub::start(broker.port(), "sub-late");
    late.wait_for("retained", Duration::from_secs(5), |s| {
        s.on("rbe/abs").len() == 1 && s.on("rbe/pct").len() == 1
    });
    assert_eq!(late.on("rbe/abs"), ["20,6,1"]);
    assert_eq!(late.on("rbe/pct"), ["0.5,5,1"]);
    drop(late);

    // After a restart the first value of every topic goes out again (the snapshot), and the
    // band is measured from it: 20.4 is held back, 21 is sent.
    p.kill();
    let before = sub.on("rbe/abs").len();
    let _p = start_publisher(&cfg, &redis.url(), dir.path(), 2);
    sub.wait_for("the snapshot", Duration::from_secs(10), |s| {
        s.on("rbe/abs").len() > before
    });
    write(&redis.url(), &[("s0", "20.4,7,"), ("s0", "21,8,")]);
    sub.wait_for("21", Duration::from_secs(10), |s| {
        s.on("rbe/abs").last().is_some_and(|p| p == "21,8,1")
    });
    assert_eq!(sub.on("rbe/abs")[before..], ["20,6,1", "21,8,1"]);
}

#[test]
fn mqtt31_over_tcp_and_websocket_with_each_subprotocol() {
    let redis = RedisServer::start();
    // `user root`: run as root, mosquitto would drop to user `mosquitto`, which cannot write
    // its log in the test's directory (the option does nothing when not run as root).
    let broker = MosquittoBuilder::new()
        .listener(Listener::Tcp)
        .listener(Listener::WebSocket)
        .config_line("user root")
        .start();
    let ws = broker.listener_port(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &redis.url(),
        1,
        vec![
            // the natural pairs: 3.1 with mqttv3.1 (the default with 3.1), 3.1.1 with mqtt
            mqtt_device(
                "v31ws",
                ws,
                json!({"transport": "ws", "mqtt_version": "3.1"}),
            ),
            mqtt_device("v31tcp", broker.port(), json!({"mqtt_version": "3.1"})),
            // the mixed pairs, which mosquitto accepts as well
            mqtt_device(
                "v31mqtt",
                ws,
                json!({"transport": "ws", "mqtt_version": "3.1", "ws_subprotocol": "mqtt"}),
            ),
            mqtt_device(
                "v311v31",
                ws,
                json!({"transport": "ws", "ws_subprotocol": "mqttv3.1"}),
            ),
        ],
        ["v31ws", "v31tcp", "v31mqtt", "v311v31"]
            .into_iter()
            .map(|d| (d, "s0", d, json!({})))
            .collect(),
    );
    let sub = Sub::start(broker.port(), "sub-v31");
    let _p = start_publisher(&cfg, &redis.url(), dir.path(), 4);
    write(&redis.url(), &[("s0", "7.5,1732280000000,")]);
    let topics = ["v31ws", "v31tcp", "v31mqtt", "v311v31"];
    sub.wait_for("every device", Duration::from_secs(10), |s| {
        topics.iter().all(|t| !s.on(t).is_empty())
    });
    // Delivered: the broker answered the subprotocol each asked for (rumqttc refuses any
    // other answer, and mosquitto echoes the client's choice).
    for t in topics {
        assert_eq!(sub.on(t), ["7.5,1732280000000,1"], "{t}");
    }
    // mosquitto names the protocol each client connected with: p1 is MQTT 3.1 (MQIsdp), p2
    // is 3.1.1.
    let log = broker.log();
    for (client, protocol) in [
        ("fb-v31ws", "p1"),
        ("fb-v31tcp", "p1"),
        ("fb-v31mqtt", "p1"),
        ("fb-v311v31", "p2"),
    ] {
        let needle = format!("as {client} ({protocol},");
        assert!(log.contains(&needle), "{needle} in\n{log}");
    }
}
