#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]
//! `fieldbridge iec104-master` end to end: the real binary against a c104 2.2.1 outstation
//! (crates/iec104-master/tests/peers/c104_outstation.py) and a real redis-server.
//! Run with FIELDBRIDGE_PEER_PYTHON=/work/main/.venv/bin/python outside CI.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tagbus::{now_ms, CommandOutcome, CommandResult, TagValue, Value};
use testrig::{free_port, AppletProcess, RedisServer};

mod common;
use common::bus::Bus;
use common::peer::LinePeer;

/// 2025-01-02T03:04:05.678Z: the time tag of every point of the peer.
const T0_MS: u64 = 1_735_787_045_678;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fieldbridge"))
}

fn peer_script() -> PathBuf {
    testrig::workspace_root().join("crates/iec104-master/tests/peers/c104_outstation.py")
}

/// The c104 outstation, killed on drop.
struct Peer(LinePeer);

impl Peer {
    fn start(port: u16, log: &Path) -> Peer {
        let port = port.to_string();
        let log = log.to_string_lossy();
        let mut p = Peer(LinePeer::start(&peer_script(), &[&port, &log]));
        p.wait_line("READY", Duration::from_secs(20));
        p
    }

    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.line(left) {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => {}
                None => panic!("peer: no line {prefix:?} within {timeout:?}"),
            }
        }
    }

    fn send(&mut self, line: &str) {
        self.0.send(line);
    }
}

/// The applet under test, its stderr in `<dir>/applet.log`.
fn start_applet(config: &Path, redis: &RedisServer, dir: &Path) -> AppletProcess {
    AppletProcess::start(
        &bin(),
        "iec104-master",
        config,
        &redis.url(),
        dir.join("applet.log"),
    )
}

fn config(dir: &Path, redis: &RedisServer, port: u16, dead_port: u16) -> PathBuf {
    let sig = |alias: &str, ioa: u32, t: &str| {
        serde_json::json!({"signal_name": alias, "device_alias": "rtu1", "signal_alias": alias,
            "info_address": ioa, "type_id": t})
    };
    let mut sc = sig("sc", 200, "M_ME_NB_1");
    sc["multiplier"] = 0.1.into();
    sc["log"] = 1.into();
    let f = sig("f", 201, "M_ME_NC_1");
    let mut sp_set = sig("setpoint", 402, "C_SE_NC_1");
    sp_set["select_before_operate"] = 1.into();
    let cfg = serde_json::json!({
        "redis_url": redis.url(),
        "devices": [
            {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1",
             "port": port, "asdu_address": 1, "t0": 2, "t1": 2, "t2": 1, "t3": 1,
             "clock_sync_interval": 600, "counter_interrogation_interval": 600,
             "command_timeout": 5, "command_max_age": 10},
            {"name": "Dead", "device_alias": "dead", "protocol": "iec104-master",
             "ip": "127.0.0.1", "port": dead_port, "asdu_address": 1, "t0": 1, "t1": 2, "t2": 1, "t3": 1}
        ],
        "signals": [
            sig("sp", 100, "M_SP_TB_1"),
            sig("dp", 101, "M_DP_NA_1"),
            sc,
            f,
            sig("it", 300, "M_IT_NA_1"),
            sig("cmd_sc", 400, "C_SC_NA_1"),
            sig("cmd_dc", 401, "C_DC_NA_1"),
            sp_set,
            {"signal_name": "x", "device_alias": "dead", "signal_alias": "x", "info_address": 1, "type_id": "M_SP_NA_1"}
        ]
    });
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn has_flag(v: &str, flag: &str) -> bool {
    v.parse::<TagValue>().is_ok_and(|t| t.flags.contains(flag))
}

#[test]
fn values_link_loss_commands_and_a_dead_neighbour() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // a blackhole: accepts TCP (the kernel does), never answers STARTDT
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = blackhole.local_addr().unwrap().port();
    let cmd_log = dir.path().join("commands.log");
    let mut peer = Peer::start(port, &cmd_log);
    let cfg = config(dir.path(), &redis, port, dead_port);
    let mut bus = Bus::new(&redis);

    let started = Instant::now();
    let applet = start_applet(&cfg, &redis, dir.path());
    let t = Duration::from_secs(15);
    let any = |_: &str| true;

    // --- values after GI + counter interrogation, next to an outstation that never answers
    let f = bus.wait("tag/rtu1/f/in", t, &applet, any);
    let gi_ms = started.elapsed().as_millis();
    let it = bus.wait("tag/rtu1/it/in", t, &applet, any);
    println!("first GI value {gi_ms} ms after the applet started (with a blackholed neighbour)");
    let sp = bus.value("tag/rtu1/sp/in").unwrap();
    let dp = bus.value("tag/rtu1/dp/in").unwrap();
    let sc = bus.value("tag/rtu1/sc/in").unwrap();
    let sc_raw = bus.value("tag/rtu1/sc/rin").unwrap();
    let f: TagValue = f.parse().unwrap();
    let it: TagValue = it.parse().unwrap();
    println!("sp={sp} dp={dp} sc={sc} sc_raw={sc_raw} f={f} it={it}");
    assert_eq!(sp.value, Value::Int(1));
    assert_eq!(dp.value, Value::Int(2));
    assert_eq!(sc.value, Value::Float(-123.4));
    assert_eq!(sc_raw.value, Value::Int(-1234));
    assert!(sc.flags.contains("sb"), "{sc}");
    assert_eq!(f.value, Value::Float(12.5));
    assert_eq!(it.value, Value::Int(4321));
    // c104 answers a GI with the time-tagged types: the device time (UTC), no `gt`
    for v in [&sp, &dp, &sc, &f, &it] {
        assert_eq!(v.timestamp_ms, T0_MS, "{v}");
        assert!(!v.flags.contains("gt") && !v.flags.contains("nt"), "{v}");
    }
    assert!(bus.get("tag/dead/x/in").is_none());
    peer.wait_line("CLOCK", t);

    // --- a spontaneous value: latency from the peer's send to the tag on the bus
    let mut ps = redis.connect().subscribe("tag/rtu1/f/in");
    let mut latencies = Vec::new();
    for i in 0..5 {
        let value = 40.25 + f64::from(i);
        let sent_at = Instant::now();
        peer.send(&format!("float {value}"));
        let sent_ms: u64 = peer.wait_line("SENT", t)[5..].parse().unwrap();
        loop {
            let payload = ps
                .next_payload(Duration::from_secs(5))
                .expect("the spontaneous value within 5 s");
            let v: TagValue = payload.parse().unwrap();
            if v.value == Value::Float(value) {
                latencies.push(sent_at.elapsed());
                assert_eq!(v.timestamp_ms, sent_ms, "device time: {v}");
                assert!(v.flags.is_empty(), "{v}");
                break;
            }
        }
    }
    drop(ps);
    latencies.sort();
    println!(
        "spontaneous value -> tag latency (peer stdin write to PUBLISH seen): min {:?} median {:?} max {:?}",
        latencies[0], latencies[2], latencies[4]
    );
    assert!(latencies[2] < Duration::from_secs(1), "{latencies:?}");

    // --- commands
    let ts = now_ms();
    bus.command("tag/rtu1/cmd_sc/out", "1", ts);
    let r = bus.result("cmd_sc", ts, &applet);
    assert_eq!(r.outcome, CommandOutcome::Confirmed);
    println!("single command confirmed in {} ms", r.timestamp_ms - ts);
    peer.wait_line("CMD 400", t);
    assert_eq!(
        bus.value("tag/rtu1/cmd_sc/rout").unwrap().value,
        Value::Int(1)
    );

    let ts = now_ms();
    bus.command("tag/rtu1/cmd_dc/out", "2", ts);
    assert_eq!(
        bus.result("cmd_dc", ts, &applet).outcome,
        CommandOutcome::Rejected
    );
    assert!(peer.wait_line("CMD 401", t).contains("REJECTED"));

    let ts = now_ms();
    bus.command("tag/rtu1/setpoint/out", "7.5", ts);
    assert_eq!(
        bus.result("setpoint", ts, &applet).outcome,
        CommandOutcome::Confirmed
    );
    // c104 handles the select itself and calls back on the execute only
    let exe = peer.wait_line("CMD 402", t);
    assert!(exe.contains("select=False") && exe.contains("7.5"), "{exe}");

    let old = now_ms() - 60_000;
    bus.command("tag/rtu1/cmd_sc/out", "0", old);
    assert_eq!(
        bus.result("cmd_sc", old, &applet).outcome,
        CommandOutcome::TooOld
    );
    let ts = now_ms();
    bus.command("tag/rtu1/cmd_sc/out", "7", ts);
    assert_eq!(
        bus.result("cmd_sc", ts, &applet).outcome,
        CommandOutcome::Invalid
    );
    let ts = now_ms();
    bus.command("tag/rtu1/f/out", "1.0", ts);
    let key = "result/rtu1/f";
    let r: CommandResult = bus
        .wait(key, t, &applet, |v| v.contains(&ts.to_string()))
        .parse()
        .unwrap();
    assert_eq!(r.outcome, CommandOutcome::NotWritable);
    let log = std::fs::read_to_string(&cmd_log).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("CMD 400")).count(),
        1,
        "the too-old and invalid commands were never sent:\n{log}"
    );

    // --- kill the outstation: nt within t1 + 1 s
    let killed = Instant::now();
    peer.0.kill();
    for key in [
        "tag/rtu1/f/in",
        "tag/rtu1/sp/in",
        "tag/rtu1/it/in",
        "tag/rtu1/sc/rin",
    ] {
        bus.wait(key, Duration::from_secs(3), &applet, |v| has_flag(v, "nt"));
    }
    let nt_after = killed.elapsed();
    println!("link loss -> nt on all tags in {nt_after:?}");
    assert!(nt_after < Duration::from_secs(3));
    let f = bus.value("tag/rtu1/f/in").unwrap();
    assert_eq!(f.value, Value::Float(44.25), "value kept: {f}");
    let ts = now_ms();
    bus.command("tag/rtu1/cmd_sc/out", "1", ts);
    assert_eq!(
        bus.result("cmd_sc", ts, &applet).outcome,
        CommandOutcome::LinkDown
    );

    // --- restart it: the GI clears nt, without restarting the applet
    let restarted = Instant::now();
    let peer2 = Peer::start(port, &cmd_log);
    for key in [
        "tag/rtu1/f/in",
        "tag/rtu1/sp/in",
        "tag/rtu1/dp/in",
        "tag/rtu1/it/in",
    ] {
        bus.wait(key, Duration::from_secs(40), &applet, |v| {
            !has_flag(v, "nt")
        });
    }
    println!(
        "outstation restarted -> nt cleared in {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        bus.value("tag/rtu1/f/in").unwrap().value,
        Value::Float(12.5)
    );

    // --- a frozen outstation (TCP open, nothing answers, like a cut cable): TESTFR after t3,
    // closed after t1 more, then nt
    let frozen = Instant::now();
    let st = Command::new("kill")
        .args(["-STOP", &peer2.0.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    bus.wait("tag/rtu1/f/in", Duration::from_secs(6), &applet, |v| {
        has_flag(v, "nt")
    });
    let silent = frozen.elapsed();
    println!("silent outstation -> nt in {silent:?} (t3 1 s + t1 2 s)");
    assert!(silent < Duration::from_secs(5), "{silent:?}");
    let log = applet.log();
    assert!(log.contains("link down"), "{log}");
    assert!(
        log.contains("tag/rtu1/sc/in"),
        "the `log` signal is logged: {log}"
    );
    // the blackholed neighbour was tried all along (connect, no STARTDT con, t1, again)
    let dead = format!("127.0.0.1:{dead_port}");
    assert!(
        log.lines().filter(|l| l.contains(&dead)).count() >= 2,
        "{log}"
    );
    drop(peer2);
    drop(blackhole);
}

#[test]
fn startup_marks_stored_values_nt() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let nobody = free_port();
    let cfg = config(dir.path(), &redis, nobody, free_port());
    let mut bus = Bus::new(&redis);
    bus.command("tag/rtu1/sc/in", "-12.5", 1000);
    let applet = start_applet(&cfg, &redis, dir.path());
    let v = bus.wait("tag/rtu1/sc/in", Duration::from_secs(10), &applet, |v| {
        has_flag(v, "nt")
    });
    let v: TagValue = v.parse().unwrap();
    assert_eq!(v.value, Value::Float(-12.5));
    // the gateway's mark: value and timestamp kept
    assert_eq!(v.timestamp_ms, 1000);
    assert!(v.flags.contains("nolink"), "{v}");
}

#[test]
fn config_errors_are_all_printed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({
        "devices": [
            {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1",
             "asdu_address": 1, "t1": 2, "t2": 5},
        ],
        "signals": [
            {"signal_name": "a", "device_alias": "rtu1", "signal_alias": "a", "info_address": 1, "type_id": "M_NOPE"}
        ]
    });
    let path = dir.path().join("bad.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let out = Command::new(bin())
        .args(["iec104-master", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("t2"), "{err}");
    assert!(err.contains("M_NOPE"), "{err}");
}

/// After redis-server restarts empty the master writes what it knows again at once and
/// interrogates the station, instead of leaving the keys empty until each point changes.
#[test]
fn values_are_back_after_redis_restarts_empty() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cmd_log = dir.path().join("commands.log");
    let _peer = Peer::start(port, &cmd_log);
    let cfg = config(dir.path(), &redis, port, free_port());
    let mut bus = Bus::new(&redis);
    let applet = start_applet(&cfg, &redis, dir.path());
    let t = Duration::from_secs(15);
    let good = |v: &str| !has_flag(v, "nt");
    bus.wait("tag/rtu1/f/in", t, &applet, good);
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    let restarted = Instant::now();
    let mut bus = Bus::new(&redis);
    let f = bus.wait("tag/rtu1/f/in", t, &applet, good);
    println!("f back {:?} after the restart: {f}", restarted.elapsed());
    applet.wait_log("the tag bus is back: general interrogation", 1, t);
}
