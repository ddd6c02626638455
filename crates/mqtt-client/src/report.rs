//! Report by exception, without I/O: whether a value goes out on a topic. The one home of
//! that decision: the device's `enable_threshold` (drop a repeat), the signal's `deadband` /
//! `deadband_percent` (hold back a small change) and `max_interval_s` (re-send the latest
//! value after a quiet spell). The column meanings are `config::report`'s.
//!
//! Rules, in order, per topic and per connection (the [`crate::window::Window`] owns one
//! [`Report`] and starts a new one with every connection):
//! 1. the first value of a topic goes out (the backlog's first, then the snapshot's, which
//!    always goes out: after a connect or a reader restart the broker gets the current value);
//! 2. a value whose flags differ from the last value sent goes out (quality is never held);
//! 3. with `enable_threshold`, a value and flags equal to the last sent are dropped
//!    ([`Verdict::Repeat`]);
//! 4. with a deadband, a value within the band around the last value **sent** is held back
//!    ([`Verdict::Deadband`]); anything else goes out.
//!
//! A held-back value is still the topic's latest: a heartbeat (`max_interval_s` after the
//! last send) publishes the latest value received, as received (value, timestamp, flags),
//! so the broker (and its retained message) never stays more than `max_interval_s` behind,
//! and is never more than the band away from the source in between. A stale source is a
//! flag change (`nt`, `nolink`, ...), which rule 2 always sends: a deadband never lets the
//! broker show a value as good that the source no longer vouches for.
//!
//! Topics with none of the settings keep no state (nothing is looked up per value).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use config::mqtt::Topic;
use tagbus::{Flags, TagValue, Value};

use crate::Route;

/// What happens to a value on one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// `enable_threshold`: the same value and flags as the last sent.
    Repeat,
    /// Within the signal's deadband around the last value sent.
    Deadband,
}

/// What a topic sent last on this connection.
#[derive(Debug)]
struct Last {
    value: Value,
    flags: Flags,
    /// With `max_interval_s`: the heartbeat's state.
    heartbeat: Option<Heartbeat>,
}

#[derive(Debug)]
struct Heartbeat {
    route: Route,
    /// The latest value received (sent or held back): what a heartbeat sends.
    latest: TagValue,
    /// When it is due; None once [`Report::due`] handed it out (until the next send).
    due: Option<Instant>,
}

/// The report-by-exception state of one connection (see the module doc).
#[derive(Debug)]
pub(crate) struct Report {
    threshold: bool,
    last: HashMap<Topic, Last>,
    /// Heartbeats scheduled: when, and on which topic.
    schedule: BTreeSet<(Instant, Topic)>,
}

fn as_f64(v: Value) -> f64 {
    match v {
        Value::Float(f) => f,
        // Engineering values: exact up to 2^53, and a band is never finer than that.
        #[allow(clippy::cast_precision_loss)]
        Value::Int(i) => i as f64,
    }
}

impl Report {
    /// `threshold`: the device's `enable_threshold`.
    pub(crate) fn new(threshold: bool) -> Self {
        Self {
            threshold,
            last: HashMap::new(),
            schedule: BTreeSet::new(),
        }
    }

    fn tracks(&self, route: &Route) -> bool {
        self.threshold || route.report.is_some()
    }

    /// A stream entry's value for `route`: whether it goes out now. A value that goes out is
    /// remembered as sent.
    pub(crate) fn verdict(&mut self, route: &Route, value: &TagValue, now: Instant) -> Verdict {
        if !self.tracks(route) {
            return Verdict::Send;
        }
        let verdict = match self.last.get_mut(&route.topic) {
            None => Verdict::Send,
            Some(last) => {
                if let Some(h) = last.heartbeat.as_mut() {
                    h.latest = value.clone();
                }
                if last.flags != value.flags {
                    Verdict::Send
                } else if self.threshold && last.value == value.value {
                    Verdict::Repeat
                } else if route
                    .report
                    .as_ref()
                    .and_then(|r| r.deadband)
                    .is_some_and(|d| d.holds_back(as_f64(last.value), as_f64(value.value)))
                {
                    Verdict::Deadband
                } else {
                    Verdict::Send
                }
            }
        };
        if verdict == Verdict::Send {
            self.sent(route, value, now);
        }
        verdict
    }

    /// `value` goes out on `route` now (a snapshot value, or one [`Report::verdict`] let
    /// through): the band is measured from it, and its heartbeat is due `max_interval_s`
    /// from now.
    pub(crate) fn sent(&mut self, route: &Route, value: &TagValue, now: Instant) {
        if !self.tracks(route) {
            return;
        }
        let due = route
            .report
            .as_ref()
            .and_then(|r| r.max_interval)
            .and_then(|i| now.checked_add(i));
        let old_due = match self.last.get_mut(&route.topic) {
            Some(last) => {
                last.value = value.value;
                last.flags.clone_from(&value.flags);
                match (last.heartbeat.as_mut(), due) {
                    (Some(h), Some(_)) => {
                        h.latest = value.clone();
                        std::mem::replace(&mut h.due, due)
                    }
                    _ => None,
                }
            }
            None => {
                let heartbeat = due.map(|_| Heartbeat {
                    route: route.clone(),
                    latest: value.clone(),
                    due,
                });
                self.last.insert(
                    route.topic.clone(),
                    Last {
                        value: value.value,
                        flags: value.flags.clone(),
                        heartbeat,
                    },
                );
                None
            }
        };
        if let Some(old) = old_due {
            self.schedule.remove(&(old, route.topic.clone()));
        }
        if let Some(due) = due {
            self.schedule.insert((due, route.topic.clone()));
        }
    }

    /// When the next heartbeat is due.
    pub(crate) fn next_heartbeat(&self) -> Option<Instant> {
        self.schedule.first().map(|(t, _)| *t)
    }

    /// The routes whose heartbeat is due at `now`, taken off the schedule. Each is then
    /// offered to [`Report::heartbeat`] in turn (after the values queued before it).
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Route> {
        let mut routes = Vec::new();
        while let Some((t, _)) = self.schedule.first() {
            if *t > now {
                break;
            }
            let Some((_, topic)) = self.schedule.pop_first() else {
                break;
            };
            if let Some(h) = self.last.get_mut(&topic).and_then(|l| l.heartbeat.as_mut()) {
                h.due = None;
                routes.push(h.route.clone());
            }
        }
        routes
    }

    /// The heartbeat of a route [`Report::due`] handed out: the latest value to publish now,
    /// remembered as sent; None when the topic sent a value since (it is scheduled anew).
    pub(crate) fn heartbeat(&mut self, route: &Route, now: Instant) -> Option<TagValue> {
        let h = self.last.get(&route.topic)?.heartbeat.as_ref()?;
        if h.due.is_some() {
            return None;
        }
        let value = h.latest.clone();
        self.sent(route, &value, now);
        Some(value)
    }

    /// Forget every topic: the next value of each goes out (a stream reader restart).
    pub(crate) fn clear(&mut self) {
        self.last.clear();
        self.schedule.clear();
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use std::time::Duration;

    use config::report::{Deadband, Reporting};

    use super::*;

    fn route(topic: &str, deadband: Option<Deadband>, max_interval_s: Option<u64>) -> Route {
        Route {
            topic: Topic::new(topic).unwrap(),
            log: false,
            report: Some(Box::new(Reporting {
                deadband,
                max_interval: max_interval_s.map(Duration::from_secs),
            }))
            .filter(|r| r.is_on()),
        }
    }

    fn v(s: &str) -> TagValue {
        s.parse().unwrap()
    }

    /// Feeds `values` (payload text, seconds after t0) to one route; returns the verdicts.
    fn run(report: &mut Report, r: &Route, t0: Instant, values: &[(&str, u64)]) -> Vec<Verdict> {
        values
            .iter()
            .map(|(s, at)| report.verdict(r, &v(s), t0 + Duration::from_secs(*at)))
            .collect()
    }

    use Verdict::{Deadband as Held, Repeat, Send};

    #[test]
    fn absolute_deadband_is_measured_from_the_last_value_sent() {
        let t0 = Instant::now();
        let r = route("a", Some(Deadband::Absolute(0.5)), None);
        let mut report = Report::new(false);
        let got = run(
            &mut report,
            &r,
            t0,
            &[
                ("10.0,1,", 0),    // first: sent
                ("10.4,2,", 0),    // |0.4| <= 0.5: held
                ("10.5,3,", 0),    // |0.5| <= 0.5: held (the band is inclusive)
                ("10.51,4,", 0),   // out of the band around 10.0: sent
                ("10.9,5,", 0),    // 0.39 from 10.51: held (a slow drift...)
                ("11.02,6,", 0),   // ...goes out once it leaves the band: 0.51
                ("11.02,7,nt", 0), // same value, new flags: sent
                ("11.02,8,nt", 0), // no threshold: an unchanged value is within the band
                ("nan,9,nt", 0),   // NaN is never within a band
                ("nan,10,nt", 0),
                ("5,11,nt", 0), // an Int compared as a number
                ("5,12,", 0),   // flags back to good: sent
            ],
        );
        assert_eq!(
            got,
            [Send, Held, Held, Send, Held, Send, Send, Held, Send, Send, Send, Send]
        );
    }

    #[test]
    fn percent_deadband_is_relative_to_the_last_sent_magnitude() {
        let t0 = Instant::now();
        let r = route("a", Some(Deadband::Percent(10.0)), None);
        let mut report = Report::new(false);
        let got = run(
            &mut report,
            &r,
            t0,
            &[
                ("-200,1,", 0),  // first
                ("-181,2,", 0),  // 19 <= 20: held
                ("-179,3,", 0),  // 21 > 20: sent; band now 17.9
                ("-161,4,", 0),  // 18 > 17.9: sent
                ("0,5,", 0),     // sent; band now 0
                ("0,6,", 0),     // unchanged at 0: held
                ("0.001,7,", 0), // any change from 0 is sent
            ],
        );
        assert_eq!(got, [Send, Held, Send, Send, Send, Held, Send]);
    }

    #[test]
    fn threshold_drops_repeats_and_counts_them_apart_from_the_deadband() {
        let t0 = Instant::now();
        let plain = route("p", None, None);
        let banded = route("b", Some(Deadband::Absolute(1.0)), None);
        let mut report = Report::new(true);
        let seq = [("1,1,", 0), ("1,2,", 0), ("1.5,3,", 0), ("1,4,iv", 0)];
        assert_eq!(
            run(&mut report, &plain, t0, &seq),
            [Send, Repeat, Send, Send]
        );
        assert_eq!(
            run(&mut report, &banded, t0, &seq),
            [Send, Repeat, Held, Send]
        );
        // Without threshold or settings a topic keeps no state.
        let mut off = Report::new(false);
        assert_eq!(run(&mut off, &plain, t0, &seq[..2]), [Send, Send]);
        assert!(off.last.is_empty());
    }

    #[test]
    fn a_snapshot_value_always_goes_out_and_resets_the_band() {
        let t0 = Instant::now();
        let r = route("a", Some(Deadband::Absolute(1.0)), None);
        let mut report = Report::new(true);
        assert_eq!(run(&mut report, &r, t0, &[("10,1,", 0)]), [Send]);
        report.sent(&r, &v("10.8,2,"), t0);
        assert_eq!(
            run(&mut report, &r, t0, &[("11.7,3,", 0), ("11.9,4,", 0)]),
            [Held, Send],
            "measured from the snapshot's 10.8"
        );
        report.clear();
        assert_eq!(run(&mut report, &r, t0, &[("11.9,5,", 0)]), [Send]);
    }

    #[test]
    fn heartbeat_resends_the_latest_value_after_max_interval_without_a_send() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let r = route("a", Some(Deadband::Absolute(1.0)), Some(60));
        let quiet = route("q", None, Some(30));
        let mut report = Report::new(true);
        assert_eq!(report.next_heartbeat(), None);
        assert_eq!(run(&mut report, &r, t0, &[("10,1,", 0)]), [Send]);
        report.sent(&quiet, &v("7,1,"), t0 + s(5));
        assert_eq!(report.next_heartbeat(), Some(t0 + s(35)));
        // 10.4 is held back at 20 s and again at 50 s (a repeat of the held value, not of the
        // last sent one); neither reschedules.
        assert_eq!(
            run(&mut report, &r, t0, &[("10.4,20,", 20), ("10.4,20,", 50)]),
            [Held, Held]
        );
        assert!(report.due(t0 + s(34)).is_empty());
        let due = report.due(t0 + s(60));
        let topics: Vec<&str> = due.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(topics, ["q", "a"], "in due order");
        assert_eq!(report.next_heartbeat(), None, "both taken off the schedule");
        // The heartbeat of a: its latest value (the held-back one), as received.
        let hb = report.heartbeat(&due[1], t0 + s(61)).unwrap();
        assert_eq!(hb.to_wcc_payload(), "10.4,20,1");
        assert_eq!(report.heartbeat(&due[1], t0 + s(61)), None, "once");
        // q sends a new value before its heartbeat goes out: no heartbeat, a new schedule.
        assert_eq!(run(&mut report, &quiet, t0, &[("8,62,", 62)]), [Send]);
        assert_eq!(report.heartbeat(&due[0], t0 + s(62)), None);
        assert_eq!(report.next_heartbeat(), Some(t0 + s(92)));
        // a's band is now measured from the heartbeat's 10.4; its next heartbeat at 121 s.
        assert_eq!(run(&mut report, &r, t0, &[("11.3,70,", 70)]), [Held]);
        assert_eq!(report.due(t0 + s(120)).len(), 1, "q at 92 s");
        let due = report.due(t0 + s(121));
        assert_eq!(due.len(), 1);
        assert_eq!(
            report
                .heartbeat(&due[0], t0 + s(121))
                .unwrap()
                .to_wcc_payload(),
            "11.3,70,1"
        );
    }
}
