#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! The tag bus against a real redis-server.

use std::collections::HashMap;
use std::time::Duration;

use tagbus::{
    spawn_reader, spawn_writer, FeedEvent, Flags, Origin, ReaderConfig, TagFeed, TagKey, TagValue,
    TagWriter, WriterConfig, STREAM_KEY,
};
use testrig::RedisServer;

fn key(i: usize) -> TagKey {
    format!("tag/dev{}/sig{}/in", i % 10, i).parse().unwrap()
}

async fn next(feed: &mut TagFeed) -> FeedEvent {
    within_10s(feed.recv()).await
}

/// What a feed's `recv` gives within 10 s; panics when nothing came or the task stopped.
async fn within_10s<T>(recv: impl std::future::Future<Output = Option<T>>) -> T {
    tokio::time::timeout(Duration::from_secs(10), recv)
        .await
        .expect("nothing within 10 s")
        .expect("the task stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_values_via_snapshot_and_live_feed() {
    let redis = RedisServer::start();
    const N: usize = 10_000;

    // Half written before the reader starts (the snapshot), half after (the live feed).
    let mut writer = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let batch: Vec<_> = (0..N / 2)
        .map(|i| {
            (
                key(i),
                TagValue::new(i as i64, 1_700_000_000_000 + i as u64),
            )
        })
        .collect();
    for chunk in batch.chunks(1000) {
        writer.write_batch(chunk).await.unwrap();
    }

    let mut feed = spawn_reader(
        ReaderConfig {
            redis_url: redis.url(),
            pattern: TagKey::pattern(Some(tagbus::Direction::In)),
        },
        256,
    )
    .unwrap();
    let mut seen: HashMap<TagKey, TagValue> = HashMap::new();
    loop {
        match next(&mut feed).await {
            FeedEvent::Value { key, value, origin } => {
                assert_eq!(origin, Origin::Snapshot);
                seen.insert(key, value);
            }
            FeedEvent::SnapshotComplete { count } => {
                assert_eq!(count, N / 2);
                break;
            }
            FeedEvent::Disconnected => panic!("disconnected"),
        }
    }
    assert_eq!(seen.len(), N / 2);

    // The live half goes through the writer task (batched, as the drivers do).
    let handle = spawn_writer(WriterConfig::new(redis.url()), 1024).unwrap();
    let flags = Flags::empty().with("gt");
    let live_writer = tokio::spawn(async move {
        for i in N / 2..N {
            let v = TagValue::new(i as f64 + 0.5, 1_700_000_000_000 + i as u64)
                .with_flags(flags.clone());
            handle.write(key(i), v).await.unwrap();
        }
        handle.flush().await.unwrap();
    });
    let mut live = 0;
    while live < N / 2 {
        match next(&mut feed).await {
            FeedEvent::Value { key, value, origin } => {
                assert_eq!(origin, Origin::Live);
                seen.insert(key, value);
                live += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    live_writer.await.unwrap();
    assert_eq!(seen.len(), N);
    for i in 0..N {
        let v = &seen[&key(i)];
        assert_eq!(v.timestamp_ms, 1_700_000_000_000 + i as u64);
        if i >= N / 2 {
            assert_eq!(
                v.to_string(),
                format!("{}.5,{},gt", i, 1_700_000_000_000 + i as u64)
            );
        }
    }
    // Every value also went to the durable stream, and the keys hold the latest values.
    assert_eq!(redis.cli(&["XLEN", STREAM_KEY]), N.to_string());
    assert_eq!(redis.cli(&["GET", "tag/dev3/sig3/in"]), "3,1700000000003,");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_values_are_not_streamed() {
    let redis = RedisServer::start();
    let mut writer = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let k: TagKey = "tag/d/s/rin".parse().unwrap();
    writer.write(&k, &TagValue::new(1, 1)).await.unwrap();
    assert_eq!(redis.cli(&["GET", "tag/d/s/rin"]), "1,1,");
    assert_eq!(redis.cli(&["XLEN", STREAM_KEY]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_survives_a_redis_restart() {
    let mut redis = RedisServer::start();
    let mut feed = spawn_reader(
        ReaderConfig {
            redis_url: redis.url(),
            pattern: "tag/*".into(),
        },
        64,
    )
    .unwrap();
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::SnapshotComplete { count: 0 }
    );
    let handle = spawn_writer(WriterConfig::new(redis.url()), 64).unwrap();
    let k1: TagKey = "tag/a/before/in".parse().unwrap();
    handle.write(k1.clone(), TagValue::new(1, 1)).await.unwrap();
    handle.flush().await.unwrap();
    assert!(matches!(next(&mut feed).await, FeedEvent::Value { key, .. } if key == k1));

    redis.restart(); // a crash: no save, an empty Redis comes back on the same port
    assert_eq!(next(&mut feed).await, FeedEvent::Disconnected);

    // The writer task keeps what it is given while Redis is away and writes it when it is back.
    let k2: TagKey = "tag/a/after/in".parse().unwrap();
    handle.write(k2.clone(), TagValue::new(2, 2)).await.unwrap();
    handle.flush().await.unwrap();
    let mut got_after = false;
    for _ in 0..10 {
        match next(&mut feed).await {
            FeedEvent::Value { key, value, .. } if key == k2 => {
                assert_eq!(value, TagValue::new(2, 2));
                got_after = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        got_after,
        "the value written after the restart never arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_on_the_bus_are_skipped() {
    let redis = RedisServer::start();
    redis.cli(&["SET", "tag/x/bad/in", "abc,1,"]);
    redis.cli(&["SET", "tag/x/good/in", "5,1,"]);
    redis.cli(&["SET", "tag/x y/bad/in", "5,1,"]);
    let mut feed = spawn_reader(
        ReaderConfig {
            redis_url: redis.url(),
            pattern: "tag/*".into(),
        },
        64,
    )
    .unwrap();
    let first = next(&mut feed).await;
    assert!(
        matches!(first, FeedEvent::Value { ref key, .. } if key.to_string() == "tag/x/good/in"),
        "{first:?}"
    );
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::SnapshotComplete { count: 1 }
    );
    redis.cli(&["PUBLISH", "tag/x/good/in", "garbage"]);
    redis.cli(&["PUBLISH", "tag/x/good/in", "6,2,"]);
    let ev = next(&mut feed).await;
    assert!(
        matches!(ev, FeedEvent::Value { ref value, .. } if value.to_string() == "6,2,"),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_no_link_marks_in_and_rin_of_the_devices_only() {
    let redis = RedisServer::start();
    let mut writer = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    let good = TagValue::new(5, 1_700_000_000_000).with_flags("gt".parse().unwrap());
    let device_nt = TagValue::new(6, 1_700_000_000_001).with_flags("nt".parse().unwrap());
    let k = |s: &str| s.parse::<TagKey>().unwrap();
    writer
        .write_batch(&[
            (k("tag/a/x/in"), good.clone()),
            (k("tag/a/x/rin"), good.clone()),
            (k("tag/a/y/in"), device_nt.clone()),
            (k("tag/a/x/out"), good.clone()),
            (k("tag/ab/x/in"), good.clone()),
            (k("tag/b/x/in"), good.clone()),
        ])
        .await
        .unwrap();
    redis.cli(&["SET", "tag/a/bad/in", "not a value"]);
    let stream_before: usize = redis.cli(&["XLEN", STREAM_KEY]).trim().parse().unwrap();

    let a = tagbus::Alias::new("a").unwrap();
    let n = tagbus::mark_no_link(&redis.url(), 1000, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let get = |key: &str| redis.cli(&["GET", key]).trim().to_owned();
    assert_eq!(get("tag/a/x/in"), "5,1700000000000,gt nt nolink");
    assert_eq!(get("tag/a/x/rin"), "5,1700000000000,gt nt nolink");
    assert_eq!(get("tag/a/y/in"), "6,1700000000001,nt nolink");
    assert_eq!(get("tag/a/x/out"), "5,1700000000000,gt");
    assert_eq!(get("tag/ab/x/in"), "5,1700000000000,gt");
    assert_eq!(get("tag/b/x/in"), "5,1700000000000,gt");
    assert_eq!(get("tag/a/bad/in"), "not a value");
    // the `in` marks went to the stream too (`rin` is not streamed)
    let stream_after: usize = redis.cli(&["XLEN", STREAM_KEY]).trim().parse().unwrap();
    assert_eq!(stream_after, stream_before + 2);

    // marked values are left alone
    let again = tagbus::mark_no_link(&redis.url(), 1000, &[a])
        .await
        .unwrap();
    assert_eq!(again, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_values_returns_well_formed_values_in_key_order() {
    let redis = RedisServer::start();
    let mut writer = TagWriter::new(&WriterConfig::new(redis.url())).unwrap();
    writer.write(&key(1), &TagValue::new(1, 10)).await.unwrap();
    writer.write(&key(3), &TagValue::new(3, 30)).await.unwrap();
    redis.cli(&["SET", &key(2).to_string(), "not,a value"]);
    let keys = [key(1), key(2), key(3), key(4)];
    let stored = tagbus::read_stored(&redis.url(), &keys).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[1].as_deref(), Some(&b"not,a value"[..]));
    assert_eq!(stored[3], None);
    let values = tagbus::read_values(&redis.url(), &keys).await.unwrap();
    assert_eq!(
        values,
        vec![
            (key(1), TagValue::new(1, 10)),
            (key(3), TagValue::new(3, 30))
        ]
    );
    assert!(tagbus::read_values(&redis.url(), &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_listener_gets_stored_and_live_results_across_a_restart() {
    use tagbus::results::{spawn_result_listener, spawn_result_writer};
    use tagbus::{CommandOutcome, CommandResult};
    let mut redis = RedisServer::start();
    let out: TagKey = "tag/m1/sp/out".parse().unwrap();
    let other: TagKey = "tag/m1/other/out".parse().unwrap();
    let results = spawn_result_writer(&redis.url(), 8).unwrap();
    // Written before the listener starts: it comes from the stored key.
    let stored = CommandResult::now(CommandOutcome::Confirmed, 1);
    results.report(&out, stored.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut feed = spawn_result_listener(&redis.url(), std::slice::from_ref(&out), 8).unwrap();
    assert_eq!(within_10s(feed.recv()).await, (out.clone(), stored));

    // Live; a result of a signal not listened to never arrives.
    let refused = CommandResult::now(CommandOutcome::Rejected, 2).with_detail("busy");
    results
        .report(&other, CommandResult::now(CommandOutcome::Confirmed, 3))
        .await
        .unwrap();
    results.report(&out, refused.clone()).await.unwrap();
    assert_eq!(
        within_10s(feed.recv()).await,
        (out.clone(), refused.clone())
    );

    // Redis restarts (without persistence): the listener resubscribes by itself.
    redis.restart();
    let after = CommandResult::now(CommandOutcome::Timeout, 4);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(&after) {
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        results.report(&out, after.clone()).await.unwrap();
        if let Ok(Some((k, r))) =
            tokio::time::timeout(Duration::from_millis(500), feed.recv()).await
        {
            assert_eq!(k, out);
            seen.push(r);
        }
    }
}

#[test]
fn stats_hash_round_trips_through_redis() {
    use tagbus::stats::{read_publisher_stats, Counters, PublisherStats, StatsWriter};
    let redis = RedisServer::start();
    let timeout = Duration::from_secs(2);
    assert_eq!(read_publisher_stats(&redis.url(), timeout).unwrap(), None);
    let mut stats = PublisherStats {
        updated_ms: 1_732_280_000_000,
        ..Default::default()
    };
    stats.devices.insert(
        "cloud".parse().unwrap(),
        Counters {
            published: 7,
            acked: 6,
            connects: 1,
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut writer = StatsWriter::new(&redis.url()).unwrap();
    rt.block_on(writer.write(&stats)).unwrap();
    assert_eq!(
        redis
            .cli(&["HGET", tagbus::stats::PUBLISHER_STATS_KEY, "cloud.acked"])
            .trim(),
        "6"
    );
    assert_eq!(
        read_publisher_stats(&redis.url(), timeout).unwrap(),
        Some(stats)
    );
}

#[test]
fn slave_stats_replace_their_hash_and_read_back_per_device() {
    use tagbus::stats::{read_slave_stats, MasterState, SlaveStats, SlaveStatsKey, StatsWriter};
    let mut redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scada: tagbus::Alias = "scada".parse().unwrap();
    let backup: tagbus::Alias = "scada.backup".parse().unwrap();
    let devices = [scada.clone(), backup.clone()];
    let url = redis.url();
    let read = || rt.block_on(read_slave_stats(&url, &devices)).unwrap();
    assert!(read().is_empty());
    let master = |address: &str, group, started| MasterState {
        address: address.parse().unwrap(),
        group,
        started,
        since_ms: 1_732_280_000_000,
    };
    let mut stats = SlaveStats {
        updated_ms: 1_732_280_005_000,
        masters: vec![
            master("127.0.0.1:40001", 0, true),
            master("127.0.0.2:40002", 0, false),
        ],
        sent: 12,
        buffered: 3,
        dropped: 1,
        refused: 2,
        commands: 4,
    };
    let mut writer = StatsWriter::new(&redis.url()).unwrap();
    rt.block_on(writer.write_slave(&scada, &stats)).unwrap();
    let key = SlaveStatsKey::new(&scada);
    assert_eq!(key.as_str(), "fieldbridge:stats:iec104-slave:scada");
    assert_eq!(
        redis
            .cli(&["HGET", key.as_str(), "master:127.0.0.2:40002"])
            .trim(),
        "0,standby,1732280000000"
    );
    assert_eq!(read().len(), 1);
    assert_eq!(read().get(&scada), Some(&stats));

    // The standby master leaves, the other switches: the hash holds only what is written.
    stats.masters = vec![master("127.0.0.1:40001", 0, false)];
    stats.sent = 13;
    rt.block_on(writer.write_slave(&scada, &stats)).unwrap();
    rt.block_on(writer.write_slave(&backup, &SlaveStats::default()))
        .unwrap();
    assert_eq!(
        redis
            .cli(&["HEXISTS", key.as_str(), "master:127.0.0.2:40002"])
            .trim(),
        "0"
    );
    assert_eq!(read().get(&scada), Some(&stats));
    assert_eq!(read().get(&backup), Some(&SlaveStats::default()));

    // Foreign fields written by hand are skipped, not an error.
    redis.cli(&["HSET", key.as_str(), "master:nonsense", "x", "sent", "many"]);
    assert_eq!(read().get(&scada).map(|s| s.masters.len()), Some(1));

    // Redis restarts: the writer reconnects on the next write after a failure.
    redis.restart();
    let _ = rt.block_on(writer.write_slave(&scada, &stats));
    rt.block_on(writer.write_slave(&scada, &stats)).unwrap();
    assert_eq!(read().get(&scada), Some(&stats));
}

#[test]
fn tls_stats_replace_their_hash_and_read_back_per_device() {
    use tagbus::stats::{
        read_tls_stats, SecurityEvent, SecurityEventKind, StatsWriter, TlsStats, TlsStatsKey,
    };
    let mut redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rtu: tagbus::Alias = "rtu".parse().unwrap();
    let scada: tagbus::Alias = "scada.tls".parse().unwrap();
    let devices = [rtu.clone(), scada.clone()];
    let url = redis.url();
    let read = || rt.block_on(read_tls_stats(&url, &devices)).unwrap();
    assert!(read().is_empty());
    let mut stats = TlsStats {
        updated_ms: 1_732_280_005_000,
        handshakes: 3,
        ..Default::default()
    };
    stats.record(SecurityEvent {
        kind: SecurityEventKind::CertificateExpired,
        peer: "127.0.0.1:19998".into(),
        subject: "CN=rtu, O=Utility".into(),
        detail: "expired 2026-11-30T00:00:00Z".into(),
        at_ms: 1_732_280_004_000,
    });
    let mut writer = StatsWriter::new(&redis.url()).unwrap();
    rt.block_on(writer.write_tls(&rtu, &stats)).unwrap();
    let key = TlsStatsKey::new(&rtu);
    assert_eq!(
        redis.cli(&["HGET", key.as_str(), "last_subject"]).trim(),
        "CN=rtu, O=Utility"
    );
    assert_eq!(read().len(), 1);
    assert_eq!(read().get(&rtu), Some(&stats));

    // A rewrite without a last event leaves none behind.
    let fresh = TlsStats {
        updated_ms: 1_732_280_006_000,
        handshakes: 4,
        ..Default::default()
    };
    rt.block_on(writer.write_tls(&rtu, &fresh)).unwrap();
    rt.block_on(writer.write_tls(&scada, &stats)).unwrap();
    assert_eq!(
        redis.cli(&["HEXISTS", key.as_str(), "last_kind"]).trim(),
        "0"
    );
    assert_eq!(read().get(&rtu), Some(&fresh));
    assert_eq!(read().get(&scada), Some(&stats));

    // Redis restarts: the writer reconnects on the next write after a failure.
    redis.restart();
    let _ = rt.block_on(writer.write_tls(&rtu, &stats));
    rt.block_on(writer.write_tls(&rtu, &stats)).unwrap();
    assert_eq!(read().get(&rtu), Some(&stats));
}
