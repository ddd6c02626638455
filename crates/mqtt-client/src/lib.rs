//! The fieldbridge MQTT publisher: forwards mapped tags of the Redis tag bus to MQTT brokers,
//! at least once.
//! Where it fits: docs/architecture.md; what it reads and publishes: docs/contracts.md.
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
//! in batches of [`READ_BATCH`] (at most two batches wait between the reader and the
//! connection), at most `max_inflight` publishes (QoS 1/2; the broker's Receive Maximum with
//! MQTT 5; [`QOS0_WINDOW`] at QoS 0) are unacknowledged at a time, plus up to 256 QoS 1/2
//! publishes queued in rumqttc behind them, so the stream is the buffer, not RAM.
//!
//! The bookkeeping of a connection (the window, which packet id stands for which entry, when
//! an entry may be `XACK`ed, what stays pending when the connection ends) is a state machine
//! without I/O (`window.rs`), unit-tested with scripted event sequences; `publisher.rs` runs
//! the reader, the connection and the acknowledger around it.
//!
//! # Decisions
//! - **Consumer group start**: a group that does not exist is created at `$` (the end of the
//!   stream): a publisher that starts for the first time sends the current state (snapshot)
//!   and then the live feed, not an old backlog. A group that vanishes while the process runs
//!   (Redis restarted without persistence) is re-created at `0` and logged at warn: the new
//!   stream holds only values written since the restart, and they all go out.
//! - **Counters for `fieldbridge status`**: the applet writes every device's [`Stats`] every
//!   5 s to the stats hash `fieldbridge:stats:mqtt-client` (its fields: `contract::stats`);
//!   `fieldbridge status` prints them (docs/reliability.md). An existing group resumes: after a reconnect
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
//! - **Report by exception** (signal columns `deadband`, `deadband_percent`,
//!   `max_interval_s`): a value within the deadband around the last value sent is held back
//!   (its entry acknowledged, counted as `suppressed_deadband`); a flag change and the first
//!   value of each connection always go out; a topic quiet for `max_interval_s` gets its
//!   latest value again (a heartbeat, standing for no stream entry, like a snapshot value).
//!   The rules, with `enable_threshold`, live in `report.rs` (sans-IO), owned by the window;
//!   what the broker's retained value can show is stated there.
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
//! - **Fewer bytes on the uplink** (docs/payloads.md): `payload_format: json_batch` /
//!   `csv_batch` gather values into one message on the device's batch topic (`batch.rs`, the
//!   batch's entries held by the window until its PUBACK/PUBCOMP); `topic_alias: 1` names a
//!   topic in full once per connection, up to the broker's Topic Alias Maximum (`alias.rs`).
//!   `uplink.rs` holds both for one connection.
//! - **QoS 2 with a persistent session**: after a reconnect with `clean_session: 0`, pending
//!   entries get new packet ids. A broker that still holds an unreleased QoS 2 packet id from
//!   the old connection and sees it reused may take the new message for a duplicate. Use QoS 1
//!   (or `clean_session: 1`) where a broker keeps such state across long outages.
//!
//! # Sparkplug B
//! A device with `payload_format: sparkplug` is a Sparkplug B 3.0 edge node instead
//! (`sparkplug_node.rs` drives the sans-IO node of the `sparkplug` crate; docs/sparkplug.md):
//! births with every metric, DDATA by alias at QoS 0 (entries acknowledged once written to the
//! socket), the NDEATH Will with a bdSeq counted in Redis, the backlog replayed as historical
//! values after the births, DCMD through the command path below.
//!
//! # Commands from the cloud (docs/contracts.md, "Commands")
//! The client also carries commands down: MQTT command topic -> `tag/<source_device_alias>/
//! <source_signal_alias>/out` -> the driver (iec104-master, modbus-master) -> the driver's
//! `result/<dev>/<sig>` (see `tagbus::command`) -> an answer on MQTT. The core is
//! [`commands::Commander`] (sans-IO); a task per MQTT device runs it with a tag writer and a
//! Redis listener of the result channels.
//!
//! **Configuration.** Signal columns `writable` (0/1, default 0) and `command_topic` (default:
//! the device's `command_topic_template` applied); device columns `command_topic_template`
//! (default `<topic>/set`; placeholders `<topic>`, `<signal_alias>`, `<source_device_alias>`,
//! `<source_signal_alias>`), `command_max_age_ms` (default 10,000), `command_result_timeout_s`
//! (default 30: the wait for the driver's result before answering `timeout`; keep it above
//! the driver's own command timeout, and note the driver refuses any command older than its
//! own `command_max_age_ms`, so a late write is never executed late).
//!
//! **Security: only writable signals have a route.** [`plan`] builds a command route only for
//! an enabled signal with `writable: 1` whose source is a command signal of its driver (IEC
//! 104: a command `type_id` or `command_type`; Modbus: `writable: 1`), and whose command topic
//! (and `/result`) collides with no published topic, Last Will topic or other command topic.
//! Anything else gets no route (logged at error when `writable` was set). Only routed topics
//! are subscribed (QoS 1, exact names, never wildcards), and the tag written is taken from the
//! route, never from the message. A message on any other topic (e.g. via an old persistent
//! session) is ignored and logged; on the command topic of a non-writable signal it is
//! answered `not_writable`.
//!
//! **Payloads.** A plain number (`1`, `0.75`, `-3`) or `true`/`false`, or JSON
//! `{"value": 1, "select": true, "ts": 1732280000000, "id": "op-42"}` where only `value` is
//! required. `select` does not steer the driver: it must MATCH the signal's configuration
//! (`select_before_operate` of the IEC 104 signal; always false for Modbus), else the command
//! is refused `invalid`/`select_mismatch`; the cloud cannot bypass a configured
//! select-before-operate. `ts` is the issue time (Unix ms): a command older than
//! `command_max_age_ms` is refused `too_old`, one more than that in the future `invalid`
//! (`ts_in_future`; check the clocks). Without `ts` the age is counted from the receive time.
//! With `clean_session: 0` the broker queues commands while the gateway is away, so there a
//! command needs `ts` (or an MQTT 5 Message Expiry Interval, which the broker enforces) or it
//! is refused `too_old`/`no_ts`.
//!
//! **Never executed**: a message with the retain flag (a broker replays retained messages on
//! subscribe; with MQTT 5 we also subscribe with Retain Handling 2 "never send retained" and
//! Retain As Published, so even a live message published retained is refused:
//! `invalid`/`retained`); a duplicate: at QoS 1 a message with DUP set whose packet id was
//! already handled in this session (the last [`commands::RECENT_PKIDS`] ids; forgotten when
//! a connection starts without a session), or a JSON `id` seen among the last
//! [`commands::RECENT_IDS`] commands. A duplicate is logged and not answered (the first copy
//! is). Commands are acknowledged (PUBACK) on receipt: at most once, never twice.
//!
//! **Execution.** The command is written with SET + PUBLISH + XADD (the tag writer) as
//! `value,timestamp_ms,` with timestamp = now, bumped by 1 ms when equal to the previous
//! command of the same tag: that timestamp is the command id the driver's result carries. At
//! most [`commands::MAX_PENDING`] commands per device wait for a result (more: `rejected`/
//! `busy`). A result written while the listener was reconnecting is read back from the key.
//!
//! **Answers.** JSON, not retained, at the device's `mqtt_qos`:
//! `{"outcome":"confirmed","detail":null,"signal":"cb1","command_ts":1732280000123,
//! "ts":1732280000180,"id":"op-42"}`. `outcome` is one of `confirmed`, `rejected`, `timeout`,
//! `link_down`, `too_old`, `not_writable`, `invalid` (the driver's, or ours for refusals
//! before the tag bus, then `command_ts` is null); `detail` a code or null; `ts` when the
//! outcome was decided; `id` echoed when given. With MQTT 5 the answer goes to the request's
//! Response Topic with its Correlation Data; with MQTT 3.1.1 (or an MQTT 5 request without a
//! Response Topic, or one naming one of our command topics) to `<command_topic>/result`.
//! Answers wait in a bounded queue (64) for the current connection; when it is full an answer
//! is dropped and logged.
//!
//! # The MQTT library
//! rumqttc 0.25.1 (`default-features = false`, `use-rustls-no-provider` + `websocket`), vendored
//! in `vendor/rumqttc` with two small patches (see its FIELDBRIDGE.md): it
//! reports `Outgoing::Publish(pkid)` in the order of publish calls and
//! `Incoming::PubAck/PubComp(pkid)`, which is how broker acknowledgements are mapped back to
//! stream entry ids. Its limits, and what we do about them:
//! - it knew only MQTT 3.1.1 and the WebSocket subprotocol `mqtt`; the patch adds MQTT 3.1's
//!   CONNECT (`MQIsdp`, level 3) and asks for `ws_subprotocol` (`mqtt` or `mqttv3.1`, the
//!   names of Paho's MQTT-over-WebSocket interop page), which the broker must answer;
//! - upstream writes and flushes one packet per request; the patch writes the requests
//!   already queued (64 at most, within the in-flight limit) and flushes once (`conn.rs`,
//!   `REQUEST_BATCH`); `examples/bench.rs` measures it against a raw, unpatched-behaviour
//!   rumqttc client.

mod alias;
mod batch;
pub mod commands;
mod conn;
mod payload;
mod publisher;
mod report;
mod sparkplug_node;
mod tls;
mod uplink;
mod window;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use portable_atomic::AtomicU64;

use config::mqtt::{MqttDevice, Topic};
use config::{Config, DeviceKind, Signal, SignalKind};
use tagbus::{Alias, TagKey};

pub use commands::{CommandPlan, CommandRoute};
pub use payload::format_payload;
pub use publisher::{spawn_publisher, PublisherHandle, PublisherOptions};
pub use sparkplug_node::SparkplugPlan;

/// Entries read from the stream per `XREADGROUP`.
pub const READ_BATCH: usize = 512;
/// The most QoS 0 publishes handed to the MQTT event loop and not yet written.
pub const QOS0_WINDOW: usize = 512;

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
    /// The signal's report-by-exception settings (`report.rs` applies them); None when all
    /// are off (most signals: a pointer, not the settings, per route).
    pub report: Option<Box<config::report::Reporting>>,
}

/// What one publisher task needs: the broker and its routes (source tag -> topics).
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub alias: Alias,
    pub device: MqttDevice,
    /// Every enabled signal, by source tag (one tag may go to several topics). A hash map:
    /// it is looked up once per value forwarded, and tens of thousands of keys sharing a
    /// device prefix make an ordered map's string comparisons the publisher's top cost.
    pub routes: std::collections::HashMap<TagKey, Vec<Route>>,
    /// The command path: routes of the writable signals only.
    pub commands: CommandPlan,
    /// The topic of the batches with a batch payload format (`batch_topic`).
    pub batch_topic: Option<Topic>,
    /// `payload_format: sparkplug`: the edge node's devices and metrics.
    pub sparkplug: Option<SparkplugPlan>,
}

impl DevicePlan {
    /// The consumer group of this device on the tag bus stream: `mqtt:<device_alias>`.
    pub fn group(&self) -> String {
        tagbus::ConsumerGroup::mqtt(&self.alias).to_string()
    }

    /// The client id: `client_id`, or `fieldbridge-<hostname>-<device_alias>` when empty.
    pub fn client_id(&self, hostname: &str) -> String {
        match &self.device.client_id {
            Some(id) => id.clone(),
            None => format!("fieldbridge-{hostname}-{}", self.alias),
        }
    }
}

/// Drops the signals the publisher never looks at: those of other protocols that are no
/// writable MQTT signal's source, and those of disabled MQTT devices. A big config's typed
/// signals are megabytes, and [`plan`] builds its maps next to them: call this first.
pub fn retain_used_signals(config: &mut Config) {
    use std::collections::BTreeSet;
    let devices: BTreeSet<&Alias> = config
        .devices
        .iter()
        .filter(|d| d.enabled && matches!(d.kind, DeviceKind::Mqtt(_)))
        .map(|d| &d.alias)
        .collect();
    let mut sources: std::collections::BTreeMap<Alias, BTreeSet<Alias>> = Default::default();
    for s in config
        .signals
        .iter()
        .filter(|s| devices.contains(&s.device))
    {
        if let SignalKind::Mqtt(m) = &s.kind {
            if m.writable {
                sources
                    .entry(m.source.device.clone())
                    .or_default()
                    .insert(m.source.signal.clone());
            }
        }
    }
    let devices: BTreeSet<Alias> = devices.into_iter().cloned().collect();
    config.signals.retain(|s| match &s.kind {
        SignalKind::Mqtt(_) => devices.contains(&s.device),
        _ => sources
            .get(&s.device)
            .is_some_and(|signals| signals.contains(&s.alias)),
    });
    config.signals.shrink_to_fit();
}

/// The plans of the enabled MQTT devices, or the errors of settings this build cannot do.
pub fn plan(config: &Config) -> Result<Vec<DevicePlan>, Vec<MqttClientError>> {
    let mut plans = Vec::new();
    let mut errors: Vec<MqttClientError> = Vec::new();
    for device in &config.devices {
        let DeviceKind::Mqtt(mqtt) = &device.kind else {
            continue;
        };
        if !device.enabled {
            continue;
        }
        let mut routes: std::collections::HashMap<TagKey, Vec<Route>> = Default::default();
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
                report: s.report.is_on().then(|| Box::new(s.report)),
            });
        }
        let commands = command_plan(config, &device.alias, mqtt);
        let batch_topic = match uplink::batch_topic(&device.alias, mqtt, &routes) {
            Ok(t) => t,
            Err(message) => {
                errors.push(MqttClientError::Unsupported {
                    device: device.alias.to_string(),
                    message,
                });
                continue;
            }
        };
        let sparkplug = sparkplug_node::plan(config, &device.alias, mqtt, &commands);
        plans.push(DevicePlan {
            alias: device.alias.clone(),
            device: mqtt.clone(),
            routes,
            commands,
            batch_topic,
            sparkplug,
        });
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

/// The command routes of one MQTT device: one per enabled signal with `writable: 1` whose
/// source is a command signal of its driver (IEC 104: a command `type_id` or `command_type`;
/// Modbus: `writable: 1`), with a command topic that collides with nothing. Everything else
/// gets no route (and a warning when it was meant to be writable).
fn command_plan(config: &Config, device: &Alias, mqtt: &MqttDevice) -> CommandPlan {
    use std::collections::{BTreeMap, BTreeSet};
    let mut plan = CommandPlan {
        max_age: mqtt.commands.max_age,
        timeout: mqtt.commands.timeout,
        persistent_session: !mqtt.clean_session,
        ..Default::default()
    };
    let signals: Vec<&Signal> = config.signals_of(device).filter(|s| s.enabled).collect();
    // Topics we publish on (values, Last Will) may never be command or result topics: the
    // client would execute its own values.
    let mut published: BTreeSet<Topic> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Mqtt(m) => Some(m.topic.clone()),
            _ => None,
        })
        .collect();
    if let Some(w) = &mqtt.last_will {
        published.insert(w.topic.clone());
    }
    let mut routes: BTreeMap<Topic, CommandRoute> = BTreeMap::new();
    for signal in &signals {
        let SignalKind::Mqtt(s) = &signal.kind else {
            continue;
        };
        let what = format!("device {device}, signal {}", signal.alias);
        let topics = match &s.command_topic {
            Some(t) => Ok(t.clone()),
            None => mqtt
                .commands
                .topic_template
                .apply(&s.topic, &signal.alias, &s.source),
        }
        .and_then(|t| t.child("result").map(|r| (t, r)));
        let (topic, result_topic) = match topics {
            Ok(t) => t,
            Err(e) => {
                if s.writable {
                    plan.warnings
                        .push(format!("{what}: no command route: bad command topic: {e}"));
                }
                continue;
            }
        };
        if !s.writable {
            plan.refused
                .insert(topic, (signal.alias.clone(), result_topic));
            continue;
        }
        let sbo = match target_command(config, &s.source) {
            Ok(sbo) => sbo,
            Err(why) => {
                plan.warnings
                    .push(format!("{what}: writable, but {why}; no command route"));
                continue;
            }
        };
        if let Some(t) = [&topic, &result_topic]
            .into_iter()
            .find(|t| published.contains(*t))
        {
            plan.warnings.push(format!(
                "{what}: command topic {topic} (or its /result) is also published on ({t}); no command route"
            ));
            continue;
        }
        if let Some(other) = routes.get(&topic) {
            plan.warnings.push(format!(
                "{what}: command topic {topic} is already the command topic of signal {}; no command route",
                other.signal
            ));
            continue;
        }
        routes.insert(
            topic.clone(),
            CommandRoute {
                signal: signal.alias.clone(),
                command_topic: topic,
                result_topic,
                out: TagKey::new(
                    s.source.device.clone(),
                    s.source.signal.clone(),
                    tagbus::Direction::Out,
                ),
                select_before_operate: sbo,
            },
        );
    }
    // A result topic that is another signal's command topic would feed answers back in.
    let results: BTreeSet<Topic> = routes.values().map(|r| r.result_topic.clone()).collect();
    routes.retain(|t, r| {
        let clash = results.contains(t);
        if clash {
            plan.warnings.push(format!(
                "device {device}, signal {}: command topic {t} is another signal's result topic; no command route",
                r.signal
            ));
        }
        !clash
    });
    plan.refused.retain(|t, _| !routes.contains_key(t));
    plan.routes = routes;
    plan
}

/// Whether the field signal behind `source` takes commands: `Ok(select_before_operate)`.
fn target_command(config: &Config, source: &TagKey) -> Result<bool, String> {
    let signal = config
        .signals_of(&source.device)
        .find(|s| s.alias == source.signal)
        .ok_or_else(|| {
            format!(
                "its source {}/{} does not exist",
                source.device, source.signal
            )
        })?;
    match &signal.kind {
        SignalKind::Iec104(s) => s.command.map(|c| c.select_before_operate).ok_or_else(|| {
            format!(
                "its source {}/{} is not an IEC 104 command (a C_* type_id or command_type)",
                source.device, source.signal
            )
        }),
        SignalKind::Modbus(m) if m.writable => Ok(false),
        SignalKind::Modbus(_) => Err(format!(
            "its source {}/{} is not writable (Modbus writable: 0)",
            source.device, source.signal
        )),
        SignalKind::Mqtt(_) => Err("its source is an MQTT signal".into()),
        SignalKind::Iec104Slave(_) => Err("its source is an IEC 104 slave signal".into()),
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
    suppressed_deadband: AtomicU64,
    rejected: AtomicU64,
    connects: AtomicU64,
    /// The trim counter and where a missing consumer group is created.
    group: tagbus::feed::GroupState,
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
    /// Values held back by a signal's deadband.
    pub fn suppressed_deadband(&self) -> u64 {
        self.0.suppressed_deadband.load(Ordering::Relaxed)
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
        self.0.group.trimmed().get()
    }
    /// Every counter at once, as the stats hash carries them (`tagbus::stats`: written by
    /// the applet, read by `fieldbridge status`).
    pub fn counters(&self) -> tagbus::stats::Counters {
        tagbus::stats::Counters {
            published: self.published(),
            acked: self.acked(),
            trimmed: self.trimmed(),
            rejected: self.rejected(),
            dropped_threshold: self.dropped_threshold(),
            suppressed_deadband: self.suppressed_deadband(),
            connects: self.connects(),
        }
    }
    /// The consumer group's feed state, shared by the publisher's reconnects.
    pub(crate) fn group_state(&self) -> &tagbus::feed::GroupState {
        &self.0.group
    }
    pub(crate) fn add_published(&self, n: u64) {
        self.0.published.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_acked(&self, n: u64) {
        self.0.acked.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        self.0.dropped_threshold.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_suppressed(&self, n: u64) {
        self.0.suppressed_deadband.fetch_add(n, Ordering::Relaxed);
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
    fn only_writable_command_signals_get_a_command_route() {
        let text = r#"{"devices": [
            {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
            {"name": "M", "device_alias": "m1", "protocol": "modbus-tcp", "ip": "h", "modbus_id": 1},
            {"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "b",
             "use_last_will": 1, "last_will_topic": "site/lw/set"}
        ], "signals": [
            {"signal_name": "cb", "device_alias": "rtu1", "signal_alias": "cb", "info_address": 1, "type_id": "C_SC_NA_1"},
            {"signal_name": "sp", "device_alias": "rtu1", "signal_alias": "sp", "info_address": 2, "type_id": "C_SE_NC_1", "select_before_operate": 1},
            {"signal_name": "st", "device_alias": "rtu1", "signal_alias": "st", "info_address": 3, "type_id": "M_SP_NA_1"},
            {"signal_name": "r", "device_alias": "m1", "signal_alias": "r", "function": 3, "address": 1, "writable": 1},
            {"signal_name": "ro", "device_alias": "m1", "signal_alias": "ro", "function": 3, "address": 2},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "cb", "source_device_alias": "rtu1", "source_signal_alias": "cb", "topic": "site/cb", "writable": 1},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "sp", "source_device_alias": "rtu1", "source_signal_alias": "sp", "writable": 1, "command_topic": "cmd/sp"},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "cb_ro", "source_device_alias": "rtu1", "source_signal_alias": "cb", "topic": "site/cb_ro"},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "st", "source_device_alias": "rtu1", "source_signal_alias": "st", "topic": "site/st", "writable": 1},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "r", "source_device_alias": "m1", "source_signal_alias": "r", "topic": "site/r", "writable": 1},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "ro", "source_device_alias": "m1", "source_signal_alias": "ro", "topic": "site/ro", "writable": 1},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "clash", "source_device_alias": "rtu1", "source_signal_alias": "cb", "topic": "site/x", "writable": 1, "command_topic": "site/st"},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "lw", "source_device_alias": "rtu1", "source_signal_alias": "cb", "topic": "site/lw", "writable": 1},
            {"signal_name": "x", "device_alias": "cloud", "signal_alias": "off", "source_device_alias": "rtu1", "source_signal_alias": "cb", "topic": "site/off", "writable": 1, "enable": 0}
        ]}"#;
        let v = config::validate(&config::RawConfig::parse(text).unwrap());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let plans = plan(&v.config).unwrap();
        let c = &plans[0].commands;
        let routes: Vec<(String, String, bool)> = c
            .routes
            .values()
            .map(|r| {
                (
                    r.command_topic.to_string(),
                    r.out.to_string(),
                    r.select_before_operate,
                )
            })
            .collect();
        let expected = [
            ("cmd/sp", "tag/rtu1/sp/out", true),
            ("site/cb/set", "tag/rtu1/cb/out", false),
            ("site/r/set", "tag/m1/r/out", false),
        ]
        .map(|(a, b, s)| (a.to_owned(), b.to_owned(), s));
        assert_eq!(routes, expected);
        assert_eq!(
            c.routes.values().next().unwrap().result_topic.as_str(),
            "cmd/sp/result"
        );
        let refused: Vec<&str> = c.refused.keys().map(|t| t.as_str()).collect();
        assert_eq!(refused, vec!["site/cb_ro/set"]);
        let w = c.warnings.join("\n");
        assert_eq!(c.warnings.len(), 4, "{w}");
        for what in ["signal st:", "signal ro:", "signal clash:", "signal lw:"] {
            assert!(w.contains(what), "{what} in {w}");
        }
        assert_eq!((c.max_age.as_secs(), c.timeout.as_secs()), (10, 30));
        assert!(!c.persistent_session);
    }
}
