//! The request batch of the vendored rumqttc (vendor/rumqttc/FIELDBRIDGE.md) keeps the order
//! the publisher relies on: publishes queued at once leave in the order of the publish calls,
//! `Outgoing::Publish(pkid)` events come in that order, and PUBACKs are reported as the broker
//! sent them. A real mosquitto broker; a QoS 0 subscriber sees the wire order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use testrig::{Mosquitto, MosquittoBuilder};
use tokio::sync::mpsc;

/// Publishes queued before the event loop runs.
const MESSAGES: usize = 300;
/// rumqttc's in-flight limit (and the packet id range it cycles through).
const INFLIGHT: u16 = 100;
/// The requests written before one flush (fieldbridge uses 64 too).
const BATCH: usize = 64;
const TOPICS: [&str; 3] = ["batch/a", "batch/b", "batch/c"];

/// The events the publisher uses, as the event loop reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Written(u16),
    Acked(u16),
}

impl Seen {
    fn pkid(&self) -> u16 {
        match self {
            Seen::Written(p) | Seen::Acked(p) => *p,
        }
    }
}

/// A broker whose Receive Maximum (MQTT 5) does not lower the in-flight limit.
fn broker() -> Mosquitto {
    MosquittoBuilder::new()
        .config_line(&format!("max_inflight_messages {INFLIGHT}"))
        .start()
}

/// Subscribes to `batch/#` at QoS 0 and forwards the payloads in the order they arrive.
async fn subscriber(port: u16) -> mpsc::UnboundedReceiver<String> {
    let mut o = rumqttc::MqttOptions::new("batch-sub", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 16);
    client
        .subscribe("batch/#", rumqttc::QoS::AtMostOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("SUBACK in time")
        .unwrap();
    rx
}

/// What the subscriber received, until `MESSAGES` payloads or a timeout.
async fn received(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut got = Vec::with_capacity(MESSAGES);
    while got.len() < MESSAGES {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(p)) => got.push(p),
            _ => break,
        }
    }
    got
}

/// After the first write, waits until the broker's PUBACK is surely readable: unbatched,
/// the event loop would then soon read it between two writes; batched, the first batch was
/// written in the same poll, and its events are reported before anything is read.
async fn let_the_first_puback_arrive(seen: &[Seen]) {
    if seen.len() == 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn payload(i: usize) -> String {
    format!("{i}")
}

/// The order checks, the same for both protocol versions.
fn check(seen: &[Seen], delivered: &[String]) {
    let (written, acked): (Vec<&Seen>, Vec<&Seen>) =
        seen.iter().partition(|s| matches!(s, Seen::Written(_)));
    let written: Vec<u16> = written.into_iter().map(Seen::pkid).collect();
    let acked: Vec<u16> = acked.into_iter().map(Seen::pkid).collect();
    // Packet ids in the order of the publish calls: 1..=INFLIGHT, then again.
    let expected: Vec<u16> = (0..MESSAGES)
        .map(|i| u16::try_from(i % usize::from(INFLIGHT)).unwrap() + 1)
        .collect();
    assert_eq!(
        written, expected,
        "Outgoing::Publish in the order of the calls"
    );
    // mosquitto acknowledges in order: the PUBACKs are reported as it sent them.
    assert_eq!(acked, expected, "PUBACKs in the order the broker sent them");
    // The first batch was written before anything was read: its events come first, in order.
    let first_ack = seen
        .iter()
        .position(|s| matches!(s, Seen::Acked(_)))
        .unwrap();
    assert!(
        first_ack >= BATCH,
        "a batch of {BATCH} publishes is written before the first PUBACK is read (first PUBACK at event {first_ack})"
    );
    // Every PUBACK follows the write of its publish, and never more are in flight than allowed.
    let mut in_flight = std::collections::VecDeque::new();
    for s in seen {
        match s {
            Seen::Written(p) => {
                in_flight.push_back(*p);
                assert!(in_flight.len() <= usize::from(INFLIGHT));
            }
            Seen::Acked(p) => assert_eq!(in_flight.pop_front(), Some(*p)),
        }
    }
    let sent: Vec<String> = (0..MESSAGES).map(payload).collect();
    assert_eq!(
        delivered, sent,
        "the broker received them in the order of the calls"
    );
}

/// Queues `MESSAGES` publishes on the client, then polls the event loop until every PUBACK
/// came: the events seen. The same for both protocol versions (the types differ, the code
/// does not; `Event`, `Packet` and `QoS` are the caller's).
macro_rules! publish_all {
    ($client:ident, $el:ident) => {{
        for i in 0..MESSAGES {
            $client
                .try_publish(
                    TOPICS[i % TOPICS.len()],
                    QoS::AtLeastOnce,
                    false,
                    payload(i),
                )
                .unwrap();
        }
        let mut seen = Vec::with_capacity(2 * MESSAGES);
        let poll = async {
            while seen.iter().filter(|s| matches!(s, Seen::Acked(_))).count() < MESSAGES {
                match $el.poll().await.unwrap() {
                    Event::Outgoing(rumqttc::Outgoing::Publish(p)) => {
                        seen.push(Seen::Written(p));
                        let_the_first_puback_arrive(&seen).await;
                    }
                    Event::Incoming(Packet::PubAck(a)) => seen.push(Seen::Acked(a.pkid)),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), poll)
            .await
            .expect("every PUBACK in time");
        seen
    }};
}

#[tokio::test]
async fn queued_publishes_leave_and_are_reported_in_order_v311() {
    use rumqttc::{Event, Packet, QoS};
    let broker = broker();
    let mut rx = subscriber(broker.port()).await;
    let mut o = rumqttc::MqttOptions::new("batch-pub", "127.0.0.1", broker.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_inflight(INFLIGHT)
        .set_max_request_batch(BATCH);
    let (client, mut el) = rumqttc::AsyncClient::new(o, MESSAGES);
    let seen = publish_all!(client, el);
    check(&seen, &received(&mut rx).await);
}

#[tokio::test]
async fn queued_publishes_leave_and_are_reported_in_order_v5() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::Event;
    let broker = broker();
    let mut rx = subscriber(broker.port()).await;
    let mut o = rumqttc::v5::MqttOptions::new("batch-pub5", "127.0.0.1", broker.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(INFLIGHT)
        .set_max_request_batch(BATCH);
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, MESSAGES);
    let seen = publish_all!(client, el);
    check(&seen, &received(&mut rx).await);
}
