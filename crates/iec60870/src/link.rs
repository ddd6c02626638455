//! The APCI link state machine (sans-IO): STARTDT/STOPDT/TESTFR, sequence numbers, the k and w
//! windows and the t1/t2/t3 timers. Time is passed in as monotonic [`Instant`]s; t0 (connection
//! establishment) belongs to the transport.
//!
//! Behaviour on the edges, following IEC 60870-5-104 and lib60870's reference behaviour:
//! - V(S)/V(R) start at 0 for every connection ([`Link::new`]) and wrap 32767 -> 0.
//! - A received N(S) other than V(R) closes the link; a received N(R) outside the range from the
//!   oldest unacknowledged frame to V(S) closes the link.
//! - An S frame is sent after `w` unacknowledged received I frames, or when t2 expires after the
//!   first of them; an I frame we send acknowledges too.
//! - t1 closes the link when an I frame, STARTDT/STOPDT act or TESTFR act stays unconfirmed.
//! - t3 (no frame received) sends TESTFR act.
//! - Nothing is sent as data before STARTDT con. I or S frames received while the data transfer
//!   is stopped (before STARTDT, after STOPDT con) close the link; while a stop is pending
//!   they are still handled (the controlled station waits for acknowledgement of its sent
//!   I frames before it answers STOPDT con; the controlling station acknowledges each at once
//!   while its STOPDT act is pending).

use crate::apci::{Frame, SeqNum, UFunction};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// APCI parameters: windows and timers. Defaults: k=12, w=8, t0=30 s, t1=15 s, t2=10 s, t3=20 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Most unacknowledged I frames we send before waiting (1-32767).
    pub k: u16,
    /// Acknowledge after this many received I frames at the latest (1..=k).
    pub w: u16,
    /// Connection establishment timeout (used by the transport).
    pub t0: Duration,
    /// Timeout for acknowledgement of sent I frames and U act frames.
    pub t1: Duration,
    /// Timeout before acknowledging received I frames with an S frame (t2 < t1).
    pub t2: Duration,
    /// Idle timeout before sending TESTFR act.
    pub t3: Duration,
}

/// Alias matching the standard's name for these parameters.
pub type ApciParams = LinkConfig;

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            k: 12,
            w: 8,
            t0: Duration::from_secs(30),
            t1: Duration::from_secs(15),
            t2: Duration::from_secs(10),
            t3: Duration::from_secs(20),
        }
    }
}

/// An invalid [`LinkConfig`] (or master configuration).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// k is 0 or above 32767.
    #[error("k must be 1-32767")]
    BadK,
    /// w is 0 or above k.
    #[error("w must be 1..=k")]
    BadW,
    /// A timer is zero or above its maximum.
    #[error("{name} must be between 1 ms and {} s", max.as_secs())]
    BadTimer {
        /// `t0`..`t3`, or `command_timeout` / `act_term_timeout` / `command_max_age`.
        name: &'static str,
        /// Its largest value.
        max: Duration,
    },
    /// t2 is not below t1.
    #[error("t2 must be less than t1")]
    T2NotBelowT1,
    /// A queue or channel size is zero.
    #[error("queue size must be at least 1")]
    BadQueueSize,
    /// Reconnect delays: the minimum is below 10 ms or above the maximum.
    #[error("reconnect_min must be at least 10 ms and at most reconnect_max")]
    BadReconnect,
}

impl ConfigError {
    /// The parameter the error is about (`k`, `w`, `t0`..`t3`, ...).
    pub fn parameter(&self) -> &'static str {
        match self {
            ConfigError::BadK => "k",
            ConfigError::BadW => "w",
            ConfigError::BadTimer { name, .. } => name,
            ConfigError::T2NotBelowT1 => "t2",
            ConfigError::BadQueueSize => "queue_size",
            ConfigError::BadReconnect => "reconnect_min",
        }
    }
}

/// Checks that a timer is at least 1 ms and at most `max`.
pub fn check_timer(name: &'static str, t: Duration, max: Duration) -> Result<(), ConfigError> {
    if t < Duration::from_millis(1) || t > max {
        return Err(ConfigError::BadTimer { name, max });
    }
    Ok(())
}

impl LinkConfig {
    /// Largest t0, t1 and t2: 255 s (IEC 60870-5-104, 9.6).
    pub const MAX_T0_T2: Duration = Duration::from_secs(255);
    /// Largest t3: 48 h (IEC 60870-5-104, 9.6).
    pub const MAX_T3: Duration = Duration::from_secs(48 * 3600);
    /// Largest k and w.
    pub const MAX_WINDOW: u16 = 32767;

    /// Checks the ranges of the standard: k 1-32767, w 1..=k, t0-t2 1 ms..=255 s,
    /// t3 1 ms..=48 h, t2 < t1. (Sub-second timers are allowed for tests.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem [`LinkConfig::validate`] would report the first of.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        if self.k == 0 || self.k > Self::MAX_WINDOW {
            out.push(ConfigError::BadK);
        }
        if self.w == 0 || self.w > self.k {
            out.push(ConfigError::BadW);
        }
        for (name, t, max) in [
            ("t0", self.t0, Self::MAX_T0_T2),
            ("t1", self.t1, Self::MAX_T0_T2),
            ("t2", self.t2, Self::MAX_T0_T2),
            ("t3", self.t3, Self::MAX_T3),
        ] {
            out.extend(check_timer(name, t, max).err());
        }
        if self.t2 >= self.t1 {
            out.push(ConfigError::T2NotBelowT1);
        }
        out
    }
}

/// Which end of the link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Controlling station (master, client): sends STARTDT/STOPDT act.
    Controlling,
    /// Controlled station (outstation, server): answers STARTDT/STOPDT.
    Controlled,
}

/// Data transfer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Data transfer stopped (initial state).
    Stopped,
    /// STARTDT act sent, waiting for con (controlling station).
    PendingStart,
    /// Data transfer started.
    Started,
    /// Stopping: STOPDT act sent (controlling) or waiting for our I frames to be acknowledged
    /// before answering STOPDT con (controlled).
    PendingStop,
}

/// Something the transport must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Data transfer started (STARTDT con received or sent).
    Started,
    /// Data transfer stopped (STOPDT con received or sent).
    Stopped,
    /// An ASDU arrived (raw octets; decode with [`crate::Asdu::decode`]).
    Asdu(Vec<u8>),
    /// A received N(R) acknowledged this many of our sent I frames (the oldest ones, in the
    /// order they were sent); never 0. A station that must know which data the peer has
    /// received (to requeue the rest when the connection drops) counts its frames with it.
    Acknowledged(u16),
}

/// A protocol violation or timeout: the transport must close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    /// t1 expired waiting for a confirmation or acknowledgement.
    #[error("t1 expired waiting for {0}")]
    T1Expired(&'static str),
    /// A received I frame's N(S) is not V(R).
    #[error("sequence error: expected N(S) {expected}, received {received}")]
    SequenceError {
        /// V(R).
        expected: SeqNum,
        /// The received N(S).
        received: SeqNum,
    },
    /// A received N(R) acknowledges frames never sent.
    #[error("N(R) {nr} outside the window {oldest}..={next}")]
    AckOutOfWindow {
        /// The received N(R).
        nr: SeqNum,
        /// Oldest unacknowledged N(S).
        oldest: SeqNum,
        /// V(S).
        next: SeqNum,
    },
    /// An I or S frame arrived while data transfer is stopped.
    #[error("{0} frame received while data transfer is stopped")]
    NotStarted(&'static str),
}

/// Why an ASDU cannot be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    /// Data transfer is not started.
    #[error("data transfer not started")]
    NotStarted,
    /// k frames are unacknowledged; retry after an acknowledgement.
    #[error("k window full")]
    WindowFull,
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// The link state machine for one TCP connection.
#[derive(Debug)]
pub struct Link {
    role: Role,
    config: LinkConfig,
    state: LinkState,
    vs: SeqNum,
    vr: SeqNum,
    /// Oldest unacknowledged sent N(S).
    va: SeqNum,
    /// Send times of unacknowledged I frames, oldest first.
    sent: VecDeque<Instant>,
    recv_unacked: u16,
    t2_deadline: Option<Instant>,
    t3_deadline: Instant,
    /// STARTDT/STOPDT act awaiting con, with its t1 deadline.
    u_pending: Option<(UFunction, Instant)>,
    /// TESTFR act awaiting con: t1 deadline.
    test_pending: Option<Instant>,
    out: VecDeque<Frame>,
    events: VecDeque<LinkEvent>,
}

impl Link {
    /// A link for a new connection: stopped, V(S) = V(R) = 0.
    pub fn new(role: Role, config: LinkConfig, now: Instant) -> Self {
        Self {
            role,
            config,
            state: LinkState::Stopped,
            vs: SeqNum::default(),
            vr: SeqNum::default(),
            va: SeqNum::default(),
            sent: VecDeque::new(),
            recv_unacked: 0,
            t2_deadline: None,
            t3_deadline: after(now, config.t3),
            u_pending: None,
            test_pending: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// True when data transfer is started.
    pub fn is_started(&self) -> bool {
        self.state == LinkState::Started
    }

    /// V(S): the next N(S) to send.
    pub fn vs(&self) -> SeqNum {
        self.vs
    }

    /// V(R): the next N(S) expected.
    pub fn vr(&self) -> SeqNum {
        self.vr
    }

    /// Sent I frames not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.sent.len()
    }

    /// True when an ASDU can be sent now (started, fewer than k unacknowledged).
    pub fn can_send(&self) -> bool {
        self.is_started() && self.sent.len() < usize::from(self.config.k)
    }

    /// Controlling station: sends STARTDT act.
    pub fn start(&mut self, now: Instant) {
        if self.role == Role::Controlling && self.u_pending.is_none() {
            self.out.push_back(Frame::U(UFunction::StartDtAct));
            self.u_pending = Some((UFunction::StartDtAct, after(now, self.config.t1)));
            self.state = LinkState::PendingStart;
        }
    }

    /// Controlling station: acknowledges what was received and sends STOPDT act.
    pub fn stop(&mut self, now: Instant) {
        if self.role == Role::Controlling && self.u_pending.is_none() {
            self.send_ack_if_needed();
            self.out.push_back(Frame::U(UFunction::StopDtAct));
            self.u_pending = Some((UFunction::StopDtAct, after(now, self.config.t1)));
            self.state = LinkState::PendingStop;
        }
    }

    /// Queues an ASDU (raw octets) as an I frame.
    pub fn send_asdu(&mut self, asdu: Vec<u8>, now: Instant) -> Result<(), SendError> {
        if !self.is_started() {
            return Err(SendError::NotStarted);
        }
        if !self.can_send() {
            return Err(SendError::WindowFull);
        }
        self.out.push_back(Frame::I {
            ns: self.vs,
            nr: self.vr,
            asdu,
        });
        self.sent.push_back(now);
        self.vs = self.vs.next();
        self.recv_unacked = 0;
        self.t2_deadline = None;
        Ok(())
    }

    /// The next frame to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`Link::handle_timeout`] must be called next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let t1_i = self.sent.front().map(|t| after(*t, self.config.t1));
        [
            Some(self.t3_deadline),
            self.t2_deadline,
            self.u_pending.map(|(_, d)| d),
            self.test_pending,
            t1_i,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers; an error means the connection must be closed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), LinkError> {
        if let Some((f, d)) = self.u_pending {
            if now >= d {
                return Err(LinkError::T1Expired(match f {
                    UFunction::StopDtAct => "STOPDT con",
                    _ => "STARTDT con",
                }));
            }
        }
        if due(self.test_pending, now) {
            return Err(LinkError::T1Expired("TESTFR con"));
        }
        if let Some(t) = self.sent.front() {
            if now >= after(*t, self.config.t1) {
                return Err(LinkError::T1Expired("I frame acknowledgement"));
            }
        }
        if due(self.t2_deadline, now) {
            self.send_ack_if_needed();
        }
        if now >= self.t3_deadline {
            if self.test_pending.is_none() {
                self.out.push_back(Frame::U(UFunction::TestFrAct));
                self.test_pending = Some(after(now, self.config.t1));
            }
            self.t3_deadline = after(now, self.config.t3);
        }
        Ok(())
    }

    fn send_ack_if_needed(&mut self) {
        if self.recv_unacked > 0 {
            self.out.push_back(Frame::S { nr: self.vr });
            self.recv_unacked = 0;
        }
        self.t2_deadline = None;
    }

    fn transfer_stopped(&self) -> bool {
        matches!(self.state, LinkState::Stopped | LinkState::PendingStart)
    }

    fn acknowledge(&mut self, nr: SeqNum) -> Result<(), LinkError> {
        let outstanding = self.va.distance_to(self.vs);
        let acked = self.va.distance_to(nr);
        if acked > outstanding {
            return Err(LinkError::AckOutOfWindow {
                nr,
                oldest: self.va,
                next: self.vs,
            });
        }
        for _ in 0..acked {
            self.sent.pop_front();
        }
        self.va = nr;
        if acked > 0 {
            self.events.push_back(LinkEvent::Acknowledged(acked));
        }
        if self.role == Role::Controlled
            && self.state == LinkState::PendingStop
            && self.sent.is_empty()
        {
            self.finish_stop();
        }
        Ok(())
    }

    fn finish_stop(&mut self) {
        self.send_ack_if_needed();
        self.out.push_back(Frame::U(UFunction::StopDtCon));
        self.state = LinkState::Stopped;
        self.events.push_back(LinkEvent::Stopped);
    }

    /// Handles a received frame; an error means the connection must be closed.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), LinkError> {
        self.t3_deadline = after(now, self.config.t3);
        match frame {
            Frame::I { ns, nr, asdu } => {
                if self.transfer_stopped() {
                    return Err(LinkError::NotStarted("I"));
                }
                if ns != self.vr {
                    return Err(LinkError::SequenceError {
                        expected: self.vr,
                        received: ns,
                    });
                }
                self.acknowledge(nr)?;
                self.vr = self.vr.next();
                self.recv_unacked = self.recv_unacked.saturating_add(1);
                if self.t2_deadline.is_none() {
                    self.t2_deadline = Some(after(now, self.config.t2));
                }
                // while our STOPDT act is pending every I frame is acknowledged at once:
                // the controlled station answers STOPDT con only when all are
                let stopping =
                    self.role == Role::Controlling && self.state == LinkState::PendingStop;
                if stopping || self.recv_unacked >= self.config.w {
                    self.send_ack_if_needed();
                }
                self.events.push_back(LinkEvent::Asdu(asdu));
            }
            Frame::S { nr } => {
                if self.transfer_stopped() {
                    return Err(LinkError::NotStarted("S"));
                }
                self.acknowledge(nr)?;
            }
            Frame::U(f) => self.handle_u(f),
        }
        Ok(())
    }

    fn handle_u(&mut self, f: UFunction) {
        match (f, self.role) {
            (UFunction::TestFrAct, _) => self.out.push_back(Frame::U(UFunction::TestFrCon)),
            (UFunction::TestFrCon, _) => self.test_pending = None,
            (UFunction::StartDtAct, Role::Controlled) => {
                self.out.push_back(Frame::U(UFunction::StartDtCon));
                if self.state != LinkState::Started {
                    self.state = LinkState::Started;
                    self.events.push_back(LinkEvent::Started);
                }
            }
            (UFunction::StopDtAct, Role::Controlled) => match self.state {
                LinkState::Started | LinkState::PendingStop => {
                    if self.sent.is_empty() {
                        self.finish_stop();
                    } else {
                        self.send_ack_if_needed();
                        self.state = LinkState::PendingStop;
                    }
                }
                _ => self.out.push_back(Frame::U(UFunction::StopDtCon)),
            },
            (UFunction::StartDtCon, Role::Controlling) => {
                if matches!(self.u_pending, Some((UFunction::StartDtAct, _))) {
                    self.u_pending = None;
                    self.state = LinkState::Started;
                    self.events.push_back(LinkEvent::Started);
                }
            }
            (UFunction::StopDtCon, Role::Controlling) => {
                if matches!(self.u_pending, Some((UFunction::StopDtAct, _))) {
                    self.u_pending = None;
                    self.state = LinkState::Stopped;
                    self.events.push_back(LinkEvent::Stopped);
                }
            }
            // act frames sent to the wrong role and unsolicited con frames are ignored
            _ => {}
        }
    }
}
