//! Link state machine tests against a scripted peer (sans-IO, time passed in).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use iec60870::*;
use std::time::{Duration, Instant};

fn drain(link: &mut Link) -> Vec<Frame> {
    std::iter::from_fn(|| link.poll_transmit()).collect()
}

fn events(link: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn s(n: u16) -> SeqNum {
    SeqNum::new(n)
}

fn i_frame(ns: u16, nr: u16) -> Frame {
    Frame::I {
        ns: s(ns),
        nr: s(nr),
        asdu: vec![100, 1, 6, 0, 1, 0, 0, 0, 0, 20],
    }
}

/// A started master link at `t0`.
fn started_master(t0: Instant) -> Link {
    let mut l = Link::new(Role::Controlling, LinkConfig::default(), t0);
    l.start(t0);
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::StartDtAct)]);
    l.handle_frame(Frame::U(UFunction::StartDtCon), t0).unwrap();
    assert_eq!(events(&mut l), vec![LinkEvent::Started]);
    l
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn nothing_sent_before_startdt_con() {
    let t0 = Instant::now();
    let mut l = Link::new(Role::Controlling, LinkConfig::default(), t0);
    assert_eq!(l.send_asdu(vec![1], t0), Err(SendError::NotStarted));
    l.start(t0);
    assert_eq!(l.send_asdu(vec![1], t0), Err(SendError::NotStarted));
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::StartDtAct)]);
    // an I frame before STARTDT con closes the link
    assert_eq!(
        l.handle_frame(i_frame(0, 0), t0),
        Err(LinkError::NotStarted("I"))
    );
}

#[test]
fn startdt_con_missing_t1_closes() {
    let t0 = Instant::now();
    let mut l = Link::new(Role::Controlling, LinkConfig::default(), t0);
    l.start(t0);
    assert_eq!(l.next_deadline(), Some(t0 + secs(15)));
    assert!(l.handle_timeout(t0 + secs(14)).is_ok());
    assert_eq!(
        l.handle_timeout(t0 + secs(15)),
        Err(LinkError::T1Expired("STARTDT con"))
    );
}

#[test]
fn t1_expiry_on_unacknowledged_i_frame_closes() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.send_asdu(vec![1, 2], t0 + secs(1)).unwrap();
    assert!(matches!(drain(&mut l)[..], [Frame::I { .. }]));
    assert_eq!(l.next_deadline(), Some(t0 + secs(16)));
    assert!(l.handle_timeout(t0 + secs(15)).is_ok());
    assert_eq!(
        l.handle_timeout(t0 + secs(16)),
        Err(LinkError::T1Expired("I frame acknowledgement"))
    );

    // an acknowledgement in time stops t1
    let mut l = started_master(t0);
    l.send_asdu(vec![1, 2], t0).unwrap();
    l.handle_frame(Frame::S { nr: s(1) }, t0 + secs(5)).unwrap();
    assert_eq!(l.unacked(), 0);
    assert!(l.handle_timeout(t0 + secs(16)).is_ok());
}

#[test]
fn wrong_ns_closes() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.handle_frame(i_frame(0, 0), t0).unwrap();
    assert_eq!(
        l.handle_frame(i_frame(2, 0), t0),
        Err(LinkError::SequenceError {
            expected: s(1),
            received: s(2)
        })
    );
}

#[test]
fn ack_outside_window_closes() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.send_asdu(vec![1], t0).unwrap();
    l.send_asdu(vec![1], t0).unwrap();
    assert_eq!(
        l.handle_frame(Frame::S { nr: s(3) }, t0),
        Err(LinkError::AckOutOfWindow {
            nr: s(3),
            oldest: s(0),
            next: s(2)
        })
    );
    let mut l = started_master(t0);
    l.send_asdu(vec![1], t0).unwrap();
    l.handle_frame(Frame::S { nr: s(1) }, t0).unwrap();
    // acknowledging backwards (before the oldest unacknowledged) is outside the window too
    l.send_asdu(vec![1], t0).unwrap();
    assert!(matches!(
        l.handle_frame(Frame::S { nr: s(0) }, t0),
        Err(LinkError::AckOutOfWindow { .. })
    ));
}

#[test]
fn k_window_blocks_until_acknowledged() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    for _ in 0..12 {
        assert!(l.can_send());
        l.send_asdu(vec![1], t0).unwrap();
    }
    assert!(!l.can_send());
    assert_eq!(l.send_asdu(vec![1], t0), Err(SendError::WindowFull));
    assert_eq!(drain(&mut l).len(), 12);
    // a partial acknowledgement opens the window by that much
    l.handle_frame(Frame::S { nr: s(5) }, t0).unwrap();
    assert_eq!(l.unacked(), 7);
    for _ in 0..5 {
        l.send_asdu(vec![1], t0).unwrap();
    }
    assert_eq!(l.send_asdu(vec![1], t0), Err(SendError::WindowFull));
    // an I frame's N(R) acknowledges too
    l.handle_frame(i_frame(0, 17), t0).unwrap();
    assert_eq!(l.unacked(), 0);
    assert!(l.can_send());
}

#[test]
fn s_frame_after_w_received() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    for n in 0..7 {
        l.handle_frame(i_frame(n, 0), t0).unwrap();
    }
    assert!(drain(&mut l).is_empty());
    l.handle_frame(i_frame(7, 0), t0).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::S { nr: s(8) }]);
    assert_eq!(events(&mut l).len(), 8);
}

#[test]
fn s_frame_after_t2() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.handle_frame(i_frame(0, 0), t0).unwrap();
    l.handle_frame(i_frame(1, 0), t0 + secs(3)).unwrap();
    assert_eq!(l.next_deadline(), Some(t0 + secs(10)));
    l.handle_timeout(t0 + secs(9)).unwrap();
    assert!(drain(&mut l).is_empty());
    l.handle_timeout(t0 + secs(10)).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::S { nr: s(2) }]);
    // sending an I frame acknowledges instead (no S frame later)
    l.handle_frame(i_frame(2, 0), t0 + secs(11)).unwrap();
    l.send_asdu(vec![1], t0 + secs(11)).unwrap();
    assert_eq!(
        drain(&mut l),
        vec![Frame::I {
            ns: s(0),
            nr: s(3),
            asdu: vec![1]
        }]
    );
    l.handle_timeout(t0 + secs(25)).ok();
    assert!(!drain(&mut l).contains(&Frame::S { nr: s(3) }));
}

#[test]
fn t3_idle_sends_testfr() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    assert_eq!(l.next_deadline(), Some(t0 + secs(20)));
    l.handle_timeout(t0 + secs(19)).unwrap();
    assert!(drain(&mut l).is_empty());
    l.handle_timeout(t0 + secs(20)).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::TestFrAct)]);
    // answered: no close
    l.handle_frame(Frame::U(UFunction::TestFrCon), t0 + secs(21))
        .unwrap();
    l.handle_timeout(t0 + secs(36)).unwrap();
    // received frames restart t3
    l.handle_frame(Frame::U(UFunction::TestFrAct), t0 + secs(40))
        .unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::TestFrCon)]);
    assert_eq!(l.next_deadline(), Some(t0 + secs(60)));
    // unanswered TESTFR act: t1 closes
    l.handle_timeout(t0 + secs(60)).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::TestFrAct)]);
    assert_eq!(
        l.handle_timeout(t0 + secs(75)),
        Err(LinkError::T1Expired("TESTFR con"))
    );
}

#[test]
fn testfr_while_stopped() {
    let t0 = Instant::now();
    let mut l = Link::new(Role::Controlled, LinkConfig::default(), t0);
    l.handle_frame(Frame::U(UFunction::TestFrAct), t0).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::TestFrCon)]);
    l.handle_timeout(t0 + secs(20)).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::TestFrAct)]);
}

/// Moves every queued frame from `from` to `to` through the real encoder and parser.
fn pump(from: &mut Link, to: &mut Link, now: Instant) {
    while let Some(f) = from.poll_transmit() {
        let bytes = f.encode().unwrap();
        let (parsed, used) = parse_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        to.handle_frame(parsed, now).unwrap();
    }
}

#[test]
fn sequence_numbers_wrap_past_32767() {
    // this build must have overflow checks on (the test profile does), so any unchecked
    // `+ 1` on a sequence number would panic here
    let overflow = std::panic::catch_unwind(|| std::hint::black_box(u16::MAX) + 1);
    assert!(overflow.is_err(), "run this test with overflow checks on");
    let t0 = Instant::now();
    let mut master = started_master(t0);
    let mut out = Link::new(Role::Controlled, LinkConfig::default(), t0);
    out.handle_frame(Frame::U(UFunction::StartDtAct), t0)
        .unwrap();
    assert_eq!(drain(&mut out), vec![Frame::U(UFunction::StartDtCon)]);
    assert_eq!(events(&mut out), vec![LinkEvent::Started]);
    // pump 32770 I frames outstation -> master and 32770 master -> outstation through
    // the real codec
    let total = 32_770u32;
    for n in 0..total {
        out.send_asdu(vec![1, n as u8], t0).unwrap();
        master.send_asdu(vec![2, n as u8], t0).unwrap();
        pump(&mut out, &mut master, t0);
        pump(&mut master, &mut out, t0);
        // one ASDU each way per round (the piggy-backed N(R) also reports Acknowledged)
        let asdus = |l: &mut Link| {
            events(l)
                .iter()
                .filter(|e| matches!(e, LinkEvent::Asdu(_)))
                .count()
        };
        assert_eq!(asdus(&mut master), 1);
        assert_eq!(asdus(&mut out), 1);
    }
    assert_eq!(master.vs(), s(2));
    assert_eq!(master.vr(), s(2));
    assert_eq!(out.vs(), s(2));
    assert_eq!(out.vr(), s(2));
    assert!(master.unacked() <= 1 && out.unacked() <= 1);
}

#[test]
fn i_or_s_in_stopped_state_closes() {
    let t0 = Instant::now();
    let mut l = Link::new(Role::Controlled, LinkConfig::default(), t0);
    assert_eq!(
        l.handle_frame(i_frame(0, 0), t0),
        Err(LinkError::NotStarted("I"))
    );
    let mut l = Link::new(Role::Controlled, LinkConfig::default(), t0);
    assert_eq!(
        l.handle_frame(Frame::S { nr: s(0) }, t0),
        Err(LinkError::NotStarted("S"))
    );
}

#[test]
fn controlled_stopdt_waits_for_acknowledgement() {
    let t0 = Instant::now();
    let mut l = Link::new(Role::Controlled, LinkConfig::default(), t0);
    l.handle_frame(Frame::U(UFunction::StartDtAct), t0).unwrap();
    drain(&mut l);
    events(&mut l);
    l.send_asdu(vec![1], t0).unwrap();
    l.send_asdu(vec![1], t0).unwrap();
    drain(&mut l);
    l.handle_frame(Frame::U(UFunction::StopDtAct), t0).unwrap();
    assert_eq!(l.state(), LinkState::PendingStop);
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.send_asdu(vec![1], t0), Err(SendError::NotStarted));
    l.handle_frame(Frame::S { nr: s(1) }, t0).unwrap();
    assert!(drain(&mut l).is_empty());
    l.handle_frame(Frame::S { nr: s(2) }, t0).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::StopDtCon)]);
    assert_eq!(
        events(&mut l),
        vec![
            LinkEvent::Acknowledged(1),
            LinkEvent::Acknowledged(1),
            LinkEvent::Stopped
        ]
    );
    // stopped again: an I frame closes
    assert!(l.handle_frame(i_frame(0, 2), t0).is_err());
}

#[test]
fn controlling_stop_and_restart() {
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.handle_frame(i_frame(0, 0), t0).unwrap();
    l.stop(t0);
    assert_eq!(
        drain(&mut l),
        vec![Frame::S { nr: s(1) }, Frame::U(UFunction::StopDtAct)]
    );
    // I frames still arrive while the stop is pending
    l.handle_frame(i_frame(1, 0), t0).unwrap();
    l.handle_frame(Frame::U(UFunction::StopDtCon), t0).unwrap();
    assert_eq!(l.state(), LinkState::Stopped);
    l.start(t0);
    l.handle_frame(Frame::U(UFunction::StartDtCon), t0).unwrap();
    assert!(l.is_started());
    // STOPDT con missing: t1 closes
    l.stop(t0 + secs(1));
    assert_eq!(
        l.handle_timeout(t0 + secs(16)),
        Err(LinkError::T1Expired("STOPDT con"))
    );
}

#[test]
fn controlling_acknowledges_each_i_frame_while_stopping() {
    // the controlled station answers STOPDT con only when all its I frames are acknowledged:
    // the master must not wait for w frames or t2 then
    let t0 = Instant::now();
    let mut l = started_master(t0);
    l.stop(t0);
    assert_eq!(drain(&mut l), vec![Frame::U(UFunction::StopDtAct)]);
    l.handle_frame(i_frame(0, 0), t0).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::S { nr: s(1) }]);
    l.handle_frame(i_frame(1, 0), t0).unwrap();
    assert_eq!(drain(&mut l), vec![Frame::S { nr: s(2) }]);
    l.handle_frame(Frame::U(UFunction::StopDtCon), t0).unwrap();
    assert_eq!(l.state(), LinkState::Stopped);
}

#[test]
fn config_validation() {
    assert!(LinkConfig::default().validate().is_ok());
    let bad = LinkConfig {
        w: 13,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let bad = LinkConfig {
        k: 0,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let bad = LinkConfig {
        t2: secs(15),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}
