//! The stream consumer against a real redis-server: group start, pending after a restart,
//! acknowledgement, and counting entries the cap trimmed before they were read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use tagbus::stream::StreamConsumer;
use tagbus::{EntryBody, TagKey, TagValue, TagWriter, WriterConfig};
use testrig::RedisServer;

fn batch(from: usize, n: usize) -> Vec<(TagKey, TagValue)> {
    (from..from + n)
        .map(|i| {
            (
                format!("tag/d/s{}/in", i % 7).parse().unwrap(),
                TagValue::new(i as i64, 1_000),
            )
        })
        .collect()
}

fn value_of(e: &tagbus::StreamEntry) -> i64 {
    match &e.body {
        EntryBody::Tag { value, .. } => match value.value {
            tagbus::Value::Int(i) => i,
            tagbus::Value::Float(_) => panic!("float"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn group_starts_at_the_end_pending_survives_and_trims_are_counted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut cfg = WriterConfig::new(&url);
    cfg.stream_max_len = 1_000;
    let mut w = TagWriter::new(&cfg).unwrap();
    w.write_batch(&batch(0, 10)).await.unwrap(); // before the group: not delivered

    let trimmed = tagbus::TrimCounter::new();
    let mut c = StreamConsumer::connect(&url, "g1", "me", trimmed.clone())
        .await
        .unwrap();
    assert!(c.ensure_group().await.unwrap());
    assert!(!c.ensure_group().await.unwrap());
    assert!(c.read_new(100, Duration::ZERO).await.unwrap().is_empty());

    w.write_batch(&batch(10, 5)).await.unwrap();
    let got = c.read_new(100, Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        got.iter().map(value_of).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    c.ack(&[got[0].id.clone(), got[1].id.clone()])
        .await
        .unwrap();

    // A new connection with the same consumer name finds the 3 unacknowledged entries.
    let mut c2 = StreamConsumer::connect(&url, "g1", "me", trimmed.clone())
        .await
        .unwrap();
    let pending = c2.read_pending(None, 100).await.unwrap();
    assert_eq!(
        pending.iter().map(value_of).collect::<Vec<_>>(),
        vec![12, 13, 14]
    );
    let more = c2.read_pending(Some(&pending[2].id), 100).await.unwrap();
    assert!(more.is_empty());
    c2.ack(&pending.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(c2.read_pending(None, 100).await.unwrap().is_empty());

    // 5,000 entries while the cap is 1,000: about 4,000 are trimmed unread, and counted.
    for i in 0..5 {
        w.write_batch(&batch(100 + i * 1000, 1000)).await.unwrap();
    }
    let lost = c2.check_trimmed().await.unwrap();
    let mut read = 0usize;
    loop {
        let b = c2.read_new(1000, Duration::ZERO).await.unwrap();
        if b.is_empty() {
            break;
        }
        read += b.len();
    }
    assert_eq!(lost as usize + read, 5_000, "lost {lost} + read {read}");
    assert!(lost >= 3_000, "{lost}");
    assert_eq!(trimmed.get(), lost);
    // Nothing new is lost on the next check.
    assert_eq!(c2.check_trimmed().await.unwrap(), 0);
    assert_eq!(trimmed.get(), lost);

    // The snapshot reads the keys.
    let keys: Vec<TagKey> = (0..7)
        .map(|i| format!("tag/d/s{i}/in").parse().unwrap())
        .collect();
    assert_eq!(c2.snapshot(&keys).await.unwrap().len(), 7);
}

/// A group created on an empty stream that never read an entry (Redis reports `entries-read`
/// nil and `last-delivered-id` 0-0) still counts what the cap trimmed.
#[tokio::test]
async fn trims_are_counted_for_a_group_that_never_read() {
    let redis = RedisServer::start();
    let url = redis.url();
    let trimmed = tagbus::TrimCounter::new();
    let mut c = StreamConsumer::connect(&url, "g0", "me", trimmed.clone())
        .await
        .unwrap();
    assert!(c.ensure_group().await.unwrap()); // MKSTREAM: the stream never had an entry
    let mut cfg = WriterConfig::new(&url);
    cfg.stream_max_len = 1_000;
    let mut w = TagWriter::new(&cfg).unwrap();
    for i in 0..5 {
        w.write_batch(&batch(i * 1000, 1000)).await.unwrap();
    }
    let lost = c.check_trimmed().await.unwrap();
    let mut read = 0usize;
    loop {
        let b = c.read_new(1000, Duration::ZERO).await.unwrap();
        if b.is_empty() {
            break;
        }
        read += b.len();
    }
    assert_eq!(lost as usize + read, 5_000, "lost {lost} + read {read}");
    assert_eq!(trimmed.get(), lost);
}

/// `packed_batch` is what `write_batch` sends: written on a plain socket it gives the same
/// stream entries (in order) and the same latest values.
#[tokio::test]
async fn packed_batch_on_a_plain_socket_writes_what_write_batch_writes() {
    use std::io::{Read, Write};
    let redis = RedisServer::start();
    let url = redis.url();
    let trimmed = tagbus::TrimCounter::new();
    let mut c = StreamConsumer::connect(&url, "g1", "me", trimmed)
        .await
        .unwrap();
    assert!(c.ensure_group().await.unwrap());

    let values = batch(0, 10);
    let bytes = tagbus::packed_batch(&values, tagbus::DEFAULT_STREAM_MAX_LEN);
    assert!(bytes.starts_with(b"*1\r\n$5\r\nMULTI\r\n"));
    assert!(bytes.ends_with(b"*1\r\n$4\r\nEXEC\r\n"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    s.write_all(&bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut replies = Vec::new();
    s.read_to_end(&mut replies).unwrap();
    assert!(replies.starts_with(b"+OK\r\n"), "{replies:?}");

    let got = c.read_new(100, Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        got.iter().map(value_of).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // s0..s6 were written; the last of s2 is value 9.
    assert_eq!(redis.cli(&["GET", "tag/d/s2/in"]).trim(), "9,1000,");
}
