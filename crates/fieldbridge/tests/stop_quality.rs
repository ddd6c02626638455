#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]
//! Quality never lies when a driver stops: after SIGTERM of `fieldbridge iec104-master`, after
//! SIGKILL of it under `fieldbridge supervise`, and after a reload that disables its device,
//! every `in`/`rin` value of the device carries the gateway's link-loss mark (`nt nolink`)
//! within 2 s, and a device's own `nt` reads differently. Real redis-server and a c104
//! outstation (crates/fieldbridge/tests/peers/c104_nt.py).
//! Run with FIELDBRIDGE_PEER_PYTHON=/work/main/.venv/bin/python outside CI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use supervisor::{State, Status};
use tagbus::TagValue;
use testrig::{free_port, AppletProcess, KillOnDrop, RedisServer};

mod common;
use common::bus::Bus;

const BIN: &str = env!("CARGO_BIN_EXE_fieldbridge");
/// The signals of the peer: two good values and one the device marks not topical.
const SIGNALS: [&str; 3] = ["sp", "good", "stale"];
/// How soon the mark must be on every tag.
const MARK_WITHIN: Duration = Duration::from_secs(2);

/// The c104 outstation (READY once listening), killed on drop.
fn start_peer(port: u16) -> KillOnDrop {
    let script = testrig::workspace_root().join("crates/fieldbridge/tests/peers/c104_nt.py");
    let mut child = Command::new(testrig::peer_python())
        .arg(script)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the c104 peer");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "the peer did not start");
    KillOnDrop(child)
}

fn config_text(redis: &RedisServer, port: u16, enable: bool) -> String {
    let sig = |alias: &str, ioa: u32, t: &str| {
        serde_json::json!({"signal_name": alias, "device_alias": "rtu1", "signal_alias": alias,
            "info_address": ioa, "type_id": t})
    };
    serde_json::json!({
        "redis_url": redis.url(),
        "devices": [
            {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1",
             "port": port, "asdu_address": 1, "t0": 2, "enable": u8::from(enable)}
        ],
        "signals": [
            sig("sp", 100, "M_SP_NA_1"),
            sig("good", 101, "M_ME_NC_1"),
            sig("stale", 102, "M_ME_NC_1"),
        ]
    })
    .to_string()
}

fn keys() -> Vec<String> {
    SIGNALS
        .iter()
        .flat_map(|s| [format!("tag/rtu1/{s}/in"), format!("tag/rtu1/{s}/rin")])
        .collect()
}

/// Fresh values from the outstation: `sp` and `good` good, `stale` with the device's own
/// `nt` (the gateway's time, so `nt gt`, and no `nolink`).
fn fresh(key: &str, v: &TagValue) -> bool {
    if v.flags.contains("nolink") {
        return false;
    }
    if key.contains("/stale/") {
        v.flags.contains("nt") && v.flags.contains("gt")
    } else {
        v.quality() == 1
    }
}

/// The gateway's link-loss mark: `nt nolink`, quality 0.
fn marked(_: &str, v: &TagValue) -> bool {
    v.flags.contains("nt") && v.flags.contains("nolink") && v.quality() == 0
}

#[test]
fn sigterm_marks_every_tag_nolink_and_a_device_nt_reads_differently() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _peer = start_peer(port);
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config_text(&redis, port, true)).unwrap();
    let mut bus = Bus::new(&redis);
    let mut applet = AppletProcess::start(
        Path::new(BIN),
        "iec104-master",
        &cfg,
        &redis.url(),
        dir.path().join("applet.log"),
    );
    let log = || applet.log();
    bus.wait_all(
        "fresh values",
        &keys(),
        Duration::from_secs(20),
        &log,
        fresh,
    );

    let device_nt = bus.value("tag/rtu1/stale/in").unwrap();
    let good = bus.value("tag/rtu1/good/in").unwrap();
    println!("device's own nt: {device_nt}; good: {good}");
    assert_eq!(device_nt.flags.to_string(), "nt gt");

    let pid = Pid::from_raw(i32::try_from(applet.pid().unwrap()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let took = bus.wait_all(
        "nt nolink after SIGTERM",
        &keys(),
        MARK_WITHIN,
        &log,
        marked,
    );
    println!(
        "SIGTERM -> nt nolink on all {} tags in {took:?}",
        keys().len()
    );

    // value and timestamp kept; the device's own nt now carries the gateway's mark too
    let good_after = bus.value("tag/rtu1/good/in").unwrap();
    assert_eq!(good_after, good.marked_no_link());
    assert_eq!(
        (good_after.value, good_after.timestamp_ms),
        (good.value, good.timestamp_ms)
    );
    assert_eq!(
        bus.value("tag/rtu1/stale/in").unwrap().flags.to_string(),
        "nt gt nolink"
    );
    assert_ne!(device_nt.flags, good_after.flags);
    // MQTT consumers get the mark: it went to the stream
    assert_eq!(bus.last_streamed("tag/rtu1/good/in"), Some(good_after));
    assert!(
        applet.log().contains("marked nt nolink"),
        "{}",
        applet.log()
    );
    applet.kill();
}

/// `fieldbridge supervise` running the real iec104-master; stopped on drop.
struct Supervisor {
    dir: PathBuf,
    child: Child,
}

impl Supervisor {
    fn start(dir: &Path, config: &str) -> Supervisor {
        std::fs::write(dir.join("config.json"), config).unwrap();
        let child = Command::new(BIN)
            .arg("supervise")
            .arg("-c")
            .arg(dir.join("config.json"))
            .arg("--status-file")
            .arg(dir.join("status.json"))
            // the killed child comes back after 4 s: time to see the supervisor's mark first
            .args(["--backoff-min-ms", "4000", "--stop-timeout", "3"])
            .env("FIELDBRIDGE_LOG", "stderr")
            .env_remove("RUST_LOG")
            .env_remove("FIELDBRIDGE_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("supervise.log")).unwrap())
            .spawn()
            .unwrap();
        Supervisor {
            dir: dir.to_owned(),
            child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("supervise.log")).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// The pid of a running iec104-master other than `not` (waits up to 20 s).
    fn master_pid(&self, not: Option<u32>) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pid = Status::read(&self.dir.join("status.json"))
                .ok()
                .and_then(|s| s.applets.get("iec104-master").cloned())
                .filter(|a| a.state == State::Running)
                .and_then(|a| a.pid)
                .filter(|p| Some(*p) != not);
            if let Some(pid) = pid {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "no running iec104-master\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn supervisor_marks_a_killed_master_and_a_disabled_device() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _peer = start_peer(port);
    let mut bus = Bus::new(&redis);
    let sup = Supervisor::start(dir.path(), &config_text(&redis, port, true));
    let log = || sup.log();
    let first = sup.master_pid(None);
    bus.wait_all(
        "fresh values",
        &keys(),
        Duration::from_secs(20),
        &log,
        fresh,
    );

    // SIGKILL: the master cannot mark anything; the supervisor does
    let child = Pid::from_raw(i32::try_from(first).unwrap());
    kill(child, Signal::SIGKILL).unwrap();
    let took = bus.wait_all(
        "nt nolink after SIGKILL",
        &keys(),
        MARK_WITHIN,
        &log,
        marked,
    );
    println!("SIGKILL under the supervisor -> nt nolink on all tags in {took:?}");
    // the supervisor logs the mark once Redis answered it: a moment after the test saw it
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sup
        .log()
        .contains("marked the values of its devices nt nolink")
    {
        assert!(Instant::now() < deadline, "{}", sup.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(child, Signal::SIGKILL);

    // the restarted master's GI makes them fresh again
    let killed = Instant::now();
    let second = sup.master_pid(Some(first));
    println!(
        "restarted as pid {second} (was {first}) {:?} after the kill",
        killed.elapsed()
    );
    bus.wait_all(
        "fresh values after the restart",
        &keys(),
        Duration::from_secs(20),
        &log,
        fresh,
    );

    // a reload that disables the device: the master stops, its values are marked
    std::fs::write(
        dir.path().join("config.json"),
        config_text(&redis, port, false),
    )
    .unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let took = bus.wait_all(
        "nt nolink after the reload",
        &keys(),
        MARK_WITHIN,
        &log,
        marked,
    );
    println!("reload disabling the device -> nt nolink on all tags in {took:?}");
}
