//! Scenario 4 of issue 10: an iec104-master with four links, three of them hostile: one
//! outstation that accepts TCP and never answers, one that resets the connection every 3 s,
//! one that floods spontaneous objects as fast as it can up to 10,000/s. The good link's
//! values keep arriving, the master's RSS stays flat, and while only the stalled and
//! resetting links misbehave it uses next to no CPU. Run with `tests/reliability iec104`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{cpu_ticks, Row, Sampler};
use iec60870::{spawn_outstation, CommonAddress, OutstationConfig, Point, PointDb, Quality};
use iec60870::{CommandHandler, CommandRequest, Ioa};
use serde_json::json;
use testrig::RedisServer;

const FLOOD_POINTS: u32 = 1_000;

struct NoCommands;
impl CommandHandler for NoCommands {
    fn select(&mut self, _: &CommandRequest) -> bool {
        false
    }
    fn execute(&mut self, _: &CommandRequest) -> bool {
        false
    }
}

/// Accepts connections and never answers (holds them until the flag drops).
fn stalled(stop: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    port
}

/// Accepts, never reads, and closes after 3 s: unread bytes (STARTDT) make the close an RST.
fn resetting(stop: Arc<AtomicBool>, resets: Arc<AtomicU64>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<(std::net::TcpStream, Instant)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok((s, _)) = l.accept() {
                held.push((s, Instant::now()));
            }
            let before = held.len();
            held.retain(|(_, t)| t.elapsed() < Duration::from_secs(3));
            resets.fetch_add((before - held.len()) as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    port
}

fn cfg_signal(dev: &str, alias: &str, ioa: u32) -> serde_json::Value {
    json!({"signal_name": alias, "device_alias": dev, "signal_alias": alias, "info_address": ioa, "type_id": "M_ME_NC_1"})
}

#[test]
#[ignore = "70 s fault run: tests/reliability iec104"]
fn iec104_master_survives_stalled_resetting_and_flooding_outstations() {
    let redis = RedisServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let resets = Arc::new(AtomicU64::new(0));
    let flood_on = Arc::new(AtomicBool::new(false));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let stall_port = stalled(stop.clone());
    let reset_port = resetting(stop.clone(), resets.clone());

    // The good and the flooding outstation (iec60870's outstation role) in one runtime thread.
    let (ports_tx, ports_rx) = std::sync::mpsc::channel();
    let (st, fo, fs) = (stop.clone(), flood_on.clone(), flood_sent.clone());
    let rt_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut db = PointDb::new();
            db.insert(Point::float(Ioa(100), 0.0, Quality::GOOD));
            let good = spawn_outstation(
                OutstationConfig::new("127.0.0.1:0".parse().unwrap(), CommonAddress(1)),
                db,
                NoCommands,
            )
            .await
            .unwrap();
            let mut db = PointDb::new();
            for i in 0..FLOOD_POINTS {
                db.insert(Point::float(Ioa(1000 + i), 0.0, Quality::GOOD));
            }
            let flood = spawn_outstation(
                OutstationConfig::new("127.0.0.1:0".parse().unwrap(), CommonAddress(1)),
                db,
                NoCommands,
            )
            .await
            .unwrap();
            ports_tx
                .send((good.local_addr().port(), flood.local_addr().port()))
                .unwrap();
            let t0 = Instant::now();
            let mut n: u64 = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !st.load(Ordering::Relaxed) {
                tick.tick().await;
                // The good outstation: a new value every 200 ms.
                let ms = t0.elapsed().as_millis() as u64;
                if ms % 200 < 10 {
                    let _ = good
                        .update(Point::float(Ioa(100), (ms / 200) as f32, Quality::GOOD))
                        .await;
                }
                if fo.load(Ordering::Relaxed) {
                    // 100 objects per 10 ms = 10,000/s offered.
                    for _ in 0..100 {
                        let ioa = Ioa(1000 + (n % u64::from(FLOOD_POINTS)) as u32);
                        if flood
                            .update(Point::float(ioa, n as f32, Quality::GOOD))
                            .await
                            .is_ok()
                        {
                            fs.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                }
            }
            good.shutdown().await;
            flood.shutdown().await;
        });
    });
    let (good_port, flood_port) = ports_rx.recv().unwrap();

    let link = |alias: &str, port: u16| {
        json!({"name": alias, "device_alias": alias, "protocol": "iec104-master", "ip": "127.0.0.1",
               "port": port, "asdu_address": 1, "t0": 2, "t1": 3, "t2": 1, "t3": 5})
    };
    let mut signals = vec![
        cfg_signal("good", "g", 100),
        cfg_signal("stall", "x", 1),
        cfg_signal("reset", "x", 1),
    ];
    signals.extend((0..FLOOD_POINTS).map(|i| cfg_signal("flood", &format!("f{i}"), 1000 + i)));
    let cfg = json!({"redis_url": redis.url(),
        "devices": [link("good", good_port), link("stall", stall_port), link("reset", reset_port), link("flood", flood_port)],
        "signals": signals});
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let master = faults::applet(
        &[
            "iec104-master",
            "-c",
            cfg_path.to_str().unwrap(),
            "--redis-url",
            &redis.url(),
            "-d",
            "info",
        ],
        dir.path().join("master.log"),
    );
    let pid = master.pid().unwrap();
    let sampler = Sampler::start(Some(redis.port()));
    sampler.track("iec104-master", Some(pid));
    sampler.track("redis", redis.pid());

    let mut good_values = BTreeSet::new();
    let watch = |secs: u64, good_values: &mut BTreeSet<String>| {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let v = redis.cli(&["GET", "tag/good/g/in"]);
            if let Some(x) = v.split(',').next() {
                if !x.is_empty() {
                    good_values.insert(x.to_owned());
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // Phase 1 (20 s): stalled + resetting links, no flood: CPU must be near zero.
    watch(5, &mut good_values); // let the connects settle
    let c0 = cpu_ticks(pid).unwrap();
    let t_idle = Instant::now();
    watch(15, &mut good_values);
    let idle_ticks = cpu_ticks(pid).unwrap() - c0;
    let idle_cpu = idle_ticks as f64 / 100.0 / t_idle.elapsed().as_secs_f64();
    let good_phase1 = good_values.len();
    // Phase 2 (40 s): the flood as well.
    let added0: u64 = xinfo_added(&redis);
    flood_on.store(true, Ordering::Relaxed);
    let c1 = cpu_ticks(pid).unwrap();
    let t_flood = Instant::now();
    watch(10, &mut good_values);
    let rss_10s = faults::rss_kb(pid).unwrap();
    watch(30, &mut good_values);
    let rss_40s = faults::rss_kb(pid).unwrap();
    let flood_cpu = (cpu_ticks(pid).unwrap() - c1) as f64 / 100.0 / t_flood.elapsed().as_secs_f64();
    flood_on.store(false, Ordering::Relaxed);
    let sent = flood_sent.load(Ordering::Relaxed);
    // Let the outstation's queue and the link drain: until the stream stops growing for 3 s.
    let drain_end = Instant::now() + Duration::from_secs(60);
    let mut last = (xinfo_added(&redis), Instant::now());
    while Instant::now() < drain_end && last.1.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(250));
        let a = xinfo_added(&redis);
        if a != last.0 {
            last = (a, Instant::now());
        }
    }
    let received = last.0 - added0;
    stop.store(true, Ordering::Relaxed);
    rt_thread.join().unwrap();
    let good_total = good_values.len();
    println!(
        "iec104-master: CPU {:.1}% of a core with stalled+resetting links, {:.1}% during the flood; RSS {} kB at 10 s of flood, {} kB at 40 s; good link values seen: {good_phase1} in phase 1, {good_total} in total; resets {}",
        idle_cpu * 100.0,
        flood_cpu * 100.0,
        rss_10s,
        rss_40s,
        resets.load(Ordering::Relaxed)
    );
    let row = Row {
        scenario: "IEC 104: stalled + resetting (3 s) + flooding (10,000 objects/s offered) outstations, 60 s".into(),
        sent,
        received,
        missing: sent.saturating_sub(received),
        duplicates: 0,
        max_rss_kb: sampler.max_rss_kb(),
        redis_used_max: sampler.redis_used_max(),
        note: format!(
            "sent = flood objects offered to the test outstation, received = tag bus stream entries added (flood + good link); the difference is dropped by the test outstation itself (its send queue, max_queued 1,024, drops spontaneous updates while the link is saturated), not by the master; master CPU {:.1}% of a core while links stalled/reset, {:.0}% during the flood; master RSS {:.1} MB after 10 s of flood, {:.1} MB after 40 s; good link: {good_total} distinct values in 60 s",
            idle_cpu * 100.0,
            flood_cpu * 100.0,
            rss_10s as f64 / 1024.0,
            rss_40s as f64 / 1024.0
        ),
    };
    row.report();
    assert!(
        good_phase1 >= 20,
        "good link values in phase 1: {good_phase1}\n{}",
        master.log()
    );
    assert!(
        good_total >= good_phase1 + 40,
        "good link starved during the flood: {good_total}"
    );
    assert!(idle_cpu < 0.05, "iec104-master spins: {idle_cpu}");
    assert!(
        rss_40s < rss_10s + 8 * 1024,
        "RSS grows: {rss_10s} -> {rss_40s} kB"
    );
}

fn xinfo_added(redis: &RedisServer) -> u64 {
    let out = redis.cli(&["XINFO", "STREAM", "tagbus:stream"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .iter()
        .position(|l| l.trim() == "entries-added")
        .and_then(|i| lines.get(i + 1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
