//! `fieldbridge supervise` with real processes: which applets run, restarts with backoff,
//! SIGHUP reloads, SIGTERM, a killed supervisor, and no password in any log line.
//!
//! Children that must stay up are a shell script given with the hidden `--child-program`
//! option (it records its arguments, then sleeps); the PDEATHSIG test runs the fieldbridge
//! binary itself as the child (`supervise` of a missing config stays up, waiting).

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use supervisor::{State, Status};

const BIN: &str = env!("CARGO_BIN_EXE_fieldbridge");
const PASSWORD: &str = "Pw-9f3Kq!zz";
const REDIS_PASSWORD: &str = "Rd-77xQ#pp";

/// A config with a valid MQTT part, and IEC 104 and Modbus parts valid or not.
fn config(iec104_asdu: &str, modbus_id: &str) -> String {
    format!(
        r#"{{
  "redis_url": "redis://127.0.0.1:1",
  "devices": [
    {{"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "127.0.0.1", "port": 1,
      "auth": "password", "username": "gw", "password": "{PASSWORD}", "client_id": "gw-test"}},
    {{"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1", "port": 1,
      "asdu_address": {iec104_asdu}}},
    {{"name": "Meter", "device_alias": "m1", "protocol": "modbus-tcp", "ip": "127.0.0.1",
      "modbus_id": {modbus_id}}}
  ],
  "signals": [
    {{"device_alias": "rtu1", "signal_alias": "cb1", "info_address": 100, "type_id": "M_SP_NA_1"}},
    {{"device_alias": "m1", "signal_alias": "p", "function": 3, "address": 0}},
    {{"device_alias": "cloud", "signal_alias": "cb1", "source_device_alias": "rtu1", "source_signal_alias": "cb1"}}
  ]
}}"#
    )
}

/// A supervisor under test, in its own temp dir; stopped (and its children killed) on drop.
struct Sup {
    dir: tempfile::TempDir,
    child: Child,
    seen_pids: BTreeSet<u32>,
}

impl Sup {
    /// Starts `fieldbridge supervise` on `config_text`; `child_script`: the body of the
    /// child program (None: the real applets).
    fn start(config_text: &str, child_script: Option<&str>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config_text).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("supervise")
            .arg("-c")
            .arg(dir.path().join("config.json"))
            .arg("--status-file")
            .arg(dir.path().join("run/status.json"))
            .args(["--backoff-min-ms", "200", "--stop-timeout", "2"])
            .args(extra)
            .env("FIELDBRIDGE_LOG", "stderr")
            .env("FIELDBRIDGE_TEST_DIR", dir.path())
            .env("FIELDBRIDGE_TEST_BIN", BIN)
            .env_remove("RUST_LOG")
            .env_remove("FIELDBRIDGE_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        if let Some(body) = child_script {
            let script = dir.path().join("child.sh");
            std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            cmd.arg("--child-program").arg(&script);
        }
        let child = cmd.spawn().unwrap();
        Self {
            dir,
            child,
            seen_pids: BTreeSet::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<Status> {
        Status::read(&self.path("run/status.json")).ok()
    }

    /// Polls the status file until `pred` holds (at most 10 s).
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.status() {
                self.seen_pids
                    .extend(s.applets.values().filter_map(|a| a.pid));
                if pred(&s) {
                    return s;
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out waiting for {what}; status: {s:#?}\nlog:\n{}",
                        self.log()
                    );
                }
            } else if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: no status file\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the supervisor to exit; its exit code.
    fn stop(&mut self) -> Option<i32> {
        let _ = kill(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the supervisor did not exit within 10 s of SIGTERM\nlog:\n{}",
            self.log()
        );
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(self.pid(), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in &self.seen_pids {
            let _ = killpg(
                Pid::from_raw(i32::try_from(*pid).unwrap_or(0)),
                Signal::SIGKILL,
            );
        }
    }
}

/// `fieldbridge status --status-file FILE`: its exit code and table (no Redis to read the
/// publisher's counters from).
fn status_table(file: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["status", "--status-file"])
        .arg(file)
        .env("FIELDBRIDGE_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn running_pid(s: &Status, applet: &str) -> Option<u32> {
    s.applets
        .get(applet)
        .filter(|a| a.state == State::Running)
        .and_then(|a| a.pid)
}

fn state(s: &Status, applet: &str) -> Option<State> {
    s.applets.get(applet).map(|a| a.state)
}

/// The processes (their /proc stat line) whose parent is `ppid` or whose process group is
/// one of `pgids`.
fn processes_of(ppid: Option<u32>, pgids: &BTreeSet<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" {
            continue;
        }
        let parent: u32 = fields[1].parse().unwrap_or(0);
        let pgrp: u32 = fields[2].parse().unwrap_or(0);
        if Some(parent) == ppid || pgids.contains(&pgrp) {
            found.push(stat);
        }
    }
    found
}

fn wait_gone(ppid: Option<u32>, pgids: &BTreeSet<u32>, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_of(ppid, pgids);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records its arguments in $FIELDBRIDGE_TEST_DIR/<applet>.args, then stays up.
const RECORDING_CHILD: &str = r#"echo "$@" > "$FIELDBRIDGE_TEST_DIR/$1.args"; exec sleep 120"#;

#[test]
fn valid_part_runs_invalid_part_does_not() {
    // No IEC 104 device; a Modbus device with two mistakes.
    let text = config("1", r#""x", "port": 70000"#).replace(
        r#"{"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master""#,
        r#"{"name": "RTU", "device_alias": "rtu1", "enable": 0, "protocol": "iec104-master""#,
    );
    let mut sup = Sup::start(&text, Some(RECORDING_CHILD), &[]);
    let s = sup.wait_for("mqtt-client running", |s| {
        running_pid(s, "mqtt-client").is_some()
    });
    assert_eq!(state(&s, "modbus-master"), Some(State::InvalidConfig));
    assert_eq!(state(&s, "iec104-master"), Some(State::Disabled));
    let modbus = &s.applets["modbus-master"];
    assert!(modbus.pid.is_none());
    assert!(
        modbus
            .errors
            .iter()
            .any(|e| e.contains("devices[2].modbus_id")),
        "{:?}",
        modbus.errors
    );
    assert!(
        modbus.errors.iter().any(|e| e.contains("devices[2].port")),
        "{:?}",
        modbus.errors
    );
    assert!(
        modbus.message.contains("2 config errors"),
        "{}",
        modbus.message
    );

    // The child got `<applet> -c FILE -d LEVEL`; nothing else was started.
    let args = std::fs::read_to_string(sup.path("mqtt-client.args")).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "mqtt-client -c {} -d info",
            sup.path("config.json").display()
        )
    );
    assert!(!sup.path("modbus-master.args").exists());
    assert!(!sup.path("iec104-master.args").exists());

    // Every error is in the log, with the applet.
    let log = sup.log();
    assert!(log.contains("devices[2].modbus_id"), "{log}");
    assert!(log.contains("devices[2].port"), "{log}");
    assert!(log.contains("modbus-master is not started"), "{log}");

    // `fieldbridge status` tells the same, as a table (exit 1: not all is running).
    let (code, table) = status_table(&sup.path("run/status.json"));
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("mqtt-client    running"), "{table}");
    assert!(table.contains("modbus-master  invalid_config"), "{table}");
    assert!(
        table.contains("modbus-master: config error: devices[2].modbus_id"),
        "{table}"
    );
    assert_eq!(sup.stop(), Some(0));
}

#[test]
fn a_killed_child_comes_back_with_backoff() {
    let mut sup = Sup::start(&config("1", "1"), Some("exec sleep 120"), &[]);
    let s = sup.wait_for("all running", |s| {
        ["mqtt-client", "iec104-master", "modbus-master"]
            .iter()
            .all(|a| running_pid(s, a).is_some())
    });
    let old = running_pid(&s, "mqtt-client").unwrap();
    let iec = running_pid(&s, "iec104-master").unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    let s = sup.wait_for("mqtt-client back", |s| {
        running_pid(s, "mqtt-client").is_some_and(|p| p != old)
    });
    let mqtt = &s.applets["mqtt-client"];
    assert_eq!(mqtt.restarts, 1);
    let exit = mqtt.last_exit.as_ref().unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(
        running_pid(&s, "iec104-master"),
        Some(iec),
        "the others keep running"
    );
    let log = sup.log();
    assert!(
        log.contains("mqtt-client exited (killed by signal 9 (SIGKILL))"),
        "{log}"
    );
    assert!(log.contains("restarting in"), "{log}");

    // Again: the delay doubles (200 ms, then 400 ms: the second is at least 200 ms).
    let second = running_pid(&s, "mqtt-client").unwrap();
    let killed_at = Instant::now();
    kill(Pid::from_raw(second as i32), Signal::SIGKILL).unwrap();
    let s = sup.wait_for("mqtt-client back again", |s| {
        running_pid(s, "mqtt-client").is_some_and(|p| p != second)
    });
    assert!(killed_at.elapsed() >= Duration::from_millis(200));
    assert_eq!(s.applets["mqtt-client"].restarts, 2);
    assert_eq!(sup.stop(), Some(0));
}

#[test]
fn a_child_that_keeps_dying_backs_off() {
    // The child exits at once, like an applet that cannot start.
    let mut sup = Sup::start(&config("1", "1"), Some("exit 3"), &[]);
    let s = sup.wait_for("three restarts", |s| s.applets["mqtt-client"].restarts >= 3);
    let mqtt = &s.applets["mqtt-client"];
    assert_eq!(mqtt.last_exit.as_ref().unwrap().code, Some(3));
    let log = sup.log();
    // Delays grow: 200 ms ceiling, then 400, 800 (each drawn in [ceiling/2, ceiling]).
    let delays: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("mqtt-client exited"))
        .filter_map(|l| l.split("restart_in_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 3, "{log}");
    assert!(
        delays[0] <= 200 && delays[1] >= 200 && delays[2] >= 400,
        "{delays:?}"
    );

    // A SIGHUP (config unchanged) starts one waiting in backoff at once.
    sup.wait_for("mqtt-client in backoff", |s| {
        state(s, "mqtt-client") == Some(State::Backoff)
    });
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sup
        .log()
        .contains("mqtt-client: starting it now instead of after the backoff")
    {
        assert!(Instant::now() < deadline, "{}", sup.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sup.stop(), Some(0));
}

#[test]
fn a_child_that_ran_long_enough_starts_from_the_first_delay() {
    // Each run lasts 300 ms, more than --stable-after-ms 100: the delay never grows.
    let mut sup = Sup::start(
        &config("1", "1"),
        Some("sleep 0.3; exit 1"),
        &["--stable-after-ms", "100"],
    );
    sup.wait_for("four restarts", |s| s.applets["mqtt-client"].restarts >= 4);
    let log = sup.log();
    let delays: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("mqtt-client exited"))
        .filter_map(|l| l.split("restart_in_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 4, "{log}");
    assert!(delays.iter().all(|d| *d <= 200), "{delays:?}");
    assert_eq!(sup.stop(), Some(0));
}

#[test]
fn sighup_restarts_only_what_changed() {
    let mut sup = Sup::start(&config("1", "1"), Some("exec sleep 120"), &[]);
    let all = ["mqtt-client", "iec104-master", "modbus-master"];
    let s = sup.wait_for("all running", |s| {
        all.iter().all(|a| running_pid(s, a).is_some())
    });
    let pid = |s: &Status, a| running_pid(s, a).unwrap();
    let (mqtt, iec, modbus) = (
        pid(&s, "mqtt-client"),
        pid(&s, "iec104-master"),
        pid(&s, "modbus-master"),
    );

    // Edit the IEC 104 device only.
    std::fs::write(sup.path("config.json"), config("2", "1")).unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let s = sup.wait_for("iec104-master restarted", |s| {
        running_pid(s, "iec104-master").is_some_and(|p| p != iec)
    });
    assert_eq!(running_pid(&s, "mqtt-client"), Some(mqtt));
    assert_eq!(running_pid(&s, "modbus-master"), Some(modbus));
    assert_eq!(
        s.applets["iec104-master"].restarts, 0,
        "a reload is not a restart"
    );

    // Break the Modbus part: it stops, the others keep their pids.
    let iec = running_pid(&s, "iec104-master").unwrap();
    std::fs::write(sup.path("config.json"), config("2", r#""not a number""#)).unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let s = sup.wait_for("modbus-master invalid", |s| {
        state(s, "modbus-master") == Some(State::InvalidConfig)
    });
    assert_eq!(running_pid(&s, "mqtt-client"), Some(mqtt));
    assert_eq!(running_pid(&s, "iec104-master"), Some(iec));
    let left = wait_gone(None, &BTreeSet::from([modbus]), Duration::from_secs(3));
    assert!(left.is_empty(), "{left:#?}");

    // A file that is not JSON: everything keeps running as it was.
    std::fs::write(sup.path("config.json"), "{ not json").unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let s = sup.wait_for("config error reported", |s| {
        s.supervisor.config_error.is_some()
    });
    assert_eq!(running_pid(&s, "mqtt-client"), Some(mqtt));
    assert_eq!(running_pid(&s, "iec104-master"), Some(iec));

    // Fix it: Modbus starts again.
    std::fs::write(sup.path("config.json"), config("2", "1")).unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    let s = sup.wait_for("modbus-master back", |s| {
        running_pid(s, "modbus-master").is_some()
    });
    assert_eq!(running_pid(&s, "mqtt-client"), Some(mqtt));
    assert_eq!(running_pid(&s, "iec104-master"), Some(iec));
    assert!(s.supervisor.config_error.is_none());
    assert_eq!(sup.stop(), Some(0));
}

#[test]
fn sigterm_leaves_no_process_behind() {
    // The children ignore SIGTERM and each starts a grandchild: SIGKILL after the stop
    // timeout (2 s) must take the whole process group.
    let mut sup = Sup::start(
        &config("1", "1"),
        Some("trap '' TERM; sleep 120 & sleep 120; wait"),
        &[],
    );
    let all = ["mqtt-client", "iec104-master", "modbus-master"];
    let s = sup.wait_for("all running", |s| {
        all.iter().all(|a| running_pid(s, a).is_some())
    });
    let pgids: BTreeSet<u32> = all.iter().filter_map(|a| running_pid(&s, a)).collect();
    let sup_pid = sup.child.id();
    // Wait for the grandchildren to exist.
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_of(Some(sup_pid), &pgids).len() < 9 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(processes_of(Some(sup_pid), &pgids).len() >= 6);
    let started = Instant::now();
    assert_eq!(sup.stop(), Some(0));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "SIGKILL came after the timeout"
    );
    let left = wait_gone(Some(sup_pid), &pgids, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind: {left:#?}");
    let s = sup.status().unwrap();
    assert!(!s.supervisor.running);
    assert!(
        all.iter().all(|a| state(&s, a) == Some(State::Stopped)),
        "{s:#?}"
    );
    assert!(sup.log().contains("did not stop within"));
}

#[test]
fn children_die_with_a_killed_supervisor() {
    // The child is fieldbridge itself, so its main sets the parent-death signal: a
    // `supervise` of a config that does not exist, which waits for a SIGHUP forever.
    let mut sup = Sup::start(
        &config("1", "1"),
        Some(
            r#"exec "$FIELDBRIDGE_TEST_BIN" supervise -c "$FIELDBRIDGE_TEST_DIR/none.json" --status-file "$FIELDBRIDGE_TEST_DIR/$1.json""#,
        ),
        &[],
    );
    let all = ["mqtt-client", "iec104-master", "modbus-master"];
    let s = sup.wait_for("all running", |s| {
        all.iter().all(|a| running_pid(s, a).is_some())
    });
    let pgids: BTreeSet<u32> = all.iter().filter_map(|a| running_pid(&s, a)).collect();
    // Give the children time to get through main's first line.
    std::thread::sleep(Duration::from_millis(500));
    for pid in &pgids {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.ends_with("fieldbridge"), "{exe:?}");
    }
    sup.child.kill().unwrap(); // SIGKILL: no chance to stop them itself
    sup.child.wait().unwrap();
    let left = wait_gone(None, &pgids, Duration::from_secs(3));
    assert!(left.is_empty(), "orphans: {left:#?}");
}

#[test]
fn a_child_whose_supervisor_is_gone_exits_at_once() {
    // Started "supervised" by a pid that is not its parent: it must not run.
    let out = Command::new(BIN)
        .args(["status", "--status-file", "/nonexistent/status.json"])
        .env(supervisor::ENV_SUPERVISED, "1")
        .env(supervisor::ENV_SUPERVISOR_PID, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("supervisor that started this process is gone"));
}

#[test]
fn no_log_line_contains_a_password() {
    // Phase 1: a valid config, the real applets (whatever they are in this build), trace.
    let text = config("1", "1").replace(
        "redis://127.0.0.1:1",
        &format!("redis://gw:{REDIS_PASSWORD}@127.0.0.1:1"),
    );
    let mut sup = Sup::start(&text, None, &["-d", "trace"]);
    sup.wait_for("mqtt-client started", |s| {
        s.applets["mqtt-client"].pid.is_some() || s.applets["mqtt-client"].last_exit.is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    // Phase 2: the password cells of the wrong type, the Redis URL not a redis:// URL.
    let broken = text
        .replace(&format!(r#""{PASSWORD}""#), &format!(r#"["{PASSWORD}"]"#))
        .replace("redis://gw:", "http://gw:");
    assert!(broken.contains(&format!(r#"["{PASSWORD}"]"#)));
    std::fs::write(sup.path("config.json"), &broken).unwrap();
    kill(sup.pid(), Signal::SIGHUP).unwrap();
    sup.wait_for("mqtt-client invalid", |s| {
        state(s, "mqtt-client") == Some(State::InvalidConfig)
    });
    assert_eq!(sup.stop(), Some(0));
    let mut text = sup.log();
    assert!(
        text.contains("password"),
        "the password error is logged:\n{text}"
    );
    text.push_str(&std::fs::read_to_string(sup.path("run/status.json")).unwrap());
    // The config tool's validate output too.
    let out = Command::new(BIN)
        .args(["config", "validate"])
        .arg(sup.path("config.json"))
        .output()
        .unwrap();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    for (n, line) in text.lines().enumerate() {
        assert!(
            !line.contains(PASSWORD) && !line.contains(REDIS_PASSWORD),
            "line {n} shows a password: {line}"
        );
    }
}

#[test]
fn status_without_a_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["status", "--status-file"])
        .arg(dir.path().join("none.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `fieldbridge supervise` running?"));
}

/// While the slave applet runs, the status file holds what it wrote to its stats hashes (the
/// test writes them, as the applet does); none while it does not run, and none a previous run
/// left behind.
#[test]
fn the_status_file_holds_the_running_slaves_stats() {
    use tagbus::stats::{MasterState, SlaveStats, StatsWriter};
    let redis = testrig::RedisServer::start();
    let config = format!(
        r#"{{"redis_url": "{}", "devices": [
            {{"name": "SCADA", "device_alias": "scada", "protocol": "iec104-slave",
              "ip": "127.0.0.1", "asdu_address": 5}}], "signals": []}}"#,
        redis.url()
    );
    let mut sup = Sup::start(&config, Some("exec sleep 120"), &[]);
    let s = sup.wait_for("the first status", |_| true);
    if !s.applets.contains_key("iec104-slave") {
        eprintln!("skipping: the supervisor has no iec104-slave applet yet (config::Applet)");
        return;
    }
    let s = sup.wait_for("iec104-slave running", |s| {
        running_pid(s, "iec104-slave").is_some()
    });
    assert!(s.slaves.is_empty(), "{:?}", s.slaves);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = SlaveStats {
        updated_ms: tagbus::now_ms(),
        masters: vec![MasterState {
            address: "127.0.0.1:40001".parse().unwrap(),
            group: 0,
            started: true,
            since_ms: tagbus::now_ms(),
        }],
        sent: 7,
        refused: 2,
        ..Default::default()
    };
    let mut writer = StatsWriter::new(&redis.url()).unwrap();
    let scada: tagbus::Alias = "scada".parse().unwrap();
    rt.block_on(writer.write_slave(&scada, &stats)).unwrap();
    let s = sup.wait_for("the slave's stats", |s| !s.slaves.is_empty());
    assert_eq!(s.slaves.get("scada"), Some(&stats));
    let (_, table) = status_table(&sup.path("run/status.json"));
    assert!(
        table.contains("    master 127.0.0.1:40001  group 0  started for "),
        "{table}"
    );

    // Killed: its masters are gone with it; restarted: the old hash is not shown.
    let old = running_pid(&s, "iec104-slave").unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    let s = sup.wait_for("iec104-slave back", |s| {
        running_pid(s, "iec104-slave").is_some_and(|p| p != old)
    });
    assert!(s.slaves.is_empty(), "{:?}", s.slaves);
    std::thread::sleep(supervisor::slaves::SLAVE_STATS_EVERY + Duration::from_secs(1));
    let s = sup.status().unwrap();
    assert!(
        s.slaves.is_empty(),
        "a previous run's stats: {:?}",
        s.slaves
    );
    let fresh = SlaveStats {
        updated_ms: tagbus::now_ms(),
        ..stats
    };
    rt.block_on(writer.write_slave(&scada, &fresh)).unwrap();
    let s = sup.wait_for("the new run's stats", |s| !s.slaves.is_empty());
    assert_eq!(s.slaves.get("scada"), Some(&fresh));
    assert_eq!(sup.stop(), Some(0));
    assert!(sup.status().unwrap().slaves.is_empty());
}

/// While an IEC 104 applet runs, the status file holds the TLS stats its devices with `tls`
/// 1 wrote (the test writes them, as the applets do), and `fieldbridge status` shows them; a
/// killed applet's go with it, the other applet's stay.
#[test]
fn the_status_file_holds_the_running_tls_devices_stats() {
    use tagbus::stats::{SecurityEvent, SecurityEventKind, StatsWriter, TlsStats};
    let redis = testrig::RedisServer::start();
    let pki = tempfile::tempdir().unwrap();
    let file = |name: &str, label: &str, mode: u32| {
        let path = pki.path().join(name);
        std::fs::write(
            &path,
            format!("-----BEGIN {label}-----\nMIIBAA==\n-----END {label}-----\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    };
    let tls = format!(
        r#""tls": 1, "ca_certificate": "{}", "certificate": "{}", "private_key": "{}""#,
        file("ca.pem", "CERTIFICATE", 0o644),
        file("own.pem", "CERTIFICATE", 0o644),
        file("own.key", "PRIVATE KEY", 0o600)
    );
    let config = format!(
        r#"{{"redis_url": "{}", "devices": [
            {{"name": "RTU", "device_alias": "rtu", "protocol": "iec104-master",
              "ip": "127.0.0.1", "asdu_address": 1, {tls}}},
            {{"name": "Plain", "device_alias": "plain", "protocol": "iec104-master",
              "ip": "127.0.0.1", "asdu_address": 2}},
            {{"name": "SCADA", "device_alias": "scada", "protocol": "iec104-slave",
              "ip": "127.0.0.1", "asdu_address": 5, {tls}}}],
          "signals": [
            {{"device_alias": "rtu", "signal_alias": "sp", "info_address": 1, "type_id": 1}},
            {{"device_alias": "plain", "signal_alias": "sp", "info_address": 1, "type_id": 1}},
            {{"device_alias": "scada", "signal_alias": "sp", "source_device_alias": "rtu",
              "source_signal_alias": "sp", "info_address": 1, "type_id": 1}}]}}"#,
        redis.url()
    );
    let mut sup = Sup::start(&config, Some("exec sleep 120"), &[]);
    let s = sup.wait_for("both IEC 104 applets running", |s| {
        running_pid(s, "iec104-master").is_some() && running_pid(s, "iec104-slave").is_some()
    });
    assert!(s.tls.is_empty(), "{:?}", s.tls);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rtu = TlsStats {
        updated_ms: tagbus::now_ms(),
        handshakes: 2,
        ..Default::default()
    };
    rtu.record(SecurityEvent {
        kind: SecurityEventKind::CertificateRevoked,
        peer: "127.0.0.1:19998".into(),
        subject: "CN=rtu-old".into(),
        detail: "revoked by the CRL".into(),
        at_ms: tagbus::now_ms(),
    });
    let scada = TlsStats {
        updated_ms: tagbus::now_ms(),
        handshakes: 1,
        ..Default::default()
    };
    let mut writer = StatsWriter::new(&redis.url()).unwrap();
    let alias = |a: &str| -> tagbus::Alias { a.parse().unwrap() };
    rt.block_on(writer.write_tls(&alias("rtu"), &rtu)).unwrap();
    rt.block_on(writer.write_tls(&alias("scada"), &scada))
        .unwrap();
    // A plain device's hash (none should exist) is not read.
    rt.block_on(writer.write_tls(&alias("plain"), &scada))
        .unwrap();
    let s = sup.wait_for("the TLS stats", |s| s.tls.len() == 2);
    assert_eq!(s.tls.get("rtu"), Some(&rtu));
    assert_eq!(s.tls.get("scada"), Some(&scada));
    let (_, table) = status_table(&sup.path("run/status.json"));
    for line in [
        "\nIEC 104 TLS devices:\n  rtu (updated ",
        "s ago): handshakes 2, certificates revoked 1\n",
        "s ago: certificate_revoked, peer 127.0.0.1:19998, subject \"CN=rtu-old\": revoked by the CRL\n",
        "s ago): handshakes 1\n    no security event\n",
    ] {
        assert!(table.contains(line), "{line:?} not in\n{table}");
    }

    // The master is killed: its device's stats go with it; the slave's stay.
    let old = running_pid(&s, "iec104-master").unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
    let s = sup.wait_for("the master's TLS stats gone", |s| {
        !s.tls.contains_key("rtu") && s.tls.contains_key("scada")
    });
    assert_eq!(s.tls.get("scada"), Some(&scada));
    sup.wait_for("iec104-master back", |s| {
        running_pid(s, "iec104-master").is_some_and(|p| p != old)
    });
    std::thread::sleep(supervisor::slaves::SLAVE_STATS_EVERY + Duration::from_secs(1));
    assert!(
        !sup.status().unwrap().tls.contains_key("rtu"),
        "a previous run's stats"
    );
    assert_eq!(sup.stop(), Some(0));
    assert!(sup.status().unwrap().tls.is_empty());
}

#[test]
fn status_shows_the_slave_devices_masters_and_counters() {
    // A file as the supervisor writes it while the IEC 104 slave applet runs (the pid: this
    // test, alive).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    let now_ms = tagbus::now_ms();
    let text = serde_json::json!({
        "version": 1,
        "supervisor": {"pid": std::process::id(), "config": dir.path().join("none.json"),
                       "started": now_ms / 1000 - 600, "updated": now_ms / 1000,
                       "running": true, "config_loaded": now_ms / 1000 - 600},
        "applets": {
            "iec104-slave": {"state": "running", "pid": 4242, "restarts": 0,
                             "since": now_ms / 1000 - 600, "message": "running"}
        },
        "slaves": {
            "scada": {"updated_ms": now_ms - 2_000,
                      "masters": [
                          {"address": "10.0.0.5:40001", "group": 0, "started": true,
                           "since_ms": now_ms - 125_000},
                          {"address": "[fd00::6]:2404", "group": 0, "started": false,
                           "since_ms": now_ms - 60_000}],
                      "sent": 1200, "buffered": 7, "dropped": 2, "refused": 1, "commands": 3},
            "spare": {"updated_ms": now_ms, "masters": [], "sent": 0, "buffered": 0,
                      "dropped": 0, "refused": 0, "commands": 0}
        }
    });
    std::fs::write(&path, text.to_string()).unwrap();
    let (code, table) = status_table(&path);
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("iec104-slave  running"), "{table}");
    // (Durations to the second may have moved on by one.)
    for line in [
        "\nIEC 104 slave devices:\n  scada (updated ",
        "s ago): sent 1200, buffered 7, dropped by the stream cap 2, masters refused 1, \
         commands 3\n",
        "    master 10.0.0.5:40001  group 0  started for 2m",
        "    master [fd00::6]:2404  group 0  standby for 1m",
        "  spare (updated ",
        "    no master connected\n",
    ] {
        assert!(table.contains(line), "{line:?} not in\n{table}");
    }
    // `--json` prints the file as it is, slaves included.
    let out = Command::new(BIN)
        .args(["status", "--json", "--status-file"])
        .arg(&path)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["slaves"], text["slaves"]);
}

#[test]
fn a_closed_stderr_does_not_kill_the_supervisor() {
    // Logging to a pipe nobody reads any more (a `| head`, a dead log reader) must not panic.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config("1", "1")).unwrap();
    let status_file = dir.path().join("status.json");
    let mut child = Command::new(BIN)
        .arg("supervise")
        .arg("-c")
        .arg(dir.path().join("config.json"))
        .arg("--status-file")
        .arg(&status_file)
        .args(["--child-program", "/bin/false", "--backoff-min-ms", "50"])
        .env("FIELDBRIDGE_LOG", "stderr")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take()); // the read end is closed: every log write fails
    let deadline = Instant::now() + Duration::from_secs(10);
    // Children dying and restarting make it log a lot meanwhile.
    while Status::read(&status_file).map_or(true, |s| s.applets["mqtt-client"].restarts < 3) {
        assert!(Instant::now() < deadline, "no restarts seen");
        assert!(child.try_wait().unwrap().is_none(), "the supervisor died");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    assert!(!Status::read(&status_file).unwrap().supervisor.running);
}
