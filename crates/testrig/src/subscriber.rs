//! An MQTT subscriber that counts sequence numbers: the "cloud" end of the fault-injection
//! tests. Persistent session (`clean_session = false`) at the QoS asked for, re-subscribes on
//! every CONNACK, and records the first CSV field of every payload as a `u64` (payloads that
//! don't start with a number are counted apart).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One MQTT subscription in a thread of its own: persistent session (`clean_session =
/// false`), re-subscribes on every CONNACK, hands every PUBLISH to a callback. Stopped (and
/// joined) on drop. The base of [`SeqSubscriber`] and of the tests' own subscribers.
pub struct SubscriberThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SubscriberThread {
    /// Connects to 127.0.0.1:`port` as `client_id` (with `credentials` when given), subscribes
    /// to `filter` at QoS `qos`, and waits (up to 10 s) for the SUBACK.
    pub fn start(
        port: u16,
        filter: &str,
        qos: u8,
        client_id: &str,
        credentials: Option<(&str, &str)>,
        on_publish: impl FnMut(rumqttc::Publish) + Send + 'static,
    ) -> Self {
        Self::start_session(port, filter, qos, client_id, credentials, false, on_publish)
    }

    /// [`SubscriberThread::start`] with a clean session when `clean_session` is true.
    pub fn start_session(
        port: u16,
        filter: &str,
        qos: u8,
        client_id: &str,
        credentials: Option<(&str, &str)>,
        clean_session: bool,
        mut on_publish: impl FnMut(rumqttc::Publish) + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let (st, sub_ok) = (stop.clone(), subscribed.clone());
        let filter = filter.to_owned();
        let id = client_id.to_owned();
        let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_clean_session(clean_session)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_inflight(100);
        if let Some((user, password)) = credentials {
            opts.set_credentials(user, password);
        }
        let q = match qos {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        };
        let thread = std::thread::spawn(move || {
            let (client, mut conn) = rumqttc::Client::new(opts, 1000);
            while !st.load(Ordering::Relaxed) {
                match conn.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => {
                        let _ = client.try_subscribe(filter.clone(), q);
                    }
                    Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) => {
                        sub_ok.store(true, Ordering::Relaxed);
                    }
                    Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => on_publish(p),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        // Shown with a failing test's output: why the subscriber reconnected.
                        eprintln!("subscriber {id}: {e}; reconnecting");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(_) => {}
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !subscribed.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "subscriber did not subscribe");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SubscriberThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A subscriber that counts sequence numbers (the first CSV field of each payload).
pub struct SeqSubscriber {
    /// How many times each sequence number arrived.
    seen: Arc<Mutex<BTreeMap<u64, u32>>>,
    _thread: SubscriberThread,
}

impl SeqSubscriber {
    /// Connects to 127.0.0.1:`port` as `client_id`, subscribes to `filter` at QoS `qos`, and
    /// waits (up to 10 s) for the SUBACK.
    pub fn start(port: u16, filter: &str, qos: u8, client_id: &str) -> Self {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let sn = seen.clone();
        let thread = SubscriberThread::start(port, filter, qos, client_id, None, move |p| {
            let text = String::from_utf8_lossy(&p.payload);
            if let Some(seq) = text.split(',').next().and_then(|v| v.parse::<u64>().ok()) {
                *sn.lock().unwrap().entry(seq).or_insert(0) += 1;
            }
        });
        Self {
            seen,
            _thread: thread,
        }
    }

    /// Messages received in total (duplicates included).
    pub fn received(&self) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .values()
            .map(|c| u64::from(*c))
            .sum()
    }

    /// How many of `range` never arrived, and the first (up to) 20 of them.
    pub fn missing(&self, range: std::ops::Range<u64>) -> (u64, Vec<u64>) {
        let seen = self.seen.lock().unwrap();
        let mut n = 0;
        let mut first = Vec::new();
        for i in range {
            if !seen.contains_key(&i) {
                n += 1;
                if first.len() < 20 {
                    first.push(i);
                }
            }
        }
        (n, first)
    }

    /// Extra copies received (a message that arrived k times counts k - 1).
    pub fn duplicates(&self) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .values()
            .map(|c| u64::from(c.saturating_sub(1)))
            .sum()
    }

    /// Waits until every number of `range` arrived or `timeout` passed; true when complete.
    pub fn wait_complete(&self, range: std::ops::Range<u64>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.missing(range.clone()).0 == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
