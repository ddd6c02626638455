//! End-to-end tests of `fieldbridge modbus-master` against real peers: pymodbus as an RTU
//! server on one end of a socat pty pair (the applet on the other end) and as a TCP server,
//! real redis-server, the real binary. The peer script is
//! crates/modbus-master/tests/peers/modbus_server.py; it prints every request it serves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use tagbus::TagValue;
use testrig::{AppletProcess, KillOnDrop, RedisConn, RedisServer};

const STEP: Duration = Duration::from_millis(50);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fieldbridge")
}

fn peer_script() -> PathBuf {
    testrig::workspace_root().join("crates/modbus-master/tests/peers/modbus_server.py")
}

/// Polls `f` until it returns Some, at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(STEP);
    }
}

/// A socat pty pair: `a` for the peer, `b` for the applet.
struct PtyPair {
    _socat: KillOnDrop,
    a: PathBuf,
    b: PathBuf,
}

impl PtyPair {
    fn new(dir: &Path) -> Self {
        let socat = testrig::require_program("socat", "socat");
        let (a, b) = (dir.join("ttyA"), dir.join("ttyB"));
        let child = Command::new(socat)
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat");
        let guard = KillOnDrop(child);
        wait_for("the pty pair", Duration::from_secs(10), || {
            (a.exists() && b.exists()).then_some(())
        });
        Self {
            _socat: guard,
            a,
            b,
        }
    }
}

/// The pymodbus peer and the events it printed.
struct Peer {
    _child: KillOnDrop,
    events: Arc<Mutex<Vec<(Instant, Json)>>>,
}

impl Peer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(testrig::peer_python())
            .arg(peer_script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("peer python");
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Json>(&line) {
                    sink.lock().unwrap().push((Instant::now(), v));
                }
            }
        });
        let peer = Self {
            _child: KillOnDrop(child),
            events,
        };
        wait_for("the peer to be ready", Duration::from_secs(20), || {
            peer.count(|e| e["event"] == "ready").gt(&0).then_some(())
        });
        peer
    }

    fn count(&self, pred: impl Fn(&Json) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| pred(e))
            .count()
    }

    fn count_between(&self, from: Instant, to: Instant, pred: impl Fn(&Json) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, e)| *t >= from && *t < to && pred(e))
            .count()
    }
}

/// The applet under test, its stderr in `<dir>/modbus-master.log`.
type Applet = AppletProcess;

fn start_applet(dir: &Path, config: &Json, redis_url: &str) -> AppletProcess {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    AppletProcess::start(
        Path::new(bin()),
        "modbus-master",
        &path,
        redis_url,
        dir.join("modbus-master.log"),
    )
}

struct Bus {
    con: RedisConn,
    url: String,
}

impl Bus {
    fn new(redis: &RedisServer) -> Self {
        Self {
            con: redis.connect(),
            url: redis.url(),
        }
    }

    fn get_text(&mut self, key: &str) -> Option<String> {
        self.con.get(key)
    }

    fn get(&mut self, key: &str) -> Option<TagValue> {
        self.get_text(key)
            .map(|t| t.parse().unwrap_or_else(|e| panic!("{key}: {t:?}: {e}")))
    }

    /// Waits for a value of `key` that satisfies `pred`.
    fn wait(&mut self, key: &str, timeout: Duration, pred: impl Fn(&TagValue) -> bool) -> TagValue {
        let mut last = None;
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get(key);
            if let Some(v) = v.as_ref().filter(|v| pred(v)) {
                return v.clone();
            }
            last = v.or(last);
            assert!(
                Instant::now() < deadline,
                "{key}: timed out; last value {last:?}"
            );
            std::thread::sleep(STEP);
        }
    }

    /// Writes an `out` value the way an operator would: `fieldbridge tag set`.
    fn command(&self, key: &str, value: &str, ts: Option<u64>) {
        let mut cmd = Command::new(bin());
        cmd.args(["tag", "set", key, value, "--redis-url", &self.url]);
        if let Some(ts) = ts {
            cmd.args(["--ts", &ts.to_string()]);
        }
        let status = cmd.status().unwrap();
        assert!(status.success(), "tag set {key} {value}");
    }

    /// Waits for the command result of `signal_key`'s signal answering command time `ts`.
    fn wait_result(&mut self, result_key: &str, after_ms: u64, timeout: Duration) -> String {
        wait_for(&format!("a result on {result_key}"), timeout, || {
            let text = self.get_text(result_key)?;
            let fields: Vec<&str> = text.split(',').collect();
            let ts: u64 = fields.get(2)?.parse().ok()?;
            (ts >= after_ms).then_some(text)
        })
    }
}

fn good(v: &TagValue) -> bool {
    v.flags.contains("gt") && !v.flags.contains("iv") && !v.flags.contains("nt")
}

fn num(v: &TagValue) -> f64 {
    v.value.as_f64()
}

fn sig(dev: &str, alias: &str, function: u8, address: u16, extra: Json) -> Json {
    let mut s = json!({"signal_name": alias, "device_alias": dev, "signal_alias": alias, "function": function, "address": address});
    if let (Some(obj), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

/// The signals of the peer's register map (see modbus_server.py).
fn map_signals(dev: &str) -> Vec<Json> {
    vec![
        sig(dev, "u16", 3, 0, json!({"data_type": "u16", "log": 1})),
        sig(dev, "i16", 3, 1, json!({"data_type": "i16"})),
        sig(
            dev,
            "u32be",
            3,
            2,
            json!({"data_type": "u32", "word_order": "big"}),
        ),
        sig(
            dev,
            "u32le",
            3,
            4,
            json!({"data_type": "u32", "word_order": "little"}),
        ),
        sig(
            dev,
            "f32be",
            3,
            6,
            json!({"data_type": "f32", "word_order": "big"}),
        ),
        sig(
            dev,
            "f32le",
            3,
            8,
            json!({"data_type": "f32", "word_order": "little"}),
        ),
        sig(
            dev,
            "scaled",
            3,
            10,
            json!({"data_type": "u16", "multiplier": 0.1, "offset": -10}),
        ),
        sig(dev, "sp", 3, 20, json!({"data_type": "u16", "writable": 1})),
        sig(dev, "ctr", 3, 30, json!({"data_type": "u16"})),
        sig(dev, "missing", 3, 100, json!({"data_type": "u16"})),
        sig(dev, "coil0", 1, 0, json!({})),
        sig(dev, "coil2", 1, 2, json!({})),
        sig(dev, "coil5", 1, 5, json!({"writable": 1})),
        sig(dev, "di1", 2, 1, json!({})),
        sig(dev, "ir0", 4, 0, json!({})),
        sig(dev, "nowhere", 6, 200, json!({})),
    ]
}

/// Checks values, an exception without a reconnect, and writes; `dev` is the device alias.
fn check_map(bus: &mut Bus, peer: &Peer, applet: &Applet, dev: &str) {
    let t = Duration::from_secs(20);
    let k = |s: &str, d: &str| format!("tag/{dev}/{s}/{d}");
    assert_eq!(
        bus.wait(&k("u16", "in"), t, good).value,
        tagbus::Value::Int(1234)
    );
    assert_eq!(
        bus.wait(&k("i16", "in"), t, good).value,
        tagbus::Value::Int(-2)
    );
    assert_eq!(
        bus.wait(&k("u32be", "in"), t, good).value,
        tagbus::Value::Int(74565)
    );
    assert_eq!(
        bus.wait(&k("u32le", "in"), t, good).value,
        tagbus::Value::Int(74565)
    );
    assert_eq!(num(&bus.wait(&k("f32be", "in"), t, good)), 123.5);
    assert_eq!(num(&bus.wait(&k("f32le", "in"), t, good)), -42.25);
    assert!((num(&bus.wait(&k("scaled", "in"), t, good)) - 40.0).abs() < 1e-9);
    assert_eq!(
        bus.wait(&k("scaled", "rin"), t, good).value,
        tagbus::Value::Int(500)
    );
    assert_eq!(
        bus.wait(&k("coil0", "in"), t, good).value,
        tagbus::Value::Int(1)
    );
    assert_eq!(
        bus.wait(&k("coil2", "in"), t, good).value,
        tagbus::Value::Int(1)
    );
    assert_eq!(
        bus.wait(&k("coil5", "in"), t, good).value,
        tagbus::Value::Int(0)
    );
    assert_eq!(
        bus.wait(&k("di1", "in"), t, good).value,
        tagbus::Value::Int(1)
    );
    assert_eq!(
        bus.wait(&k("ir0", "in"), t, good).value,
        tagbus::Value::Int(777)
    );
    let ts = bus.get(&k("u16", "in")).unwrap().timestamp_ms;
    assert!(
        ts.abs_diff(tagbus::now_ms()) < 60_000,
        "timestamp is the receive time"
    );

    // The exception: iv, and the device keeps being polled over the same link.
    let missing = bus.wait(&k("missing", "in"), t, |v| v.flags.contains("iv"));
    assert!(
        !missing.flags.contains("nt"),
        "an exception is an answer: {missing:?}"
    );
    let c1 = num(&bus.wait(&k("ctr", "in"), t, good));
    let c2 = num(&bus.wait(&k("ctr", "in"), t, |v| good(v) && num(v) >= c1 + 3.0));
    println!("{dev}: counter went {c1} -> {c2} after the exception");
    assert!(bus.get(&k("missing", "in")).unwrap().flags.contains("iv"));
    assert!(
        applet.log().contains("exception response"),
        "{}",
        applet.log()
    );
    // `log: 1` signals are logged as they pass; the others are not.
    assert!(
        applet.log().contains(&format!("tag={}", k("u16", "in"))),
        "{}",
        applet.log()
    );
    assert!(!applet.log().contains(&format!("tag={}", k("i16", "in"))));

    // A register write: the server's register shows it (we read it back through the driver).
    let before = tagbus::now_ms();
    bus.command(&k("sp", "out"), "4321", None);
    let result = bus.wait_result(&format!("result/{dev}/sp"), before, t);
    assert!(result.starts_with("confirmed,"), "{result}");
    assert_eq!(
        bus.wait(&k("sp", "in"), t, |v| good(v) && num(v) == 4321.0)
            .value,
        tagbus::Value::Int(4321)
    );
    assert_eq!(
        bus.get(&k("sp", "rout")).unwrap().value,
        tagbus::Value::Int(4321)
    );
    wait_for("the peer to log the write", t, || {
        (peer.count(|e| e["event"] == "write" && e["addr"] == 20 && e["values"] == json!([4321]))
            == 1)
            .then_some(())
    });

    // A coil write.
    let before = tagbus::now_ms();
    bus.command(&k("coil5", "out"), "1", None);
    assert!(bus
        .wait_result(&format!("result/{dev}/coil5"), before, t)
        .starts_with("confirmed,"));
    bus.wait(&k("coil5", "in"), t, |v| good(v) && num(v) == 1.0);

    // Refusals: too old, not writable, out of range.
    let before = tagbus::now_ms();
    bus.command(&k("sp", "out"), "1", Some(before - 600_000));
    assert!(bus
        .wait_result(&format!("result/{dev}/sp"), before, t)
        .starts_with("too_old,"));
    let before = tagbus::now_ms();
    bus.command(&k("u16", "out"), "5", None);
    assert!(bus
        .wait_result(&format!("result/{dev}/u16"), before, t)
        .starts_with("not_writable,"));
    let before = tagbus::now_ms();
    bus.command(&k("sp", "out"), "70000", None);
    let r = bus.wait_result(&format!("result/{dev}/sp"), before, t);
    assert!(
        r.starts_with("rejected,") && r.ends_with(",out_of_range"),
        "{r}"
    );
    // The device refuses a write to a register it does not have: an exception, no reconnect.
    let before = tagbus::now_ms();
    bus.command(&k("nowhere", "out"), "1", None);
    let r = bus.wait_result(&format!("result/{dev}/nowhere"), before, t);
    assert!(
        r.starts_with("rejected,") && r.ends_with(",illegal_data_address"),
        "{r}"
    );
    // None of the refused commands reached the wire; the stale snapshot value never did.
    assert_eq!(peer.count(|e| e["event"] == "write" && e["addr"] == 20), 1);
    assert_eq!(
        peer.count(|e| e["event"] == "write" && e["values"] == json!([999])),
        0
    );
}

#[test]
fn rtu_values_exception_and_writes_over_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let pty = PtyPair::new(dir.path());
    let peer = Peer::start(&["--rtu", pty.a.to_str().unwrap(), "--ids", "1"]);
    // A stale command in the key before the driver starts: it must never be executed.
    redis.cli(&[
        "SET",
        "tag/m1/sp/out",
        &format!("999,{},", tagbus::now_ms()),
    ]);
    let config = json!({
        "devices": [{"name": "Meter", "device_alias": "m1", "protocol": "modbus-rtu",
            "serial_port": pty.b.to_str().unwrap(), "baudrate": 19200, "modbus_id": 1,
            "poll_interval_ms": 200, "timeout_ms": 500, "retries": 1}],
        "signals": map_signals("m1"),
    });
    let applet = start_applet(dir.path(), &config, &redis.url());
    check_map(&mut bus, &peer, &applet, "m1");
    let log = applet.log();
    assert_eq!(
        log.matches("bus opened").count(),
        1,
        "the port was reopened:\n{log}"
    );
}

#[test]
fn tcp_values_exception_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let port = testrig::free_port();
    let peer = Peer::start(&["--tcp", &port.to_string(), "--ids", "1"]);
    redis.cli(&[
        "SET",
        "tag/t1/sp/out",
        &format!("999,{},", tagbus::now_ms()),
    ]);
    let config = json!({
        "devices": [{"name": "Inverter", "device_alias": "t1", "protocol": "modbus-tcp",
            "ip": "127.0.0.1", "port": port, "modbus_id": 1,
            "poll_interval_ms": 200, "timeout_ms": 500, "retries": 1}],
        "signals": map_signals("t1"),
    });
    let applet = start_applet(dir.path(), &config, &redis.url());
    check_map(&mut bus, &peer, &applet, "t1");
    assert_eq!(
        peer.count(|e| e["event"] == "connect"),
        1,
        "the driver reconnected"
    );
    assert_eq!(applet.log().matches("bus opened").count(), 1);
}

#[test]
fn rtu_silent_slave_does_not_slow_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let peer = Peer::start(&["--rtu", pty.a.to_str().unwrap(), "--ids", "1"]);
    let port = pty.b.to_str().unwrap();
    let device = |alias: &str, id: u8| {
        json!({"name": alias, "device_alias": alias, "protocol": "modbus-rtu", "serial_port": port,
               "baudrate": 19200, "modbus_id": id, "poll_interval_ms": 200, "timeout_ms": 300, "retries": 2})
    };
    silent_slave(dir.path(), &peer, [device("alive", 1), device("dead", 2)]);
}

#[test]
fn tcp_silent_unit_does_not_slow_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let port = testrig::free_port();
    let peer = Peer::start(&["--tcp", &port.to_string(), "--ids", "1"]);
    let device = |alias: &str, id: u8| {
        json!({"name": alias, "device_alias": alias, "protocol": "modbus-tcp", "ip": "127.0.0.1", "port": port,
               "modbus_id": id, "poll_interval_ms": 200, "timeout_ms": 300, "retries": 2})
    };
    silent_slave(dir.path(), &peer, [device("alive", 1), device("dead", 2)]);
    assert_eq!(
        peer.count(|e| e["event"] == "connect"),
        1,
        "a silent unit made the driver reconnect"
    );
}

/// Two devices on one bus (`alive` answers, `dead` never does), polled every 200 ms: the
/// answering one keeps at least 80% of its rate; the silent one is backed off.
fn silent_slave(dir: &Path, peer: &Peer, devices: [Json; 2]) {
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let poll_ms = 200u64;
    let config = json!({
        "devices": devices,
        "signals": [sig("alive", "ctr", 3, 30, json!({})), sig("dead", "ctr", 3, 30, json!({}))],
    });
    let applet = start_applet(dir, &config, &redis.url());
    let t = Duration::from_secs(20);
    bus.wait("tag/alive/ctr/in", t, good);
    let dead = bus.wait("tag/dead/ctr/in", t, |v| v.flags.contains("nt"));
    assert!(num(&dead).is_nan(), "a tag never read is nan: {dead:?}");

    let window = Duration::from_secs(8);
    let from = Instant::now();
    std::thread::sleep(window);
    let to = Instant::now();
    let alive = peer.count_between(from, to, |e| e["event"] == "request" && e["dev"] == 1);
    let dead_polls = peer.count_between(from, to, |e| e["event"] == "request" && e["dev"] == 2);
    let expected = window.as_millis() as f64 / poll_ms as f64;
    let share = alive as f64 / expected;
    println!(
        "poll rate over {window:?}: alive {alive} polls ({:.0}% of {expected:.0} configured), dead {dead_polls} probes",
        share * 100.0
    );
    assert!(
        share >= 0.8,
        "the answering device got {alive} polls of {expected}"
    );
    assert!(
        dead_polls <= 6,
        "the silent device was not backed off: {dead_polls} requests"
    );
    assert!(good(&bus.get("tag/alive/ctr/in").unwrap()));
    assert!(applet.log().contains("device is not answering"));
    assert_eq!(applet.log().matches("bus opened").count(), 1);
}

#[test]
fn rtu_malformed_frames_are_dropped_and_polling_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let pty = PtyPair::new(dir.path());
    // The first 5 answers: bad CRC, short frame, another slave's frame, garbage, garbage
    // followed by the real answer.
    let peer = Peer::start(&[
        "--rtu",
        pty.a.to_str().unwrap(),
        "--ids",
        "1",
        "--corrupt",
        "5",
    ]);
    let config = json!({
        "devices": [{"name": "Meter", "device_alias": "m1", "protocol": "modbus-rtu",
            "serial_port": pty.b.to_str().unwrap(), "baudrate": 19200, "modbus_id": 1,
            "poll_interval_ms": 200, "timeout_ms": 300, "retries": 3}],
        "signals": [sig("m1", "ctr", 3, 30, json!({})), sig("m1", "u16", 3, 0, json!({}))],
    });
    let applet = start_applet(dir.path(), &config, &redis.url());
    let t = Duration::from_secs(30);
    let c1 = num(&bus.wait("tag/m1/ctr/in", t, good));
    bus.wait("tag/m1/ctr/in", t, |v| good(v) && num(v) >= c1 + 3.0);
    assert_eq!(
        bus.get("tag/m1/u16/in").unwrap().value,
        tagbus::Value::Int(1234)
    );
    assert_eq!(peer.count(|e| e["event"] == "corrupt"), 5);
    let log = applet.log();
    for reason in [
        "bad CRC",
        "short frame",
        "wrong slave id",
        "garbage",
        "dropped bytes before the answer",
    ] {
        assert!(log.contains(reason), "no log line for {reason}:\n{log}");
    }
    assert_eq!(
        log.matches("bus opened").count(),
        1,
        "the port was reopened:\n{log}"
    );
    println!(
        "{}",
        log.lines()
            .filter(|l| l.contains("dropped"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn invalid_config_exits_non_zero_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let config = json!({
        "devices": [{"name": "M", "device_alias": "m1", "protocol": "modbus-rtu", "baudrate": 12}],
        "signals": [sig("m1", "x", 7, 0, json!({}))],
    });
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = Command::new(bin())
        .args(["modbus-master", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serial_port"), "{err}");
    assert!(err.contains("baudrate"), "{err}");
    assert!(err.contains("function"), "{err}");
}

/// One Modbus TCP device `t1` on `port`, polled every 200 ms: `u16` (1234 on every poll) and
/// `ctr` (changes on every poll).
fn inverter_config(port: u16) -> Json {
    json!({
        "devices": [{"name": "Inverter", "device_alias": "t1", "protocol": "modbus-tcp",
            "ip": "127.0.0.1", "port": port, "poll_interval_ms": 200, "timeout_ms": 500, "retries": 1}],
        "signals": [sig("t1", "ctr", 3, 30, json!({})), sig("t1", "u16", 3, 0, json!({}))],
    })
}

#[test]
fn tcp_server_outage_marks_nt_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let port = testrig::free_port();
    let peer = Peer::start(&["--tcp", &port.to_string()]);
    let config = inverter_config(port);
    let applet = start_applet(dir.path(), &config, &redis.url());
    let t = Duration::from_secs(20);
    bus.wait("tag/t1/u16/in", t, good);
    drop(peer);
    // The value stays, with nt added and its timestamp kept.
    let stale = bus.wait("tag/t1/u16/in", t, |v| v.flags.contains("nt"));
    assert_eq!(stale.value, tagbus::Value::Int(1234));
    let _peer = Peer::start(&["--tcp", &port.to_string()]);
    let back = bus.wait("tag/t1/u16/in", Duration::from_secs(40), good);
    assert!(back.timestamp_ms > stale.timestamp_ms);
    let log = applet.log();
    assert!(log.matches("bus opened").count() >= 2, "{log}");
}

#[test]
fn rtu_port_lost_marks_nt_and_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let pty = PtyPair::new(dir.path());
    let peer = Peer::start(&["--rtu", pty.a.to_str().unwrap()]);
    let config = json!({
        "devices": [{"name": "Meter", "device_alias": "m1", "protocol": "modbus-rtu",
            "serial_port": pty.b.to_str().unwrap(), "baudrate": 19200,
            "modbus_id": 1, "poll_interval_ms": 200, "timeout_ms": 300, "retries": 1}],
        "signals": [sig("m1", "u16", 3, 0, json!({}))],
    });
    let applet = start_applet(dir.path(), &config, &redis.url());
    let t = Duration::from_secs(20);
    bus.wait("tag/m1/u16/in", t, good);
    // The adapter goes away (socat ends: the pty closes and its link disappears).
    drop(peer);
    drop(pty);
    let stale = bus.wait("tag/m1/u16/in", t, |v| v.flags.contains("nt"));
    assert_eq!(stale.value, tagbus::Value::Int(1234));
    // ... and comes back under the same name.
    let pty = PtyPair::new(dir.path());
    let _peer = Peer::start(&["--rtu", pty.a.to_str().unwrap()]);
    let back = bus.wait("tag/m1/u16/in", Duration::from_secs(45), good);
    assert!(back.timestamp_ms > stale.timestamp_ms);
    let log = applet.log();
    assert!(log.matches("bus opened").count() >= 2, "{log}");
}

#[test]
fn rtu_inter_frame_delay_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let pty = PtyPair::new(dir.path());
    let peer = Peer::start(&["--rtu", pty.a.to_str().unwrap()]);
    // Polled as fast as the config allows (10 ms, two reads a cycle), but 50 ms of silence
    // must separate frames: at most one request per 50 ms reaches the peer.
    let config = json!({
        "devices": [{"name": "Meter", "device_alias": "m1", "protocol": "modbus-rtu",
            "serial_port": pty.b.to_str().unwrap(), "baudrate": 19200, "modbus_id": 1,
            "poll_interval_ms": 10, "timeout_ms": 500, "inter_frame_delay_ms": 50}],
        "signals": [sig("m1", "u16", 3, 0, json!({})), sig("m1", "ctr", 3, 30, json!({}))],
    });
    let _applet = start_applet(dir.path(), &config, &redis.url());
    bus.wait("tag/m1/ctr/in", Duration::from_secs(20), good);
    let window = Duration::from_secs(3);
    let from = Instant::now();
    std::thread::sleep(window);
    let requests = peer.count_between(from, Instant::now(), |e| e["event"] == "request");
    println!("{requests} requests in {window:?} with a 50 ms inter-frame delay");
    assert!(requests >= 5, "polling stalled: {requests}");
    assert!(
        requests <= 3000 / 50 + 3,
        "inter-frame delay not kept: {requests} requests"
    );
}

/// The tag bus keeps nothing on disk: after redis-server restarts empty, the driver writes
/// its current values again as soon as a write gets through (`restore`), not only when a
/// value changes or its 60 s refresh is due.
#[test]
fn values_are_written_again_after_redis_restarts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start();
    let mut bus = Bus::new(&redis);
    let port = testrig::free_port();
    let _peer = Peer::start(&["--tcp", &port.to_string()]);
    let config = inverter_config(port);
    let applet = start_applet(dir.path(), &config, &redis.url());
    let t = Duration::from_secs(20);
    let before = bus.wait("tag/t1/u16/in", t, good);
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    let restarted = Instant::now();
    let mut bus = Bus::new(&redis);
    // u16 holds 1234 on every poll: unchanged, so only the restore writes it before the
    // refresh (60 s after its last write).
    let back = bus.wait("tag/t1/u16/in", t, good);
    println!("u16 back {:?} after the restart", restarted.elapsed());
    assert_eq!(back.value, before.value);
    let log = applet.log();
    assert!(log.contains("current values written again"), "{log}");
}
