//! The at-least-once window of one MQTT connection, without I/O: which publishes a stream
//! entry becomes, which packet id stands for which entry, and when an entry may be
//! acknowledged in the stream (`XACK`).
//!
//! The publisher's connection loop feeds it what happens and does what it answers, in the
//! style of rumqttc's `MqttState`:
//!
//! - a stream entry with a value: [`Window::entry`] answers the routes to publish it on, now;
//!   a malformed, trimmed or unmapped entry: [`Window::skip`] (acknowledged at once);
//! - a snapshot value, a command answer: [`Window::snapshot`], [`Window::answer`] (publishes
//!   that stand for no entry);
//! - rumqttc wrote a PUBLISH (`Outgoing::Publish(pkid)`): [`Window::written`];
//! - PUBACK, PUBCOMP or a refused PUBREC with its packet id: [`Window::acked`];
//! - before the loop waits, and at the end: [`Window::take_acks`], the entry ids to `XACK`;
//! - the stream reader restarted: [`Window::reader_restarted`];
//! - the broker closed the connection: [`Window::qos2_window_after_close`], a smaller QoS 2
//!   window for the next connections;
//! - the connection ended: [`Window::close`], the ids to `XACK` still and those left pending.
//!
//! With a batch payload format ([`Window::gather_batches`]) the entries handed over are
//! gathered instead of being one publish each, until [`Window::seal`]: the batch is then one
//! publish standing for all of them, and each is acknowledged by that publish's PUBACK or
//! PUBCOMP (at QoS 0, once written), like a publish of its own.
//!
//! A reconnect starts a new window: the entries the old one left pending are still pending
//! in the stream and its reader hands them over again (a value may be published twice, none
//! is lost, and no entry is acknowledged before the broker acknowledged every publish of it).
//!
//! Publishes are reported written in the order they were handed over (rumqttc writes its
//! request queue in order), so the oldest publish not yet written gets the packet id.
//! Entry ids are generic (the stream's `EntryId` in the publisher), so that tests need no
//! Redis.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use config::mqtt::Qos;
use tagbus::TagValue;

use crate::report::{Report, Verdict};
use crate::{Route, QOS0_WINDOW};

/// QoS 1/2 publishes handed to rumqttc beyond its in-flight window (they wait in its request
/// queue, which holds them and nothing else: the stream is the buffer). A PUBACK frees a
/// slot that rumqttc refills at once, without a round trip through the connection loop.
pub(crate) const QUEUE_AHEAD: usize = 256;
/// A QoS 2 connection dropped this soon with a full window lowers the window.
const QOS2_PROBE_TIME: Duration = Duration::from_secs(10);

/// The sizes of one connection, before the broker answered (the in-flight limit rumqttc gets
/// and its request queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    qos: Qos,
    /// Publishes unacknowledged at a time (QoS 1/2), or handed over and not yet written
    /// (QoS 0).
    base_window: usize,
    /// The in-flight limit given to rumqttc.
    pub inflight_limit: u16,
}

impl Sizing {
    /// `max_inflight` of the device (at least 1); at QoS 2 the window learnt from earlier
    /// connections ([`Window::qos2_window_after_close`]) may be smaller.
    pub(crate) fn new(qos: Qos, max_inflight: u16, qos2_window: u16) -> Self {
        let max_inflight = max_inflight.max(1);
        let inflight_limit = if qos == Qos::ExactlyOnce {
            qos2_window.clamp(1, max_inflight)
        } else {
            max_inflight
        };
        let base_window = if qos == Qos::AtMostOnce {
            QOS0_WINDOW
        } else {
            usize::from(inflight_limit)
        };
        Self {
            qos,
            base_window,
            inflight_limit,
        }
    }

    /// The request queue of rumqttc: room for the window, the publishes queued ahead of it
    /// and subscriptions, twice.
    pub(crate) fn request_capacity(&self) -> usize {
        self.base_window
            .saturating_add(QUEUE_AHEAD)
            .saturating_mul(2)
            .saturating_add(64)
    }

    /// The window once connected: an MQTT 5 broker's Receive Maximum lowers it (QoS 1/2).
    pub(crate) fn window(&self, receive_max: Option<u16>) -> usize {
        match receive_max {
            Some(r) if self.qos != Qos::AtMostOnce => self.base_window.min(usize::from(r.max(1))),
            _ => self.base_window,
        }
    }
}

/// What a publish stands for: a stream entry, the entries of a batch, or nothing to
/// acknowledge (a snapshot value, a command answer).
#[derive(Debug)]
enum Token<Id> {
    Nothing,
    Entry(Id),
    Batch(Vec<Id>),
}

impl<Id> Token<Id> {
    fn into_ids(self) -> Vec<Id> {
        match self {
            Token::Nothing => Vec::new(),
            Token::Entry(id) => vec![id],
            Token::Batch(ids) => ids,
        }
    }
}

/// Batches handed to rumqttc beyond the in-flight window: a batch holds many entries, so
/// few are queued ahead (the stream is the buffer, not RAM).
const BATCHES_AHEAD: usize = 2;
/// QoS 0: batches handed to rumqttc and not yet written (a batch is up to 128 KiB).
const QOS0_BATCHES: usize = 4;

/// The routes a value goes out on, in their order: all of a key's routes (the usual case,
/// nothing allocated per value) or those picked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Picked<'r> {
    All(&'r [Route]),
    Some(Vec<&'r Route>),
}

impl<'r> Picked<'r> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Picked::All(routes) => routes.len(),
            Picked::Some(routes) => routes.len(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'r Route> + '_ {
        let (all, some): (&'r [Route], &[&'r Route]) = match self {
            Picked::All(routes) => (routes, &[]),
            Picked::Some(routes) => (&[], routes),
        };
        all.iter().chain(some.iter().copied())
    }
}

/// An entry's publishes, from [`Window::entry`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fanout<'r> {
    /// Publish the value on these routes, in this order, now (they count as handed over).
    /// Empty: nothing to publish, the entry is acknowledged already.
    pub routes: Picked<'r>,
    /// Topics skipped by `enable_threshold` (the same value and flags as last published).
    pub dropped: usize,
    /// Topics where the value was held back by the signal's deadband.
    pub suppressed: usize,
}

/// How a connection's window ended, from [`Window::close`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed<Id> {
    /// Entries the broker acknowledged before the end, not yet taken: `XACK` them.
    pub acks: Vec<Id>,
    /// Entries handed over and not acknowledged by the broker for every topic: they stay
    /// pending in the stream; the next connection's reader hands them over again.
    pub pending: Vec<Id>,
}

/// An event the window cannot account for: the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WindowError {
    #[error("publish {0} sent that was never requested")]
    Unrequested(u16),
}

/// The in-flight bookkeeping of one connection (see the module doc).
#[derive(Debug)]
pub(crate) struct Window<Id> {
    qos: Qos,
    /// Publishes in flight (QoS 1/2) or not yet written (QoS 0) at a time.
    window: usize,
    /// Publishes handed over and not yet acknowledged at a time ([`Window::has_room`]).
    handover: usize,
    /// Whether a value goes out on a topic (`enable_threshold`, deadbands, heartbeats).
    report: Report,
    /// Publishes handed to rumqttc, not yet written (their packet id is not known yet).
    unwritten: VecDeque<Token<Id>>,
    /// Written QoS 1/2 publishes by packet id (oldest first), awaiting PUBACK/PUBCOMP.
    inflight: HashMap<u16, VecDeque<Token<Id>>>,
    /// The number of tokens in `inflight`.
    inflight_count: usize,
    /// Entries published on several topics: acknowledgements still missing.
    remaining: HashMap<Id, u32>,
    /// Entries whose publishes are all acknowledged, not yet taken.
    acked: Vec<Id>,
    /// A batch payload format: entries handed over wait in `gathered` for [`Window::seal`].
    batching: bool,
    /// The entries (once per route) of the batch being gathered.
    gathered: Vec<Id>,
}

impl<Id: Clone + Eq + Hash> Window<Id> {
    /// The window of a new connection: `window` from [`Sizing::window`].
    pub(crate) fn new(qos: Qos, window: usize, threshold: bool) -> Self {
        let handover = if qos == Qos::AtMostOnce {
            window
        } else {
            window.saturating_add(QUEUE_AHEAD)
        };
        Self {
            qos,
            window,
            handover,
            report: Report::new(threshold),
            unwritten: VecDeque::with_capacity(window),
            inflight: HashMap::with_capacity(window),
            inflight_count: 0,
            remaining: HashMap::new(),
            acked: Vec::new(),
            batching: false,
            gathered: Vec::new(),
        }
    }

    /// A batch payload format: the entries and snapshot values handed over are gathered into
    /// one publish each time [`Window::seal`] is called; the window counts batches.
    pub(crate) fn gather_batches(mut self) -> Self {
        self.batching = true;
        self.handover = match self.qos {
            Qos::AtMostOnce => QOS0_BATCHES,
            _ => self.window.saturating_add(BATCHES_AHEAD),
        };
        self
    }

    /// The batch gathered so far was handed over as one publish (it may be empty of entries:
    /// snapshot values only); its entries are acknowledged with it.
    pub(crate) fn seal(&mut self) {
        let ids = std::mem::take(&mut self.gathered);
        self.unwritten.push_back(Token::Batch(ids));
    }

    /// One publish of `id` handed over: now, or into the batch being gathered.
    fn hand_over(&mut self, token: Token<Id>) {
        match token {
            Token::Entry(id) if self.batching => self.gathered.push(id),
            Token::Nothing if self.batching => {}
            token => self.unwritten.push_back(token),
        }
    }

    /// Publishes in flight (QoS 1/2) or not yet written (QoS 0) at a time.
    pub(crate) fn size(&self) -> usize {
        self.window
    }

    /// Publishes handed over and not yet acknowledged (QoS 1/2) or written (QoS 0).
    pub(crate) fn outstanding(&self) -> usize {
        self.unwritten.len().saturating_add(self.inflight_count)
    }

    /// Whether more may be handed over: the connection loop takes the next entry only then.
    pub(crate) fn has_room(&self) -> bool {
        self.outstanding() < self.handover
    }

    /// A stream entry with a value for `routes` (its key's topics), at `now`: the routes to
    /// publish it on now. An entry with no route left (every topic dropped by the threshold
    /// or held back by its deadband, or none) is acknowledged at once.
    pub(crate) fn entry<'r>(
        &mut self,
        id: Id,
        value: &TagValue,
        routes: &'r [Route],
        now: Instant,
    ) -> Fanout<'r> {
        // The routes picked, once one was left out (until then: all so far).
        let mut picked: Option<Vec<&'r Route>> = None;
        let (mut dropped, mut suppressed) = (0usize, 0usize);
        for (i, route) in routes.iter().enumerate() {
            let verdict = self.report.verdict(route, value, now);
            if verdict != Verdict::Send && picked.is_none() {
                picked = Some(routes.iter().take(i).collect());
            }
            match verdict {
                Verdict::Send => {
                    if let Some(p) = picked.as_mut() {
                        p.push(route);
                    }
                }
                Verdict::Repeat => dropped = dropped.saturating_add(1),
                Verdict::Deadband => suppressed = suppressed.saturating_add(1),
            }
        }
        let to_send = match picked {
            None => Picked::All(routes),
            Some(p) => Picked::Some(p),
        };
        match to_send.len() {
            0 => self.done(Token::Entry(id)),
            1 => self.hand_over(Token::Entry(id)),
            n => {
                self.remaining
                    .insert(id.clone(), u32::try_from(n).unwrap_or(u32::MAX));
                for _ in 0..n {
                    self.hand_over(Token::Entry(id.clone()));
                }
            }
        }
        Fanout {
            routes: to_send,
            dropped,
            suppressed,
        }
    }

    /// An entry with nothing to publish (malformed, trimmed, or its key unmapped):
    /// acknowledged at once.
    pub(crate) fn skip(&mut self, id: Id) {
        self.done(Token::Entry(id));
    }

    /// A snapshot value (it stands for no stream entry): published on every route of its key
    /// (returned as given); the report remembers it as sent.
    pub(crate) fn snapshot<'r>(
        &mut self,
        value: &TagValue,
        routes: &'r [Route],
        now: Instant,
    ) -> &'r [Route] {
        for route in routes {
            self.report.sent(route, value, now);
            self.hand_over(Token::Nothing);
        }
        routes
    }

    /// When the next heartbeat (`max_interval_s`) is due.
    pub(crate) fn next_heartbeat(&self) -> Option<Instant> {
        self.report.next_heartbeat()
    }

    /// The routes whose heartbeat is due at `now`: queue them behind the values waiting and
    /// offer each to [`Window::heartbeat`] in turn.
    pub(crate) fn due_heartbeats(&mut self, now: Instant) -> Vec<Route> {
        self.report.due(now)
    }

    /// A due heartbeat's value to publish on `route` now (it stands for no stream entry);
    /// None when the topic published a value since.
    pub(crate) fn heartbeat(&mut self, route: &Route, now: Instant) -> Option<TagValue> {
        let value = self.report.heartbeat(route, now)?;
        self.hand_over(Token::Nothing);
        Some(value)
    }

    /// A command answer was handed over: its packet is reported like any publish, and
    /// stands for no stream entry.
    pub(crate) fn answer(&mut self) {
        self.unwritten.push_back(Token::Nothing);
    }

    /// rumqttc wrote the oldest publish handed over, with packet id `pkid` (0 at QoS 0:
    /// written is done).
    pub(crate) fn written(&mut self, pkid: u16) -> Result<(), WindowError> {
        let token = self
            .unwritten
            .pop_front()
            .ok_or(WindowError::Unrequested(pkid))?;
        if self.qos == Qos::AtMostOnce {
            self.done(token);
        } else {
            // A packet id is reused only after its exchange ended on the wire, but rumqttc
            // frees a QoS 2 id at PUBREC: keep a queue per id so a late PUBCOMP acknowledges
            // the older publish, never the newer one.
            self.inflight.entry(pkid).or_default().push_back(token);
            self.inflight_count = self.inflight_count.saturating_add(1);
        }
        Ok(())
    }

    /// The broker ended the exchange of `pkid` (PUBACK; PUBCOMP; a refused PUBREC, which is
    /// a result too): the oldest publish in flight with this id is done. `false` when no
    /// publish with this id is in flight.
    #[must_use]
    pub(crate) fn acked(&mut self, pkid: u16) -> bool {
        let Some(queue) = self.inflight.get_mut(&pkid) else {
            return false;
        };
        let token = queue.pop_front();
        if queue.is_empty() {
            self.inflight.remove(&pkid);
        }
        match token {
            Some(token) => {
                self.inflight_count = self.inflight_count.saturating_sub(1);
                self.done(token);
                true
            }
            None => false,
        }
    }

    /// Entries ready to `XACK`, not yet taken.
    pub(crate) fn acks_waiting(&self) -> usize {
        self.acked.len()
    }

    /// Takes the entries ready to `XACK`: every publish of each is acknowledged by the broker
    /// (or it had none).
    pub(crate) fn take_acks(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.acked)
    }

    /// The stream reader starts over from the pending entries: none may be dropped as a
    /// repeat of a value published before.
    pub(crate) fn reader_restarted(&mut self) {
        self.report.clear();
    }

    /// The broker closed the connection after `up_for`: a broker that drops a QoS 2 client
    /// soon after connecting, with several publishes in flight, may enforce a smaller
    /// in-flight limit (mosquitto: `max_inflight_messages`) than the window. The next
    /// connections use at most half the window, and fewer than were in flight at the close,
    /// instead of looping forever. The window need not have been full: under load rumqttc may
    /// not have written all of it when the broker's limit was crossed. `None`: keep the window
    /// (one in flight at most, or the connection lasted).
    pub(crate) fn qos2_window_after_close(&self, up_for: Duration) -> Option<u16> {
        if self.qos != Qos::ExactlyOnce || self.window <= 1 || up_for >= QOS2_PROBE_TIME {
            return None;
        }
        if self.inflight_count <= 1 {
            return None;
        }
        let lower = (self.window / 2).min(self.inflight_count.saturating_sub(1));
        Some(u16::try_from(lower).unwrap_or(u16::MAX).max(1))
    }

    /// The connection ended: what to `XACK` still, and what stays pending in the stream.
    pub(crate) fn close(mut self) -> Closed<Id> {
        let mut seen = HashSet::new();
        let pending = self
            .unwritten
            .drain(..)
            .chain(self.inflight.into_values().flatten())
            .flat_map(Token::into_ids)
            .chain(self.gathered)
            .filter(|id| seen.insert(id.clone()))
            .collect();
        Closed {
            acks: self.acked,
            pending,
        }
    }

    /// One publish of `token` is acknowledged; an entry is ready to `XACK` when all of its are.
    fn done(&mut self, token: Token<Id>) {
        match token {
            Token::Nothing => {}
            Token::Entry(id) => self.done_entry(id),
            Token::Batch(ids) => {
                for id in ids {
                    self.done_entry(id);
                }
            }
        }
    }

    /// One publish of entry `id` is acknowledged.
    fn done_entry(&mut self, id: Id) {
        // An entry of one publish (the usual case) is not in `remaining`: nothing is hashed
        // while no entry of several publishes is outstanding.
        if !self.remaining.is_empty() {
            if let Some(n) = self.remaining.get_mut(&id) {
                *n = n.saturating_sub(1);
                if *n > 0 {
                    return;
                }
                self.remaining.remove(&id);
            }
        }
        self.acked.push(id);
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn route(topic: &str) -> Route {
        Route {
            topic: config::mqtt::Topic::new(topic).unwrap(),
            log: false,
            report: Default::default(),
        }
    }

    fn value(v: i64) -> TagValue {
        TagValue {
            value: tagbus::Value::Int(v),
            timestamp_ms: 1_700_000_000_000,
            flags: tagbus::Flags::empty(),
        }
    }

    /// Hands entry `id` over on `routes` and returns how many publishes it became.
    fn hand(w: &mut Window<u32>, id: u32, v: i64, routes: &[Route]) -> usize {
        w.entry(id, &value(v), routes, Instant::now()).routes.len()
    }

    #[test]
    fn qos1_acks_out_of_order_release_each_entry_on_its_own_ack() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::AtLeastOnce, 3, false);
        for id in 1..=3 {
            assert_eq!(hand(&mut w, id, 10, &a), 1);
        }
        for pkid in 1..=3 {
            w.written(pkid).unwrap();
        }
        assert!(
            w.take_acks().is_empty(),
            "nothing acknowledged before the broker did"
        );
        assert_eq!(w.outstanding(), 3);
        assert!(w.acked(3));
        assert_eq!(w.take_acks(), vec![3]);
        assert!(w.acked(1));
        assert_eq!(w.take_acks(), vec![1]);
        assert!(
            !w.acked(3),
            "a second PUBACK of the same id acknowledges nothing"
        );
        assert!(w.take_acks().is_empty());
        assert!(w.acked(2));
        assert_eq!(w.take_acks(), vec![2]);
        assert_eq!(w.outstanding(), 0);
        assert_eq!(
            w.close(),
            Closed {
                acks: vec![],
                pending: vec![]
            }
        );
    }

    #[test]
    fn qos2_reused_packet_id_acknowledges_the_older_publish_first() {
        // rumqttc frees a QoS 2 id at PUBREC: the next publish may get it while the first
        // still waits for its PUBCOMP.
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::ExactlyOnce, 2, false);
        hand(&mut w, 1, 1, &a);
        w.written(1).unwrap();
        hand(&mut w, 2, 2, &a);
        w.written(1).unwrap();
        hand(&mut w, 3, 3, &a);
        w.written(2).unwrap();
        assert!(w.acked(1), "PUBCOMP 1 of entry 1");
        assert_eq!(w.take_acks(), vec![1]);
        assert!(w.acked(2), "PUBCOMP 2 of entry 3, before entry 2's");
        assert_eq!(w.take_acks(), vec![3]);
        assert!(w.acked(1), "PUBCOMP 1 of entry 2");
        assert_eq!(w.take_acks(), vec![2]);
        assert!(!w.acked(1), "no publish left with id 1");
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn a_refused_pubrec_ends_the_exchange_like_a_pubcomp() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::ExactlyOnce, 4, false);
        hand(&mut w, 7, 1, &a);
        w.written(9).unwrap();
        assert!(w.acked(9));
        assert_eq!(w.take_acks(), vec![7]);
    }

    #[test]
    fn an_entry_on_several_topics_is_acknowledged_after_its_last_puback() {
        let two = [route("plant/a"), route("plant/b")];
        let three = [route("site/x"), route("site/y"), route("site/z")];
        let mut w = Window::new(Qos::AtLeastOnce, 10, false);
        let fanout = w.entry(1, &value(5), &two, Instant::now());
        assert_eq!(fanout.routes, Picked::All(&two[..]));
        assert_eq!(fanout.dropped, 0);
        assert_eq!(hand(&mut w, 2, 6, &three), 3);
        assert_eq!(w.outstanding(), 5);
        for pkid in 1..=5 {
            w.written(pkid).unwrap();
        }
        // Acks in another order than sent: entry 2's topics first, then entry 1's.
        assert!(w.acked(5));
        assert!(w.acked(2));
        assert!(w.acked(3));
        assert!(w.take_acks().is_empty(), "each has a topic unacknowledged");
        assert!(w.acked(4));
        assert_eq!(w.take_acks(), vec![2]);
        assert!(w.acked(1));
        assert_eq!(w.take_acks(), vec![1]);
    }

    #[test]
    fn threshold_drops_repeats_per_topic_and_an_entry_with_none_left_is_acknowledged() {
        let two = [route("plant/a"), route("plant/b")];
        let a_only = [route("plant/a")];
        let mut w = Window::new(Qos::AtLeastOnce, 10, true);
        assert_eq!(hand(&mut w, 1, 5, &two), 2);
        // The same value on both topics: nothing to publish, acknowledged at once.
        let fanout = w.entry(2, &value(5), &two, Instant::now());
        assert_eq!(fanout.routes.len(), 0);
        assert_eq!(fanout.routes.iter().count(), 0);
        assert_eq!(fanout.dropped, 2);
        assert_eq!(w.take_acks(), vec![2]);
        // A new value on topic a only, then the old one on both: b is a repeat.
        assert_eq!(hand(&mut w, 3, 6, &a_only), 1);
        let fanout = w.entry(4, &value(5), &two, Instant::now());
        assert_eq!(fanout.routes, Picked::Some(vec![&two[0]]));
        assert_eq!(fanout.routes.iter().collect::<Vec<_>>(), vec![&two[0]]);
        assert_eq!(fanout.dropped, 1);
        // A quality change is never a repeat.
        let mut bad = value(5);
        bad.flags = "nt".parse().unwrap();
        assert_eq!(w.entry(5, &bad, &two, Instant::now()).routes.len(), 2);
        // After the reader restarted, pending entries go out again.
        w.reader_restarted();
        assert_eq!(hand(&mut w, 1, 5, &two), 2);
    }

    #[test]
    fn snapshot_values_and_answers_take_packets_but_acknowledge_no_entry() {
        let two = [route("plant/a"), route("plant/b")];
        let mut w = Window::new(Qos::AtLeastOnce, 10, true);
        assert_eq!(w.snapshot(&value(1), &two, Instant::now()).len(), 2);
        w.answer();
        hand(&mut w, 8, 2, &two[..1]);
        for pkid in 1..=4 {
            w.written(pkid).unwrap();
        }
        for pkid in 1..=3 {
            assert!(w.acked(pkid));
        }
        assert!(w.take_acks().is_empty());
        assert!(w.acked(4));
        assert_eq!(w.take_acks(), vec![8]);
        // The snapshot is remembered: the same value on b is a repeat.
        assert_eq!(
            w.entry(9, &value(1), &two, Instant::now()).routes,
            Picked::Some(vec![&two[0]])
        );
    }

    #[test]
    fn skipped_entries_are_acknowledged_at_once_in_order() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::AtLeastOnce, 10, false);
        w.skip(1);
        hand(&mut w, 2, 1, &a);
        w.skip(3);
        assert_eq!(w.take_acks(), vec![1, 3]);
        assert_eq!(w.outstanding(), 1);
    }

    #[test]
    fn qos0_is_done_when_written() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::AtMostOnce, 2, false);
        hand(&mut w, 1, 1, &a);
        hand(&mut w, 2, 2, &a);
        assert!(
            !w.has_room(),
            "at QoS 0 the window counts unwritten publishes"
        );
        w.written(0).unwrap();
        assert!(w.has_room());
        assert_eq!(w.take_acks(), vec![1]);
        assert!(!w.acked(0));
        w.written(0).unwrap();
        assert_eq!(w.take_acks(), vec![2]);
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn a_write_nothing_was_handed_over_for_is_an_error() {
        let mut w: Window<u32> = Window::new(Qos::AtLeastOnce, 1, false);
        assert_eq!(w.written(4), Err(WindowError::Unrequested(4)));
    }

    #[test]
    fn a_close_with_a_full_window_leaves_every_unacknowledged_entry_pending() {
        let a = [route("plant/a")];
        let two = [route("plant/a"), route("plant/b")];
        let mut w = Window::new(Qos::ExactlyOnce, 4, false);
        // The window and the queue ahead of it fill: entry 1 on two topics, then singles.
        let mut id = 1;
        hand(&mut w, id, 0, &two);
        while w.has_room() {
            id += 1;
            hand(&mut w, id, 0, &a);
        }
        let last = id;
        assert_eq!(w.outstanding(), 4 + QUEUE_AHEAD);
        for pkid in 1..=4 {
            w.written(pkid).unwrap();
        }
        assert!(!w.has_room());
        // Entry 1's first topic and entry 2 are acknowledged; the window has room again.
        assert!(w.acked(1));
        assert!(w.acked(3));
        assert!(w.has_room());
        assert_eq!(w.take_acks(), vec![2]);
        hand(&mut w, last + 1, 0, &a);
        w.written(5).unwrap();
        w.written(6).unwrap();
        // Four in flight: the broker dropping us now says its limit is lower.
        assert_eq!(w.qos2_window_after_close(Duration::from_secs(1)), Some(2));
        assert_eq!(w.qos2_window_after_close(QOS2_PROBE_TIME), None);
        assert!(w.acked(4));
        let closed = w.close();
        assert_eq!(closed.acks, vec![3]);
        let mut pending = closed.pending;
        pending.sort_unstable();
        let mut expected: Vec<u32> = (4..=last + 1).collect();
        expected.insert(0, 1);
        assert_eq!(
            pending, expected,
            "entry 1 waits for topic b; nothing else is lost"
        );
    }

    #[test]
    fn the_qos2_window_is_lowered_when_several_were_in_flight() {
        let a = [route("plant/a")];
        for (qos, window, in_flight, lower) in [
            (Qos::ExactlyOnce, 4, 4, Some(2)),
            // not full (under load rumqttc had not written it all): lowered all the same
            (Qos::ExactlyOnce, 4, 3, Some(2)),
            (Qos::ExactlyOnce, 100, 25, Some(24)),
            (Qos::ExactlyOnce, 100, 100, Some(50)),
            (Qos::ExactlyOnce, 4, 1, None),
            (Qos::ExactlyOnce, 1, 1, None),
            (Qos::ExactlyOnce, 3, 3, Some(1)),
            (Qos::AtLeastOnce, 4, 4, None),
        ] {
            let mut w = Window::new(qos, window, false);
            for id in 0..in_flight {
                hand(&mut w, id, 0, &a);
                w.written(u16::try_from(id).unwrap() + 1).unwrap();
            }
            assert_eq!(
                w.qos2_window_after_close(Duration::from_millis(500)),
                lower,
                "{qos:?} window {window} with {in_flight} in flight"
            );
        }
    }

    #[test]
    fn a_reconnect_publishes_the_pending_entries_again_and_acknowledges_each_once() {
        let a = [route("plant/a")];
        let two = [route("plant/a"), route("plant/b")];
        let mut xacked: Vec<u32> = Vec::new();
        // First connection: five entries, the fifth on two topics; the broker acknowledges
        // entries 2 and 4 and one topic of entry 5, then the connection drops.
        let mut first = Window::new(Qos::AtLeastOnce, 8, false);
        for id in 1..=4 {
            hand(&mut first, id, i64::from(id), &a);
        }
        hand(&mut first, 5, 5, &two);
        for pkid in 1..=6 {
            first.written(pkid).unwrap();
        }
        assert!(first.acked(4));
        assert!(first.acked(2));
        xacked.extend(first.take_acks());
        assert!(first.acked(6));
        let closed = first.close();
        assert!(closed.acks.is_empty());
        let mut pending = closed.pending;
        pending.sort_unstable();
        assert_eq!(pending, vec![1, 3, 5]);
        // Second connection: the reader hands the pending entries over again (in stream
        // order), then a new one; every ack comes, in reverse order.
        let mut second = Window::new(Qos::AtLeastOnce, 8, false);
        for id in [1, 3] {
            hand(&mut second, id, i64::from(id), &a);
        }
        hand(&mut second, 5, 5, &two);
        hand(&mut second, 6, 6, &a);
        for pkid in 1..=5 {
            second.written(pkid).unwrap();
        }
        assert!(second.take_acks().is_empty());
        for pkid in (1..=5).rev() {
            assert!(second.acked(pkid));
        }
        xacked.extend(second.take_acks());
        let closed = second.close();
        assert_eq!(
            closed,
            Closed {
                acks: vec![],
                pending: vec![]
            }
        );
        assert_eq!(xacked, vec![4, 2, 6, 5, 3, 1]);
        let mut all = xacked.clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all,
            (1..=6).collect::<Vec<_>>(),
            "nothing lost, nothing twice"
        );
    }

    /// A simple LCG: scripted random orders without a dependency.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).unwrap() % n
        }
    }

    #[test]
    fn random_ack_orders_acknowledge_every_entry_once_after_all_its_pubacks() {
        let routes: Vec<Route> = (0..3).map(|i| route(&format!("plant/{i}"))).collect();
        for seed in 0..200 {
            let mut rng = Lcg(seed);
            let mut w = Window::new(Qos::AtLeastOnce, 16, false);
            // entry id -> PUBACKs still missing; packet id -> entry (unique while in flight).
            let mut missing: HashMap<u32, usize> = HashMap::new();
            let mut on_wire: Vec<(u16, u32)> = Vec::new();
            let mut handed: VecDeque<u32> = VecDeque::new();
            let mut xacked: Vec<u32> = Vec::new();
            let mut next_pkid: u16 = 1;
            let mut next_id = 0u32;
            let total = 60;
            while xacked.len() < total {
                match rng.below(3) {
                    0 if usize::try_from(next_id).unwrap() < total && w.has_room() => {
                        let n = 1 + rng.below(routes.len());
                        let sent = hand(&mut w, next_id, 1, &routes[..n]);
                        missing.insert(next_id, sent);
                        handed.extend(std::iter::repeat_n(next_id, sent));
                        next_id += 1;
                    }
                    1 if !handed.is_empty() => {
                        let id = handed.pop_front().unwrap();
                        w.written(next_pkid).unwrap();
                        on_wire.push((next_pkid, id));
                        next_pkid = next_pkid.wrapping_add(1).max(1);
                    }
                    2 if !on_wire.is_empty() => {
                        let (pkid, id) = on_wire.swap_remove(rng.below(on_wire.len()));
                        assert!(w.acked(pkid));
                        *missing.get_mut(&id).unwrap() -= 1;
                    }
                    _ => {}
                }
                for id in w.take_acks() {
                    assert_eq!(missing[&id], 0, "seed {seed}: entry {id} XACKed early");
                    assert!(
                        !xacked.contains(&id),
                        "seed {seed}: entry {id} XACKed twice"
                    );
                    xacked.push(id);
                }
            }
            assert_eq!(w.outstanding(), 0, "seed {seed}");
        }
    }

    #[test]
    fn sizing_follows_qos_max_inflight_and_receive_maximum() {
        let q0 = Sizing::new(Qos::AtMostOnce, 20, 20);
        assert_eq!(q0.inflight_limit, 20);
        assert_eq!(
            q0.window(Some(5)),
            QOS0_WINDOW,
            "Receive Maximum is for QoS 1/2"
        );
        assert_eq!(q0.request_capacity(), (QOS0_WINDOW + QUEUE_AHEAD) * 2 + 64);
        let q1 = Sizing::new(Qos::AtLeastOnce, 20, 3);
        assert_eq!(q1.inflight_limit, 20, "the QoS 2 window does not apply");
        assert_eq!(q1.window(None), 20);
        assert_eq!(q1.window(Some(5)), 5);
        assert_eq!(q1.window(Some(0)), 1);
        assert_eq!(q1.window(Some(100)), 20);
        let q2 = Sizing::new(Qos::ExactlyOnce, 20, 5);
        assert_eq!(q2.inflight_limit, 5);
        assert_eq!(q2.window(None), 5);
        assert_eq!(Sizing::new(Qos::ExactlyOnce, 20, 0).inflight_limit, 1);
        assert_eq!(Sizing::new(Qos::ExactlyOnce, 8, 20).inflight_limit, 8);
        assert_eq!(Sizing::new(Qos::AtLeastOnce, 0, 20).inflight_limit, 1);
    }

    #[test]
    fn a_batch_is_one_publish_and_its_entries_are_acknowledged_by_its_puback() {
        let (a, b) = ([route("plant/a")], [route("plant/b"), route("plant/c")]);
        let mut w = Window::new(Qos::AtLeastOnce, 2, false).gather_batches();
        assert_eq!(hand(&mut w, 1, 10, &a), 1);
        assert_eq!(hand(&mut w, 2, 11, &b), 2, "one entry on two topics");
        w.snapshot(&value(5), &a, Instant::now());
        assert_eq!(w.outstanding(), 0, "gathered, not handed over yet");
        w.seal();
        assert_eq!(hand(&mut w, 3, 12, &a), 1);
        w.seal();
        w.seal(); // a batch of snapshot values only
        assert_eq!(w.outstanding(), 3);
        for pkid in 1..=3 {
            w.written(pkid).unwrap();
        }
        assert!(w.acked(2));
        assert_eq!(w.take_acks(), vec![3]);
        assert!(w.acked(3));
        assert!(w.take_acks().is_empty());
        assert!(w.acked(1));
        assert_eq!(
            w.take_acks(),
            vec![1, 2],
            "entry 2 after its batch's PUBACK"
        );
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn a_close_leaves_the_entries_of_unacknowledged_and_unsent_batches_pending() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::AtLeastOnce, 4, false).gather_batches();
        hand(&mut w, 1, 1, &a);
        hand(&mut w, 2, 2, &a);
        w.seal();
        w.written(1).unwrap();
        hand(&mut w, 3, 3, &a);
        w.seal();
        hand(&mut w, 4, 4, &a); // gathered, never sealed
        assert_eq!(
            w.close(),
            Closed {
                acks: vec![],
                pending: vec![3, 1, 2, 4]
            }
        );
    }

    #[test]
    fn a_qos0_batch_is_done_when_written_and_the_handover_counts_batches() {
        let a = [route("plant/a")];
        let mut w = Window::new(Qos::AtMostOnce, QOS0_WINDOW, false).gather_batches();
        for id in 1..=100 {
            hand(&mut w, id, 1, &a);
        }
        for _ in 0..QOS0_BATCHES {
            assert!(w.has_room());
            w.seal();
        }
        assert!(
            !w.has_room(),
            "a few QoS 0 batches at a time, not QOS0_WINDOW"
        );
        w.written(0).unwrap();
        assert_eq!(w.take_acks(), (1..=100).collect::<Vec<_>>());
        let mut q1 = Window::<u32>::new(Qos::AtLeastOnce, 2, false).gather_batches();
        for _ in 0..2 + BATCHES_AHEAD {
            assert!(q1.has_room());
            q1.seal();
        }
        assert!(
            !q1.has_room(),
            "a QoS 1 window queues only a few batches ahead"
        );
    }
}
