//! The sans-IO edge node: connection, primary host, command and value events in; the
//! messages to publish and the writes to execute out.
//!
//! # Life of a connection
//! 1. Before connecting, the I/O layer takes the next [`BdSeq`] (a counter persisted outside,
//!    so it increments across restarts) and registers [`EdgeNode::will`] (NDEATH with that
//!    bdSeq, QoS 1, not retained) as the MQTT Last Will.
//! 2. On CONNACK it subscribes [`EdgeNode::subscriptions`] (QoS 1) and calls
//!    [`EdgeNode::connected`]. Without a primary host the births follow at once; with one, the
//!    node waits for `spBv1.0/STATE/<host>` `{"online":true,..}` ([`EdgeNode::on_state`]).
//! 3. Births: NBIRTH (seq 0, `bdSeq`, `Node Control/Rebirth`), then one DBIRTH per device
//!    with every metric: name, alias, datatype, its current value (or `is_null`), value time
//!    and the quality property ([`crate::quality`]).
//! 4. Values ([`EdgeNode::on_values`]): one DDATA per device and call, aliases only, the
//!    value time per metric, `is_historical` for values replayed from an outage.
//! 5. `seq` counts every message after NBIRTH, 0 to 255 and back to 0.
//! 6. NCMD `Node Control/Rebirth` = true: births again (same bdSeq, seq from 0). A STATE
//!    `online: false` newer than the last one seen: NDEATH and [`Action::Disconnect`]; the
//!    next connection takes a new bdSeq and waits for the host again. A STATE older than
//!    the last one seen (by its `timestamp`) is ignored.
//! 7. DCMD: each metric (by alias or name) of a writable signal becomes an [`Action::Write`];
//!    others are refused ([`Action::Ignored`]).
//!
//! A metric's datatype is fixed by its birth: Int64 for an integer value, Double for a
//! float or no value yet (the tag bus writes a float always with a `.` or an exponent, so a
//! signal's kind does not change). An integer later sent to a Double metric goes as a
//! double; a float for an Int64 metric makes it Double for good: the DATA gathered before
//! it goes out, then births of everything.

use std::collections::HashMap;

use contract::{TagValue, Value};

use crate::payload::{
    DataType, Metric, MetricValue, Payload, PropertySet, PropertyValue, PropertyValueKind,
};
use crate::quality::{quality_code, GOOD, QUALITY_PROPERTY};
use crate::topic::{Id, MessageType, StateTopic, Topic, BD_SEQ, NODE_CONTROL_REBIRTH};

/// A metric of a device: its name (the signal alias) and whether DCMD may write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub writable: bool,
}

/// A Sparkplug device (a source device of the gateway) and its metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub id: Id,
    pub metrics: Vec<MetricSpec>,
}

/// What an edge node is: its ids, the optional primary host, its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub group: Id,
    pub edge_node: Id,
    pub primary_host: Option<Id>,
    pub devices: Vec<DeviceSpec>,
    /// Drop a live value equal (value and flags) to the metric's current one.
    pub drop_unchanged: bool,
}

/// A metric by position: `devices[device].metrics[metric]` of the [`NodeSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricRef {
    pub device: usize,
    pub metric: usize,
}

/// The birth/death sequence number of one MQTT session, 0 to 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdSeq(u8);

impl BdSeq {
    /// The bdSeq of the `n`th connection (n >= 1, a persisted counter incremented before
    /// each connect): `(n - 1) mod 256`, so the first connection ever has 0.
    pub fn from_counter(n: u64) -> Self {
        Self(u8::try_from(n.wrapping_sub(1) & 0xff).unwrap_or(0))
    }
    /// The metric value.
    pub fn value(self) -> u64 {
        u64::from(self.0)
    }
}

/// QoS of a message: 0 for births and data (Sparkplug requires it), 1 for NDEATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// A message to publish (never retained: an edge node retains nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: Topic,
    pub payload: Payload,
    pub qos: Qos,
}

/// A command write to a metric of a writable signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub metric: MetricRef,
    pub value: Value,
    /// The metric's timestamp, else the payload's: the command's issue time.
    pub timestamp_ms: Option<u64>,
}

/// What the I/O layer does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Publish(Message),
    Write(Write),
    /// Publish nothing more on this connection and close it (after the NDEATH before it).
    Disconnect,
    /// A message not acted on, and why (to log).
    Ignored(String),
}

/// Where values come from, which decides how they go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A value as it happens.
    Live,
    /// Read from the backlog after a (re)connect: historical when it is not newer than
    /// what the metric's birth carried, else sent as live.
    Backlog,
    /// The current value read again after the births: sent only when newer than the birth's.
    Snapshot,
}

/// Where the node is on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection.
    Offline,
    /// Connected, waiting for the primary host to be online.
    AwaitingHost,
    /// Births sent: values go out as DATA.
    Born,
}

#[derive(Debug, Clone)]
struct MetricState {
    alias: u64,
    /// The latest live value (births carry it).
    value: Option<TagValue>,
    /// Fixed by the last birth.
    datatype: DataType,
    /// The quality code last sent live for it.
    sent_quality: i32,
    /// The value time the last birth carried (None: no value).
    birth_ts: Option<u64>,
    /// A float value was seen: its datatype is Double from the next birth on.
    seen_float: bool,
}

/// The edge node state machine (see the module docs).
#[derive(Debug)]
pub struct EdgeNode {
    spec: NodeSpec,
    metrics: Vec<Vec<MetricState>>,
    by_alias: HashMap<u64, MetricRef>,
    by_name: Vec<HashMap<String, usize>>,
    phase: Phase,
    /// The seq of the next message.
    seq: u8,
    bd_seq: BdSeq,
    /// The newest STATE timestamp seen from the primary host.
    host_ts: Option<u64>,
}

fn metric_value(datatype: DataType, value: Value) -> MetricValue {
    match (datatype, value) {
        (DataType::Int64, Value::Int(i)) => {
            MetricValue::LongValue(u64::from_ne_bytes(i.to_ne_bytes()))
        }
        (_, v) => MetricValue::DoubleValue(v.as_f64()),
    }
}

fn quality_property(code: i32) -> PropertySet {
    PropertySet {
        keys: vec![QUALITY_PROPERTY.to_owned()],
        values: vec![PropertyValue {
            r#type: Some(DataType::Int32.code()),
            is_null: None,
            value: Some(PropertyValueKind::IntValue(u32::from_ne_bytes(
                code.to_ne_bytes(),
            ))),
        }],
    }
}

/// A metric value from a command, as the tag bus value it writes; `None` for types a
/// command cannot carry (strings, bytes).
fn command_value(datatype: Option<DataType>, value: &MetricValue) -> Option<Value> {
    Some(match value {
        MetricValue::IntValue(u) => match datatype {
            Some(DataType::Int8 | DataType::Int16 | DataType::Int32) => {
                Value::Int(i64::from(i32::from_ne_bytes(u.to_ne_bytes())))
            }
            _ => Value::Int(i64::from(*u)),
        },
        MetricValue::LongValue(u) => match datatype {
            Some(DataType::UInt64) => Value::Int(i64::try_from(*u).ok()?),
            _ => Value::Int(i64::from_ne_bytes(u.to_ne_bytes())),
        },
        MetricValue::FloatValue(f) => Value::Float(f64::from(*f)),
        MetricValue::DoubleValue(f) => Value::Float(*f),
        MetricValue::BooleanValue(b) => Value::Int(i64::from(*b)),
        MetricValue::StringValue(_) | MetricValue::BytesValue(_) => return None,
    })
}

/// The STATE payload of Sparkplug 3.0: `{"online": bool, "timestamp": ms}`.
fn parse_state(payload: &[u8]) -> Option<(bool, u64)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some((v.get("online")?.as_bool()?, v.get("timestamp")?.as_u64()?))
}

impl EdgeNode {
    /// A node with no connection. Aliases are 1, 2, ... over the devices' metrics in order,
    /// unique across the node.
    pub fn new(spec: NodeSpec) -> Self {
        let mut next_alias: u64 = 0;
        let mut by_alias = HashMap::new();
        let mut by_name = Vec::with_capacity(spec.devices.len());
        let metrics = spec
            .devices
            .iter()
            .enumerate()
            .map(|(device, d)| {
                by_name.push(
                    d.metrics
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (m.name.clone(), i))
                        .collect(),
                );
                (0..d.metrics.len())
                    .map(|metric| {
                        next_alias = next_alias.saturating_add(1);
                        by_alias.insert(next_alias, MetricRef { device, metric });
                        MetricState {
                            alias: next_alias,
                            value: None,
                            datatype: DataType::Double,
                            sent_quality: GOOD,
                            birth_ts: None,
                            seen_float: false,
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            spec,
            metrics,
            by_alias,
            by_name,
            phase: Phase::Offline,
            seq: 0,
            bd_seq: BdSeq(0),
            host_ts: None,
        }
    }

    /// The node's description.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Where the node is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The alias of a metric.
    pub fn alias(&self, m: MetricRef) -> Option<u64> {
        self.state(m).map(|s| s.alias)
    }

    fn state(&self, m: MetricRef) -> Option<&MetricState> {
        self.metrics.get(m.device)?.get(m.metric)
    }

    fn state_mut(&mut self, m: MetricRef) -> Option<&mut MetricState> {
        self.metrics.get_mut(m.device)?.get_mut(m.metric)
    }

    fn node_topic(&self, kind: MessageType) -> Topic {
        Topic::node(&self.spec.group, kind, &self.spec.edge_node)
    }

    /// The NDEATH to register as the Last Will of the connection with `bd_seq`.
    pub fn will(&self, bd_seq: BdSeq) -> Message {
        Message {
            topic: self.node_topic(MessageType::NDeath),
            payload: Payload {
                metrics: vec![Metric {
                    name: Some(BD_SEQ.to_owned()),
                    datatype: Some(DataType::UInt64.code()),
                    value: Some(MetricValue::LongValue(bd_seq.value())),
                    ..Default::default()
                }],
                ..Default::default()
            },
            qos: Qos::AtLeastOnce,
        }
    }

    /// The topics to subscribe at QoS 1: NCMD, each device's DCMD, the primary host's STATE.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics = vec![self.node_topic(MessageType::NCmd).to_string()];
        topics.extend(self.spec.devices.iter().map(|d| {
            Topic::device(
                &self.spec.group,
                MessageType::DCmd,
                &self.spec.edge_node,
                &d.id,
            )
            .to_string()
        }));
        if let Some(host) = &self.spec.primary_host {
            topics.push(StateTopic(host.clone()).to_string());
        }
        topics
    }

    /// The connection with `bd_seq` is up (CONNACK) and subscribed.
    pub fn connected(&mut self, bd_seq: BdSeq, now_ms: u64) -> Vec<Action> {
        self.bd_seq = bd_seq;
        if self.spec.primary_host.is_some() {
            self.phase = Phase::AwaitingHost;
            Vec::new()
        } else {
            self.births(now_ms)
        }
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.phase = Phase::Offline;
    }

    /// A message on the primary host's STATE topic.
    pub fn on_state(&mut self, payload: &[u8], now_ms: u64) -> Vec<Action> {
        let Some((online, ts)) = parse_state(payload) else {
            return vec![Action::Ignored(
                "STATE payload is not {\"online\":bool,\"timestamp\":ms}".into(),
            )];
        };
        if self.host_ts.is_some_and(|last| ts < last) {
            return vec![Action::Ignored(format!(
                "STATE with timestamp {ts} is older than the last one seen"
            ))];
        }
        self.host_ts = Some(ts);
        match (online, self.phase) {
            (true, Phase::AwaitingHost) => self.births(now_ms),
            (false, Phase::Born) => {
                self.phase = Phase::Offline;
                let death = self.will(self.bd_seq);
                vec![Action::Publish(death), Action::Disconnect]
            }
            _ => Vec::new(),
        }
    }

    /// A message on one of the subscribed NCMD/DCMD topics.
    pub fn on_command(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> Vec<Action> {
        let Some(t) = Topic::parse(topic)
            .filter(|t| t.group == self.spec.group && t.edge_node == self.spec.edge_node)
        else {
            return vec![Action::Ignored(format!(
                "{topic}: not this node's command topic"
            ))];
        };
        let payload = match Payload::from_bytes(payload) {
            Ok(p) => p,
            Err(e) => {
                return vec![Action::Ignored(format!(
                    "{topic}: undecodable payload: {e}"
                ))]
            }
        };
        match (t.kind, &t.device) {
            (MessageType::NCmd, None) => self.on_ncmd(topic, &payload, now_ms),
            (MessageType::DCmd, Some(device)) => self.on_dcmd(topic, device, &payload),
            _ => vec![Action::Ignored(format!("{topic}: not a command topic"))],
        }
    }

    fn on_ncmd(&mut self, topic: &str, payload: &Payload, now_ms: u64) -> Vec<Action> {
        let rebirth = payload.metrics.iter().any(|m| {
            m.name.as_deref() == Some(NODE_CONTROL_REBIRTH)
                && m.value == Some(MetricValue::BooleanValue(true))
        });
        if !rebirth {
            return vec![Action::Ignored(format!(
                "{topic}: only {NODE_CONTROL_REBIRTH} = true is supported"
            ))];
        }
        if self.phase != Phase::Born {
            return vec![Action::Ignored(format!(
                "{topic}: rebirth requested before the births; they follow when the host is online"
            ))];
        }
        self.births(now_ms)
    }

    fn on_dcmd(&self, topic: &str, device_id: &Id, payload: &Payload) -> Vec<Action> {
        let Some(device) = self.spec.devices.iter().position(|d| &d.id == device_id) else {
            return vec![Action::Ignored(format!("{topic}: unknown device"))];
        };
        payload
            .metrics
            .iter()
            .map(|m| {
                let by_alias = m
                    .alias
                    .and_then(|a| self.by_alias.get(&a))
                    .filter(|r| r.device == device)
                    .map(|r| r.metric);
                let by_name = || {
                    m.name
                        .as_ref()
                        .and_then(|n| self.by_name.get(device)?.get(n).copied())
                };
                let what = m
                    .name
                    .clone()
                    .or_else(|| m.alias.map(|a| format!("alias {a}")))
                    .unwrap_or_default();
                let Some(metric) = by_alias.or_else(by_name) else {
                    return Action::Ignored(format!("{topic}: unknown metric {what}"));
                };
                let writable = self
                    .spec
                    .devices
                    .get(device)
                    .and_then(|d| d.metrics.get(metric))
                    .is_some_and(|s| s.writable);
                if !writable {
                    return Action::Ignored(format!(
                        "{topic}: metric {what} is not writable (writable: 0)"
                    ));
                }
                let datatype = m.datatype.and_then(DataType::from_code);
                match m.value.as_ref().and_then(|v| command_value(datatype, v)) {
                    Some(value) => Action::Write(Write {
                        metric: MetricRef { device, metric },
                        value,
                        timestamp_ms: m.timestamp.or(payload.timestamp),
                    }),
                    None => Action::Ignored(format!(
                        "{topic}: metric {what}: no numeric or boolean value"
                    )),
                }
            })
            .collect()
    }

    /// Values of metrics, in order: one DDATA per device when born. A historical value
    /// ([`Origin::Backlog`] not newer than the birth's) is flagged `is_historical` and not
    /// taken as the current value. Before the births every value only becomes the current
    /// one the births will carry.
    pub fn on_values(
        &mut self,
        values: impl IntoIterator<Item = (MetricRef, TagValue)>,
        origin: Origin,
        now_ms: u64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let mut per_device: Vec<(usize, Vec<Metric>)> = Vec::new();
        let drop_unchanged = self.spec.drop_unchanged;
        for (r, value) in values {
            let born = self.phase == Phase::Born;
            let Some(state) = self.state_mut(r) else {
                continue;
            };
            let not_newer = state.birth_ts.is_some_and(|b| value.timestamp_ms <= b);
            if born && origin == Origin::Snapshot && not_newer {
                continue;
            }
            let historical = born && origin == Origin::Backlog && not_newer;
            let unchanged = state
                .value
                .as_ref()
                .is_some_and(|c| c.value == value.value && c.flags == value.flags);
            if born && !historical && drop_unchanged && unchanged {
                continue;
            }
            if matches!(value.value, Value::Float(_)) {
                state.seen_float = true;
            }
            let retype = born && state.datatype == DataType::Int64 && state.seen_float;
            if !historical {
                state.value = Some(value.clone());
            }
            if !born {
                continue;
            }
            if retype {
                // the DATA gathered so far, then births with the metric as Double; they
                // carry a live value, a historical one follows them
                let gathered = std::mem::take(&mut per_device);
                out.extend(self.data(gathered, now_ms));
                out.extend(self.births(now_ms));
                if !historical {
                    continue;
                }
            }
            let Some(state) = self.state_mut(r) else {
                continue;
            };
            let code = quality_code(&value.flags);
            let properties = if code != GOOD || (!historical && state.sent_quality != GOOD) {
                Some(quality_property(code))
            } else {
                None
            };
            if !historical {
                state.sent_quality = code;
            }
            let metric = Metric {
                alias: Some(state.alias),
                timestamp: Some(value.timestamp_ms),
                is_historical: historical.then_some(true),
                properties,
                value: Some(metric_value(state.datatype, value.value)),
                ..Default::default()
            };
            match per_device.iter_mut().find(|(d, _)| *d == r.device) {
                Some((_, metrics)) => metrics.push(metric),
                None => per_device.push((r.device, vec![metric])),
            }
        }
        out.extend(self.data(per_device, now_ms));
        out
    }

    /// One DDATA per device of gathered metrics.
    fn data(&mut self, per_device: Vec<(usize, Vec<Metric>)>, now_ms: u64) -> Vec<Action> {
        per_device
            .into_iter()
            .filter_map(|(device, metrics)| {
                let id = &self.spec.devices.get(device)?.id;
                let topic = Topic::device(
                    &self.spec.group,
                    MessageType::DData,
                    &self.spec.edge_node,
                    id,
                );
                Some(self.message(topic, metrics, now_ms))
            })
            .collect()
    }

    /// A QoS 0 message with the next seq.
    fn message(&mut self, topic: Topic, metrics: Vec<Metric>, now_ms: u64) -> Action {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Action::Publish(Message {
            topic,
            payload: Payload {
                timestamp: Some(now_ms),
                metrics,
                seq: Some(u64::from(seq)),
                ..Default::default()
            },
            qos: Qos::AtMostOnce,
        })
    }

    /// NBIRTH (seq 0) and every DBIRTH; the metrics' datatypes are fixed here.
    fn births(&mut self, now_ms: u64) -> Vec<Action> {
        self.phase = Phase::Born;
        self.seq = 0;
        let node = vec![
            Metric {
                name: Some(BD_SEQ.to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::UInt64.code()),
                value: Some(MetricValue::LongValue(self.bd_seq.value())),
                ..Default::default()
            },
            Metric {
                name: Some(NODE_CONTROL_REBIRTH.to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::Boolean.code()),
                value: Some(MetricValue::BooleanValue(false)),
                ..Default::default()
            },
        ];
        let mut out = vec![self.message(self.node_topic(MessageType::NBirth), node, now_ms)];
        for device in 0..self.spec.devices.len() {
            let Some(spec) = self.spec.devices.get(device) else {
                continue;
            };
            let topic = Topic::device(
                &self.spec.group,
                MessageType::DBirth,
                &self.spec.edge_node,
                &spec.id,
            );
            let names: Vec<String> = spec.metrics.iter().map(|m| m.name.clone()).collect();
            let Some(states) = self.metrics.get_mut(device) else {
                continue;
            };
            let metrics = states
                .iter_mut()
                .zip(names)
                .map(|(s, name)| {
                    s.datatype = match s.value.as_ref().map(|v| v.value) {
                        Some(Value::Int(_)) if !s.seen_float => DataType::Int64,
                        _ => DataType::Double,
                    };
                    let code = s.value.as_ref().map_or(GOOD, |v| quality_code(&v.flags));
                    s.sent_quality = code;
                    s.birth_ts = s.value.as_ref().map(|v| v.timestamp_ms);
                    Metric {
                        name: Some(name),
                        alias: Some(s.alias),
                        timestamp: Some(s.value.as_ref().map_or(now_ms, |v| v.timestamp_ms)),
                        datatype: Some(s.datatype.code()),
                        is_null: s.value.is_none().then_some(true),
                        properties: Some(quality_property(code)),
                        value: s.value.as_ref().map(|v| metric_value(s.datatype, v.value)),
                        ..Default::default()
                    }
                })
                .collect();
            out.push(self.message(topic, metrics, now_ms));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn spec(primary_host: Option<&str>) -> NodeSpec {
        let m = |name: &str, writable| MetricSpec {
            name: name.into(),
            writable,
        };
        NodeSpec {
            group: id("plant"),
            edge_node: id("gw1"),
            primary_host: primary_host.map(id),
            devices: vec![
                DeviceSpec {
                    id: id("rtu1"),
                    metrics: vec![m("ua", false), m("cb", true)],
                },
                DeviceSpec {
                    id: id("m1"),
                    metrics: vec![m("flow", false)],
                },
            ],
            drop_unchanged: false,
        }
    }

    fn v(text: &str) -> TagValue {
        text.parse().unwrap()
    }

    const UA: MetricRef = MetricRef {
        device: 0,
        metric: 0,
    };
    const CB: MetricRef = MetricRef {
        device: 0,
        metric: 1,
    };
    const FLOW: MetricRef = MetricRef {
        device: 1,
        metric: 0,
    };

    fn published(actions: &[Action]) -> Vec<(String, Payload)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Publish(m) => Some((m.topic.to_string(), m.payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn topics(actions: &[Action]) -> Vec<String> {
        published(actions).into_iter().map(|(t, _)| t).collect()
    }

    fn seqs(actions: &[Action]) -> Vec<u64> {
        published(actions)
            .iter()
            .map(|(_, p)| p.seq.unwrap())
            .collect()
    }

    #[test]
    fn ndeath_will_bytes() {
        let node = EdgeNode::new(spec(None));
        let will = node.will(BdSeq::from_counter(4));
        assert_eq!(will.topic.to_string(), "spBv1.0/plant/NDEATH/gw1");
        assert_eq!(will.qos, Qos::AtLeastOnce);
        let mut expected = vec![0x12, 0x0b, 0x0a, 0x05];
        expected.extend_from_slice(b"bdSeq");
        expected.extend_from_slice(&[0x20, 0x08, 0x58, 0x03]);
        assert_eq!(will.payload.to_bytes(), expected);
        assert_eq!(BdSeq::from_counter(1).value(), 0);
        assert_eq!(BdSeq::from_counter(256).value(), 255);
        assert_eq!(BdSeq::from_counter(257).value(), 0);
    }

    #[test]
    fn ddata_bytes_aliases_only() {
        let mut node = EdgeNode::new(spec(None));
        node.on_values([(UA, v("23.5,1,"))], Origin::Live, 5);
        node.connected(BdSeq::from_counter(1), 10); // NBIRTH seq 0, DBIRTH 1 and 2
        let out = node.on_values([(UA, v("23.5,1000,"))], Origin::Live, 2000);
        let p = published(&out);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "spBv1.0/plant/DDATA/gw1/rtu1");
        assert_eq!(
            p[0].1.to_bytes(),
            [
                0x08, 0xd0, 0x0f, // timestamp 2000
                0x12, 0x0e, // metric, 14 bytes
                0x10, 0x01, // alias 1
                0x18, 0xe8, 0x07, // timestamp 1000
                0x69, 0, 0, 0, 0, 0, 0x80, 0x37, 0x40, // double 23.5
                0x18, 0x03, // seq 3
            ]
        );
        // a bad value carries its quality; an Int64 metric its two's complement
        let out = node.on_values([(UA, v("-1,1,iv nt nolink"))], Origin::Backlog, 2000);
        let mut expected = vec![0x08, 0xd0, 0x0f, 0x12, 0x20, 0x10, 0x01, 0x18, 0x01];
        expected.extend_from_slice(&[0x28, 0x01]); // is_historical
        expected.extend_from_slice(&[0x4a, 0x0f, 0x0a, 0x07]);
        expected.extend_from_slice(b"Quality");
        expected.extend_from_slice(&[0x12, 0x04, 0x08, 0x03, 0x18, 0x18]); // Int32 24
        expected.extend_from_slice(&[0x69, 0, 0, 0, 0, 0, 0, 0xf0, 0xbf]); // double -1
        expected.extend_from_slice(&[0x18, 0x04]);
        assert_eq!(published(&out)[0].1.to_bytes(), expected);
    }

    #[test]
    fn births_carry_every_metric_then_data_goes_by_alias() {
        let mut node = EdgeNode::new(spec(None));
        assert_eq!(
            node.subscriptions(),
            [
                "spBv1.0/plant/NCMD/gw1",
                "spBv1.0/plant/DCMD/gw1/rtu1",
                "spBv1.0/plant/DCMD/gw1/m1"
            ]
        );
        node.on_values(
            [(UA, v("231.5,100,")), (CB, v("1,200,gt"))],
            Origin::Live,
            300,
        );
        let out = node.connected(BdSeq::from_counter(8), 1000);
        let p = published(&out);
        assert_eq!(
            topics(&out),
            [
                "spBv1.0/plant/NBIRTH/gw1",
                "spBv1.0/plant/DBIRTH/gw1/rtu1",
                "spBv1.0/plant/DBIRTH/gw1/m1"
            ]
        );
        assert_eq!(seqs(&out), [0, 1, 2]);
        let nbirth = &p[0].1;
        assert_eq!(nbirth.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(nbirth.metrics[0].value, Some(MetricValue::LongValue(7)));
        assert_eq!(
            nbirth.metrics[1].name.as_deref(),
            Some("Node Control/Rebirth")
        );
        let rtu = &p[1].1.metrics;
        assert_eq!(rtu[0].name.as_deref(), Some("ua"));
        assert_eq!(rtu[0].alias, Some(1));
        assert_eq!(rtu[0].datatype, Some(DataType::Double.code()));
        assert_eq!(rtu[0].value, Some(MetricValue::DoubleValue(231.5)));
        assert_eq!(rtu[0].timestamp, Some(100));
        assert_eq!(rtu[0].properties, Some(quality_property(192)));
        assert_eq!(rtu[1].alias, Some(2));
        assert_eq!(rtu[1].datatype, Some(DataType::Int64.code()));
        assert_eq!(rtu[1].value, Some(MetricValue::LongValue(1)));
        let flow = &p[2].1.metrics[0];
        assert_eq!((flow.alias, flow.is_null), (Some(3), Some(true)));
        assert_eq!(flow.value, None);

        let out = node.on_values(
            [(FLOW, v("2,1,")), (UA, v("1.5,2,")), (CB, v("0,3,"))],
            Origin::Live,
            2000,
        );
        let p = published(&out);
        assert_eq!(seqs(&out), [3, 4]);
        assert_eq!(p[0].0, "spBv1.0/plant/DDATA/gw1/m1");
        assert_eq!(p[1].0, "spBv1.0/plant/DDATA/gw1/rtu1");
        for (_, payload) in &p {
            assert!(payload
                .metrics
                .iter()
                .all(|m| m.name.is_none() && m.datatype.is_none() && m.alias.is_some()));
        }
        // an integer on the Double metric flow goes as a double
        assert_eq!(p[0].1.metrics[0].value, Some(MetricValue::DoubleValue(2.0)));
    }

    #[test]
    fn seq_wraps_after_255() {
        let mut node = EdgeNode::new(spec(None));
        node.connected(BdSeq::from_counter(1), 0);
        let mut all = Vec::new();
        for i in 0..300u64 {
            all.extend(seqs(&node.on_values(
                [(UA, v(&format!("{i}.5,1,")))],
                Origin::Live,
                i,
            )));
        }
        assert_eq!(all[0], 3);
        assert_eq!(all[252], 255);
        assert_eq!(all[253], 0);
        assert!(all.windows(2).all(|w| w[1] == (w[0] + 1) % 256));
    }

    #[test]
    fn quality_property_when_bad_and_once_when_good_again() {
        let mut node = EdgeNode::new(spec(None));
        node.connected(BdSeq::from_counter(1), 0);
        let props = |out: Vec<Action>| published(&out)[0].1.metrics[0].properties.clone();
        assert_eq!(
            props(node.on_values([(UA, v("1.5,1,"))], Origin::Live, 1)),
            None
        );
        assert_eq!(
            props(node.on_values([(UA, v("1.5,2,nt"))], Origin::Live, 1)),
            Some(quality_property(68))
        );
        assert_eq!(
            props(node.on_values([(UA, v("1.5,3,"))], Origin::Live, 1)),
            Some(quality_property(192))
        );
        assert_eq!(
            props(node.on_values([(UA, v("1.5,4,"))], Origin::Live, 1)),
            None
        );
    }

    #[test]
    fn historical_values_are_flagged_and_not_current() {
        let mut node = EdgeNode::new(spec(None));
        node.on_values([(UA, v("9.5,50,"))], Origin::Live, 0);
        node.connected(BdSeq::from_counter(1), 100);
        let out = node.on_values(
            [(UA, v("1.5,10,")), (UA, v("2.5,20,"))],
            Origin::Backlog,
            100,
        );
        let p = published(&out);
        assert_eq!(p.len(), 1, "one DDATA for the device");
        assert!(p[0].1.metrics.iter().all(|m| m.is_historical == Some(true)));
        assert_eq!(
            p[0].1
                .metrics
                .iter()
                .map(|m| m.timestamp)
                .collect::<Vec<_>>(),
            [Some(10), Some(20)]
        );
        // a rebirth still carries the live value
        let rebirth = Payload {
            metrics: vec![Metric {
                name: Some(NODE_CONTROL_REBIRTH.into()),
                datatype: Some(DataType::Boolean.code()),
                value: Some(MetricValue::BooleanValue(true)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = node.on_command("spBv1.0/plant/NCMD/gw1", &rebirth.to_bytes(), 200);
        let p = published(&out);
        assert_eq!(seqs(&out), [0, 1, 2], "a rebirth starts seq at 0");
        assert_eq!(p[1].1.metrics[0].value, Some(MetricValue::DoubleValue(9.5)));
    }

    #[test]
    fn backlog_and_snapshot_values_against_the_birth() {
        let mut node = EdgeNode::new(NodeSpec {
            drop_unchanged: true,
            ..spec(None)
        });
        node.on_values([(UA, v("9.5,50,"))], Origin::Live, 0);
        node.connected(BdSeq::from_counter(1), 100);
        // the snapshot repeats the birth's value: nothing; a newer one goes out live
        assert!(node
            .on_values([(UA, v("9.5,50,"))], Origin::Snapshot, 100)
            .is_empty());
        let out = node.on_values(
            [(UA, v("7.5,60,")), (UA, v("8.5,40,"))],
            Origin::Backlog,
            100,
        );
        let metrics = &published(&out)[0].1.metrics;
        assert_eq!(
            metrics.iter().map(|m| m.is_historical).collect::<Vec<_>>(),
            [None, Some(true)]
        );
        // drop_unchanged: an equal live value is dropped, a flag change is not
        assert!(node
            .on_values([(UA, v("7.5,70,"))], Origin::Live, 100)
            .is_empty());
        assert_eq!(
            published(&node.on_values([(UA, v("7.5,80,sb"))], Origin::Live, 100)).len(),
            1
        );
    }

    #[test]
    fn a_float_on_an_int64_metric_births_again_as_double() {
        let mut node = EdgeNode::new(spec(None));
        node.on_values([(CB, v("1,1,"))], Origin::Live, 0);
        node.connected(BdSeq::from_counter(1), 0);
        let out = node.on_values(
            [(UA, v("3,2,")), (CB, v("0.5,3,")), (UA, v("4,4,"))],
            Origin::Live,
            5,
        );
        let p = published(&out);
        assert_eq!(
            topics(&out),
            [
                "spBv1.0/plant/DDATA/gw1/rtu1",
                "spBv1.0/plant/NBIRTH/gw1",
                "spBv1.0/plant/DBIRTH/gw1/rtu1",
                "spBv1.0/plant/DBIRTH/gw1/m1",
                "spBv1.0/plant/DDATA/gw1/rtu1"
            ],
            "nothing gathered before the rebirth is lost"
        );
        assert_eq!(p[0].1.metrics[0].value, Some(MetricValue::DoubleValue(3.0)));
        assert_eq!(p[2].1.metrics[1].datatype, Some(DataType::Double.code()));
        assert_eq!(p[2].1.metrics[1].value, Some(MetricValue::DoubleValue(0.5)));
        // ua had no value at the first birth (Double, a placeholder); its first value typed it
        assert_eq!(p[2].1.metrics[0].datatype, Some(DataType::Int64.code()));
        assert_eq!(p[4].1.metrics[0].value, Some(MetricValue::LongValue(4)));
        // an integer later stays Double, through births too
        let out = node.on_values([(CB, v("2,5,"))], Origin::Live, 6);
        assert_eq!(
            published(&out)[0].1.metrics[0].value,
            Some(MetricValue::DoubleValue(2.0))
        );
    }

    #[test]
    fn primary_host_gates_births_and_offline_ends_the_session() {
        let mut node = EdgeNode::new(spec(Some("scada")));
        assert_eq!(
            node.subscriptions().last().map(String::as_str),
            Some("spBv1.0/STATE/scada")
        );
        assert!(node.connected(BdSeq::from_counter(1), 0).is_empty());
        assert_eq!(node.phase(), Phase::AwaitingHost);
        assert!(node
            .on_values([(UA, v("1.5,1,"))], Origin::Live, 1)
            .is_empty());
        let out = node.on_state(br#"{"online":true,"timestamp":100}"#, 2);
        assert_eq!(seqs(&out), [0, 1, 2]);
        // an older STATE (a stale retained one) is ignored
        let out = node.on_state(br#"{"online":false,"timestamp":99}"#, 3);
        assert!(matches!(out[..], [Action::Ignored(_)]));
        assert_eq!(node.phase(), Phase::Born);
        let out = node.on_state(br#"{"online":false,"timestamp":150}"#, 4);
        let p = published(&out);
        assert_eq!(p[0].0, "spBv1.0/plant/NDEATH/gw1");
        assert_eq!(p[0].1.metrics[0].value, Some(MetricValue::LongValue(0)));
        assert_eq!(out.last(), Some(&Action::Disconnect));
        node.disconnected();
        assert!(node.connected(BdSeq::from_counter(2), 5).is_empty());
        let out = node.on_state(br#"{"online":true,"timestamp":200}"#, 6);
        let p = published(&out);
        assert_eq!(p[0].1.metrics[0].value, Some(MetricValue::LongValue(1)));
        assert!(matches!(
            node.on_state(b"online", 7)[..],
            [Action::Ignored(_)]
        ));
    }

    #[test]
    fn dcmd_writes_only_writable_metrics() {
        let mut node = EdgeNode::new(spec(None));
        node.connected(BdSeq::from_counter(1), 0);
        let cmd = |metrics: Vec<Metric>| {
            Payload {
                timestamp: Some(77),
                metrics,
                ..Default::default()
            }
            .to_bytes()
        };
        let by_alias = Metric {
            alias: Some(2),
            datatype: Some(DataType::Boolean.code()),
            value: Some(MetricValue::BooleanValue(true)),
            ..Default::default()
        };
        let by_name = Metric {
            name: Some("cb".into()),
            datatype: Some(DataType::Int32.code()),
            timestamp: Some(80),
            value: Some(MetricValue::IntValue(u32::MAX)),
            ..Default::default()
        };
        let read_only = Metric {
            name: Some("ua".into()),
            value: Some(MetricValue::DoubleValue(1.0)),
            ..Default::default()
        };
        let other_device = Metric {
            alias: Some(3),
            value: Some(MetricValue::DoubleValue(1.0)),
            ..Default::default()
        };
        let out = node.on_command(
            "spBv1.0/plant/DCMD/gw1/rtu1",
            &cmd(vec![by_alias, by_name, read_only, other_device]),
            100,
        );
        assert_eq!(
            out[0],
            Action::Write(Write {
                metric: CB,
                value: Value::Int(1),
                timestamp_ms: Some(77)
            })
        );
        assert_eq!(
            out[1],
            Action::Write(Write {
                metric: CB,
                value: Value::Int(-1),
                timestamp_ms: Some(80)
            })
        );
        assert!(matches!(&out[2], Action::Ignored(w) if w.contains("not writable")));
        assert!(matches!(&out[3], Action::Ignored(w) if w.contains("unknown metric")));
        for (topic, payload) in [
            ("spBv1.0/plant/DCMD/gw1/nope", cmd(vec![])),
            ("spBv1.0/other/DCMD/gw1/rtu1", cmd(vec![])),
            ("spBv1.0/plant/DCMD/gw1/rtu1", vec![0xff, 0xff]),
        ] {
            assert!(
                matches!(
                    node.on_command(topic, &payload, 1)[..],
                    [Action::Ignored(_)]
                ),
                "{topic}"
            );
        }
    }
}
