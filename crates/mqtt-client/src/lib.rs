//! The fieldbridge MQTT publisher: forwards mapped tags of the Redis tag bus to MQTT brokers,
//! at least once.
//!
//! [`plan`] turns a validated config into one [`DevicePlan`] per enabled MQTT device;
//! [`spawn_publisher`] runs one publisher task per device and returns a [`PublisherHandle`]
//! with its [`Stats`].
//!
//! # How a value travels
//! Drivers write each value with `SET` + `PUBLISH` + `XADD tagbus:stream` (see `tagbus`). The
//! publisher of a device reads the stream with its own consumer group `mqtt:<device_alias>`
//! and the fixed consumer name `mqtt-client`, publishes each entry whose key is mapped, and
//! `XACK`s the entry only when the broker acknowledged the publish: PUBACK at QoS 1, PUBCOMP
//! at QoS 2, and at QoS 0 once the packet was written to the socket. Unmapped and malformed
//! entries are acknowledged at once. Nothing is buffered beyond a bounded window: reads come
//! in batches of [`READ_BATCH`], at most `max_inflight` publishes (QoS 1/2; the broker's
//! Receive Maximum with MQTT 5; [`QOS0_WINDOW`] at QoS 0) are unacknowledged at a time, so
//! the stream is the buffer, not RAM.
//!
//! # Decisions (where the issue was silent)
//! - **Consumer group start**: a group that does not exist is created at `$` (the end of the
//!   stream): a publisher that starts for the first time sends the current state (snapshot)
//!   and then the live feed, not an old backlog. An existing group resumes: after a reconnect
//!   or a restart (even SIGKILL) this consumer's pending entries (`XREADGROUP ... 0`) are
//!   published first, then every entry after the group's position.
//! - **Reconnects**: every MQTT connection starts from a clean slate. The in-flight state of
//!   the previous connection is forgotten and the pending entries are read again from the
//!   stream (a value may be published twice; none is lost). The rumqttc event loop of a
//!   connection is dropped with it, so its own re-send queue never competes with ours.
//! - **Snapshot vs stream**: on every connect the publisher first drains the stream backlog
//!   (pending entries, then new entries until a read returns less than a full batch), then
//!   publishes the snapshot (the current value of every mapped key, `MGET`), then the live
//!   feed from the stream. So the last value published for a key is its latest value: the
//!   snapshot never overtakes an older backlog entry (a value written while the snapshot is
//!   read may come once more right after it, never out of order for long). Snapshot
//!   publishes are not tied to stream entries; they are sent at the device's QoS and retain.
//! - **enable_threshold**: a value equal to the last one published for that signal *on this
//!   connection* is dropped (and its entry acknowledged). "Equal" compares the value and the
//!   flags, not the timestamp (a quality change is always sent). The memory is cleared on
//!   every connect and when the stream reader restarts, so the snapshot and re-read pending
//!   entries always go out.
//! - **Default client id**: `fieldbridge-<hostname>-<device_alias>` when `client_id` is
//!   empty (hostname from `/proc/sys/kernel/hostname`, then `$HOSTNAME`, then `gateway`).
//! - **Broker refusals**: a CONNACK refusal (wrong password, not authorised) is logged at
//!   error with its reason and retried with backoff (1 s to 15 s, jitter; the backoff is reset
//!   only by a connection that lasted 30 s, so a broker that accepts and then drops us at once
//!   is not hammered).
//! - **Stopping**: on SIGTERM/SIGINT the applet drops its connections without an MQTT
//!   DISCONNECT, so the broker publishes the Last Will: the gateway is offline either way.
//!   Unacknowledged entries stay pending in the stream for the next start.
//! - **Redis lost**: the stream reader reconnects by itself with backoff and starts again from
//!   the pending entries; the MQTT connection stays up (no Last Will for a Redis restart).
//! - **QoS 2 window**: `max_inflight` (default 20) bounds unacknowledged QoS 2 publishes; with
//!   MQTT 5 the broker's Receive Maximum lowers it. A 3.1.1 broker cannot announce its limit:
//!   when it closes the connection within 10 s of connecting while our QoS 2 window is full,
//!   the window is halved for the following connections (logged at warn) instead of looping.
//! - **Refused publishes**: an MQTT 5 PUBACK / PUBREC with a failure reason code is logged at
//!   warn, counted ([`Stats::rejected`]) and the entry is acknowledged (a broker's negative
//!   answer is a result; re-sending it forever would stall the device).
//! - **Trimmed entries**: entries the stream cap dropped before this device's group read or
//!   acknowledged them are counted ([`Stats::trimmed`]) and logged at warn (see
//!   `tagbus::stream`).
//! - **TLS**: rustls with ring; the broker's certificate is always verified against
//!   `ca_certificate` (the name checked is `ip`). `tls_insecure: 1` disables that check and is
//!   logged at warn on every connect.
//! - **QoS 2 with a persistent session**: after a reconnect with `clean_session: 0`, pending
//!   entries get new packet ids. A broker that still holds an unreleased QoS 2 packet id from
//!   the old connection and sees it reused may take the new message for a duplicate. Use QoS 1
//!   (or `clean_session: 1`) where a broker keeps such state across long outages.
//!
//! # The MQTT library
//! rumqttc 0.25 (`default-features = false`, `use-rustls-no-provider` + `websocket`): it
//! reports `Outgoing::Publish(pkid)` in the order of publish calls and
//! `Incoming::PubAck/PubComp(pkid)`, which is how broker acknowledgements are mapped back to
//! stream entry ids. Its limits, and what we do about them:
//! - it accepts a WebSocket only when the broker answers the subprotocol `mqtt`;
//!   `ws_subprotocol` values other than `mqtt` are refused by [`plan`] with a clear error;
//! - it writes and flushes one packet per request (no write batching); the benchmark in
//!   `examples/bench.rs` measures what that costs against a raw rumqttc client.

mod conn;
mod payload;
mod publisher;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use config::mqtt::{MqttDevice, Topic, Transport};
use config::{Config, DeviceKind, SignalKind};
use tagbus::{Alias, TagKey};

pub use payload::format_payload;
pub use publisher::{spawn_publisher, PublisherHandle, PublisherOptions};

/// Entries read from the stream per `XREADGROUP`.
pub const READ_BATCH: usize = 256;
/// The most QoS 0 publishes handed to the MQTT event loop and not yet written.
pub const QOS0_WINDOW: usize = 256;

/// Errors of the publisher.
#[derive(Debug, thiserror::Error)]
pub enum MqttClientError {
    #[error("tag bus: {0}")]
    TagBus(#[from] tagbus::TagBusError),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("device {device}: {message}")]
    Unsupported { device: String, message: String },
}

/// One mapped signal of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The topic published on.
    pub topic: Topic,
    /// The signal's `log` column: its values are logged at info as they are published.
    pub log: bool,
    /// The signal's alias (for logs).
    pub signal: Alias,
}

/// What one publisher task needs: the broker and its routes (source tag -> topics).
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub alias: Alias,
    pub name: String,
    pub device: MqttDevice,
    /// Every enabled signal, by source tag (one tag may go to several topics).
    pub routes: std::collections::BTreeMap<TagKey, Vec<Route>>,
}

impl DevicePlan {
    /// The consumer group of this device on the tag bus stream: `mqtt:<device_alias>`.
    pub fn group(&self) -> String {
        format!("mqtt:{}", self.alias)
    }

    /// The client id: `client_id`, or `fieldbridge-<hostname>-<device_alias>` when empty.
    pub fn client_id(&self, hostname: &str) -> String {
        match &self.device.client_id {
            Some(id) => id.clone(),
            None => format!("fieldbridge-{hostname}-{}", self.alias),
        }
    }
}

/// The plans of the enabled MQTT devices, or the errors of settings this build cannot do.
pub fn plan(config: &Config) -> Result<Vec<DevicePlan>, Vec<MqttClientError>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for device in &config.devices {
        let DeviceKind::Mqtt(mqtt) = &device.kind else {
            continue;
        };
        if !device.enabled {
            continue;
        }
        if mqtt.transport == Transport::WebSocket && mqtt.ws_subprotocol != "mqtt" {
            errors.push(MqttClientError::Unsupported {
                device: device.alias.to_string(),
                message: format!(
                    "ws_subprotocol {:?} is not supported (only \"mqtt\")",
                    mqtt.ws_subprotocol
                ),
            });
            continue;
        }
        let mut routes: std::collections::BTreeMap<TagKey, Vec<Route>> = Default::default();
        for signal in config.signals_of(&device.alias) {
            let SignalKind::Mqtt(s) = &signal.kind else {
                continue;
            };
            if !signal.enabled {
                continue;
            }
            routes.entry(s.source.clone()).or_default().push(Route {
                topic: s.topic.clone(),
                log: signal.log,
                signal: signal.alias.clone(),
            });
        }
        plans.push(DevicePlan {
            alias: device.alias.clone(),
            name: device.name.clone(),
            device: mqtt.clone(),
            routes,
        });
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

/// This machine's host name for the default client id.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "gateway".to_owned())
}

/// Counters of one publisher, shared with its task (cheap to clone).
#[derive(Debug, Default, Clone)]
pub struct Stats(Arc<StatsInner>);

#[derive(Debug, Default)]
struct StatsInner {
    published: AtomicU64,
    acked: AtomicU64,
    dropped_threshold: AtomicU64,
    rejected: AtomicU64,
    connects: AtomicU64,
    trimmed: Arc<tagbus::TrimCounter>,
}

impl Stats {
    /// Publishes handed to the broker (snapshot included).
    pub fn published(&self) -> u64 {
        self.0.published.load(Ordering::Relaxed)
    }
    /// Stream entries acknowledged after the broker acknowledged them (or unmapped/dropped).
    pub fn acked(&self) -> u64 {
        self.0.acked.load(Ordering::Relaxed)
    }
    /// Values dropped by `enable_threshold`.
    pub fn dropped_threshold(&self) -> u64 {
        self.0.dropped_threshold.load(Ordering::Relaxed)
    }
    /// Publishes the broker refused (MQTT 5 failure reason codes).
    pub fn rejected(&self) -> u64 {
        self.0.rejected.load(Ordering::Relaxed)
    }
    /// Successful connections (CONNACK accepted).
    pub fn connects(&self) -> u64 {
        self.0.connects.load(Ordering::Relaxed)
    }
    /// Stream entries the cap trimmed before this publisher read or acknowledged them.
    pub fn trimmed(&self) -> u64 {
        self.0.trimmed.get()
    }
    pub(crate) fn trimmed_counter(&self) -> Arc<tagbus::TrimCounter> {
        self.0.trimmed.clone()
    }
    pub(crate) fn add_published(&self, n: u64) {
        self.0.published.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_acked(&self, n: u64) {
        self.0.acked.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dropped(&self) {
        self.0.dropped_threshold.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_rejected(&self) {
        self.0.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_connect(&self) {
        self.0.connects.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_device: &str) -> Config {
        let text = format!(
            r#"{{"devices": [
                {{"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1", "port": 2404, "asdu_address": 1}},
                {{"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "broker", "client_id": ""}},
                {{"name": "Off", "device_alias": "off", "protocol": "mqtt", "ip": "broker", "enable": 0}}
                {extra_device}
            ],
            "signals": [
                {{"signal_name": "a", "device_alias": "rtu1", "signal_alias": "a", "info_address": 1, "type_id": "M_SP_NA_1"}},
                {{"signal_name": "b", "device_alias": "rtu1", "signal_alias": "b", "info_address": 2, "type_id": "M_SP_NA_1"}},
                {{"signal_name": "up a", "device_alias": "cloud", "signal_alias": "a", "source_device_alias": "rtu1", "source_signal_alias": "a"}},
                {{"signal_name": "up a2", "device_alias": "cloud", "signal_alias": "a2", "source_device_alias": "rtu1", "source_signal_alias": "a", "topic": "x/a", "log": 1}},
                {{"signal_name": "up b", "device_alias": "cloud", "signal_alias": "b", "source_device_alias": "rtu1", "source_signal_alias": "b", "enable": 0}},
                {{"signal_name": "off a", "device_alias": "off", "signal_alias": "a", "source_device_alias": "rtu1", "source_signal_alias": "a"}}
            ]}}"#
        );
        let v = config::validate(&config::RawConfig::parse(&text).unwrap());
        assert!(
            v.errors_for(config::Applet::MqttClient).is_empty(),
            "{:?}",
            v.errors
        );
        v.config
    }

    #[test]
    fn plan_skips_disabled_devices_and_signals() {
        let plans = plan(&config("")).unwrap();
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!(p.alias.as_str(), "cloud");
        assert_eq!(p.group(), "mqtt:cloud");
        assert_eq!(p.client_id("box"), "fieldbridge-box-cloud");
        assert_eq!(p.routes.len(), 1, "b is disabled");
        let routes = &p.routes[&"tag/rtu1/a/in".parse::<TagKey>().unwrap()];
        let topics: Vec<&str> = routes.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(topics, vec!["tag/rtu1/a/in", "x/a"]);
        assert_eq!(
            routes.iter().map(|r| r.log).collect::<Vec<_>>(),
            vec![false, true]
        );
    }

    #[test]
    fn plan_refuses_an_unsupported_ws_subprotocol() {
        let extra = r#", {"name": "Old", "device_alias": "old", "protocol": "mqtt", "ip": "b", "transport": "ws", "ws_subprotocol": "mqttv3.1"}"#;
        let errors = plan(&config(extra)).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("mqttv3.1"));
    }
}
