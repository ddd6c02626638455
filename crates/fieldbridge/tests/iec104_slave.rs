#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]
//! `fieldbridge iec104-slave` end to end: c104 2.2.1 clients as SCADA masters
//! (crates/iec104-slave/tests/peers/c104_master.py) against the real binary, fed by the real
//! `modbus-master` polling a pymodbus server, through a real redis-server.
//! Run with FIELDBRIDGE_PEER_PYTHON=/work/main/.venv/bin/python outside CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iec60870::{Asdu, AsduSizes, Cause, InformationElement, TimeTag, TypeId};
use serde_json::{json, Value as Json};
use tagbus::{TagValue, STREAM_KEY};
use testrig::{free_port, AppletProcess, KillOnDrop, RedisServer};

mod common;
use common::peer::LinePeer;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fieldbridge"))
}

/// IOAs of the slave's points (see [`config`]).
const IOA_U16: u32 = 1000;
const IOA_F32: u32 = 1001;
const IOA_CTR: u32 = 1002;
const IOA_COIL0: u32 = 1003;
/// holding 20 (0 before the set-point command) as a double point: 0 + 1 = OFF
const IOA_SP_DP: u32 = 1004;
const IOA_IR0_IT: u32 = 1005;
const CMD_COIL5: u32 = 2000;
const CMD_SP: u32 = 2001;
const CMD_NOWHERE: u32 = 2002;

/// A received ASDU.
#[derive(Debug, Clone)]
struct Rx {
    asdu: Asdu,
}

impl Rx {
    fn is(&self, t: TypeId, cause: Cause) -> bool {
        self.asdu.type_id == t && self.asdu.cot.cause == cause
    }
    fn positive(&self) -> bool {
        !self.asdu.cot.negative
    }
    fn ioas(&self) -> Vec<u32> {
        self.asdu.objects.iter().map(|o| o.ioa.0).collect()
    }
}

/// One c104 master process, killed on drop.
struct Master {
    peer: LinePeer,
    frames: Vec<Rx>,
    name: &'static str,
}

impl Master {
    fn start(name: &'static str) -> Master {
        let script =
            testrig::workspace_root().join("crates/iec104-slave/tests/peers/c104_master.py");
        let mut m = Master {
            peer: LinePeer::start(&script, &[]),
            frames: Vec::new(),
            name,
        };
        assert_eq!(m.reply(Duration::from_secs(30)), "READY");
        m
    }

    /// Handles one line: a frame is decoded and kept; anything else is returned.
    fn take(&mut self, line: String) -> Option<String> {
        let Some(hex) = line.strip_prefix("RX ") else {
            return Some(line);
        };
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        // I frames only (bit 0 of the first control octet clear); the ASDU follows the APCI
        if bytes.len() > 6 && bytes[2] & 1 == 0 {
            let asdu = Asdu::decode(&bytes[6..], &AsduSizes::default())
                .unwrap_or_else(|e| panic!("{}: undecodable ASDU {hex}: {e}", self.name));
            self.frames.push(Rx { asdu });
        }
        None
    }

    fn reply(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .peer
                .line(left)
                .unwrap_or_else(|| panic!("{}: no answer within {timeout:?}", self.name));
            if let Some(l) = self.take(line) {
                return l;
            }
        }
    }

    /// Sends a command line and returns its answer (which must start with `expect`).
    fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.peer.send(line);
        let r = self.reply(Duration::from_secs(30));
        assert!(r.starts_with(expect), "{}: {line} -> {r}", self.name);
        r
    }

    /// Reads frames for `d`.
    fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(line) = self
            .peer
            .line(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(l) = self.take(line) {
                println!("{}: {l}", self.name);
            }
        }
    }

    /// Reads frames until `pred` holds for the frames so far; panics after `timeout`.
    fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        log: &dyn Fn() -> String,
        pred: impl Fn(&[Rx]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.frames) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.peer.line(left.min(Duration::from_millis(200))) {
                Some(line) => {
                    if let Some(l) = self.take(line) {
                        println!("{}: {l}", self.name);
                    }
                }
                None if Instant::now() >= deadline => panic!(
                    "{}: {what}: not within {timeout:?}; frames: {:#?}\nlog:\n{}",
                    self.name,
                    self.frames
                        .iter()
                        .map(|f| format!("{} {:?} {:?}", f.asdu.type_id, f.asdu.cot, f.ioas()))
                        .collect::<Vec<_>>(),
                    log()
                ),
                None => {}
            }
        }
    }

    /// The values of spontaneous `ioa` objects received so far, in order.
    fn spontaneous(&self, ioa: u32) -> Vec<f64> {
        self.frames
            .iter()
            .filter(|f| f.asdu.cot.cause == Cause::SPONTANEOUS)
            .flat_map(|f| f.asdu.objects.iter())
            .filter(|o| o.ioa.0 == ioa)
            .filter_map(|o| o.element.numeric_value())
            .collect()
    }
}

struct Rig {
    dir: tempfile::TempDir,
    redis: RedisServer,
    _modbus: KillOnDrop,
    modbus_master: AppletProcess,
    slave: AppletProcess,
    slave_port: u16,
}

impl Rig {
    fn start(extra_slave: Json) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let redis = RedisServer::start();
        let modbus_port = free_port();
        let script =
            testrig::workspace_root().join("crates/modbus-master/tests/peers/modbus_server.py");
        let modbus = Command::new(testrig::peer_python())
            .arg(script)
            .args(["--tcp", &modbus_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pymodbus server");
        let modbus = KillOnDrop(modbus);
        testrig::wait_for_port(modbus_port, Duration::from_secs(20)).unwrap();
        let slave_port = free_port();
        let cfg = config(dir.path(), &redis, modbus_port, slave_port, extra_slave);
        let modbus_master = AppletProcess::start(
            &bin(),
            "modbus-master",
            &cfg,
            &redis.url(),
            dir.path().join("modbus-master.log"),
        );
        let slave = AppletProcess::start(
            &bin(),
            "iec104-slave",
            &cfg,
            &redis.url(),
            dir.path().join("iec104-slave.log"),
        );
        testrig::wait_for_port(slave_port, Duration::from_secs(20)).unwrap();
        Rig {
            dir,
            redis,
            _modbus: modbus,
            modbus_master,
            slave,
            slave_port,
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- iec104-slave\n{}\n--- modbus-master\n{}",
            self.slave.log(),
            self.modbus_master.log()
        )
    }

    /// The values the stream holds for a tag, oldest first.
    fn streamed(&self, key: &str) -> Vec<TagValue> {
        let mut c = self.redis.connect();
        let mut v: Vec<TagValue> = c
            .stream_newest(STREAM_KEY, 1_000_000)
            .into_iter()
            .filter(|(_, f)| f.get(1).map(String::as_str) == Some(key))
            .map(|(_, f)| f[3].parse().unwrap())
            .collect();
        v.reverse();
        v
    }

    fn value(&self, key: &str) -> Option<TagValue> {
        self.redis.connect().get(key).map(|s| s.parse().unwrap())
    }

    fn wait_value(&self, key: &str, timeout: Duration) -> TagValue {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.value(key) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{key}: no value\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn config(
    dir: &Path,
    redis: &RedisServer,
    modbus_port: u16,
    slave_port: u16,
    extra: Json,
) -> PathBuf {
    let mb = |alias: &str, function: u8, address: u16, extra: Json| {
        let mut s = json!({"signal_name": alias, "device_alias": "meter", "signal_alias": alias,
            "function": function, "address": address});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let pt = |alias: &str, source: &str, ioa: u32, t: &str, extra: Json| {
        let mut s = json!({"signal_name": alias, "device_alias": "scada", "signal_alias": alias,
            "source_device_alias": "meter", "source_signal_alias": source,
            "info_address": ioa, "type_id": t});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    // t1 above the c104 master's t2 (10 s): it acknowledges after w (8) I frames or t2, and a
    // quiet link (the tag bus lost: 6 NT events, then nothing) must not expire t1.
    let mut slave = json!({"name": "SCADA link", "device_alias": "scada", "protocol": "iec104-slave",
        "ip": "127.0.0.1", "port": slave_port, "asdu_address": 1, "t1_s": 15, "t2_s": 1, "t3_s": 10,
        "command_timeout_s": 5});
    for (k, v) in extra.as_object().unwrap() {
        slave[k] = v.clone();
    }
    let cfg = json!({
        "redis_url": redis.url(),
        "devices": [
            {"name": "Meter", "device_alias": "meter", "protocol": "modbus-tcp", "ip": "127.0.0.1",
             "port": modbus_port, "modbus_id": 1, "poll_interval_ms": 100, "timeout_ms": 1000},
            slave
        ],
        "signals": [
            mb("u16", 3, 0, json!({"data_type": "u16"})),
            mb("f32be", 3, 6, json!({"data_type": "f32", "word_order": "big"})),
            mb("ctr", 3, 30, json!({"data_type": "u16"})),
            mb("sp", 3, 20, json!({"data_type": "u16", "writable": 1})),
            mb("coil0", 1, 0, json!({})),
            mb("coil2", 1, 2, json!({})),
            mb("coil5", 1, 5, json!({"writable": 1})),
            mb("ir0", 4, 0, json!({})),
            mb("nowhere", 6, 200, json!({})),
            pt("u16", "u16", IOA_U16, "M_ME_NB_1", json!({})),
            pt("f32", "f32be", IOA_F32, "M_ME_TF_1", json!({})),
            pt("ctr", "ctr", IOA_CTR, "M_ME_NB_1", json!({})),
            pt("coil0", "coil0", IOA_COIL0, "M_SP_TB_1", json!({})),
            pt("sp_dp", "sp", IOA_SP_DP, "M_DP_NA_1", json!({"offset": -1})),
            pt("ir0", "ir0", IOA_IR0_IT, "M_IT_NA_1", json!({})),
            pt("cmd_coil5", "coil5", CMD_COIL5, "C_SC_NA_1", json!({})),
            pt("cmd_sp", "sp", CMD_SP, "C_SE_NB_1", json!({"select_before_operate": 1})),
            pt("cmd_nowhere", "nowhere", CMD_NOWHERE, "C_SE_NB_1", json!({})),
        ]
    });
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let out = Command::new(bin())
        .args(["config", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn object(
    frames: &[Rx],
    cause: Cause,
    ioa: u32,
) -> Option<(TypeId, InformationElement, Option<TimeTag>)> {
    frames
        .iter()
        .filter(|f| f.asdu.cot.cause == cause)
        .flat_map(|f| f.asdu.objects.iter().map(move |o| (f.asdu.type_id, o)))
        .find(|(_, o)| o.ioa.0 == ioa)
        .map(|(t, o)| (t, o.element, o.time))
}

#[test]
fn gi_spontaneous_values_commands_and_refusals() {
    let rig = Rig::start(json!({}));
    let t = Duration::from_secs(20);
    let log = || rig.logs();
    // the sources have values before the master asks
    for k in ["u16", "f32be", "coil0", "sp", "ir0"] {
        rig.wait_value(&format!("tag/meter/{k}/in"), t);
    }
    let mut m = Master::start("master");
    m.cmd(&format!("connect {}", rig.slave_port), "OPEN");

    // --- general interrogation: every point, its value, quality and the source's time
    m.cmd("gi", "SENT");
    m.wait("GI ACT_TERM", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_IC_NA_1, Cause::ACTIVATION_TERMINATION))
    });
    assert!(m
        .frames
        .iter()
        .any(|r| r.is(TypeId::C_IC_NA_1, Cause::ACTIVATION_CON) && r.positive()));
    let gi = Cause::INTERROGATED_BY_STATION;
    for ioa in [IOA_U16, IOA_F32, IOA_CTR, IOA_COIL0, IOA_SP_DP] {
        assert!(
            object(&m.frames, gi, ioa).is_some(),
            "GI lacks IOA {ioa}: {:#?}",
            m.frames
        );
    }
    assert!(
        object(&m.frames, gi, IOA_IR0_IT).is_none(),
        "integrated totals only on counter interrogation"
    );
    let (t_u16, e_u16, _) = object(&m.frames, gi, IOA_U16).unwrap();
    assert_eq!(t_u16, TypeId::M_ME_NB_1);
    assert_eq!(
        e_u16,
        InformationElement::Scaled {
            value: 1234,
            quality: iec60870::Quality::GOOD
        }
    );
    let (_, e_f, _) = object(&m.frames, gi, IOA_F32).unwrap();
    assert_eq!(
        e_f,
        InformationElement::Float {
            value: 123.5,
            quality: iec60870::Quality::GOOD
        }
    );
    let (_, e_dp, _) = object(&m.frames, gi, IOA_SP_DP).unwrap();
    assert_eq!(
        e_dp,
        InformationElement::DoublePoint {
            value: iec60870::DoublePointValue::Off,
            quality: iec60870::Quality::GOOD
        }
    );

    // --- spontaneous: the counter register changes on every poll; its events carry the
    //     source's timestamps (time-tagged float: the gateway time of the Modbus read)
    m.wait("spontaneous counter values", t, &log, |f| {
        f.iter()
            .filter(|r| r.asdu.cot.cause == Cause::SPONTANEOUS && r.ioas().contains(&IOA_CTR))
            .count()
            >= 5
    });
    let ctr = m.spontaneous(IOA_CTR);
    assert!(
        ctr.windows(2).all(|w| w[0] < w[1]),
        "counter events in order: {ctr:?}"
    );

    // --- counter interrogation
    m.cmd("ci", "SENT");
    m.wait("CI ACT_TERM", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_CI_NA_1, Cause::ACTIVATION_TERMINATION))
    });
    let (t_it, e_it, _) =
        object(&m.frames, Cause::REQUESTED_BY_GENERAL_COUNTER, IOA_IR0_IT).unwrap();
    assert_eq!(t_it, TypeId::M_IT_NA_1);
    assert!(
        matches!(
            e_it,
            InformationElement::IntegratedTotal { counter: 777, .. }
        ),
        "{e_it:?}"
    );

    // --- clock sync is confirmed (and not applied: accept_clock_sync is off)
    m.cmd("clock", "SENT");
    m.wait("clock sync ACT_CON", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_CS_NA_1, Cause::ACTIVATION_CON) && r.positive())
    });

    // --- a single command reaches the coil: ACT_CON+ and ACT_TERM
    m.cmd(&format!("cmd C_SC_NA_1 {CMD_COIL5} 1"), "SENT");
    m.wait("single command ACT_TERM", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_SC_NA_1, Cause::ACTIVATION_TERMINATION))
    });
    assert!(m
        .frames
        .iter()
        .any(|r| r.is(TypeId::C_SC_NA_1, Cause::ACTIVATION_CON) && r.positive()));
    let coil = rig
        .value("tag/meter/coil5/rout")
        .expect("the modbus-master wrote coil 5");
    assert_eq!(coil.value.as_f64(), 1.0);

    // --- select before operate on the set-point: select ACT_CON, execute ACT_CON, ACT_TERM
    m.cmd(&format!("cmd C_SE_NB_1 {CMD_SP} 321 sbo"), "SENT");
    m.wait("set-point ACT_TERM", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_SE_NB_1, Cause::ACTIVATION_TERMINATION) && r.ioas() == [CMD_SP])
    });
    let cons: Vec<&Rx> = m
        .frames
        .iter()
        .filter(|r| r.is(TypeId::C_SE_NB_1, Cause::ACTIVATION_CON) && r.ioas() == [CMD_SP])
        .collect();
    assert!(
        cons.len() >= 2 && cons.iter().all(|r| r.positive()),
        "{cons:?}"
    );
    let deadline = Instant::now() + t;
    while rig.value("tag/meter/sp/in").map(|v| v.value.as_f64()) != Some(321.0) {
        assert!(
            Instant::now() < deadline,
            "holding 20 is not 321\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // an execute without select on the SBO point is refused
    let before = m.frames.len();
    m.cmd(&format!("cmd C_SE_NB_1 {CMD_SP} 5"), "SENT");
    m.wait("execute without select refused", t, &log, |f| {
        f[before..]
            .iter()
            .any(|r| r.is(TypeId::C_SE_NB_1, Cause::ACTIVATION_CON) && !r.positive())
    });

    // --- a write the Modbus device refuses (exception): ACT_CON negative, link kept
    m.cmd(&format!("cmd C_SE_NB_1 {CMD_NOWHERE} 7"), "SENT");
    m.wait("rejected write ACT_CON-", t, &log, |f| {
        f.iter().any(|r| {
            r.is(TypeId::C_SE_NB_1, Cause::ACTIVATION_CON)
                && r.ioas() == [CMD_NOWHERE]
                && !r.positive()
        })
    });

    // --- refusals: unknown IOA 47, unknown common address 46, type not of the IOA 44,
    //     wrong cause 45; all negative, the link stays
    m.cmd("cmd C_SC_NA_1 4242 1", "SENT");
    m.wait("COT 47", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_SC_NA_1, Cause::UNKNOWN_IOA) && !r.positive())
    });
    m.cmd(&format!("cmd C_SC_NA_1 {CMD_COIL5} 1 ca=7"), "SENT");
    m.wait("COT 46", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_SC_NA_1, Cause::UNKNOWN_COMMON_ADDRESS) && !r.positive())
    });
    m.cmd(&format!("cmd C_DC_NA_1 {CMD_COIL5} on"), "SENT");
    m.wait("COT 44", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_DC_NA_1, Cause::UNKNOWN_TYPE_ID) && !r.positive())
    });
    m.cmd(
        &format!("cmd C_SC_NA_1 {CMD_COIL5} 1 cot=SPONTANEOUS"),
        "SENT",
    );
    m.wait("COT 45", t, &log, |f| {
        f.iter()
            .any(|r| r.is(TypeId::C_SC_NA_1, Cause::UNKNOWN_CAUSE) && !r.positive())
    });
    // still connected: spontaneous values keep coming
    let n = m.spontaneous(IOA_CTR).len();
    m.drain(Duration::from_secs(1));
    assert!(m.spontaneous(IOA_CTR).len() > n, "the link was kept");
    let _ = &rig.dir;
}

/// Every counter value the stream holds from `from` on must have reached the masters, in
/// order, none missing (duplicates after a reconnect are allowed: at least once).
fn assert_all_delivered(streamed: &[TagValue], received: &[f64], what: &str) {
    let want: Vec<f64> = streamed.iter().map(|v| v.value.as_f64()).collect();
    let mut it = received.iter().peekable();
    let mut missing = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for w in &want {
        // skip duplicates the master already had
        while let Some(r) = it.peek() {
            if **r < *w {
                it.next();
            } else {
                break;
            }
        }
        match it.peek() {
            Some(r) if **r == *w => {
                last = *w;
                it.next();
            }
            _ => missing.push(*w),
        }
    }
    println!(
        "{what}: {} streamed values, {} received, last {last}",
        want.len(),
        received.len()
    );
    assert!(
        missing.is_empty(),
        "{what}: missing {missing:?} (received {received:?})"
    );
}

#[test]
fn no_event_lost_across_a_master_outage_and_a_killed_slave() {
    let mut rig = Rig::start(json!({}));
    let t = Duration::from_secs(30);
    let mut m = Master::start("master");
    m.cmd(&format!("connect {}", rig.slave_port), "OPEN");
    {
        let log = || rig.logs();
        m.wait("first counter events", t, &log, |f| {
            f.iter()
                .any(|r| r.asdu.cot.cause == Cause::SPONTANEOUS && r.ioas().contains(&IOA_CTR))
        });
    }
    let first = *m.spontaneous(IOA_CTR).first().unwrap();

    // --- a 10 s master outage
    m.cmd("disconnect", "DISCONNECTED");
    std::thread::sleep(Duration::from_secs(10));
    m.cmd(&format!("connect {}", rig.slave_port), "OPEN");
    m.drain(Duration::from_secs(3));

    // --- the slave killed (SIGKILL) and restarted while values keep coming
    rig.slave.kill();
    std::thread::sleep(Duration::from_secs(3));
    rig.slave.restart();
    testrig::wait_for_port(rig.slave_port, Duration::from_secs(20)).unwrap();
    // c104 notices the lost connection itself; reconnect explicitly
    let _ = m.cmd("disconnect", "DISCONNECTED");
    m.cmd(&format!("connect {}", rig.slave_port), "OPEN");
    m.drain(Duration::from_secs(3));

    // the values streamed since the first one received, up to 2 s ago (the tail may still be
    // on its way)
    let streamed: Vec<TagValue> = rig
        .streamed("tag/meter/ctr/in")
        .into_iter()
        .filter(|v| v.value.as_f64() >= first && v.timestamp_ms + 2000 < tagbus::now_ms())
        .collect();
    assert!(
        streamed.len() > 100,
        "{} values in ~16 s at 10/s",
        streamed.len()
    );
    assert_all_delivered(&streamed, &m.spontaneous(IOA_CTR), "outage and kill");
}

#[test]
fn redundancy_group_switch_over_loses_nothing() {
    let rig = Rig::start(json!({}));
    let t = Duration::from_secs(30);
    let log = || rig.logs();
    let mut a = Master::start("master-a");
    let mut b = Master::start("master-b");
    a.cmd(&format!("connect {}", rig.slave_port), "OPEN");
    b.cmd(&format!("standby {}", rig.slave_port), "CONNECTED");
    a.wait("events to the started master", t, &log, |f| {
        f.iter()
            .any(|r| r.asdu.cot.cause == Cause::SPONTANEOUS && r.ioas().contains(&IOA_CTR))
    });
    let first = *a.spontaneous(IOA_CTR).first().unwrap();
    a.drain(Duration::from_secs(2));
    b.drain(Duration::from_millis(100));
    assert!(
        b.spontaneous(IOA_CTR).is_empty(),
        "the standby master gets no data"
    );
    // switch-over: STOPDT on A, STARTDT on B
    a.cmd("stop", "STOPPED");
    std::thread::sleep(Duration::from_millis(500));
    b.cmd("start", "STARTED");
    b.wait("events to the new started master", t, &log, |f| {
        f.iter()
            .any(|r| r.asdu.cot.cause == Cause::SPONTANEOUS && r.ioas().contains(&IOA_CTR))
    });
    b.drain(Duration::from_secs(3));
    a.drain(Duration::from_millis(100));
    let mut received = a.spontaneous(IOA_CTR);
    received.extend(b.spontaneous(IOA_CTR));
    let streamed: Vec<TagValue> = rig
        .streamed("tag/meter/ctr/in")
        .into_iter()
        .filter(|v| v.value.as_f64() >= first && v.timestamp_ms + 1500 < tagbus::now_ms())
        .collect();
    assert_all_delivered(&streamed, &received, "switch-over");
}

/// The quality bits of the spontaneous `ioa` objects received.
fn spontaneous_quality(frames: &[Rx], ioa: u32) -> Vec<iec60870::Quality> {
    frames
        .iter()
        .filter(|f| f.asdu.cot.cause == Cause::SPONTANEOUS)
        .flat_map(|f| f.asdu.objects.iter())
        .filter(|o| o.ioa.0 == ioa)
        .map(|o| o.element.quality())
        .collect()
}

#[test]
fn a_lost_tag_bus_makes_every_point_not_topical_until_it_is_back() {
    let mut rig = Rig::start(json!({}));
    let t = Duration::from_secs(30);
    let mut m = Master::start("master");
    m.cmd(&format!("connect {}", rig.slave_port), "OPEN");
    m.drain(Duration::from_secs(1));
    // Redis gone: no driver can write, the slave's values age unseen
    rig.redis.kill();
    let lost = Instant::now();
    {
        let log = || rig.logs();
        m.wait("u16 sent NT", t, &log, |f| {
            spontaneous_quality(f, IOA_U16)
                .iter()
                .any(|q| q.not_topical())
        });
    }
    let after = lost.elapsed();
    println!("points NT {after:?} after the tag bus was lost");
    assert!(
        after >= Duration::from_secs(8),
        "marked only after the grace time"
    );
    let nt_at = m.frames.len();
    // back: the drivers write again, the current values clear NT
    rig.redis.restart();
    let back = Instant::now();
    let log = || rig.logs();
    m.wait("u16 good again", Duration::from_secs(120), &log, |f| {
        spontaneous_quality(&f[nt_at..], IOA_U16)
            .iter()
            .any(|q| q.is_good())
    });
    println!(
        "good again {:?} after the tag bus came back",
        back.elapsed()
    );
}
