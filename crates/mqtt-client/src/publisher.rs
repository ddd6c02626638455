//! The publisher task of one MQTT device: stream reader -> MQTT connection -> acknowledger.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tagbus::feed::{self, print_line, FeedItem, FeedSetup, SnapshotKeys};
use tagbus::{EntryBody, EntryId, TagKey, TagValue};
use tokio::sync::mpsc;

use crate::commands::{Answer, CommandsIo, ToCommands};
use crate::conn::{self, ConnEvent, ConnFailure, ConnSettings};
use crate::uplink::Uplink;
use crate::window::{Picked, Sizing, Window};
use crate::{format_payload, DevicePlan, MqttClientError, Route, Stats, READ_BATCH};

/// The consumer name of every publisher in its group: fixed, so a restarted process finds
/// the entries its predecessor left unacknowledged.
pub const CONSUMER_NAME: &str = "mqtt-client";

/// A connection that lasted this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// Process-wide settings of the publishers.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub redis_url: String,
    /// For the default client id.
    pub hostname: String,
    /// Print the stream entries read, decoded (`-r`).
    pub trace_redis: bool,
    /// Print the MQTT packets sent and received (`-m`).
    pub trace_mqtt: bool,
    /// Reconnect backoff bounds.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The stream cap of the config, for the command writer's `XADD MAXLEN ~` (the same cap
    /// as the drivers': a smaller one would trim what they keep).
    pub stream_max_len: u64,
}

impl PublisherOptions {
    /// Defaults: backoff 1 s to 15 s (a broker that comes back is used again within 15 s; one attempt per 15 s is no storm), no tracing, the default stream cap.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            hostname: crate::hostname(),
            trace_redis: false,
            trace_mqtt: false,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15),
            stream_max_len: tagbus::DEFAULT_STREAM_MAX_LEN,
        }
    }
}

/// A running publisher; it stops when the handle is dropped.
pub struct PublisherHandle {
    stats: Stats,
    task: tokio::task::JoinHandle<()>,
}

impl PublisherHandle {
    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Whether the task is still running (it only ends when aborted).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for PublisherHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the publisher of one device (TLS files are read now: a bad file is an error here).
pub fn spawn_publisher(
    plan: DevicePlan,
    opts: PublisherOptions,
) -> Result<PublisherHandle, MqttClientError> {
    let tls = match &plan.device.tls {
        Some(t) => Some(crate::tls::client_config(t)?),
        None => None,
    };
    let stats = Stats::default();
    let task = tokio::spawn(run(Arc::new(plan), opts, tls, stats.clone()));
    Ok(PublisherHandle { stats, task })
}

/// How a connection's life ended.
pub(crate) enum End {
    Mqtt(ConnFailure),
    Redis(tagbus::TagBusError),
    Setup(MqttClientError),
}

/// What one publisher task keeps across its connections.
pub(crate) struct Publisher {
    pub(crate) plan: Arc<DevicePlan>,
    pub(crate) opts: PublisherOptions,
    client_id: String,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    pub(crate) stats: Stats,
    /// To the acknowledger: entry ids to `XACK`.
    ack_tx: mpsc::Sender<Vec<EntryId>>,
    /// QoS 2: the in-flight window, lowered when a broker drops a full window
    /// ([`Window::qos2_window_after_close`]).
    qos2_window: u16,
    pub(crate) commands: Option<CommandsIo>,
    /// The Sparkplug edge node of a `payload_format: sparkplug` device (kept across
    /// connections: the host's last STATE, the current values, the metric datatypes).
    pub(crate) edge: Option<sparkplug::EdgeNode>,
}

async fn run(
    plan: Arc<DevicePlan>,
    opts: PublisherOptions,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    stats: Stats,
) {
    let alias = plan.alias.to_string();
    let client_id = plan.client_id(&opts.hostname);
    let (ack_tx, ack_rx) = mpsc::channel::<Vec<EntryId>>(ACK_CHUNKS);
    let acker = tokio::spawn(acker(opts.redis_url.clone(), plan.group(), ack_rx));
    let mut backoff = backoff::Backoff::new(opts.backoff_min, opts.backoff_max);
    tracing::info!(device = %alias, client_id = %client_id, host = %plan.device.host, port = plan.device.port,
        signals = plan.routes.len(), group = %plan.group(), "publisher starting");
    for w in &plan.commands.warnings {
        tracing::error!(device = %alias, "{w}");
    }
    let mut commands = None;
    if !plan.commands.routes.is_empty() {
        match crate::commands::spawn(
            plan.alias.clone(),
            plan.commands.clone(),
            tagbus::WriterConfig {
                redis_url: opts.redis_url.clone(),
                stream_max_len: opts.stream_max_len,
            },
        ) {
            Ok(io) => {
                tracing::info!(device = %alias, writable = io.topics.len(),
                    max_age_s = plan.commands.max_age.as_secs(), timeout_s = plan.commands.timeout.as_secs(),
                    "command topics of writable signals will be subscribed");
                commands = Some(io);
            }
            Err(e) => {
                tracing::error!(device = %alias, error = %e, "the command path cannot start; commands are not subscribed")
            }
        }
    }
    let mut publisher = Publisher {
        qos2_window: plan.device.max_inflight.max(1),
        plan,
        opts,
        client_id,
        tls,
        stats,
        ack_tx,
        commands,
        edge: None,
    };
    loop {
        let started = Instant::now();
        let end = publisher.connection().await;
        if started.elapsed() >= STABLE_CONNECTION {
            backoff.reset(); // a connection that lasted: reconnect quickly
        }
        let delay = backoff.next_delay();
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        match end {
            End::Mqtt(ConnFailure::Refused(reason)) => {
                tracing::error!(device = %alias, reason = %reason, retry_in_ms,
                "the broker refused the connection (CONNACK); check username, password and client_id")
            }
            End::Mqtt(ConnFailure::Other(e)) => {
                tracing::warn!(device = %alias, error = %e, retry_in_ms,
                up_s = started.elapsed().as_secs(), "MQTT connection lost or failed; reconnecting")
            }
            End::Redis(e) => {
                tracing::warn!(device = %alias, error = %e, retry_in_ms, "tag bus (Redis) lost; reconnecting")
            }
            End::Setup(e) => {
                tracing::error!(device = %alias, error = %e, retry_in_ms, "connection setup failed")
            }
        }
        tokio::time::sleep(delay).await;
        if acker.is_finished() {
            tracing::error!(device = %alias, "the stream acknowledger stopped; publisher stops");
            return;
        }
    }
}

/// Batches of [`FeedItem`]s between the stream reader and the connection loop: a batch is one
/// read of up to [`READ_BATCH`] entries (or one snapshot chunk), so at most this many + 1
/// batches are in RAM. One channel operation per batch, not per value.
const ITEM_BATCHES: usize = 2;
/// Batches of acknowledged entry ids between the connection loop and the acknowledger.
const ACK_CHUNKS: usize = 64;
/// The most entry ids in one batch to the acknowledger.
const ACK_CHUNK: usize = 256;

/// Work taken from the reader and not yet published (the window was full).
enum Queued {
    Entry(tagbus::StreamEntry),
    Snapshot(TagKey, TagValue),
    /// A heartbeat due on this route (`max_interval_s`).
    Heartbeat(Route),
}

impl Publisher {
    /// One connection's life: connect, publish backlog + snapshot + live, until something
    /// fails. The I/O around the connection's [`Window`].
    async fn connection(&mut self) -> End {
        if self.plan.sparkplug.is_some() {
            return crate::sparkplug_node::connection(self).await;
        }
        let plan = self.plan.clone();
        let d = &plan.device;
        // Redis first: without the stream there is nothing to send.
        let consumer = match feed::open_consumer(
            &self.opts.redis_url,
            &self.plan.group(),
            CONSUMER_NAME,
            self.stats.group_state(),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return End::Redis(e),
        };
        let sizing = Sizing::new(d.qos, d.max_inflight, self.qos2_window);
        let (conn, receive_max, topic_alias_max) = match self.connect(&sizing, None).await {
            Ok(c) => c,
            Err(end) => return end,
        };
        let connected_at = Instant::now();
        let mut window = Window::new(d.qos, sizing.window(receive_max), d.enable_threshold);
        let mut uplink = Uplink::new(d, plan.batch_topic.as_ref(), topic_alias_max);
        if uplink.batching() {
            window = window.gather_batches();
        }
        if d.topic_alias {
            tracing::info!(device = %self.plan.alias, aliases = uplink.alias_max(),
                "topic aliases: up to the broker's Topic Alias Maximum");
        }

        let (items, _abort_reader) = self.start_feed(consumer);
        let index = RouteIndex::new(&plan);
        let (end, window) = self
            .serve(conn, window, &mut uplink, &index, items, connected_at)
            .await;
        // Entries acknowledged by the broker before the end are XACKed (not published again);
        // the others stay pending and come again on the next connection.
        let closed = window.close();
        self.hand_acks(closed.acks).await;
        if !closed.pending.is_empty() {
            tracing::debug!(device = %self.plan.alias, pending = closed.pending.len(),
                "stream entries left pending; the next connection publishes them again");
        }
        end
    }

    /// Starts the stream reader on `consumer`: its items, and the guard that stops it.
    pub(crate) fn start_feed(
        &self,
        consumer: tagbus::StreamConsumer,
    ) -> (mpsc::Receiver<FeedItem>, AbortOnDrop) {
        let (item_tx, items) = mpsc::channel::<FeedItem>(ITEM_BATCHES);
        let reader = tokio::spawn(feed::run_feed(
            consumer,
            FeedSetup {
                redis_url: self.opts.redis_url.clone(),
                group: self.plan.group(),
                consumer: CONSUMER_NAME,
                state: self.stats.group_state().clone(),
                keys: self.plan.clone(),
                read_batch: READ_BATCH,
                trace: self.opts.trace_redis,
            },
            item_tx,
        ));
        (items, AbortOnDrop(reader))
    }

    /// Connects to the broker and waits for its CONNACK: the connection and the broker's
    /// Receive Maximum and Topic Alias Maximum (MQTT 5).
    pub(crate) async fn connect(
        &mut self,
        sizing: &Sizing,
        will: Option<conn::Will>,
    ) -> Result<(conn::Conn, Option<u16>, Option<u16>), End> {
        let alias = &self.plan.alias;
        let d = &self.plan.device;
        if d.tls.as_ref().is_some_and(|t| t.insecure) {
            tracing::warn!(device = %alias, host = %d.host,
                "tls_insecure is set: the broker's certificate is NOT verified; anyone in the path can read and alter this traffic");
        }
        let settings = ConnSettings {
            device: &self.plan.device,
            client_id: self.client_id.clone(),
            capacity: sizing.request_capacity(),
            inflight: sizing.inflight_limit,
            trace: self.opts.trace_mqtt,
            label: alias.to_string(),
            will,
        };
        let mut conn = conn::connect(&settings, self.tls.clone()).map_err(End::Setup)?;
        let first = tokio::time::timeout(conn::CONNECT_DEADLINE, conn.events.recv()).await;
        let (session_present, receive_max, topic_alias_max) = match first {
            Ok(Some(ConnEvent::Connected {
                session_present,
                receive_max,
                topic_alias_max,
            })) => {
                tracing::info!(device = %alias, session_present, ?receive_max, ?topic_alias_max, "connected to the broker");
                (session_present, receive_max, topic_alias_max)
            }
            Ok(Some(ConnEvent::Closed(f))) => return Err(End::Mqtt(f)),
            Ok(Some(other)) => {
                return Err(End::Mqtt(ConnFailure::Other(format!(
                    "unexpected first event {other:?}"
                ))))
            }
            Ok(None) => {
                return Err(End::Mqtt(ConnFailure::Other(
                    "connection task ended".into(),
                )))
            }
            Err(_) => return Err(End::Mqtt(ConnFailure::Other("no CONNACK in time".into()))),
        };
        self.stats.add_connect();
        if let Some(io) = self.commands.as_mut() {
            let _ = io.tx.try_send(ToCommands::Connected { session_present });
            // a Sparkplug node takes commands as DCMD only (its own subscriptions)
            if self.plan.sparkplug.is_none() && !conn.client.try_subscribe_commands(&io.topics) {
                return Err(queue_full());
            }
        }
        Ok((conn, receive_max, topic_alias_max))
    }

    /// The connected loop: hands the reader's items to rumqttc as far as the window allows,
    /// feeds the connection's events to the window and forwards its acknowledgements, until
    /// the connection or the reader ends.
    async fn serve(
        &mut self,
        mut conn: conn::Conn,
        mut window: Window<EntryId>,
        uplink: &mut Uplink,
        index: &RouteIndex<'_>,
        mut items: mpsc::Receiver<FeedItem>,
        connected_at: Instant,
    ) -> (End, Window<EntryId>) {
        let mut queue: VecDeque<Queued> = VecDeque::new();
        let end = 'conn: loop {
            // Acknowledgements go to the acknowledger in batches: when nothing else is
            // waiting, or when a batch is full.
            let waiting = window.acks_waiting();
            if waiting > 0 && (waiting >= ACK_CHUNK || conn.events.is_empty()) {
                self.hand_acks(window.take_acks()).await;
            }
            // Publish what the reader handed over, as far as the window allows.
            while window.has_room() {
                let Some(next) = queue.pop_front() else { break };
                if let Err(e) = self.publish(&conn.client, &mut window, uplink, index, next) {
                    break 'conn e;
                }
            }
            let room = window.has_room();
            let batch_due = uplink.batch_deadline();
            tokio::select! {
                ev = conn.events.recv() => {
                    // Handle every event already waiting in one go (under load they come in
                    // runs: one wake-up, not one per publish).
                    let mut next = ev;
                    loop {
                        if let Err(e) = self.on_event(&mut window, connected_at, next) {
                            break 'conn e;
                        }
                        match conn.events.try_recv() {
                            Ok(ev) => next = Some(ev),
                            Err(_) => break,
                        }
                    }
                }
                item = items.recv(), if queue.is_empty() && room => match item {
                    Some(FeedItem::Entries(entries)) => queue.extend(entries.into_iter().map(Queued::Entry)),
                    Some(FeedItem::Snapshot(values)) => {
                        queue.extend(values.into_iter().map(|(k, v)| Queued::Snapshot(k, v)));
                    }
                    Some(FeedItem::Live { snapshot }) => tracing::info!(device = %self.plan.alias, snapshot, "backlog and snapshot sent; forwarding live values"),
                    Some(FeedItem::Restarted(e)) => {
                        tracing::warn!(device = %self.plan.alias, error = %e, "tag bus (Redis) lost; the stream reader reconnects (MQTT stays connected)");
                        window.reader_restarted();
                    }
                    None => break End::Redis(tagbus::TagBusError::ConnectionLost),
                },
                () = sleep_until(window.next_heartbeat()), if queue.is_empty() && room => {
                    queue.extend(window.due_heartbeats(Instant::now()).into_iter().map(Queued::Heartbeat));
                }
                () = sleep_until(batch_due) => {
                    if let Err(e) = self.publish_batch(&conn.client, &mut window, uplink) {
                        break e;
                    }
                }
                answer = next_answer(&mut self.commands) => {
                    let d = &self.plan.device;
                    if self.opts.trace_mqtt {
                        print_line(&format!("mqtt {} PUBLISH {} qos={} retain=0 {}\n", self.plan.alias, answer.topic,
                            d.qos.as_u8(), String::from_utf8_lossy(&answer.payload)));
                    }
                    if !conn.client.try_publish_answer(answer.topic.as_str(), d.qos, answer.payload, answer.correlation) {
                        break queue_full();
                    }
                    window.answer();
                }
            }
        };
        (end, window)
    }

    /// Counts and forwards entry ids to the acknowledger.
    pub(crate) async fn hand_acks(&self, ids: Vec<EntryId>) {
        if ids.is_empty() {
            return;
        }
        self.stats
            .add_acked(u64::try_from(ids.len()).unwrap_or(u64::MAX));
        // The acknowledger only stops with the process.
        let _ = self.ack_tx.send(ids).await;
    }

    /// Hands one queued item to rumqttc: an entry on each of its topics (or acknowledged at
    /// once when it has none), a snapshot value on each topic of its key.
    fn publish(
        &self,
        client: &conn::Client,
        window: &mut Window<EntryId>,
        uplink: &mut Uplink,
        index: &RouteIndex<'_>,
        next: Queued,
    ) -> Result<(), End> {
        let now = Instant::now();
        let (key, value, id) = match next {
            Queued::Snapshot(key, value) => (key, value, None),
            Queued::Heartbeat(route) => {
                if let Some(value) = window.heartbeat(&route, now) {
                    self.send(client, uplink, &route, &value, now)?;
                    if uplink.batch_full() {
                        self.publish_batch(client, window, uplink)?;
                    }
                }
                return Ok(());
            }
            Queued::Entry(entry) => match entry.body {
                EntryBody::Tag { key, value } => (key, value, Some(entry.id)),
                EntryBody::Malformed(why) => {
                    tracing::warn!(device = %self.plan.alias, id = %entry.id, error = %why, "skipping a malformed stream entry");
                    window.skip(entry.id);
                    return Ok(());
                }
                EntryBody::Trimmed => {
                    window.skip(entry.id);
                    return Ok(());
                }
            },
        };
        let Some(routes) = index.get(&key) else {
            if let Some(id) = id {
                window.skip(id);
            }
            return Ok(());
        };
        let routes = match id {
            Some(id) => {
                let fanout = window.entry(id, &value, routes, now);
                if fanout.dropped > 0 {
                    self.stats
                        .add_dropped(u64::try_from(fanout.dropped).unwrap_or(u64::MAX));
                }
                if fanout.suppressed > 0 {
                    self.stats
                        .add_suppressed(u64::try_from(fanout.suppressed).unwrap_or(u64::MAX));
                }
                fanout.routes
            }
            None => Picked::All(window.snapshot(&value, routes, now)),
        };
        for route in routes.iter() {
            self.send(client, uplink, route, &value, now)?;
        }
        // A batch holds every route of an entry: it is due only after the entry.
        if uplink.batch_full() {
            self.publish_batch(client, window, uplink)?;
        }
        Ok(())
    }

    /// The batch gathered (if any) as one PUBLISH on the batch topic; its entries are
    /// acknowledged with it.
    fn publish_batch(
        &self,
        client: &conn::Client,
        window: &mut Window<EntryId>,
        uplink: &mut Uplink,
    ) -> Result<(), End> {
        let Some((topic, payload, values)) = uplink.take_batch() else {
            return Ok(());
        };
        let d = &self.plan.device;
        if self.opts.trace_mqtt {
            print_line(&format!(
                "mqtt {} PUBLISH {topic} qos={} retain={} values={values} {}\n",
                self.plan.alias,
                d.qos.as_u8(),
                u8::from(d.retain),
                String::from_utf8_lossy(&payload)
            ));
        }
        let (name, alias) = uplink.name(&topic).apply(topic.as_str());
        window.seal();
        if !client.try_publish_aliased(name, alias, d.qos, d.retain, payload) {
            return Err(queue_full());
        }
        Ok(())
    }

    /// One PUBLISH of `value` on `route` to rumqttc's request queue, or the value into the
    /// batch being gathered (at `now`).
    fn send(
        &self,
        client: &conn::Client,
        uplink: &mut Uplink,
        route: &Route,
        value: &TagValue,
        now: Instant,
    ) -> Result<(), End> {
        let d = &self.plan.device;
        let topic = &route.topic;
        if uplink.batching() {
            if route.log {
                tracing::info!(device = %self.plan.alias, topic = %topic, value = %value.to_wcc_payload(), "publish (batched)");
            }
            uplink.gather(topic, value, now);
            self.stats.add_published(1);
            return Ok(());
        }
        let payload = format_payload(d.payload_format, topic, value);
        if route.log {
            tracing::info!(device = %self.plan.alias, topic = %topic, payload = %String::from_utf8_lossy(&payload), "publish");
        }
        if self.opts.trace_mqtt {
            print_line(&format!(
                "mqtt {} PUBLISH {topic} qos={} retain={} {}\n",
                self.plan.alias,
                d.qos.as_u8(),
                u8::from(d.retain),
                String::from_utf8_lossy(&payload)
            ));
        }
        let (name, alias) = uplink.name(topic).apply(topic.as_str());
        if !client.try_publish_aliased(name, alias, d.qos, d.retain, payload) {
            return Err(queue_full());
        }
        self.stats.add_published(1);
        Ok(())
    }

    /// One event of the MQTT connection; `Err` ends the connection.
    fn on_event(
        &mut self,
        window: &mut Window<EntryId>,
        connected_at: Instant,
        ev: Option<ConnEvent>,
    ) -> Result<(), End> {
        let alias = &self.plan.alias;
        match ev {
            Some(ConnEvent::Sent(pkid)) => window
                .written(pkid)
                .map_err(|e| End::Mqtt(ConnFailure::Other(e.to_string())))?,
            Some(ConnEvent::Acked { pkid, refused }) => {
                if !window.acked(pkid) {
                    tracing::debug!(device = %alias, pkid, "acknowledgement of an unknown packet id");
                } else if let Some(reason) = refused {
                    self.stats.add_rejected();
                    tracing::warn!(device = %alias, pkid, reason = %reason, "the broker refused a publish");
                }
            }
            Some(ConnEvent::Connected { .. }) => {}
            Some(ConnEvent::Message(m)) => match &self.commands {
                Some(io) => {
                    if io.tx.try_send(ToCommands::Message(m)).is_err() {
                        tracing::error!(device = %alias, "command dropped: the command queue is full");
                    }
                }
                None => tracing::warn!(device = %alias, topic = %m.topic,
                        "message on a topic that is not the command topic of a writable signal; ignored"),
            },
            Some(ConnEvent::SubAck { refused }) => {
                if refused > 0 {
                    tracing::error!(device = %alias, refused,
                            "the broker refused command topic subscriptions (check its ACL); those commands cannot arrive");
                } else {
                    tracing::info!(device = %alias, "command topics subscribed");
                }
            }
            Some(ConnEvent::Closed(f)) => {
                if let Some(lower) = window.qos2_window_after_close(connected_at.elapsed()) {
                    tracing::warn!(device = %alias, window = window.size(), lower,
                            "the broker closed the connection soon with several QoS 2 publishes in flight; lowering the in-flight window (check max_inflight against the broker's limit)");
                    self.qos2_window = lower;
                }
                return Err(End::Mqtt(f));
            }
            None => {
                return Err(End::Mqtt(ConnFailure::Other(
                    "connection task ended".into(),
                )))
            }
        }
        Ok(())
    }
}

/// The plan's routes by source key, for the lookup of every value. Looking a value's key up
/// in the plan's map took a tenth of the publisher's CPU per value: SipHash, and cache misses
/// on the key strings it compares (scattered over the heap; thousands of keys do not stay in
/// cache). Here a key's text is held inline in the table ([`InlineKey`]), hashed with a fast
/// hasher, so a lookup reads the table and nothing else; the few keys too long for that are
/// in a plain map. The keys are the configured ones; keys from the stream are only looked
/// up, so they cannot load the table.
struct RouteIndex<'p> {
    inline: HashMap<InlineKey, &'p [Route], BuildHasherDefault<KeyHasher>>,
    long: HashMap<&'p TagKey, &'p [Route], BuildHasherDefault<KeyHasher>>,
}

impl<'p> RouteIndex<'p> {
    fn new(plan: &'p DevicePlan) -> Self {
        let mut index = Self {
            inline: HashMap::default(),
            long: HashMap::default(),
        };
        for (key, routes) in &plan.routes {
            match InlineKey::new(key) {
                Some(k) => index.inline.insert(k, routes.as_slice()),
                None => index.long.insert(key, routes.as_slice()),
            };
        }
        index
    }

    fn get(&self, key: &TagKey) -> Option<&'p [Route]> {
        match InlineKey::new(key) {
            Some(k) => self.inline.get(&k).copied(),
            None => self.long.get(key).copied(),
        }
    }
}

/// Room for `device/signal/direction` in an [`InlineKey`] (a table entry of 64 bytes).
const INLINE_KEY: usize = 47;

/// A key's `device/signal/direction` text, when it fits in [`INLINE_KEY`] bytes (aliases
/// hold no `/`, so the text is the key).
#[derive(Clone, Copy, PartialEq, Eq)]
struct InlineKey {
    len: u8,
    bytes: [u8; INLINE_KEY],
}

impl InlineKey {
    fn new(key: &TagKey) -> Option<Self> {
        let mut k = Self {
            len: 0,
            bytes: [0; INLINE_KEY],
        };
        let mut at = 0usize;
        let parts = [
            key.device.as_str().as_bytes(),
            b"/",
            key.signal.as_str().as_bytes(),
            b"/",
            key.direction.as_str().as_bytes(),
        ];
        for part in parts {
            let end = at.checked_add(part.len())?;
            k.bytes.get_mut(at..end)?.copy_from_slice(part);
            at = end;
        }
        k.len = u8::try_from(at).ok()?;
        Some(k)
    }
}

impl std::hash::Hash for InlineKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.bytes.get(..usize::from(self.len)).unwrap_or_default());
    }
}

/// A multiply-rotate hasher over 8-byte words (FxHash's step) with a final avalanche
/// (murmur3's), so the low bits that pick a bucket depend on every byte.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(<[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            // The tail as a little-endian word (fewer than 8 bytes: nothing rotates out).
            let word = tail
                .iter()
                .rev()
                .fold(0u64, |w, b| w.rotate_left(8) | u64::from(*b));
            self.add(word);
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(crate) fn queue_full() -> End {
    End::Mqtt(ConnFailure::Other(
        "the MQTT request queue is full or closed".into(),
    ))
}

/// Sleeps until `at`; never ready without it.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The next command answer to publish; never ready without a command path.
pub(crate) async fn next_answer(commands: &mut Option<CommandsIo>) -> Answer {
    match commands.as_mut() {
        Some(io) => match io.answers.recv().await {
            Some(a) => a,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the acknowledger gathers acknowledgements before one `XACK` (unless it has
/// [`ACK_BATCH`] already). At QoS 1/2 PUBACKs come a few at a time: without this every few
/// ids cost an `XACK` round trip (4 ids per call at 46,000/s in the benchmark). A later XACK
/// only means more duplicates after a crash, never a loss.
const ACK_LINGER: Duration = Duration::from_millis(10);
/// Most ids per `XACK`.
const ACK_BATCH: usize = 1024;

/// Acknowledges stream entries in batches; keeps a failed batch and retries with backoff.
async fn acker(redis_url: String, group: String, mut rx: mpsc::Receiver<Vec<EntryId>>) {
    let mut batch: Vec<EntryId> = Vec::with_capacity(ACK_BATCH);
    let mut acker = match tagbus::StreamAcker::new(&redis_url, &group) {
        Ok(a) => a,
        Err(e) => {
            // The URL was checked at config load; this cannot happen with a valid config.
            tracing::error!(error = %e, "stream acknowledger: bad Redis URL; nothing is acknowledged");
            return;
        }
    };
    let mut backoff = backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut closed = false;
    loop {
        if batch.is_empty() {
            if closed {
                return;
            }
            match rx.recv().await {
                Some(ids) => batch.extend(ids),
                None => return,
            }
        }
        let linger = tokio::time::sleep(ACK_LINGER);
        tokio::pin!(linger);
        while batch.len() < ACK_BATCH && !closed {
            tokio::select! {
                ids = rx.recv() => match ids {
                    Some(ids) => batch.extend(ids),
                    None => closed = true,
                },
                () = &mut linger => break,
            }
        }
        // A failed XACK drops its socket; the next one opens a new socket.
        match acker.ack(&batch).await {
            Ok(_) => {
                batch.clear();
                backoff.reset();
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, pending = batch.len(), "XACK failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl SnapshotKeys for DevicePlan {
    /// Its routes' keys are the snapshot's keys.
    fn snapshot_keys(&self) -> Box<dyn Iterator<Item = &TagKey> + Send + '_> {
        Box::new(self.routes.keys())
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    /// Keys that differ in a few characters spread over the buckets: the low bits (which pick
    /// a bucket) and the top 7 (hashbrown's tag) of 10,000 signal keys collide little more
    /// than random ones would.
    #[test]
    fn the_key_hasher_spreads_similar_keys() {
        let hasher = BuildHasherDefault::<KeyHasher>::default();
        let keys: Vec<TagKey> = (0..10_000)
            .map(|i| format!("tag/rtu1/ua{i}/in").parse().unwrap())
            .collect();
        let hashes: Vec<u64> = keys.iter().map(|k| hasher.hash_one(k)).collect();
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0x3fff).collect();
        // 10,000 random values in 16,384 buckets fill about 7,300 of them.
        assert!(buckets.len() > 6_800, "{}", buckets.len());
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
        let other: TagKey = "tag/rtu1/ua1/rin".parse().unwrap();
        assert_ne!(hasher.hash_one(&other), hashes[1]);
    }

    /// Every configured key is found, inline or not, and only those.
    #[test]
    fn the_route_index_finds_every_key_of_the_plan() {
        let long = "s".repeat(60);
        let text = format!(
            r#"{{"devices": [{{"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b"}},
              {{"name": "R", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "r", "asdu_address": 1}}],
              "signals": [
              {{"signal_name": "a", "device_alias": "rtu1", "signal_alias": "a", "info_address": 1, "type_id": "M_ME_NC_1"}},
              {{"signal_name": "l", "device_alias": "rtu1", "signal_alias": "{long}", "info_address": 2, "type_id": "M_ME_NC_1"}},
              {{"signal_name": "ma", "device_alias": "c", "signal_alias": "ma", "source_device_alias": "rtu1", "source_signal_alias": "a"}},
              {{"signal_name": "ml", "device_alias": "c", "signal_alias": "ml", "source_device_alias": "rtu1", "source_signal_alias": "{long}"}}]}}"#
        );
        let v = config::validate(&config::RawConfig::parse(&text).unwrap());
        assert!(v.errors.is_empty(), "{v:?}");
        let plans = crate::plan(&v.config).unwrap();
        let plan = &plans[0];
        assert_eq!(plan.routes.len(), 2);
        let index = RouteIndex::new(plan);
        assert_eq!((index.inline.len(), index.long.len()), (1, 1));
        for (key, routes) in &plan.routes {
            assert_eq!(index.get(key), Some(routes.as_slice()), "{key}");
        }
        for other in ["tag/rtu1/a/rin", "tag/rtu1/b/in", "tag/rtu2/a/in"] {
            assert_eq!(index.get(&other.parse().unwrap()), None, "{other}");
        }
        let short: TagKey = "tag/rtu1/a/in".parse().unwrap();
        let k = InlineKey::new(&short).unwrap();
        assert_eq!(&k.bytes[..usize::from(k.len)], b"rtu1/a/in");
    }
}
