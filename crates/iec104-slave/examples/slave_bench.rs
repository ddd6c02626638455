//! Benchmark of `fieldbridge iec104-slave` (not a test: it prints figures).
//!
//! A real redis-server, the real applet (the release binary, a separate process) serving
//! `--points` M_ME_TF_1 points, and the `iec60870` master in this process as the SCADA
//! master. Reported, as `key value` lines (and to `BENCH_OUT` if set):
//! - `slave.gi_ms`: general interrogation of every point (C_IC sent -> ACT_TERM received);
//! - `slave.values_per_s`: spontaneous throughput, tag writes (batches on the bus) -> objects
//!   received by the master; `outstation.values_per_s`: the same master fed by the stack's
//!   own outstation directly (`OutstationHandle::update`), and `slave.ratio` between them;
//! - `slave.p50_ms` / `slave.p99_ms`: latency at a steady `--rate` changes/s (tag timestamp
//!   -> object received; both on this machine's clock);
//! - `slave.rss_kb` / `slave.hwm_kb`: the applet's RSS after the run and its peak;
//! - the same applet figures again with the slave device on IEC 62351-3 TLS (the master
//!   presenting a client certificate of a `testrig::TestPki`), as `slave_tls.*`, and
//!   `slave.tls_ratio`: TLS throughput / plain TCP throughput (`--tls 0` skips it).
//!
//! ```sh
//! cargo build --release -p fieldbridge
//! cargo run --release -p iec104-slave --example slave_bench -- --points 10000
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iec60870::{
    spawn_master, spawn_outstation, AcceptAll, Cause, CommonAddress, Cp56Time2a, Ioa, MasterConfig,
    MasterEvent, OutstationConfig, Point, PointDb, Quality, TimeTag, TypeId,
};
use tagbus::{Alias, Direction, TagKey, TagValue};
use testrig::bench::{arg, proc_status_kb};
use testrig::{KillOnDrop, RedisServer, TestPki};
use tokio::sync::mpsc;

fn key(i: u32) -> TagKey {
    TagKey::new(
        Alias::new("src").unwrap(),
        Alias::new(&format!("p{i}")).unwrap(),
        Direction::In,
    )
}

/// Objects of spontaneous/interrogation ASDUs as they arrive: (cause, ioa, time tag ms).
struct Arrivals {
    rx: mpsc::Receiver<MasterEvent>,
}

impl Arrivals {
    /// Waits for the next ASDU; `None` after `timeout`.
    async fn next(&mut self, timeout: Duration) -> Option<iec60870::Asdu> {
        loop {
            match tokio::time::timeout(timeout, self.rx.recv()).await {
                Ok(Some(MasterEvent::Asdu(a))) => return Some(a),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn wait_active(&mut self) {
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(30), self.rx.recv()).await
        {
            if ev == MasterEvent::Active {
                return;
            }
        }
        panic!("the master did not become active");
    }
}

fn master(
    addr: SocketAddr,
    tls: Option<Arc<dyn iec60870::transport::Connector>>,
) -> (iec60870::MasterHandle, Arrivals) {
    let mut cfg = MasterConfig::new(vec![addr]);
    cfg.queue_size = 4096;
    cfg.reconnect_min = Duration::from_millis(200);
    cfg.transport = tls;
    let (h, rx) = spawn_master(cfg);
    (h, Arrivals { rx })
}

/// GI: the time from the request to ACT_TERM, with the number of objects received.
async fn gi(h: &iec60870::MasterHandle, a: &mut Arrivals) -> (Duration, usize) {
    let t = Instant::now();
    h.general_interrogation(CommonAddress(1)).await.unwrap();
    let mut n = 0;
    while let Some(asdu) = a.next(Duration::from_secs(60)).await {
        if asdu.cot.cause == Cause::INTERROGATED_BY_STATION {
            n += asdu.objects.len();
        }
        if asdu.type_id == TypeId::C_IC_NA_1 && asdu.cot.cause == Cause::ACTIVATION_TERMINATION {
            break;
        }
    }
    (t.elapsed(), n)
}

/// Counts spontaneous objects until `want` arrived (or 60 s without one).
async fn count_spontaneous(a: &mut Arrivals, want: usize) -> usize {
    let mut n = 0;
    while n < want {
        let Some(asdu) = a.next(Duration::from_secs(60)).await else {
            break;
        };
        if asdu.cot.cause == Cause::SPONTANEOUS {
            n += asdu.objects.len();
        }
    }
    n
}

/// An M_ME_TF_1 point stamped now.
fn float_point(ioa: u32, value: f32) -> Point {
    let now = Cp56Time2a::from_unix_ms(tagbus::now_ms() as i64).unwrap();
    Point::float(Ioa(ioa), value, Quality::GOOD).with_time(now)
}

/// The TLS settings of a device row presenting `own` (the slave's server or the master's
/// client certificate) of `pki`.
/// What one run of the applet needs (each run has a redis-server of its own).
struct Run<'a> {
    bin: &'a Path,
    dir: &'a Path,
    points: u32,
    rounds: u32,
    rate: u64,
    seconds: u64,
}

fn main() {
    let points: u32 = arg("--points", "10000").parse().unwrap();
    let rounds: u32 = arg("--rounds", "20").parse().unwrap();
    let rate: u64 = arg("--rate", "1000").parse().unwrap();
    let seconds: u64 = arg("--seconds", "10").parse().unwrap();
    let with_tls = arg("--tls", "1") != "0";
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("fieldbridge-slave-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = Run {
        bin: &bin,
        dir: &dir,
        points,
        rounds,
        rate,
        seconds,
    };
    let pki = with_tls.then(TestPki::generate);
    let figures = rt.block_on(async {
        let mut out = applet_run(&run, None, "slave").await;
        let slave_rate = figure(&out, "slave.values_per_s");
        if let Some(pki) = &pki {
            let tls = applet_run(&run, Some(pki), "slave_tls").await;
            let tls_rate = figure(&tls, "slave_tls.values_per_s");
            println!(
                "spontaneous throughput over TLS / plain TCP: {tls_rate:.0} / {slave_rate:.0} = {:.2}",
                tls_rate / slave_rate
            );
            out.extend(tls);
            out.push(("slave.tls_ratio".to_owned(), tls_rate / slave_rate));
        }
        let os_rate = outstation_rate(points, rounds).await;
        out.push(("outstation.values_per_s".to_owned(), os_rate));
        out.push(("slave.ratio".to_owned(), slave_rate / os_rate));
        out
    });
    let _ = std::fs::remove_dir_all(&dir);
    let text: String = figures
        .iter()
        .map(|(k, v)| format!("{k} {v:.3}\n"))
        .collect();
    print!("{text}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

fn figure(out: &[(String, f64)], key: &str) -> f64 {
    out.iter()
        .find(|(k, _)| k == key)
        .map_or(f64::NAN, |(_, v)| *v)
}

/// The applet (TLS with `pki`) serving the points: GI, throughput, latency, RSS, each figure
/// named `<prefix>.<name>`.
async fn applet_run(run: &Run<'_>, pki: Option<&TestPki>, prefix: &str) -> Vec<(String, f64)> {
    let Run {
        bin,
        dir,
        points,
        rounds,
        rate,
        seconds,
    } = *run;
    let redis = &RedisServer::start();
    let port = testrig::free_port();
    let mut signals: Vec<serde_json::Value> = (1..=points)
        .map(|i| {
            serde_json::json!({"signal_name": format!("p{i}"), "device_alias": "src",
                "signal_alias": format!("p{i}"), "function": 3, "address": i % 65536, "data_type": "f32"})
        })
        .collect();
    signals.extend((1..=points).map(|i| {
        serde_json::json!({"signal_name": format!("s{i}"), "device_alias": "scada",
            "signal_alias": format!("s{i}"), "source_device_alias": "src",
            "source_signal_alias": format!("p{i}"), "info_address": i, "type_id": "M_ME_TF_1"})
    }));
    let mut slave = serde_json::json!({"name": "SCADA", "device_alias": "scada",
        "protocol": "iec104-slave", "ip": "127.0.0.1", "port": port, "asdu_address": 1});
    if let Some(pki) = pki {
        let p = |p: &Path| p.to_string_lossy().into_owned();
        slave["tls"] = 1.into();
        slave["ca_certificate"] = p(&pki.ca_cert).into();
        slave["certificate"] = p(&pki.server.cert).into();
        slave["private_key"] = p(&pki.server.key).into();
    }
    let cfg = serde_json::json!({
        "redis_url": redis.url(),
        "stream_max_len": 10_000_000,
        "devices": [
            {"name": "Source", "device_alias": "src", "protocol": "modbus-tcp", "ip": "127.0.0.1",
             "port": 1, "modbus_id": 1, "enabled": 0},
            slave
        ],
        "signals": signals,
    });
    let cfg_path = dir.join(format!("{prefix}.json"));
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let transport = pki.map(|pki| {
        let c = iec62351::TlsConnector::load("bench", &pki.iec104_tls(&pki.client))
            .expect("the bench master's TLS");
        Arc::new(c) as Arc<dyn iec60870::transport::Connector>
    });
    let name = |n: &str| format!("{prefix}.{n}");
    let mut w = tagbus::TagWriter::new(&tagbus::WriterConfig::new(redis.url())).unwrap();
    let write_round = |v: f64| -> Vec<(TagKey, TagValue)> {
        (1..=points)
            .map(|i| (key(i), TagValue::new(v, tagbus::now_ms())))
            .collect()
    };
    for chunk in write_round(0.0).chunks(tagbus::MAX_BATCH) {
        w.write_batch(chunk).await.unwrap();
    }
    let child = Command::new(bin)
        .args(["iec104-slave", "-c"])
        .arg(&cfg_path)
        .args(["--redis-url", &redis.url(), "-d", "warn"])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let applet = KillOnDrop(child);
    let pid = applet.pid();
    testrig::wait_for_port(port, Duration::from_secs(30)).unwrap();
    let (h, mut a) = master(([127, 0, 0, 1], port).into(), transport);
    a.wait_active().await;
    let mut out = Vec::new();

    println!("applet RSS at start {} kB", proc_status_kb(pid, "VmRSS:"));
    out.push((name("start_rss_kb"), proc_status_kb(pid, "VmRSS:") as f64));
    let (gi_t, gi_n) = gi(&h, &mut a).await;
    println!(
        "GI: {gi_n} objects in {} ms; applet RSS {} kB",
        gi_t.as_millis(),
        proc_status_kb(pid, "VmRSS:")
    );
    out.push((name("gi_points"), gi_n as f64));
    out.push((name("gi_ms"), gi_t.as_secs_f64() * 1000.0));

    // throughput: `rounds` rounds of every point written as fast as the bus takes them
    let total = (points * rounds) as usize;
    let t = Instant::now();
    let counter = tokio::spawn(async move {
        let n = count_spontaneous(&mut a, total).await;
        (n, a)
    });
    for r in 1..=rounds {
        for chunk in write_round(f64::from(r)).chunks(tagbus::MAX_BATCH) {
            w.write_batch(chunk).await.unwrap();
        }
    }
    let (n, mut a) = counter.await.unwrap();
    println!(
        "applet RSS after the flood {} kB",
        proc_status_kb(pid, "VmRSS:")
    );
    let slave_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "spontaneous via the slave: {n} of {total} in {:.2} s = {slave_rate:.0}/s",
        t.elapsed().as_secs_f64()
    );
    out.push((name("values_per_s"), slave_rate));

    // latency at a steady rate: 10 ms ticks of rate/100 values
    let per_tick = (rate / 100).max(1) as u32;
    let ticks = seconds * 100;
    let sender = {
        let url = redis.url();
        tokio::spawn(async move {
            let mut w = tagbus::TagWriter::new(&tagbus::WriterConfig::new(url)).unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i = 0u32;
            for n in 0..ticks {
                tick.tick().await;
                let batch: Vec<(TagKey, TagValue)> = (0..per_tick)
                    .map(|_| {
                        i = i % points + 1;
                        (key(i), TagValue::new(1000.0 + n as f64, tagbus::now_ms()))
                    })
                    .collect();
                w.write_batch(&batch).await.unwrap();
            }
        })
    };
    let want = (ticks * u64::from(per_tick)) as usize;
    let mut lat = Vec::with_capacity(want);
    while lat.len() < want {
        let Some(asdu) = a.next(Duration::from_secs(30)).await else {
            break;
        };
        if asdu.cot.cause != Cause::SPONTANEOUS {
            continue;
        }
        let now = tagbus::now_ms() as i64;
        for o in &asdu.objects {
            if let Some(TimeTag::Cp56(t)) = o.time {
                lat.push((now - t.to_unix_ms().unwrap_or(now)).max(0) as f64);
            }
        }
    }
    sender.await.unwrap();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "latency at {rate}/s: p50 {} ms, p99 {} ms ({} values)",
        pct(0.5),
        pct(0.99),
        lat.len()
    );
    out.push((name("latency_values"), lat.len() as f64));
    out.push((name("p50_ms"), pct(0.5)));
    out.push((name("p99_ms"), pct(0.99)));
    let (rss, hwm) = (proc_status_kb(pid, "VmRSS:"), proc_status_kb(pid, "VmHWM:"));
    println!("applet RSS {rss} kB, peak {hwm} kB");
    out.push((name("rss_kb"), rss as f64));
    out.push((name("hwm_kb"), hwm as f64));
    h.shutdown().await;
    drop(applet);
    out
}

/// The reference: the stack's own outstation fed directly, the same master; values/s.
async fn outstation_rate(points: u32, rounds: u32) -> f64 {
    let total = (points * rounds) as usize;

    // the reference: the stack's own outstation fed directly, the same master
    let mut db = PointDb::new();
    for ioa in 1..=points {
        db.insert(float_point(ioa, 0.0));
    }
    let mut oc = OutstationConfig::new("127.0.0.1:0".parse().unwrap(), CommonAddress(1));
    oc.max_queued = 1_000_000;
    let outstation = spawn_outstation(oc, db, AcceptAll).await.unwrap();
    let (h, mut a) = master(outstation.local_addr(), None);
    a.wait_active().await;
    let t = Instant::now();
    let counter = tokio::spawn(async move { count_spontaneous(&mut a, total).await });
    for r in 1..=rounds {
        for ioa in 1..=points {
            outstation.update(float_point(ioa, r as f32)).await.unwrap();
        }
    }
    let n = counter.await.unwrap();
    let os_rate = n as f64 / t.elapsed().as_secs_f64();
    println!("spontaneous via the stack's outstation: {n} of {total} = {os_rate:.0}/s");
    h.shutdown().await;
    outstation.shutdown().await;
    os_rate
}
