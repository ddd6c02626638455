//! Throughput benchmark of `fieldbridge iec104-master` (not a test: it prints numbers).
//!
//! An `iec60870` outstation in this process floods spontaneous `M_ME_TF_1` values (one
//! object per ASDU, CP56 time tag) for `--seconds`; the real applet (a separate process, the
//! release binary) turns them into tags on a real redis-server. Reported: information objects
//! per second that became `in` tags (counted on the tag bus stream), the applet's peak RSS
//! (VmHWM), and the latency of a single spontaneous value (outstation send -> PUBLISH seen).
//! Then the same again with the device on IEC 62351-3 TLS (a `testrig::TestPki`; the
//! outstation's side is a TLS relay in this process, `iec62351::TlsAcceptor`, in front of the
//! same plaintext outstation), and the ratio TLS / plain TCP (`--tls 0` skips it). The relay
//! re-packs the outstation's one-APDU segments into larger TLS records, so the applet reads
//! fewer, larger chunks over TLS: the ratio can exceed 1 and is an upper bound of what an
//! outstation sending one small record per APDU would give.
//!
//! ```sh
//! cargo build --release -p fieldbridge
//! cargo run --release -p iec104-master --example ingest_bench -- --points 1000 --seconds 10
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iec60870::{
    spawn_outstation, CommandHandler, CommandRequest, CommonAddress, Cp56Time2a,
    InformationElement, Ioa, OutstationConfig, Point, PointDb, Quality, TimeTag, TypeId,
};
use testrig::bench::{arg, proc_status};
use testrig::{KillOnDrop, RedisServer, TestPki};

struct Refuse;
impl CommandHandler for Refuse {
    fn execute(&mut self, _req: &CommandRequest) -> bool {
        false
    }
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

fn main() {
    let points: u32 = arg("--points", "1000").parse().unwrap();
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
    // the outstation must run while the main thread waits on Redis: a worker thread
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let plain = run(&bin, &rt, points, seconds, None);
    let tls = with_tls.then(|| {
        let pki = TestPki::generate();
        run(&bin, &rt, points, seconds, Some(&pki))
    });
    let failed = match (&plain, &tls) {
        (Ok(p), Some(Ok(t))) => {
            println!(
                "ingest over TLS / plain TCP: {t:.0} / {p:.0} objects/s = {:.2}",
                t / p
            );
            false
        }
        (Ok(_), None) => false,
        _ => true,
    };
    for e in [plain.err(), tls.and_then(Result::err)]
        .into_iter()
        .flatten()
    {
        println!("benchmark failed: {e}");
    }
    if failed {
        std::process::exit(1);
    }
}

/// The TLS settings of a row presenting `own` of `pki`.
/// The outstation's TLS: each connection accepted on `listener` secured with `acceptor` and
/// relayed to the plaintext outstation at `to`.
async fn tls_relay(
    acceptor: iec62351::TlsAcceptor,
    listener: tokio::net::TcpListener,
    to: SocketAddr,
) {
    while let Ok((tcp, peer)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut link) = acceptor.handshake(tcp, peer).await else {
                return;
            };
            let Ok(mut out) = tokio::net::TcpStream::connect(to).await else {
                return;
            };
            let _ = out.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut link, &mut out).await;
        });
    }
}

/// One run: a redis-server, the outstation (behind the TLS relay with `pki`), the applet;
/// returns the objects/s that became tags.
fn run(
    bin: &Path,
    rt: &tokio::runtime::Runtime,
    points: u32,
    seconds: u64,
    pki: Option<&TestPki>,
) -> Result<f64, String> {
    let label = if pki.is_some() { " over TLS" } else { "" };
    let redis = RedisServer::start();
    let mut db = PointDb::new();
    for ioa in 1..=points {
        db.insert(point(ioa, 0.0));
    }
    let mut oc = OutstationConfig::new("127.0.0.1:0".parse().unwrap(), CommonAddress(1));
    oc.max_queued = 4096;
    let outstation = rt
        .block_on(spawn_outstation(oc, db, Refuse))
        .expect("bind the outstation");
    let mut port = outstation.local_addr().port();
    let mut device = serde_json::json!({"name": "Bench", "device_alias": "bench",
        "protocol": "iec104-master", "ip": "127.0.0.1", "asdu_address": 1});
    let relay = pki.map(|pki| {
        let acceptor =
            iec62351::TlsAcceptor::load("bench-outstation", &pki.iec104_tls(&pki.server))
                .expect("the relay's TLS");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        port = listener.local_addr().unwrap().port();
        let p = |p: &Path| p.to_string_lossy().into_owned();
        device["tls"] = 1.into();
        device["ca_certificate"] = p(&pki.ca_cert).into();
        device["certificate"] = p(&pki.client.cert).into();
        device["private_key"] = p(&pki.client.key).into();
        rt.spawn(tls_relay(acceptor, listener, outstation.local_addr()))
    });
    device["port"] = port.into();

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
        "devices": [device],
        "signals": signals,
    });
    let cfg_path = dir.join("bench.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let child = Command::new(bin)
        .args(["iec104-master", "-c"])
        .arg(&cfg_path)
        .args(["--redis-url", &redis.url(), "-d", "warn"])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let applet = KillOnDrop(child);
    let pid = applet.pid();

    // release builds abort on panic (no Drop): fail by returning, so the children are stopped
    let result = measure(&redis.url(), rt, &outstation, points, seconds, pid, label);
    drop(applet);
    if let Some(relay) = relay {
        relay.abort();
    }
    rt.block_on(outstation.shutdown());
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    url: &str,
    rt: &tokio::runtime::Runtime,
    outstation: &iec60870::OutstationHandle,
    points: u32,
    seconds: u64,
    pid: u32,
    label: &str,
) -> Result<f64, String> {
    let mut conn = testrig::RedisConn::open(url);
    let mut xlen = move || -> Result<u64, String> { Ok(conn.stream_len(tagbus::STREAM_KEY)) };
    // the GI answer: every point once
    let deadline = Instant::now() + Duration::from_secs(60);
    while xlen()? < u64::from(points) {
        if Instant::now() > deadline {
            return Err(format!("the GI did not arrive ({} of {points})", xlen()?));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("GI of {points} points on the bus{label}; flooding for {seconds} s");

    let started = Instant::now();
    let cpu_before = cpu_ticks(pid);
    let redis_pid = redis_pid(url);
    let redis_before = redis_pid.map_or(0, cpu_ticks);
    let before = xlen()?;
    let mut sent = 0u64;
    // closed loop: at most WINDOW objects between the outstation and the tag bus, so the
    // outstation's queue never overflows and every object offered is counted
    const WINDOW: u64 = 2000;
    let mut err = None;
    rt.block_on(async {
        let mut v = 1.0f32;
        'flood: while started.elapsed() < Duration::from_secs(seconds) {
            for ioa in 1..=points {
                if outstation.update(point(ioa, v)).await.is_err() {
                    break 'flood;
                }
                sent += 1;
                if sent.is_multiple_of(250) {
                    loop {
                        match xlen() {
                            Ok(n) if sent.saturating_sub(n - before) <= WINDOW => break,
                            Ok(_) => std::thread::sleep(Duration::from_micros(500)),
                            Err(e) => {
                                err = Some(e);
                                break 'flood;
                            }
                        }
                    }
                }
            }
            v += 1.0;
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let flood = started.elapsed();
    // let the applet drain what is in flight
    let mut last = xlen()?;
    let mut drained = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = xlen()?;
        if now == last {
            break;
        }
        last = now;
        drained = Instant::now();
    }
    let total = drained.duration_since(started);
    let written = last - before;
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before) as f64 / 100.0;
    let redis_cpu = redis_pid.map_or(0, cpu_ticks).saturating_sub(redis_before) as f64 / 100.0;
    println!(
        "updates offered: {sent} in {:.1} s ({:.0}/s, at most {WINDOW} in flight)",
        flood.as_secs_f64(),
        sent as f64 / flood.as_secs_f64()
    );
    println!(
        "information objects -> in tags{label}: {written} in {:.1} s = {:.0} objects/s",
        total.as_secs_f64(),
        written as f64 / total.as_secs_f64()
    );
    println!(
        "applet CPU meanwhile: {cpu:.1} s in {:.1} s ({:.0} % of one core)",
        total.as_secs_f64(),
        cpu / total.as_secs_f64() * 100.0
    );
    println!(
        "redis-server CPU meanwhile: {redis_cpu:.1} s ({:.0} % of one core; each object is SET+PUBLISH twice and one XADD)",
        redis_cpu / total.as_secs_f64() * 100.0
    );

    // latency of one value on a quiet link
    let mut ps = testrig::RedisConn::open(url).subscribe("tag/bench/p1/in");
    let mut lat = Vec::new();
    for i in 0..21 {
        let value = 1.0e6 + i as f32;
        let t = Instant::now();
        rt.block_on(outstation.update(point(1, value)))
            .map_err(|e| e.to_string())?;
        loop {
            let text = ps
                .next_payload(Duration::from_secs(5))
                .ok_or("no value within 5 s")?;
            if text.starts_with(&format!("{:?},", f64::from(value))) {
                lat.push(t.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    lat.sort();
    println!(
        "single value latency (outstation update -> PUBLISH seen), 21 values: min {:?} median {:?} max {:?}",
        lat[0], lat[10], lat[20]
    );
    println!(
        "applet RSS{label}: VmHWM {} (VmRSS {})",
        proc_status(pid, "VmHWM:"),
        proc_status(pid, "VmRSS:")
    );
    Ok(written as f64 / total.as_secs_f64())
}

/// The pid of the redis-server listening on the URL's port.
fn redis_pid(url: &str) -> Option<u32> {
    let port = url.rsplit(':').next()?.trim_end_matches('/');
    let needle = format!(":{port}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
        (cmd.contains("redis-server") && cmd.contains(&needle)).then_some(pid)
    })
}

/// utime + stime of a process in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name in parentheses
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn tempfile_dir() -> PathBuf {
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("iec104-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
