//! Throughput benchmark of `fieldbridge iec104-master` (not a test: it prints numbers).
//!
//! An `iec60870` outstation in this process floods spontaneous `M_ME_TF_1` values (one
//! object per ASDU, CP56 time tag) for `--seconds`; the real applet (a separate process, the
//! release binary) turns them into tags on a real redis-server. Reported: information objects
//! per second that became `in` tags (counted on the tag bus stream), the applet's peak RSS
//! (VmHWM), and the latency of a single spontaneous value (outstation send -> PUBLISH seen).
//!
//! ```sh
//! cargo build --release -p fieldbridge
//! cargo run --release -p iec104-master --example bench -- --points 1000 --seconds 10
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iec60870::{
    spawn_outstation, CommandHandler, CommandRequest, CommonAddress, Cp56Time2a,
    InformationElement, Ioa, OutstationConfig, Point, PointDb, Quality, TimeTag, TypeId,
};
use testrig::{KillOnDrop, RedisServer};

struct Refuse;
impl CommandHandler for Refuse {
    fn execute(&mut self, _req: &CommandRequest) -> bool {
        false
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn point(ioa: u32, value: f32) -> Point {
    let now = i64::try_from(tagbus::now_ms()).unwrap();
    Point::new(
        TypeId::M_ME_TF_1,
        Ioa(ioa),
        InformationElement::Float {
            value,
            quality: Quality::GOOD,
        },
        Some(TimeTag::Cp56(Cp56Time2a::from_unix_ms(now).unwrap())),
    )
    .unwrap()
}

fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let points: u32 = arg("--points", "1000").parse().unwrap();
    let seconds: u64 = arg("--seconds", "10").parse().unwrap();
    let bin = PathBuf::from(arg(
        "--bin",
        testrig::workspace_root()
            .join("target/release/fieldbridge")
            .to_str()
            .unwrap(),
    ));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p fieldbridge",
        bin.display()
    );
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut db = PointDb::new();
    for ioa in 1..=points {
        db.insert(point(ioa, 0.0));
    }
    let mut oc = OutstationConfig::new("127.0.0.1:0".parse().unwrap(), CommonAddress(1));
    oc.max_queued = 4096;
    let outstation = rt
        .block_on(spawn_outstation(oc, db, Refuse))
        .expect("bind the outstation");
    let port = outstation.local_addr().port();

    let dir = tempfile_dir();
    let signals: Vec<serde_json::Value> = (1..=points)
        .map(|i| {
            serde_json::json!({"signal_name": format!("p{i}"), "device_alias": "bench",
                "signal_alias": format!("p{i}"), "info_address": i, "type_id": "M_ME_TF_1"})
        })
        .collect();
    let cfg = serde_json::json!({
        "redis_url": redis.url(),
        "stream_max_len": 100_000_000,
        "devices": [{"name": "Bench", "device_alias": "bench", "protocol": "iec104-master",
            "ip": "127.0.0.1", "port": port, "asdu_address": 1}],
        "signals": signals,
    });
    let cfg_path = dir.join("bench.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let child = Command::new(&bin)
        .args(["iec104-master", "-c"])
        .arg(&cfg_path)
        .args(["--redis-url", &redis.url(), "-d", "warn"])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let applet = KillOnDrop(child);
    let pid = applet.pid();

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut xlen = move || -> u64 {
        redis::cmd("XLEN")
            .arg(tagbus::STREAM_KEY)
            .query(&mut conn)
            .unwrap()
    };
    // the GI answer: every point once
    let deadline = Instant::now() + Duration::from_secs(60);
    while xlen() < u64::from(points) {
        assert!(Instant::now() < deadline, "the GI did not arrive");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("GI of {points} points on the bus; flooding for {seconds} s");

    let started = Instant::now();
    let before = xlen();
    let mut sent = 0u64;
    rt.block_on(async {
        let mut v = 1.0f32;
        while started.elapsed() < Duration::from_secs(seconds) {
            for ioa in 1..=points {
                outstation.update(point(ioa, v)).await.unwrap();
                sent += 1;
            }
            v += 1.0;
        }
    });
    let flood = started.elapsed();
    // let the applet drain what is in flight
    let mut last = xlen();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = xlen();
        if now == last {
            break;
        }
        last = now;
    }
    let total = started.elapsed() - Duration::from_millis(500);
    let written = last - before;
    println!(
        "updates offered: {sent} in {:.1} s ({:.0}/s; the outstation drops what its 4096 queue cannot hold)",
        flood.as_secs_f64(),
        sent as f64 / flood.as_secs_f64()
    );
    println!(
        "information objects -> in tags: {written} in {:.1} s = {:.0} objects/s",
        total.as_secs_f64(),
        written as f64 / total.as_secs_f64()
    );

    // latency of one value on a quiet link
    let mut sub = client.get_connection().unwrap();
    let mut ps = sub.as_pubsub();
    ps.subscribe("tag/bench/p1/in").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut lat = Vec::new();
    for i in 0..20 {
        let value = 1.0e6 + i as f32;
        let t = Instant::now();
        rt.block_on(outstation.update(point(1, value))).unwrap();
        loop {
            let msg = ps.get_message().expect("value within 5 s");
            let text: String = msg.get_payload().unwrap();
            if text.starts_with(&format!("{:?},", f64::from(value))) {
                lat.push(t.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    lat.sort();
    println!(
        "single value latency (outstation update -> PUBLISH seen): min {:?} median {:?} max {:?}",
        lat[0], lat[10], lat[19]
    );
    println!(
        "applet RSS: VmHWM {} (VmRSS {})",
        proc_status(pid, "VmHWM:"),
        proc_status(pid, "VmRSS:")
    );
    drop(applet);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("iec104-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
