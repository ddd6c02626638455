//! The Sparkplug B edge node end to end: real redis-server, mosquitto and `fieldbridge
//! mqtt-client` with `payload_format: sparkplug`, checked by an independent decoder: a Python
//! host (tests/peers/sparkplug/host.py) that decodes every message with the `protobuf`
//! package from a sparkplug_b.proto written from the specification, compiled at test time by
//! grpcio-tools' bundled protoc. Run with FIELDBRIDGE_PEER_PYTHON=/work/main/.venv/bin/python
//! outside CI (tests/peers/setup-venv.sh installs the packages).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bus::Bus;
use common::peer::LinePeer;
use serde_json::{json, Value as J};
use tagbus::TagValue;
use testrig::{AppletProcess, Mosquitto, MosquittoBuilder, RedisServer};

/// The Python host: every JSON line it printed so far.
struct Host {
    peer: LinePeer,
    seen: Vec<J>,
}

impl Host {
    fn start(port: u16) -> Host {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/sparkplug/host.py");
        let mut host = Host {
            peer: LinePeer::start(&script, &[&port.to_string()]),
            seen: Vec::new(),
        };
        host.wait("the host connected", Duration::from_secs(30), |l| {
            l["connected"] == json!(true)
        });
        host
    }

    fn pump(&mut self) {
        while let Some(line) = self.peer.line(Duration::from_millis(5)) {
            let v: J = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(v.get("error").is_none(), "the decoder failed: {v}");
            self.seen.push(v);
        }
    }

    /// Waits for a line matching `pred` (seen before or new); returns it.
    fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&J) -> bool) -> J {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if let Some(v) = self.seen.iter().find(|v| pred(v)) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; seen:\n{}",
                self.topics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the `n`th message on `topic` (1-based).
    fn nth(&mut self, topic: &str, n: usize, timeout: Duration) -> J {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if let Some(v) = self.on(topic).get(n - 1) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {topic} #{n}; seen:\n{}",
                self.topics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn on(&self, topic: &str) -> Vec<J> {
        self.seen
            .iter()
            .filter(|v| v["topic"] == json!(topic))
            .cloned()
            .collect()
    }

    fn topics(&self) -> String {
        self.seen
            .iter()
            .map(|v| format!("{} seq={}", v["topic"], v["seq"]))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn send(&mut self, line: &str) {
        self.peer.send(line);
        let word = line.split_whitespace().next().unwrap().to_owned();
        self.wait(line, Duration::from_secs(10), |v| v["done"] == json!(word));
        self.seen.retain(|v| v.get("done").is_none());
    }
}

const NBIRTH: &str = "spBv1.0/plant/NBIRTH/gw1";
const NDEATH: &str = "spBv1.0/plant/NDEATH/gw1";
const DBIRTH: &str = "spBv1.0/plant/DBIRTH/gw1/rtu1";
const DDATA: &str = "spBv1.0/plant/DDATA/gw1/rtu1";
const DCMD: &str = "spBv1.0/plant/DCMD/gw1/rtu1";
/// Sparkplug data types of the schema.
const INT64: u64 = 4;
const DOUBLE: u64 = 10;

/// rtu1 with measurands s0..s4 and the setpoint command `sp`; the Sparkplug device `cloud`
/// forwards them as metrics u0..u4 and `setp` (writable).
fn config(dir: &Path, redis_url: &str, port: u16, extra: J) -> PathBuf {
    let mut signals: Vec<J> = (0..5)
        .map(|i| json!({"signal_name": format!("S{i}"), "device_alias": "rtu1", "signal_alias": format!("s{i}"),
            "info_address": 100 + i, "type_id": "M_ME_NC_1"}))
        .collect();
    signals.push(
        json!({"signal_name": "SP", "device_alias": "rtu1", "signal_alias": "sp",
        "info_address": 200, "type_id": "C_SE_NC_1"}),
    );
    signals.extend((0..5).map(|i| json!({"signal_name": format!("up {i}"), "device_alias": "cloud",
        "signal_alias": format!("u{i}"), "source_device_alias": "rtu1", "source_signal_alias": format!("s{i}")})));
    signals.push(
        json!({"signal_name": "up sp", "device_alias": "cloud", "signal_alias": "setp",
        "source_device_alias": "rtu1", "source_signal_alias": "sp", "writable": 1}),
    );
    let mut cloud = json!({"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "127.0.0.1",
        "port": port, "client_id": "fb-sparkplug", "enable_threshold": 0, "keepalive_s": 10,
        "payload_format": "sparkplug", "sparkplug_group_id": "plant", "sparkplug_edge_node_id": "gw1"});
    if let (Some(obj), J::Object(e)) = (cloud.as_object_mut(), extra) {
        obj.extend(e);
    }
    let cfg = json!({"redis_url": redis_url, "devices": [
        {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1", "port": 2404, "asdu_address": 1},
        cloud], "signals": signals});
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    path
}

fn publisher(cfg: &Path, redis: &RedisServer, dir: &Path) -> AppletProcess {
    AppletProcess::start(
        Path::new(env!("CARGO_BIN_EXE_fieldbridge")),
        "mqtt-client",
        cfg,
        &redis.url(),
        dir.join("pub.log"),
    )
}

/// Writes values like a driver (SET + PUBLISH + XADD): (signal of rtu1, CSV value).
fn write(redis: &RedisServer, values: &[(String, String)]) {
    common::bus::write_rtu1(&redis.url(), values);
}

fn metric<'a>(msg: &'a J, name: &str) -> &'a J {
    msg["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == json!(name))
        .unwrap_or_else(|| panic!("no metric {name} in {msg}"))
}

/// (alias, ts, value, historical) of every DATA metric seen on `topic`.
fn data_metrics(host: &Host, topic: &str) -> Vec<(u64, u64, f64, bool)> {
    host.on(topic)
        .iter()
        .flat_map(|m| m["metrics"].as_array().unwrap().clone())
        .map(|m| {
            assert!(
                m["name"].is_null() && m["datatype"].is_null(),
                "DATA carries aliases only: {m}"
            );
            (
                m["alias"].as_u64().unwrap(),
                m["ts"].as_u64().unwrap(),
                m["value"].as_f64().unwrap(),
                m["historical"] == json!(true),
            )
        })
        .collect()
}

fn alias_of(birth: &J, name: &str) -> u64 {
    metric(birth, name)["alias"].as_u64().unwrap()
}

/// The seq of every message the node sent since its last NBIRTH (the host's order).
fn seqs_since_last_birth(host: &Host) -> Vec<u64> {
    let from = host
        .seen
        .iter()
        .rposition(|v| v["topic"] == json!(NBIRTH))
        .unwrap();
    host.seen[from..]
        .iter()
        .filter(|v| {
            v["topic"]
                .as_str()
                .is_some_and(|t| t.starts_with("spBv1.0/plant/"))
        })
        .filter(|v| !v["topic"].as_str().unwrap().contains("DEATH"))
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

fn assert_consecutive(seqs: &[u64]) {
    assert_eq!(seqs.first(), Some(&0), "{seqs:?}");
    for w in seqs.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 256, "seq order: {seqs:?}");
    }
}

/// Once the node's `session`th connection has subscribed: no NBIRTH beyond the `births`
/// seen for 1.5 s, then the host goes online and the next NBIRTH comes; returns it.
fn births_wait_for_the_host(
    host: &mut Host,
    p: &AppletProcess,
    session: usize,
    births: usize,
) -> J {
    let long = Duration::from_secs(40);
    p.wait_log("Sparkplug NCMD/DCMD/STATE subscribed", session, long);
    std::thread::sleep(Duration::from_millis(1500));
    host.pump();
    assert_eq!(
        host.on(NBIRTH).len(),
        births,
        "no birth before the host is online"
    );
    host.send("online scada");
    host.nth(NBIRTH, births + 1, long)
}

fn start_broker() -> Mosquitto {
    MosquittoBuilder::new()
        .config_line("max_queued_messages 0")
        .start()
}

#[test]
fn births_aliases_seq_dcmd_rebirth_and_ndeath_after_sigkill() {
    let redis = RedisServer::start();
    let broker = start_broker();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis.url(), broker.port(), json!({}));
    write(
        &redis,
        &[
            ("s0".into(), "1.5,1700000000000,".into()),
            ("s1".into(), "7,1700000000001,".into()),
            ("s2".into(), "2.25,1700000000002,nt".into()),
        ],
    );
    let mut host = Host::start(broker.port());
    let mut p = publisher(&cfg, &redis, dir.path());
    let long = Duration::from_secs(20);

    let nbirth = host.nth(NBIRTH, 1, long);
    assert_eq!(nbirth["seq"], json!(0));
    assert_eq!(
        metric(&nbirth, "bdSeq")["value"],
        json!(0),
        "first connection ever"
    );
    assert_eq!(
        metric(&nbirth, "Node Control/Rebirth")["value"],
        json!(false)
    );
    let dbirth = host.nth(DBIRTH, 1, long);
    assert_eq!(dbirth["seq"], json!(1));
    let names: Vec<&str> = dbirth["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u0", "u1", "u2", "u3", "u4", "setp"]);
    let aliases: Vec<u64> = names.iter().map(|n| alias_of(&dbirth, n)).collect();
    assert_eq!(aliases, [1, 2, 3, 4, 5, 6]);
    let u0 = metric(&dbirth, "u0");
    assert_eq!(
        (&u0["datatype"], &u0["value"], &u0["ts"]),
        (&json!(DOUBLE), &json!(1.5), &json!(1_700_000_000_000u64))
    );
    assert_eq!(u0["props"]["Quality"], json!(192));
    let u1 = metric(&dbirth, "u1");
    assert_eq!((&u1["datatype"], &u1["value"]), (&json!(INT64), &json!(7)));
    assert_eq!(metric(&dbirth, "u2")["props"]["Quality"], json!(68), "nt");
    assert_eq!(metric(&dbirth, "u3")["is_null"], json!(true));

    // live values: DDATA by alias, in order, nothing missing, seq consecutive
    let n = 300u64;
    for i in 0..n {
        write(
            &redis,
            &[("s0".into(), format!("{i}.5,{},", 1_700_000_001_000u64 + i))],
        );
    }
    host.wait("the last live value", long, |v| {
        v["topic"] == json!(DDATA)
            && v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["value"] == json!((n - 1) as f64 + 0.5))
    });
    let got = data_metrics(&host, DDATA);
    let expected: Vec<(u64, u64, f64, bool)> = (0..n)
        .map(|i| (1, 1_700_000_001_000 + i, i as f64 + 0.5, false))
        .collect();
    assert_eq!(got, expected);
    assert_consecutive(&seqs_since_last_birth(&host));

    // DCMD: the writable metric goes through the command path to its out tag; a read-only
    // metric is refused
    let mut bus = Bus::new(&redis);
    host.send(&format!("dcmd {DCMD} u0 3"));
    host.send(&format!("dcmd {DCMD} setp 42.5"));
    let out = bus.wait("tag/rtu1/sp/out", long, &p, |_| true);
    assert!(out.starts_with("42.5,"), "{out}");
    p.wait_log("not writable", 1, long);
    assert_eq!(bus.get("tag/rtu1/s0/out"), None);

    // rebirth on NCMD: seq from 0, same bdSeq, the latest values
    host.send("rebirth plant gw1");
    let nbirth = host.nth(NBIRTH, 2, long);
    assert_eq!(nbirth["seq"], json!(0));
    assert_eq!(metric(&nbirth, "bdSeq")["value"], json!(0));
    let dbirth = host.nth(DBIRTH, 2, long);
    assert_eq!(dbirth["seq"], json!(1));
    assert_eq!(metric(&dbirth, "u0")["value"], json!((n - 1) as f64 + 0.5));

    // SIGKILL: the broker publishes the NDEATH Will with this session's bdSeq; the restart
    // takes the next one (persisted in Redis)
    p.kill();
    let ndeath = host.nth(NDEATH, 1, long);
    assert_eq!(metric(&ndeath, "bdSeq")["value"], json!(0));
    assert!(ndeath["seq"].is_null());
    let _p = publisher(&cfg, &redis, dir.path());
    let nbirth = host.nth(NBIRTH, 3, long);
    assert_eq!(metric(&nbirth, "bdSeq")["value"], json!(1));
}

#[test]
fn primary_host_gating_and_historical_replay_after_a_broker_outage() {
    let redis = RedisServer::start();
    let mut broker = start_broker();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &redis.url(),
        broker.port(),
        json!({"sparkplug_primary_host_id": "scada", "mqtt_version": "5"}),
    );
    let mut host = Host::start(broker.port());
    let p = publisher(&cfg, &redis, dir.path());
    let long = Duration::from_secs(40);
    let nbirth = births_wait_for_the_host(&mut host, &p, 1, 0);
    assert_eq!(metric(&nbirth, "bdSeq")["value"], json!(0));
    let dbirth = host.nth(DBIRTH, 1, long);
    write(&redis, &[("s0".into(), "0.5,1700000000000,".into())]);
    host.nth(DDATA, 1, long);

    // broker outage: the values written meanwhile come after the births, historical
    broker.kill();
    let mut values = BTreeMap::new();
    let outage: Vec<(String, String)> = (0..200u64)
        .flat_map(|i| {
            (0..3u64).map(move |s| {
                (
                    format!("s{s}"),
                    format!("{i}.25,{},", 1_700_000_010_000u64 + i * 3 + s),
                )
            })
        })
        .collect();
    for (s, v) in &outage {
        let v: TagValue = v.parse().unwrap();
        values.insert(
            (alias_of(&dbirth, &format!("u{}", &s[1..])), v.timestamp_ms),
            v.value.as_f64(),
        );
    }
    write(&redis, &outage);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    // every CONNECT takes the next bdSeq, the attempts the dead broker refused too
    let nbirth = host.nth(NBIRTH, 2, long);
    let session = metric(&nbirth, "bdSeq")["value"].as_u64().unwrap();
    assert!(session >= 1, "a new session");
    let dbirth = host.nth(DBIRTH, 2, long);
    let last = |s: u64| 1_700_000_010_000u64 + 199 * 3 + s;
    for s in 0..3u64 {
        let m = metric(&dbirth, &format!("u{s}"));
        assert_eq!((&m["ts"], &m["value"]), (&json!(last(s)), &json!(199.25)));
    }
    host.wait("the last historical value", long, |v| {
        v["topic"] == json!(DDATA)
            && v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["ts"] == json!(last(2)))
    });
    let replayed: BTreeMap<(u64, u64), f64> = data_metrics(&host, DDATA)
        .into_iter()
        .filter(|(_, ts, _, _)| *ts >= 1_700_000_010_000)
        .map(|(alias, ts, value, historical)| {
            assert!(historical, "replayed values are historical ({alias} {ts})");
            ((alias, ts), value)
        })
        .collect();
    assert_eq!(replayed, values, "every value of the outage, once");
    assert_consecutive(&seqs_since_last_birth(&host));

    // the host goes offline: NDEATH, a new session that waits for it again
    host.send("offline scada");
    let ndeath = host.nth(NDEATH, 1, long);
    assert_eq!(metric(&ndeath, "bdSeq")["value"], json!(session));
    let nbirth = births_wait_for_the_host(&mut host, &p, 3, 2);
    assert!(metric(&nbirth, "bdSeq")["value"].as_u64().unwrap() > session);
}
