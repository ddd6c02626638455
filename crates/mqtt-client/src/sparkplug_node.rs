//! A device with `payload_format: sparkplug`: the Sparkplug B edge node of the `sparkplug`
//! crate driven over the publisher's connections. What is guaranteed on the wire, and how
//! it fits the at-least-once promise: docs/sparkplug.md.
//!
//! Each source device of the device's signals is a Sparkplug device (its id the source
//! device alias), each signal a metric (its name the signal alias). One connection:
//! 1. Redis: the consumer group, `INCR` of the bdSeq counter ([`tagbus::sparkplug::BdSeqKey`]),
//!    the current value of every mapped tag (the births carry them).
//! 2. MQTT: connect with the NDEATH of that bdSeq as the Last Will, subscribe NCMD, DCMD and
//!    the primary host's STATE (QoS 1), births (at once, or when the host is online).
//! 3. Then the stream feed: the backlog (what the last connection did not write, e.g.
//!    during a broker outage) goes out as DDATA with `is_historical` where the births carry
//!    a newer value, then the live values. One DDATA per device per stream read.
//! 4. Every message is QoS 0; the stream entries of a DDATA are acknowledged (`XACK`) when
//!    rumqttc has written it to the socket.
//!
//! DCMD writes to metrics of signals that have a command route (`writable: 1` on a command
//! source) go through the command path (`commands.rs`: age, select-before-operate, the
//! driver's result); the result is logged, and the new value reaches the host as DDATA.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use config::mqtt::{MqttDevice, Qos, Topic as MqttTopic};
use config::{Config, SignalKind};
use sparkplug::{Action, BdSeq, DeviceSpec, EdgeNode, MetricRef, MetricSpec, NodeSpec, Origin};
use tagbus::feed::{self, print_line, FeedItem};
use tagbus::{Alias, EntryBody, EntryId, TagKey, TagValue, Value};
use tokio::sync::mpsc;

use crate::commands::{CommandPlan, Incoming, ToCommands};
use crate::conn::{self, ConnEvent, ConnFailure};
use crate::publisher::{next_answer, queue_full, AbortOnDrop, End, Publisher, CONSUMER_NAME};
use crate::window::Sizing;
use crate::QOS0_WINDOW;

/// The Sparkplug side of a device plan.
#[derive(Debug, Clone)]
pub struct SparkplugPlan {
    pub node: NodeSpec,
    /// The metrics of each source tag (one tag may be several signals).
    pub metrics: HashMap<TagKey, Vec<MetricRef>>,
    /// The command topic (the key of the command path's route) of each writable metric.
    pub commands: HashMap<MetricRef, MqttTopic>,
}

/// The plan of a Sparkplug device: `None` for other payload formats.
pub(crate) fn plan(
    config: &Config,
    device: &Alias,
    mqtt: &MqttDevice,
    commands: &CommandPlan,
) -> Option<SparkplugPlan> {
    let settings = mqtt.sparkplug.as_ref()?;
    let routed: HashMap<&Alias, &MqttTopic> = commands
        .routes
        .values()
        .map(|r| (&r.signal, &r.command_topic))
        .collect();
    let mut devices: Vec<DeviceSpec> = Vec::new();
    let mut metrics: HashMap<TagKey, Vec<MetricRef>> = HashMap::new();
    let mut writes = HashMap::new();
    for signal in config.signals_of(device).filter(|s| s.enabled) {
        let SignalKind::Mqtt(s) = &signal.kind else {
            continue;
        };
        // an alias holds none of / + # (contract::FORBIDDEN_ALIAS_CHARS): always a valid id
        let Ok(id) = sparkplug::Id::new(s.source.device.as_str()) else {
            continue;
        };
        let index = match devices.iter().position(|d| d.id == id) {
            Some(i) => i,
            None => {
                devices.push(DeviceSpec {
                    id,
                    metrics: Vec::new(),
                });
                devices.len().saturating_sub(1)
            }
        };
        let Some(d) = devices.get_mut(index) else {
            continue;
        };
        let route = routed.get(&signal.alias);
        d.metrics.push(MetricSpec {
            name: signal.alias.to_string(),
            writable: route.is_some(),
        });
        let r = MetricRef {
            device: index,
            metric: d.metrics.len().saturating_sub(1),
        };
        metrics.entry(s.source.clone()).or_default().push(r);
        if let Some(topic) = route {
            writes.insert(r, (*topic).clone());
        }
    }
    Some(SparkplugPlan {
        node: NodeSpec {
            group: settings.group.clone(),
            edge_node: settings.edge_node.clone(),
            primary_host: settings.primary_host.clone(),
            devices,
            drop_unchanged: mqtt.enable_threshold,
        },
        metrics,
        commands: writes,
    })
}

impl SparkplugPlan {
    /// The metrics of tag values, in order.
    fn values(
        &self,
        values: impl IntoIterator<Item = (TagKey, TagValue)>,
    ) -> Vec<(MetricRef, TagValue)> {
        let mut out = Vec::new();
        for (key, value) in values {
            if let Some(refs) = self.metrics.get(&key) {
                out.extend(refs.iter().map(|r| (*r, value.clone())));
            }
        }
        out
    }
}

/// How long a NDEATH before a deliberate disconnect may take to be written.
const DEATH_WRITE: Duration = Duration::from_secs(2);

/// One connection of a Sparkplug device (the module docs); the edge node is kept in the
/// publisher across connections.
pub(crate) async fn connection(p: &mut Publisher) -> End {
    let plan = p.plan.clone();
    let Some(sp) = plan.sparkplug.as_ref() else {
        return End::Setup(crate::MqttClientError::Unsupported {
            device: plan.alias.to_string(),
            message: "not a Sparkplug device".into(),
        });
    };
    let mut edge = p
        .edge
        .take()
        .unwrap_or_else(|| EdgeNode::new(sp.node.clone()));
    let end = Link::run(p, sp, &mut edge).await;
    edge.disconnected();
    p.edge = Some(edge);
    end
}

/// The connection's bookkeeping: which stream entries each publish handed to rumqttc
/// carries, in publish order (rumqttc reports writes in that order).
struct Link<'a> {
    p: &'a mut Publisher,
    sp: &'a SparkplugPlan,
    unwritten: VecDeque<Vec<EntryId>>,
}

impl<'a> Link<'a> {
    async fn run(p: &'a mut Publisher, sp: &'a SparkplugPlan, edge: &mut EdgeNode) -> End {
        let plan = p.plan.clone();
        let alias = plan.alias.clone();
        let mut consumer = match feed::open_consumer(
            &p.opts.redis_url,
            &plan.group(),
            CONSUMER_NAME,
            p.stats.group_state(),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return End::Redis(e),
        };
        let key = tagbus::sparkplug::BdSeqKey::new(&alias);
        let bd_seq = match tagbus::counter::next_bd_seq(&p.opts.redis_url, &key).await {
            Ok(n) => BdSeq::from_counter(n),
            Err(e) => return End::Redis(e),
        };
        match consumer.snapshot(plan.routes.keys()).await {
            Ok(current) => {
                edge.on_values(sp.values(current), Origin::Live, tagbus::now_ms());
            }
            Err(e) => return End::Redis(e),
        }
        let will = edge.will(bd_seq);
        let will = conn::Will {
            topic: will.topic.to_string(),
            payload: will.payload.to_bytes(),
            qos: Qos::AtLeastOnce,
        };
        let sizing = Sizing::new(Qos::AtMostOnce, plan.device.max_inflight, 1);
        let conn = match p.connect(&sizing, Some(will)).await {
            Ok((c, _, _)) => c,
            Err(end) => return end,
        };
        tracing::info!(device = %alias, bd_seq = bd_seq.value(), group = %sp.node.group, edge_node = %sp.node.edge_node,
            primary_host = ?sp.node.primary_host.as_ref().map(|h| h.to_string()), "Sparkplug edge node connected");
        if !conn.client.try_subscribe_sparkplug(&edge.subscriptions()) {
            return queue_full();
        }
        let mut link = Link {
            p,
            sp,
            unwritten: VecDeque::new(),
        };
        let actions = edge.connected(bd_seq, tagbus::now_ms());
        if let Err(end) = link.act(&conn.client, edge, actions, &[]) {
            return end;
        }
        link.serve(conn, consumer, edge).await
    }

    /// The connected loop: MQTT events, the stream feed (once born), command answers.
    async fn serve(
        &mut self,
        mut conn: conn::Conn,
        consumer: tagbus::StreamConsumer,
        edge: &mut EdgeNode,
    ) -> End {
        let plan = self.p.plan.clone();
        let alias = plan.alias.clone();
        let mut consumer = Some(consumer);
        let mut feed: Option<(mpsc::Receiver<FeedItem>, AbortOnDrop)> = None;
        let mut origin = Origin::Backlog;
        let mut closing: Option<Instant> = None;
        loop {
            if closing.is_some_and(|t| self.unwritten.is_empty() || t.elapsed() >= DEATH_WRITE) {
                return End::Mqtt(ConnFailure::Other(
                    "the primary host went offline; NDEATH sent, reconnecting".into(),
                ));
            }
            if feed.is_none() && edge.phase() == sparkplug::Phase::Born {
                if let Some(consumer) = consumer.take() {
                    feed = Some(self.p.start_feed(consumer));
                }
            }
            let room = closing.is_none() && self.unwritten.len() < QOS0_WINDOW;
            let deadline = tokio::time::sleep(DEATH_WRITE);
            tokio::select! {
                ev = conn.events.recv() => {
                    let mut next = ev;
                    loop {
                        let now_closing = match self.on_event(&conn.client, edge, next).await {
                            Ok(c) => c,
                            Err(end) => return end,
                        };
                        if now_closing && closing.is_none() {
                            closing = Some(Instant::now());
                        }
                        match conn.events.try_recv() {
                            Ok(ev) => next = Some(ev),
                            Err(_) => break,
                        }
                    }
                }
                item = next_item(&mut feed), if room => {
                    let mut ids = Vec::new();
                    let actions = match item {
                        Some(FeedItem::Entries(entries)) => {
                            let mut values = Vec::with_capacity(entries.len());
                            for entry in entries {
                                if let EntryBody::Tag { key, value } = entry.body {
                                    values.push((key, value));
                                }
                                ids.push(entry.id);
                            }
                            edge.on_values(self.sp.values(values), origin, tagbus::now_ms())
                        }
                        Some(FeedItem::Snapshot(values)) => {
                            edge.on_values(self.sp.values(values), Origin::Snapshot, tagbus::now_ms())
                        }
                        Some(FeedItem::Live { snapshot }) => {
                            tracing::info!(device = %alias, snapshot, "Sparkplug: backlog sent; forwarding live values");
                            origin = Origin::Live;
                            continue;
                        }
                        Some(FeedItem::Restarted(e)) => {
                            tracing::warn!(device = %alias, error = %e, "tag bus (Redis) lost; the stream reader reconnects (MQTT stays connected)");
                            origin = Origin::Backlog;
                            continue;
                        }
                        None => return End::Redis(tagbus::TagBusError::ConnectionLost),
                    };
                    let published = match self.act(&conn.client, edge, actions, &ids) {
                        Ok(p) => p,
                        Err(end) => return end,
                    };
                    // entries that made no message (unmapped, unchanged) are done now
                    if !published && !ids.is_empty() {
                        self.p.hand_acks(ids).await;
                    }
                }
                answer = next_answer(&mut self.p.commands) => {
                    tracing::info!(device = %alias, topic = %answer.topic, outcome = ?answer.outcome,
                        answer = %String::from_utf8_lossy(&answer.payload), "Sparkplug DCMD result");
                }
                () = deadline, if closing.is_some() => {}
            }
        }
    }

    /// One MQTT event; `Ok(true)` when the node decided to disconnect.
    async fn on_event(
        &mut self,
        client: &conn::Client,
        edge: &mut EdgeNode,
        ev: Option<ConnEvent>,
    ) -> Result<bool, End> {
        let alias = self.p.plan.alias.clone();
        match ev {
            Some(ConnEvent::Sent(_)) => {
                if let Some(ids) = self.unwritten.pop_front() {
                    self.p.hand_acks(ids).await;
                }
            }
            Some(ConnEvent::Message(m)) => {
                let now = tagbus::now_ms();
                let is_state = self
                    .sp
                    .node
                    .primary_host
                    .as_ref()
                    .is_some_and(|h| sparkplug::StateTopic(h.clone()).to_string() == m.topic);
                let actions = if is_state {
                    edge.on_state(&m.payload, now)
                } else {
                    edge.on_command(&m.topic, &m.payload, now)
                };
                let disconnect = actions.contains(&Action::Disconnect);
                for a in &actions {
                    if let Action::Write(w) = a {
                        self.write(w, &m);
                    }
                }
                self.act(client, edge, actions, &[])?;
                return Ok(disconnect);
            }
            Some(ConnEvent::SubAck { refused }) => {
                if refused > 0 {
                    tracing::error!(device = %alias, refused,
                        "the broker refused Sparkplug subscriptions (NCMD/DCMD/STATE; check its ACL)");
                } else {
                    tracing::info!(device = %alias, "Sparkplug NCMD/DCMD/STATE subscribed");
                }
            }
            Some(ConnEvent::Acked { .. } | ConnEvent::Connected { .. }) => {}
            Some(ConnEvent::Closed(f)) => return Err(End::Mqtt(f)),
            None => {
                return Err(End::Mqtt(ConnFailure::Other(
                    "connection task ended".into(),
                )))
            }
        }
        Ok(false)
    }

    /// Carries out the publishes of `actions`; `ids` (the stream entries the actions came
    /// from) are acknowledged when the last of them is written. `Ok(false)`: nothing was
    /// published, the caller acknowledges `ids` itself.
    fn act(
        &mut self,
        client: &conn::Client,
        edge: &EdgeNode,
        actions: Vec<Action>,
        ids: &[EntryId],
    ) -> Result<bool, End> {
        let alias = &self.p.plan.alias;
        let mut published = false;
        for action in actions {
            match action {
                Action::Publish(m) => {
                    let topic = m.topic.to_string();
                    let payload = m.payload.to_bytes();
                    let qos = match m.qos {
                        sparkplug::Qos::AtMostOnce => Qos::AtMostOnce,
                        sparkplug::Qos::AtLeastOnce => Qos::AtLeastOnce,
                    };
                    if self.p.opts.trace_mqtt {
                        print_line(&format!(
                            "mqtt {alias} PUBLISH {topic} qos={} seq={:?} metrics={} bytes={}\n",
                            qos.as_u8(),
                            m.payload.seq,
                            m.payload.metrics.len(),
                            payload.len()
                        ));
                    }
                    if !client.try_publish(&topic, qos, false, payload) {
                        return Err(queue_full());
                    }
                    self.p.stats.add_published(1);
                    self.unwritten.push_back(Vec::new());
                    published = true;
                }
                Action::Ignored(why) => {
                    tracing::warn!(device = %alias, phase = ?edge.phase(), "Sparkplug: {why}")
                }
                Action::Write(_) | Action::Disconnect => {}
            }
        }
        if published {
            if let Some(last) = self.unwritten.back_mut() {
                last.extend_from_slice(ids);
            }
        }
        Ok(published)
    }

    /// A DCMD write handed to the command path as a command on the metric's route.
    fn write(&mut self, w: &sparkplug::Write, dcmd: &Incoming) {
        let alias = &self.p.plan.alias;
        let Some(topic) = self.sp.commands.get(&w.metric) else {
            return;
        };
        let value = match w.value {
            Value::Int(i) => serde_json::Value::from(i),
            Value::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => serde_json::Value::Number(n),
                None => {
                    tracing::warn!(device = %alias, "Sparkplug DCMD with a non-finite value refused");
                    return;
                }
            },
        };
        let mut body = serde_json::Map::new();
        body.insert("value".into(), value);
        if let Some(ts) = w.timestamp_ms {
            body.insert("ts".into(), ts.into());
        }
        let command = Incoming {
            topic: topic.to_string(),
            payload: serde_json::Value::Object(body).to_string().into_bytes(),
            qos: dcmd.qos,
            retain: dcmd.retain,
            dup: dcmd.dup,
            pkid: dcmd.pkid,
            ..Default::default()
        };
        match &self.p.commands {
            Some(io) => {
                if io.tx.try_send(ToCommands::Message(command)).is_err() {
                    tracing::error!(device = %alias, "Sparkplug DCMD dropped: the command queue is full");
                }
            }
            None => {
                tracing::warn!(device = %alias, "Sparkplug DCMD: the command path is not running")
            }
        }
    }
}

/// The next item of the feed; never ready before the feed starts.
async fn next_item(feed: &mut Option<(mpsc::Receiver<FeedItem>, AbortOnDrop)>) -> Option<FeedItem> {
    match feed.as_mut() {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
    }
}
