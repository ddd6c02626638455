//! The command path: MQTT command topics -> `out` tags -> the drivers' results -> MQTT
//! answers. [`Commander`] is the sans-IO core (routing, payload parsing, refusals,
//! duplicate detection, pending commands and their timeouts); [`spawn`] runs it with a tag
//! writer and a Redis result listener. See the crate docs for the contract.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use config::mqtt::Topic;
use serde_json::Value as Json;
use tagbus::{Alias, CommandOutcome, CommandResult, TagKey, TagValue, Value};
use tokio::sync::mpsc;

/// The most commands awaiting their result per MQTT device; more are refused (`rejected`,
/// detail `busy`).
pub const MAX_PENDING: usize = 256;
/// Command ids (JSON `id`) remembered for duplicate detection, per MQTT device.
pub const RECENT_IDS: usize = 1024;
/// Packet ids remembered for DUP detection, per MQTT device.
pub const RECENT_PKIDS: usize = 256;
/// The longest command payload accepted, bytes.
pub const MAX_PAYLOAD: usize = 1024;
/// The longest JSON `id` accepted, bytes.
pub const MAX_ID_LEN: usize = 128;

/// The command route of one writable MQTT signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRoute {
    /// The MQTT signal's alias (for logs and answers).
    pub signal: Alias,
    /// Where commands arrive.
    pub command_topic: Topic,
    /// Where answers go when the request names no response topic: `<command_topic>/result`.
    pub result_topic: Topic,
    /// The tag written: `tag/<source_device_alias>/<source_signal_alias>/out`.
    pub out: TagKey,
    /// Whether the driver sends it select-before-operate (IEC 104 `select_before_operate`;
    /// always false for Modbus). A JSON `select` must match it.
    pub select_before_operate: bool,
}

/// The command side of a device plan: built only from writable, enabled signals.
#[derive(Debug, Clone, Default)]
pub struct CommandPlan {
    /// Writable signals by command topic: the only way a command reaches a tag.
    pub routes: BTreeMap<Topic, CommandRoute>,
    /// The command topics of enabled signals that are NOT writable (not subscribed; a message
    /// that arrives there anyway, e.g. through an old persistent session, is answered
    /// `not_writable`), with the `<topic>/result` topic.
    pub refused: BTreeMap<Topic, (Alias, Topic)>,
    /// Configuration problems that left a signal without a command route (logged at error).
    pub warnings: Vec<String>,
    /// `command_max_age_ms`.
    pub max_age: Duration,
    /// `command_result_timeout_s`.
    pub timeout: Duration,
    /// `clean_session: 0`: the broker queues commands while we are away, so a command must
    /// carry its issue time (JSON `ts`, or an MQTT 5 message expiry).
    pub persistent_session: bool,
}

/// A received PUBLISH, reduced to what the command path needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation: Option<Vec<u8>>,
    /// MQTT 5 Message Expiry Interval (seconds left).
    pub expiry: Option<u32>,
}

/// An answer to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub topic: Topic,
    /// MQTT 5 Correlation Data of the request (sent back unchanged).
    pub correlation: Option<Vec<u8>>,
    pub outcome: CommandOutcome,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not a command topic of this device: logged, nothing else.
    Ignored,
    /// A repeat of a command already handled (DUP flag + packet id, or JSON `id`): nothing
    /// is executed and nothing is answered (the first copy is answered).
    Duplicate(&'static str),
    /// Refused before it reached the tag bus: publish this answer.
    Answer(Answer),
    /// Write this command to the tag bus; the answer follows its result.
    Execute { key: TagKey, value: TagValue },
}

/// Where and how to answer one command.
#[derive(Debug, Clone, PartialEq)]
struct ReplyTo {
    topic: Topic,
    correlation: Option<Vec<u8>>,
    id: Option<Json>,
    signal: Alias,
}

#[derive(Debug)]
struct Pending {
    reply: ReplyTo,
    deadline: Instant,
}

/// A parsed command payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCommand {
    pub value: Value,
    pub select: Option<bool>,
    pub ts: Option<u64>,
    pub id: Option<Json>,
}

/// Parses a command payload: a plain number (`1`, `0.75`, `-3`), `true`/`false`, or a JSON
/// object `{"value": .., "select": bool, "ts": unix_ms, "id": string|number}` (only `value`
/// required; unknown members are ignored). Errors are detail codes.
pub fn parse_payload(payload: &[u8]) -> Result<ParsedCommand, &'static str> {
    if payload.len() > MAX_PAYLOAD {
        return Err("payload_too_long");
    }
    let text = std::str::from_utf8(payload).map_err(|_| "payload_not_utf8")?;
    let text = text.trim();
    if text.starts_with('{') {
        let Ok(Json::Object(obj)) = serde_json::from_str::<Json>(text) else {
            return Err("bad_json");
        };
        let value = match obj.get("value") {
            None | Some(Json::Null) => return Err("no_value"),
            Some(v) => json_value(v).ok_or("bad_value")?,
        };
        let select = match obj.get("select") {
            None | Some(Json::Null) => None,
            Some(Json::Bool(b)) => Some(*b),
            Some(_) => return Err("bad_select"),
        };
        let ts = match obj.get("ts") {
            None | Some(Json::Null) => None,
            Some(v) => Some(v.as_u64().ok_or("bad_ts")?),
        };
        let id = match obj.get("id") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => {
                Some(Json::String(s.clone()))
            }
            Some(Json::Number(n)) => Some(Json::Number(n.clone())),
            Some(_) => return Err("bad_id"),
        };
        return Ok(ParsedCommand {
            value,
            select,
            ts,
            id,
        });
    }
    let value = match text {
        "true" => Value::Int(1),
        "false" => Value::Int(0),
        t => t.parse::<Value>().map_err(|_| "bad_value")?,
    };
    if !value.as_f64().is_finite() {
        return Err("bad_value");
    }
    Ok(ParsedCommand {
        value,
        select: None,
        ts: None,
        id: None,
    })
}

fn json_value(v: &Json) -> Option<Value> {
    match v {
        Json::Bool(b) => Some(Value::Int(i64::from(*b))),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::Int(i)),
            None => n.as_f64().filter(|f| f.is_finite()).map(Value::Float),
        },
        _ => None,
    }
}

/// A bounded set of recently seen items (oldest forgotten first).
#[derive(Debug)]
struct Recent<T: Hash + Eq + Clone> {
    order: VecDeque<T>,
    set: HashSet<T>,
    cap: usize,
}

impl<T: Hash + Eq + Clone> Recent<T> {
    fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: cap.max(1),
        }
    }
    fn contains(&self, t: &T) -> bool {
        self.set.contains(t)
    }
    fn insert(&mut self, t: T) {
        if !self.set.insert(t.clone()) {
            return;
        }
        self.order.push_back(t);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
    fn remove(&mut self, t: &T) {
        if self.set.remove(t) {
            self.order.retain(|x| x != t);
        }
    }
    fn clear(&mut self) {
        self.order.clear();
        self.set.clear();
    }
}

/// The sans-IO core of one device's command path.
#[derive(Debug)]
pub struct Commander {
    plan: CommandPlan,
    /// The last command timestamp written per `out` tag (they must differ: it is the id).
    last_ts: HashMap<TagKey, u64>,
    pending: HashMap<(TagKey, u64), Pending>,
    recent_ids: Recent<String>,
    recent_pkids: Recent<u16>,
}

impl Commander {
    pub fn new(plan: CommandPlan) -> Self {
        Self {
            plan,
            last_ts: HashMap::new(),
            pending: HashMap::new(),
            recent_ids: Recent::new(RECENT_IDS),
            recent_pkids: Recent::new(RECENT_PKIDS),
        }
    }

    /// The topics to subscribe (QoS 1): the writable signals' command topics, nothing else.
    pub fn topics(&self) -> Vec<Topic> {
        self.plan.routes.keys().cloned().collect()
    }

    /// The `out` tags commands are written to (their `result/` keys are listened to).
    pub fn out_keys(&self) -> Vec<TagKey> {
        let mut keys: Vec<TagKey> = self.plan.routes.values().map(|r| r.out.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Commands awaiting their result.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A new connection: packet ids of an old session mean nothing in a new one.
    pub fn on_connected(&mut self, session_present: bool) {
        if !session_present {
            self.recent_pkids.clear();
        }
    }

    /// Decides what to do with a received message (`now_ms`: Unix ms; `now`: monotonic).
    pub fn on_message(&mut self, m: &Incoming, now_ms: u64, now: Instant) -> Decision {
        let Ok(topic) = Topic::new(&m.topic) else {
            return Decision::Ignored;
        };
        let Some(route) = self.plan.routes.get(&topic) else {
            return match self.plan.refused.get(&topic) {
                Some((signal, result_topic)) => Decision::Answer(answer(
                    &ReplyTo {
                        topic: self.reply_topic(m, result_topic),
                        correlation: m.correlation.clone(),
                        id: None,
                        signal: signal.clone(),
                    },
                    &CommandResult::now(CommandOutcome::NotWritable, 0),
                    None,
                )),
                None => Decision::Ignored,
            };
        };
        let route = route.clone();
        let mut reply = ReplyTo {
            topic: self.reply_topic(m, &route.result_topic),
            correlation: m.correlation.clone(),
            id: None,
            signal: route.signal.clone(),
        };
        let refuse = |reply: &ReplyTo, outcome: CommandOutcome, detail: &str| {
            Decision::Answer(answer(
                reply,
                &CommandResult {
                    outcome,
                    command_timestamp_ms: 0,
                    timestamp_ms: now_ms,
                    detail: None,
                }
                .with_detail(detail),
                None,
            ))
        };
        // A retained message is a replay (a broker sends it on subscribe; with MQTT 5 we ask
        // for the flag as published): never executed.
        if m.retain {
            return refuse(&reply, CommandOutcome::Invalid, "retained");
        }
        let cmd = match parse_payload(&m.payload) {
            Ok(c) => c,
            Err(detail) => return refuse(&reply, CommandOutcome::Invalid, detail),
        };
        reply.id = cmd.id.clone();
        // Duplicates: a redelivery (DUP) of a packet id already handled in this session, or
        // a command id already seen.
        if m.qos > 0 {
            if m.dup && self.recent_pkids.contains(&m.pkid) {
                return Decision::Duplicate("dup_packet_id");
            }
            // A packet id without DUP is a new message (the broker reuses ids).
            self.recent_pkids.remove(&m.pkid);
            self.recent_pkids.insert(m.pkid);
        }
        if let Some(id) = &cmd.id {
            let key = id_key(id);
            if self.recent_ids.contains(&key) {
                return Decision::Duplicate("command_id");
            }
            self.recent_ids.insert(key);
        }
        let max_age = u64::try_from(self.plan.max_age.as_millis()).unwrap_or(u64::MAX);
        match cmd.ts {
            Some(ts) if now_ms.saturating_sub(ts) > max_age => {
                return refuse(&reply, CommandOutcome::TooOld, "older_than_max_age")
            }
            Some(ts) if ts.saturating_sub(now_ms) > max_age => {
                return refuse(&reply, CommandOutcome::Invalid, "ts_in_future")
            }
            Some(_) => {}
            None if self.plan.persistent_session && m.expiry.is_none() => {
                return refuse(&reply, CommandOutcome::TooOld, "no_ts");
            }
            None => {}
        }
        if cmd.select.is_some_and(|s| s != route.select_before_operate) {
            return refuse(&reply, CommandOutcome::Invalid, "select_mismatch");
        }
        if self.pending.len() >= MAX_PENDING {
            return refuse(&reply, CommandOutcome::Rejected, "busy");
        }
        let ts = match self.last_ts.get(&route.out) {
            Some(&last) if last >= now_ms => last.saturating_add(1),
            _ => now_ms,
        };
        self.last_ts.insert(route.out.clone(), ts);
        self.pending.insert(
            (route.out.clone(), ts),
            Pending {
                reply,
                deadline: now.checked_add(self.plan.timeout).unwrap_or(now),
            },
        );
        Decision::Execute {
            key: route.out,
            value: TagValue::new(cmd.value, ts),
        }
    }

    /// The answer topic: a valid MQTT 5 response topic that is none of our command topics,
    /// else the signal's `<command_topic>/result`.
    fn reply_topic(&self, m: &Incoming, default: &Topic) -> Topic {
        m.response_topic
            .as_deref()
            .and_then(|t| Topic::new(t).ok())
            .filter(|t| !self.plan.routes.contains_key(t) && !self.plan.refused.contains_key(t))
            .unwrap_or_else(|| default.clone())
    }

    /// A driver's result (from `result/<dev>/<sig>`): the answer of the pending command it
    /// belongs to, if any.
    pub fn on_result(&mut self, out: &TagKey, result: &CommandResult) -> Option<Answer> {
        let p = self
            .pending
            .remove(&(out.clone(), result.command_timestamp_ms))?;
        Some(answer(&p.reply, result, Some(result.command_timestamp_ms)))
    }

    /// Writing the command to the tag bus failed: answer it now.
    pub fn write_failed(&mut self, out: &TagKey, ts: u64, now_ms: u64) -> Option<Answer> {
        let p = self.pending.remove(&(out.clone(), ts))?;
        let r = CommandResult {
            outcome: CommandOutcome::Rejected,
            command_timestamp_ms: ts,
            timestamp_ms: now_ms,
            detail: None,
        }
        .with_detail("tag_bus_unreachable");
        Some(answer(&p.reply, &r, None))
    }

    /// The earliest deadline of a pending command.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Answers `timeout` for every pending command whose deadline has passed.
    pub fn expire(&mut self, now: Instant, now_ms: u64) -> Vec<Answer> {
        let due: Vec<(TagKey, u64)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| {
                let p = self.pending.remove(&k)?;
                let r = CommandResult {
                    outcome: CommandOutcome::Timeout,
                    command_timestamp_ms: k.1,
                    timestamp_ms: now_ms,
                    detail: None,
                }
                .with_detail("no_result");
                Some(answer(&p.reply, &r, Some(k.1)))
            })
            .collect()
    }
}

fn id_key(id: &Json) -> String {
    match id {
        Json::String(s) => format!("s:{s}"),
        other => format!("n:{other}"),
    }
}

/// The answer payload: `{"outcome":..,"detail":..,"signal":..,"command_ts":..,"ts":..,"id":..}`.
fn answer(reply: &ReplyTo, r: &CommandResult, command_ts: Option<u64>) -> Answer {
    let mut obj = serde_json::Map::new();
    obj.insert("outcome".into(), Json::from(r.outcome.as_str()));
    obj.insert(
        "detail".into(),
        r.detail
            .as_ref()
            .map_or(Json::Null, |d| Json::from(d.as_str())),
    );
    obj.insert("signal".into(), Json::from(reply.signal.as_str()));
    obj.insert(
        "command_ts".into(),
        command_ts.map_or(Json::Null, Json::from),
    );
    obj.insert("ts".into(), Json::from(r.timestamp_ms));
    if let Some(id) = &reply.id {
        obj.insert("id".into(), id.clone());
    }
    Answer {
        topic: reply.topic.clone(),
        correlation: reply.correlation.clone(),
        outcome: r.outcome,
        payload: Json::Object(obj).to_string().into_bytes(),
    }
}

// ------------------------------------------------------------------------------ I/O

/// What the connection loop tells the command task.
#[derive(Debug)]
pub(crate) enum ToCommands {
    Connected { session_present: bool },
    Message(Incoming),
}

/// The connection loop's side of a running command task.
pub(crate) struct CommandsIo {
    pub tx: mpsc::Sender<ToCommands>,
    pub answers: mpsc::Receiver<Answer>,
    pub topics: Vec<Topic>,
    _task: crate::publisher::AbortOnDrop,
}

/// Queue sizes between the connection loop and the command task.
const QUEUE: usize = 64;

/// Starts the command task of a device: its tag writer and result listener.
pub(crate) fn spawn(
    device: Alias,
    plan: CommandPlan,
    writer: tagbus::WriterConfig,
) -> Result<CommandsIo, crate::MqttClientError> {
    let commander = Commander::new(plan);
    let results =
        tagbus::results::spawn_result_listener(&writer.redis_url, &commander.out_keys(), QUEUE)?;
    let writer = tagbus::TagWriter::new(&writer)?;
    let topics = commander.topics();
    let (tx, rx) = mpsc::channel(QUEUE);
    let (answer_tx, answers) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(device, commander, writer, results, rx, answer_tx));
    Ok(CommandsIo {
        tx,
        answers,
        topics,
        _task: crate::publisher::AbortOnDrop(task),
    })
}

async fn run(
    device: Alias,
    mut commander: Commander,
    mut writer: tagbus::TagWriter,
    mut results: tagbus::results::ResultFeed,
    mut rx: mpsc::Receiver<ToCommands>,
    answers: mpsc::Sender<Answer>,
) {
    let send = |a: Answer| {
        tracing::info!(device = %device, topic = %a.topic, outcome = %a.outcome,
            payload = %String::from_utf8_lossy(&a.payload), "command answer");
        if answers.try_send(a).is_err() {
            tracing::warn!(device = %device, "command answer dropped: the MQTT connection is not keeping up");
        }
    };
    loop {
        let deadline = commander.next_deadline();
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return,
                Some(ToCommands::Connected { session_present }) => commander.on_connected(session_present),
                Some(ToCommands::Message(m)) => {
                    match commander.on_message(&m, tagbus::now_ms(), Instant::now()) {
                        Decision::Ignored => tracing::warn!(device = %device, topic = %m.topic,
                            "message on a topic that is not the command topic of a writable signal; ignored"),
                        Decision::Duplicate(why) => tracing::warn!(device = %device, topic = %m.topic,
                            pkid = m.pkid, why, "duplicate command ignored (already handled)"),
                        Decision::Answer(a) => {
                            tracing::warn!(device = %device, topic = %m.topic, outcome = %a.outcome,
                                retain = m.retain, "command refused");
                            send(a);
                        }
                        Decision::Execute { key, value } => {
                            tracing::info!(device = %device, topic = %m.topic, tag = %key, value = %value,
                                "command: writing the out tag");
                            if let Err(e) = writer.write(&key, &value).await {
                                tracing::error!(device = %device, tag = %key, error = %e, "command not written to the tag bus");
                                if let Some(a) = commander.write_failed(&key, value.timestamp_ms, tagbus::now_ms()) {
                                    send(a);
                                }
                            }
                        }
                    }
                }
            },
            r = results.recv() => {
                let Some((key, result)) = r else { return };
                if let Some(a) = commander.on_result(&key, &result) {
                    send(a);
                }
            }
            _ = sleep_until(deadline) => {
                for a in commander.expire(Instant::now(), tagbus::now_ms()) {
                    send(a);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    fn plan(persistent: bool) -> CommandPlan {
        let mut p = CommandPlan {
            max_age: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            persistent_session: persistent,
            ..Default::default()
        };
        for (sig, sbo) in [("cb1", false), ("sp", true)] {
            let t = topic(&format!("site/{sig}/set"));
            p.routes.insert(
                t.clone(),
                CommandRoute {
                    signal: sig.parse().unwrap(),
                    result_topic: t.child("result").unwrap(),
                    command_topic: t,
                    out: format!("tag/rtu1/{sig}/out").parse().unwrap(),
                    select_before_operate: sbo,
                },
            );
        }
        p.refused.insert(
            topic("site/ro/set"),
            ("ro".parse().unwrap(), topic("site/ro/set/result")),
        );
        p
    }

    fn msg(t: &str, payload: &str) -> Incoming {
        Incoming {
            topic: t.into(),
            payload: payload.into(),
            qos: 1,
            pkid: 1,
            ..Default::default()
        }
    }

    fn json(a: &Answer) -> Json {
        serde_json::from_slice(&a.payload).unwrap()
    }

    const NOW: u64 = 1_732_280_000_000;

    #[test]
    fn payloads() {
        let p = parse_payload(b" 1 ").unwrap();
        assert_eq!(
            (p.value, p.select, p.ts, p.id),
            (Value::Int(1), None, None, None)
        );
        assert_eq!(parse_payload(b"0.75").unwrap().value, Value::Float(0.75));
        assert_eq!(parse_payload(b"true").unwrap().value, Value::Int(1));
        let p = parse_payload(br#"{"value": 7.5, "select": true, "ts": 5, "id": "a1"}"#).unwrap();
        assert_eq!(p.value, Value::Float(7.5));
        assert_eq!(p.select, Some(true));
        assert_eq!(p.ts, Some(5));
        assert_eq!(p.id, Some(Json::from("a1")));
        assert_eq!(
            parse_payload(br#"{"value": false}"#).unwrap().value,
            Value::Int(0)
        );
        for (bad, why) in [
            (&b"abc"[..], "bad_value"),
            (b"nan", "bad_value"),
            (b"", "bad_value"),
            (b"\xff", "payload_not_utf8"),
            (b"{", "bad_json"),
            (br#"{"select": true}"#, "no_value"),
            (br#"{"value": "1"}"#, "bad_value"),
            (br#"{"value": 1, "select": 1}"#, "bad_select"),
            (br#"{"value": 1, "ts": -1}"#, "bad_ts"),
            (br#"{"value": 1, "id": [1]}"#, "bad_id"),
        ] {
            assert_eq!(
                parse_payload(bad),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_payload(&[b'1'; MAX_PAYLOAD + 1]),
            Err("payload_too_long")
        );
    }

    #[test]
    fn a_command_is_written_and_answered_with_its_result() {
        let mut c = Commander::new(plan(false));
        let now = Instant::now();
        let mut m = msg("site/cb1/set", "1");
        m.response_topic = Some("app/replies".into());
        m.correlation = Some(vec![1, 2, 3]);
        let Decision::Execute { key, value } = c.on_message(&m, NOW, now) else {
            panic!()
        };
        assert_eq!(key.to_string(), "tag/rtu1/cb1/out");
        assert_eq!(value.to_string(), format!("1,{NOW},"));
        // the same millisecond again (another packet id): the timestamp is bumped
        m.pkid = 2;
        let Decision::Execute { value: v2, .. } = c.on_message(&m, NOW, now) else {
            panic!()
        };
        assert_eq!(v2.timestamp_ms, NOW + 1);
        assert_eq!(c.pending(), 2);
        // a result for another command is not ours
        let other = CommandResult::now(CommandOutcome::Confirmed, NOW - 5);
        assert!(c.on_result(&key, &other).is_none());
        let r: CommandResult = format!("confirmed,{NOW},{},", NOW + 40).parse().unwrap();
        let a = c.on_result(&key, &r).unwrap();
        assert_eq!(a.topic.as_str(), "app/replies");
        assert_eq!(a.correlation, Some(vec![1, 2, 3]));
        assert_eq!(a.outcome, CommandOutcome::Confirmed);
        let j = json(&a);
        assert_eq!(j["outcome"], "confirmed");
        assert_eq!(j["command_ts"], NOW);
        assert_eq!(j["ts"], NOW + 40);
        assert_eq!(j["signal"], "cb1");
        assert_eq!(j["detail"], Json::Null);
        assert!(c.on_result(&key, &r).is_none(), "answered once");
        // the other one times out
        assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(5)));
        assert!(c.expire(now + Duration::from_secs(4), NOW).is_empty());
        let t = c.expire(now + Duration::from_secs(5), NOW + 5000);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].outcome, CommandOutcome::Timeout);
        assert_eq!(json(&t[0])["command_ts"], NOW + 1);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn refusals_answer_on_the_result_topic() {
        let mut c = Commander::new(plan(false));
        let now = Instant::now();
        let refused = |c: &mut Commander, m: &Incoming| match c.on_message(m, NOW, now) {
            Decision::Answer(a) => (a.outcome, json(&a)["detail"].clone(), a.topic.to_string()),
            d => panic!("{d:?}"),
        };
        let mut m = msg("site/cb1/set", "1");
        m.retain = true;
        assert_eq!(
            refused(&mut c, &m),
            (
                CommandOutcome::Invalid,
                Json::from("retained"),
                "site/cb1/set/result".into()
            )
        );
        let m = msg("site/cb1/set", "on");
        assert_eq!(refused(&mut c, &m).1, "bad_value");
        let m = msg(
            "site/cb1/set",
            &format!(r#"{{"value":1,"ts":{}}}"#, NOW - 10_001),
        );
        assert_eq!(refused(&mut c, &m).0, CommandOutcome::TooOld);
        let m = msg(
            "site/cb1/set",
            &format!(r#"{{"value":1,"ts":{}}}"#, NOW - 9_000),
        );
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
        let m = msg(
            "site/cb1/set",
            &format!(r#"{{"value":1,"ts":{}}}"#, NOW + 60_000),
        );
        assert_eq!(refused(&mut c, &m).1, "ts_in_future");
        // select must match the signal's configuration
        let m = msg("site/cb1/set", r#"{"value":1,"select":true}"#);
        assert_eq!(refused(&mut c, &m).1, "select_mismatch");
        let m = msg("site/sp/set", r#"{"value":1,"select":false}"#);
        assert_eq!(refused(&mut c, &m).1, "select_mismatch");
        let m = msg("site/sp/set", r#"{"value":1,"select":true}"#);
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
        // a non-writable signal: answered, never executed
        let mut m = msg("site/ro/set", "1");
        m.response_topic = Some("site/cb1/set".into()); // one of our command topics: not used
        assert_eq!(
            refused(&mut c, &m),
            (
                CommandOutcome::NotWritable,
                Json::Null,
                "site/ro/set/result".into()
            )
        );
        assert_eq!(
            c.on_message(&msg("elsewhere", "1"), NOW, now),
            Decision::Ignored
        );
        assert_eq!(c.on_message(&msg("a/+", "1"), NOW, now), Decision::Ignored);
    }

    #[test]
    fn persistent_sessions_need_a_timestamp() {
        let mut c = Commander::new(plan(true));
        let now = Instant::now();
        match c.on_message(&msg("site/cb1/set", "1"), NOW, now) {
            Decision::Answer(a) => {
                assert_eq!(a.outcome, CommandOutcome::TooOld);
                assert_eq!(json(&a)["detail"], "no_ts");
            }
            d => panic!("{d:?}"),
        }
        let mut m = msg("site/cb1/set", "1");
        m.pkid = 9;
        m.expiry = Some(5);
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
    }

    #[test]
    fn duplicates_are_executed_once() {
        let mut c = Commander::new(plan(false));
        let now = Instant::now();
        let mut m = msg("site/cb1/set", "1");
        m.pkid = 7;
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
        m.dup = true;
        assert_eq!(
            c.on_message(&m, NOW, now),
            Decision::Duplicate("dup_packet_id")
        );
        // the broker may reuse a packet id for a new message (no DUP)
        m.dup = false;
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
        // a new session forgets packet ids: a DUP there is a message we never saw
        c.on_connected(false);
        m.dup = true;
        assert!(matches!(
            c.on_message(&m, NOW, now),
            Decision::Execute { .. }
        ));
        // command ids, across packet ids and QoS
        let mut a = msg("site/cb1/set", r#"{"value":0,"id":"op-42"}"#);
        a.pkid = 100;
        assert!(matches!(
            c.on_message(&a, NOW, now),
            Decision::Execute { .. }
        ));
        a.pkid = 101;
        a.qos = 0;
        assert_eq!(
            c.on_message(&a, NOW, now),
            Decision::Duplicate("command_id")
        );
        let mut n = msg("site/cb1/set", r#"{"value":0,"id":42}"#);
        n.pkid = 102;
        assert!(matches!(
            c.on_message(&n, NOW, now),
            Decision::Execute { .. }
        ));
    }

    #[test]
    fn too_many_pending_commands_are_refused() {
        let mut c = Commander::new(plan(false));
        let now = Instant::now();
        for i in 0..MAX_PENDING {
            let mut m = msg("site/cb1/set", "1");
            m.pkid = u16::try_from(i).unwrap();
            assert!(matches!(
                c.on_message(&m, NOW, now),
                Decision::Execute { .. }
            ));
        }
        let mut m = msg("site/cb1/set", "1");
        m.pkid = 60_000;
        match c.on_message(&m, NOW, now) {
            Decision::Answer(a) => assert_eq!(json(&a)["detail"], "busy"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn recent_set_is_bounded() {
        let mut r = Recent::new(3);
        for i in 0..5 {
            r.insert(i);
        }
        assert!(!r.contains(&0) && !r.contains(&1) && r.contains(&4));
        assert_eq!(r.order.len(), 3);
        r.remove(&3);
        assert_eq!(r.set.len(), 2);
    }
}
