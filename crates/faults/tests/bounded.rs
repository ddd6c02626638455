//! Fast (part of the default `cargo test`): the stream cap drops the oldest values of a
//! backlog, the publisher counts them, and `fieldbridge status` shows the figure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::process::Command;
use std::time::{Duration, Instant};

use faults::{fieldbridge_bin, Rig, SeqWriter};
use serde_json::json;
use testrig::RedisServer;

#[test]
fn stream_cap_drops_the_oldest_counts_them_and_status_shows_it() {
    let mut rig = Rig::start(RedisServer::start(), "bounded-sub", Duration::from_secs(15));
    // 100 values forwarded normally (the group has read something: see docs/reliability.md for
    // a group that never read an entry, whose loss is logged as "count unknown").
    let first = SeqWriter::start(&rig.redis.url(), 1_000, Duration::from_millis(100), 1_000).join();
    assert!(rig.sub.wait_complete(0..first, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(1_500)); // the subscriber's session is saved
    rig.broker.kill();
    // 10,000 values while the broker is down, with a cap of 1,000: ~9,000 dropped oldest first.
    let sent = SeqWriter::start_from(
        first,
        &rig.redis.url(),
        10_000,
        Duration::from_secs(1),
        1_000,
    )
    .join();
    assert_eq!(sent, first + 10_000);
    rig.broker.restart();
    rig.p.wait_log(
        "trimmed entries before this consumer read them",
        1,
        Duration::from_secs(30),
    );
    // The newest values (the cap keeps at least 1,000) all arrive.
    assert!(rig
        .sub
        .wait_complete(sent - 1_000..sent, Duration::from_secs(30)));
    let (missing, _) = rig.sub.missing(0..sent);
    // The counter reaches Redis within the 5 s stats period; status shows it.
    let status_file = rig.dir.path().join("status.json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let status = json!({"version": 1, "supervisor": {"pid": std::process::id(), "config": rig.cfg,
        "started": now, "updated": now, "running": true, "config_loaded": now}, "applets": {}});
    std::fs::write(&status_file, status.to_string()).unwrap();
    // The counter is read before `status` runs and must be the figure status prints: the stats
    // hash is rewritten every 5 s, so reading it after `status` could see a newer figure.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (text, trimmed) = loop {
        let trimmed = rig
            .redis
            .cli(&["HGET", tagbus::stats::PUBLISHER_STATS_KEY, "cloud.trimmed"])
            .parse::<u64>()
            .unwrap_or(0);
        let out = Command::new(fieldbridge_bin())
            .args(["status", "--status-file"])
            .arg(&status_file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if trimmed > 0 && text.contains(&format!("dropped by the stream cap {trimmed},")) {
            break (text, trimmed);
        }
        assert!(Instant::now() < deadline, "status: {text}\n{}", rig.p.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    println!("{text}");
    // Every value that did not arrive was counted as dropped (the counter is exact or over by
    // entries trimmed after being read; see tagbus::stream).
    assert!(missing <= trimmed, "missing {missing}, counted {trimmed}");
    assert!(
        missing >= 8_000,
        "the cap of 1,000 should have dropped most: {missing}"
    );
}
