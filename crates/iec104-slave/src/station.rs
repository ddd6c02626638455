//! The controlled station: a sans-IO core ([`Station`]) serving several SCADA master
//! connections in redundancy groups, and its tokio layer ([`spawn_station`]).
//!
//! The core takes bytes, connection events and time, and returns bytes to write and
//! [`Action`]s for the applet. The APCI rules (windows, timers, sequence numbers, STOPDT
//! waiting for acknowledgement) are the stack's [`Link`]; this module adds what a station
//! serving a gateway needs on top of it.
//!
//! # Redundancy groups (IEC 60870-5-104 Ed.2, clause 10)
//! Each group ([`GroupConfig`]) has its own database copy, event queue and at most one
//! started connection. A connection belongs to the first group whose allow-list has the
//! peer's IP, else to the first group with an empty list (any master); a peer no group
//! takes, or one beyond `max_connections`, is [`Refused`]. Several connections of a group may be open;
//! data goes to the started one only. STOPDT on it: the link answers STOPDT con once its sent
//! I frames are acknowledged, then the group has no started connection until a STARTDT on
//! any of its connections. A STARTDT while another connection of the group is started
//! closes the old one (its unacknowledged events are requeued): the new master takes over,
//! nothing is lost, and there are never two receivers of one stream.
//!
//! # Events and acknowledgement
//! [`Station::queue_event`] updates the group's database and queues a spontaneous (COT 3)
//! event with the point's own type. Consecutive events of one type are packed into one ASDU
//! (SQ=0, no IOA twice). Every sent I frame remembers the events it carries; when the
//! master's N(R) acknowledges frames, [`Action::Acknowledged`] names the highest event token
//! now acknowledged (tokens are queued in increasing order per group). When a connection
//! closes or stops with unacknowledged event frames, their events go back to the front of
//! the group queue, in order, and are sent again after the next STARTDT in the group:
//! nothing is lost or reordered (a master may see an event twice after a link loss, never
//! miss one). Interrogation answers and command confirmations are not resent.
//! The queue holds at most `max_buffered` events per group, unacknowledged ones included
//! ([`Station::queue_space`]); beyond that [`Station::queue_event`] refuses.
//!
//! # Order contract (interrogation vs buffered events)
//! A general interrogation answer reflects the group's database, which includes every event
//! queued to that group before the GI request, and is sent after those queued events;
//! events queued after the request follow the answer. (The answer is read from the
//! database as it is sent, so it may already carry a value whose event follows it: the
//! master's last word for a point is always its latest value.) Answers to other requests
//! queue behind a pending interrogation answer, in the order of the requests.
//!
//! # Requests from the master
//! - C_IC_NA_1 QOI 20: ACT_CON, every point except integrated totals and protection events
//!   with COT 20 (as its type without time tag), ACT_TERM. QOI 21-36 (group 1-16): points
//!   carry no group membership, so ACT_CON and ACT_TERM without points. Other QOI: ACT_CON-.
//! - C_CI_NA_1: ACT_CON, with FRZ 0 and RQT 5 the integrated totals with COT 37, ACT_TERM
//!   (other RQT/FRZ: ACT_CON and ACT_TERM only).
//! - C_RD_NA_1: the point with COT 5, or COT 47 when unknown.
//! - C_CS_NA_1: ACT_CON+ and [`Action::ClockSync`] (the applet decides whether to set the
//!   clock). Test, reset process, delay acquisition: ACT_CON+.
//! - Process commands: a [`CommandPoint`] per IOA. Unknown IOA -> COT 47, another common
//!   address -> COT 46, a type other than the point's (its time-tagged twin is accepted) or
//!   any monitor/unknown type -> COT 44, a cause other than activation/deactivation -> COT 45;
//!   all negative mirrors, the link stays. A time-tagged command whose time is further than
//!   `command_max_age` from the wall clock ([`Station::set_wall_clock`]; refused while it is
//!   unknown) gets ACT_CON-. Deactivation -> DEACT_CON (and drops a selection).
//! - Select-before-operate: a select (S/E=1) is confirmed at once (ACT_CON+) and remembered
//!   for `select_timeout` per connection and IOA; on a point without `select_before_operate`
//!   it is confirmed too (masters configured for SBO keep working) and the execute is
//!   accepted with or without it. On an SBO point an execute needs a live selection of the
//!   same connection, type and value, else ACT_CON-. An accepted execute becomes
//!   [`Action::Command`]; ACT_CON is sent when the applet answers with
//!   [`Station::command_result`]: positive -> ACT_CON+ then ACT_TERM, negative -> ACT_CON-.
//!   A result for a connection that has gone (or stopped) is dropped. Every command must be
//!   answered; beyond [`MAX_PENDING_COMMANDS`] unanswered ones a new execute gets ACT_CON-.
//!
//! Nothing received can panic: frames and ASDUs are decoded by the stack's checked codecs,
//! sequence numbers wrap, and a master that floods requests without acknowledging the
//! answers is closed once [`MAX_ANSWERS`] answers wait for it.

mod net;
#[cfg(test)]
mod tests;

pub use net::{spawn_secured_station, spawn_station, StationError, StationHandle};

use iec60870::command::{is_select, with_select};
use iec60870::{
    parse_frame, Asdu, AsduError, AsduSizes, Cause, CommandRequest, CommonAddress, Cot, Cp56Time2a,
    FrameError, InformationElement, InformationObject, Ioa, Link, LinkConfig, LinkError, LinkEvent,
    Point, PointDb, Role, TimeTag, TimeTagKind, TypeId,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Bound;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Unanswered [`Action::Command`]s beyond which a new execute is refused (ACT_CON-).
pub const MAX_PENDING_COMMANDS: usize = 1024;
/// Answers waiting for one connection's window beyond which the connection is closed.
pub const MAX_ANSWERS: usize = 1024;

/// The station's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StationConfig {
    /// This station's common address (ASDU address).
    pub common_address: CommonAddress,
    /// COT/CA/IOA field sizes.
    pub sizes: AsduSizes,
    /// k, w and the timers.
    pub link: LinkConfig,
    /// Redundancy groups, at least one.
    pub groups: Vec<GroupConfig>,
    /// How long a selection stays valid.
    pub select_timeout: Duration,
    /// Largest difference between a time-tagged command's time and the wall clock.
    pub command_max_age: Duration,
    /// Events held per group (queued and unacknowledged).
    pub max_buffered: usize,
    /// Open connections at most; more are refused.
    pub max_connections: usize,
}

impl StationConfig {
    /// Defaults: standard sizes and link parameters, one group taking any master, select
    /// timeout 10 s, command age 30 s, 4096 buffered events, 16 connections.
    pub fn new(common_address: CommonAddress) -> Self {
        Self {
            common_address,
            sizes: AsduSizes::default(),
            link: LinkConfig::default(),
            groups: vec![GroupConfig::default()],
            select_timeout: Duration::from_secs(10),
            command_max_age: Duration::from_secs(30),
            max_buffered: 4096,
            max_connections: 16,
        }
    }

    /// Checks the link parameters, that there is a group, and that the bounds are not zero.
    pub fn validate(&self) -> Result<(), StationConfigError> {
        self.link.validate()?;
        if self.groups.is_empty() {
            return Err(StationConfigError::NoGroup);
        }
        if self.max_buffered == 0 || self.max_connections == 0 {
            return Err(StationConfigError::ZeroBound);
        }
        Ok(())
    }
}

/// An invalid [`StationConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StationConfigError {
    /// k, w or a timer.
    #[error(transparent)]
    Link(#[from] iec60870::ConfigError),
    /// `groups` is empty.
    #[error("at least one redundancy group is needed")]
    NoGroup,
    /// `max_buffered` or `max_connections` is 0.
    #[error("max_buffered and max_connections must be at least 1")]
    ZeroBound,
}

/// One redundancy group: the masters allowed in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupConfig {
    /// Allowed master addresses; empty = any master.
    pub masters: Vec<IpAddr>,
}

/// A connection, unique for the station's life (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// A redundancy group: the index into [`StationConfig::groups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub usize);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// The applet's name for a queued event, increasing per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventToken(pub u64);

/// Names an [`Action::Command`] for its [`Station::command_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandToken(u64);

impl fmt::Display for CommandToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cmd#{}", self.0)
    }
}

/// A command the station accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandPoint {
    /// Its address.
    pub ioa: Ioa,
    /// The type without time tag (e.g. C_SC_NA_1); its time-tagged twin is accepted too.
    pub type_id: TypeId,
    /// An execute needs a select first.
    pub select_before_operate: bool,
}

/// Why a connection was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    /// No group's allow-list has the peer.
    #[error("{0} is in no redundancy group's allow-list")]
    NotAllowed(IpAddr),
    /// `max_connections` are open.
    #[error("{0} connections are open already")]
    TooManyConnections(usize),
}

/// Why [`Station::queue_event`] did not queue.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    /// The group holds `max_buffered` events; retry after acknowledgements.
    #[error("event queue full")]
    Full,
    /// No such group.
    #[error("no redundancy group {0}")]
    UnknownGroup(GroupId),
    /// The point does not encode with the configured sizes (e.g. IOA too large).
    #[error("point cannot be sent: {0}")]
    BadPoint(AsduError),
}

/// Why the station closed a connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// A link rule or timer.
    #[error("link: {0}")]
    Link(#[from] LinkError),
    /// Bytes that are no APDU stream.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// Another connection of the group sent STARTDT.
    #[error("replaced by STARTDT on {0}")]
    Replaced(ConnId),
    /// The master does not acknowledge answers but keeps asking.
    #[error("more than {MAX_ANSWERS} answers wait for the master")]
    AnswerBacklog,
}

/// What the applet (or the tokio layer) must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Close the transport of `conn` (the station has forgotten it already).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// The master acknowledged every event of `group` up to this token.
    Acknowledged {
        /// The group.
        group: GroupId,
        /// The highest token now acknowledged.
        up_to: EventToken,
    },
    /// Execute a command; answer with [`Station::command_result`].
    Command {
        /// Its token.
        token: CommandToken,
        /// Type, address, element, time tag.
        request: CommandRequest,
    },
    /// A master synchronised the clock (confirmed already).
    ClockSync {
        /// The master's time (UTC).
        time: Cp56Time2a,
    },
    /// `conn` is now the group's started connection.
    Started {
        /// The group.
        group: GroupId,
        /// The connection.
        conn: ConnId,
    },
    /// The group's started connection stopped or went.
    Stopped {
        /// The group.
        group: GroupId,
        /// The connection.
        conn: ConnId,
    },
    /// A master connected.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The master's address.
        peer: SocketAddr,
        /// Its group.
        group: GroupId,
    },
    /// A master's connection is gone.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// The master's address.
        peer: SocketAddr,
        /// Its group.
        group: GroupId,
    },
}

/// A snapshot for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StationStatus {
    /// Open connections, oldest first.
    pub connections: Vec<ConnectionStatus>,
    /// Every group.
    pub groups: Vec<GroupStatus>,
    /// Connections refused (allow-list, connection limit) since the station started.
    pub refused: u64,
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// The connection.
    pub conn: ConnId,
    /// The master.
    pub peer: SocketAddr,
    /// Its group.
    pub group: GroupId,
    /// Started (data goes to it) or standby.
    pub started: bool,
    /// Since when in that state (monotonic).
    pub since: Instant,
    /// The same as Unix ms UTC, when the wall clock was set.
    pub since_unix_ms: Option<i64>,
}

/// One group's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// Events sent (resent ones counted again).
    pub sent: u64,
    /// Events acknowledged by a master.
    pub acknowledged: u64,
    /// Events waiting to be sent.
    pub queued: usize,
    /// Events sent, not yet acknowledged.
    pub unacked: usize,
    /// Its started connection.
    pub started: Option<ConnId>,
}

/// Which points an interrogation answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Station interrogation: everything but integrated totals and protection events,
    /// untagged.
    Station,
    /// Counter interrogation: the integrated totals, with their own type.
    Counters,
}

impl Scan {
    fn includes(self, p: &Point) -> bool {
        use InformationElement as E;
        let counter = matches!(p.element, E::IntegratedTotal { .. });
        let protection = matches!(
            p.element,
            E::ProtectionEvent { .. }
                | E::ProtectionStartEvents { .. }
                | E::ProtectionOutputCircuits { .. }
        );
        match self {
            Scan::Station => !counter && !protection,
            Scan::Counters => counter,
        }
    }

    fn cause(self) -> Cause {
        match self {
            Scan::Station => Cause::INTERROGATED_BY_STATION,
            Scan::Counters => Cause::REQUESTED_BY_GENERAL_COUNTER,
        }
    }

    /// The point as answered: type and object.
    fn object(self, p: &Point) -> (TypeId, InformationObject) {
        let type_id = match self {
            Scan::Station => p.type_id.without_time(),
            Scan::Counters => p.type_id,
        };
        (type_id, object_as(p, type_id))
    }
}

/// The point's object as `type_id` (the time tag kept only when it is the point's type).
fn object_as(p: &Point, type_id: TypeId) -> InformationObject {
    InformationObject {
        ioa: p.ioa,
        element: p.element,
        time: if type_id == p.type_id { p.time } else { None },
    }
}

/// Something to send on one connection, after `after_events` more group events.
#[derive(Debug)]
struct Answer {
    after_events: usize,
    body: AnswerBody,
}

#[derive(Debug)]
enum AnswerBody {
    Asdu(Asdu),
    /// An ASDU echoed as received but for its COT octet (unknown type identification).
    Raw(Vec<u8>),
    /// An interrogation answer read from the database as it is sent; `after` is the last
    /// IOA sent.
    Scan {
        scan: Scan,
        after: Option<Ioa>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Selection {
    ioa: Ioa,
    type_id: TypeId,
    element: InformationElement,
    expires: Instant,
}

#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    group: usize,
    link: Link,
    rx: Vec<u8>,
    since: Instant,
    since_unix_ms: Option<i64>,
    answers: VecDeque<Answer>,
    /// Per sent, unacknowledged I frame, oldest first: the events it carries.
    inflight: VecDeque<Vec<(EventToken, Point)>>,
    selections: Vec<Selection>,
}

impl Conn {
    fn unacked_events(&self) -> usize {
        self.inflight.iter().map(Vec::len).sum()
    }
}

#[derive(Debug)]
struct Group {
    masters: Vec<IpAddr>,
    db: BTreeMap<Ioa, Point>,
    events: VecDeque<(EventToken, Point)>,
    started: Option<ConnId>,
    sent: u64,
    acknowledged: u64,
}

#[derive(Debug)]
struct PendingCommand {
    conn: ConnId,
    request: Asdu,
}

/// The sans-IO controlled station (see the module docs for its rules).
#[derive(Debug)]
pub struct Station {
    config: StationConfig,
    groups: Vec<Group>,
    conns: BTreeMap<ConnId, Conn>,
    commands: HashMap<Ioa, CommandPoint>,
    pending: HashMap<CommandToken, PendingCommand>,
    actions: VecDeque<Action>,
    next_conn: u64,
    next_command: u64,
    /// The latest instant passed in.
    now: Instant,
    wall_unix_ms: Option<i64>,
    refused: u64,
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Station {
    /// A station with its monitor points (initial values, in every group's database) and
    /// commands. An empty `groups` list is read as one group taking any master.
    pub fn new(config: StationConfig, points: PointDb, commands: Vec<CommandPoint>) -> Self {
        let db: BTreeMap<Ioa, Point> = points.iter().map(|p| (p.ioa, *p)).collect();
        let mut group_configs = config.groups.clone();
        if group_configs.is_empty() {
            group_configs.push(GroupConfig::default());
        }
        let groups = group_configs
            .into_iter()
            .map(|g| Group {
                masters: g.masters.into_iter().map(canonical).collect(),
                db: db.clone(),
                events: VecDeque::new(),
                started: None,
                sent: 0,
                acknowledged: 0,
            })
            .collect();
        Self {
            config,
            groups,
            conns: BTreeMap::new(),
            commands: commands.into_iter().map(|c| (c.ioa, c)).collect(),
            pending: HashMap::new(),
            actions: VecDeque::new(),
            next_conn: 0,
            next_command: 0,
            now: Instant::now(),
            wall_unix_ms: None,
            refused: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StationConfig {
        &self.config
    }

    /// Number of redundancy groups ([`GroupId`] 0 up to it).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The wall clock (Unix ms UTC) for the age of time-tagged commands and status times;
    /// set it before [`Station::on_bytes`].
    pub fn set_wall_clock(&mut self, unix_ms: i64) {
        self.wall_unix_ms = Some(unix_ms);
    }

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// A master connected from `peer`: its connection, or why it is refused (close it).
    pub fn accept(&mut self, peer: SocketAddr, now: Instant) -> Result<ConnId, Refused> {
        self.tick(now);
        if self.conns.len() >= self.config.max_connections {
            self.refused = self.refused.saturating_add(1);
            return Err(Refused::TooManyConnections(self.conns.len()));
        }
        let ip = canonical(peer.ip());
        let Some(group) = self
            .groups
            .iter()
            .position(|g| g.masters.contains(&ip))
            .or_else(|| self.groups.iter().position(|g| g.masters.is_empty()))
        else {
            self.refused = self.refused.saturating_add(1);
            return Err(Refused::NotAllowed(ip));
        };
        let id = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1);
        self.conns.insert(
            id,
            Conn {
                peer,
                group,
                link: Link::new(Role::Controlled, self.config.link, now),
                rx: Vec::new(),
                since: now,
                since_unix_ms: self.wall_unix_ms,
                answers: VecDeque::new(),
                inflight: VecDeque::new(),
                selections: Vec::new(),
            },
        );
        tracing::info!(%peer, conn = %id, group, "master connected");
        self.actions.push_back(Action::Connected {
            conn: id,
            peer,
            group: GroupId(group),
        });
        Ok(id)
    }

    /// Bytes read from `conn` (any split; partial frames are kept).
    pub fn on_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        self.tick(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rx.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let (frame, used) = match parse_frame(&c.rx) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    self.close(conn, CloseReason::Frame(e));
                    return;
                }
            };
            c.rx.drain(..used.min(c.rx.len()));
            if let Err(e) = c.link.handle_frame(frame, now) {
                self.close(conn, CloseReason::Link(e));
                return;
            }
            self.process_link_events(conn);
        }
    }

    /// The transport of `conn` closed or failed.
    pub fn on_closed(&mut self, conn: ConnId, now: Instant) {
        self.tick(now);
        self.remove(conn);
    }

    /// Runs the timers of every connection.
    pub fn on_timeout(&mut self, now: Instant) {
        self.tick(now);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            c.selections.retain(|s| s.expires > now);
            if let Err(e) = c.link.handle_timeout(now) {
                self.close(id, CloseReason::Link(e));
            }
        }
    }

    /// When [`Station::on_timeout`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.link.next_deadline())
            .min()
    }

    /// The next bytes to write on `conn` (one APDU), sending what its window allows first.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        self.fill(conn);
        let c = self.conns.get_mut(&conn)?;
        while let Some(frame) = c.link.poll_transmit() {
            match frame.encode() {
                Ok(bytes) => return Some(bytes),
                Err(e) => {
                    tracing::warn!(peer = %c.peer, error = %e, "frame not encodable; dropped")
                }
            }
        }
        None
    }

    /// The next action for the applet.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Open connections.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// Stores a point in every group's database (no event): initial values.
    pub fn set_point(&mut self, point: Point) {
        for g in &mut self.groups {
            g.db.insert(point.ioa, point);
        }
    }

    /// Updates the group's database and queues the point as a spontaneous event.
    pub fn queue_event(
        &mut self,
        group: GroupId,
        token: EventToken,
        point: Point,
    ) -> Result<(), QueueError> {
        let space = self.queue_space(group);
        let ca = self.config.common_address;
        let sizes = self.config.sizes;
        let g = self
            .groups
            .get_mut(group.0)
            .ok_or(QueueError::UnknownGroup(group))?;
        if space == 0 {
            return Err(QueueError::Full);
        }
        Asdu::single(
            point.type_id,
            Cot::new(Cause::SPONTANEOUS),
            ca,
            object_as(&point, point.type_id),
        )
        .encode(&sizes)
        .map_err(QueueError::BadPoint)?;
        g.db.insert(point.ioa, point);
        g.events.push_back((token, point));
        Ok(())
    }

    /// How many more events the group takes now (0 for an unknown group).
    pub fn queue_space(&self, group: GroupId) -> usize {
        let Some(g) = self.groups.get(group.0) else {
            return 0;
        };
        let unacked: usize = self
            .conns
            .values()
            .filter(|c| c.group == group.0)
            .map(Conn::unacked_events)
            .sum();
        self.config
            .max_buffered
            .saturating_sub(g.events.len().saturating_add(unacked))
    }

    /// The applet's result of [`Action::Command`] `token`: positive -> ACT_CON+ and
    /// ACT_TERM, negative -> ACT_CON-. Dropped when the connection is gone or stopped.
    pub fn command_result(&mut self, token: CommandToken, positive: bool) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&p.conn) else {
            tracing::debug!(command = %token, "command result for a closed connection dropped");
            return;
        };
        if !c.link.is_started() {
            tracing::debug!(peer = %c.peer, command = %token, "command result for a stopped connection dropped");
            return;
        }
        self.answer(p.conn, p.request.mirror(Cause::ACTIVATION_CON, !positive));
        if positive {
            self.answer(
                p.conn,
                p.request.mirror(Cause::ACTIVATION_TERMINATION, false),
            );
        }
    }

    /// Connections and group counters.
    pub fn status(&self) -> StationStatus {
        StationStatus {
            connections: self
                .conns
                .iter()
                .map(|(id, c)| ConnectionStatus {
                    conn: *id,
                    peer: c.peer,
                    group: GroupId(c.group),
                    started: self.groups.get(c.group).and_then(|g| g.started) == Some(*id),
                    since: c.since,
                    since_unix_ms: c.since_unix_ms,
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| GroupStatus {
                    group: GroupId(i),
                    sent: g.sent,
                    acknowledged: g.acknowledged,
                    queued: g.events.len(),
                    unacked: self
                        .conns
                        .values()
                        .filter(|c| c.group == i)
                        .map(Conn::unacked_events)
                        .sum(),
                    started: g.started,
                })
                .collect(),
            refused: self.refused,
        }
    }

    /// Closes `conn` on the station's decision.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(c) = self.conns.get(&conn) {
            tracing::info!(peer = %c.peer, conn = %conn, %reason, "closing master connection");
            self.actions.push_back(Action::Close { conn, reason });
        }
        self.remove(conn);
    }

    /// Forgets `conn`: its unacknowledged events go back to the front of its group's queue.
    fn remove(&mut self, conn: ConnId) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        let group = GroupId(c.group);
        if let Some(g) = self.groups.get_mut(c.group) {
            let mut requeued = 0usize;
            while let Some(frame) = c.inflight.pop_back() {
                for e in frame.into_iter().rev() {
                    g.events.push_front(e);
                    requeued = requeued.saturating_add(1);
                }
            }
            if requeued > 0 {
                tracing::info!(peer = %c.peer, requeued, "unacknowledged events requeued");
            }
            if g.started == Some(conn) {
                g.started = None;
                self.actions.push_back(Action::Stopped { group, conn });
            }
        }
        tracing::info!(peer = %c.peer, conn = %conn, "master disconnected");
        self.actions.push_back(Action::Disconnected {
            conn,
            peer: c.peer,
            group,
        });
    }

    fn process_link_events(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(ev) = c.link.poll_event() else {
                return;
            };
            match ev {
                LinkEvent::Started => self.started(conn),
                LinkEvent::Stopped => self.stopped(conn),
                LinkEvent::Acknowledged(n) => self.acknowledged(conn, n),
                LinkEvent::Asdu(raw) => self.on_asdu(conn, raw),
            }
        }
    }

    fn started(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.since = self.now;
        c.since_unix_ms = self.wall_unix_ms;
        let gi = c.group;
        tracing::info!(peer = %c.peer, conn = %conn, group = gi, "data transfer started");
        let old = self.groups.get(gi).and_then(|g| g.started);
        if let Some(old) = old.filter(|o| *o != conn) {
            self.close(old, CloseReason::Replaced(conn));
        }
        if let Some(g) = self.groups.get_mut(gi) {
            g.started = Some(conn);
        }
        self.actions.push_back(Action::Started {
            group: GroupId(gi),
            conn,
        });
    }

    fn stopped(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.since = self.now;
        c.since_unix_ms = self.wall_unix_ms;
        c.answers.clear();
        c.selections.clear();
        let gi = c.group;
        tracing::info!(peer = %c.peer, conn = %conn, group = gi, "data transfer stopped");
        // the link answers STOPDT con only when everything is acknowledged; requeue anyway
        let mut frames = std::mem::take(&mut c.inflight);
        if let Some(g) = self.groups.get_mut(gi) {
            while let Some(frame) = frames.pop_back() {
                for e in frame.into_iter().rev() {
                    g.events.push_front(e);
                }
            }
            if g.started == Some(conn) {
                g.started = None;
                self.actions.push_back(Action::Stopped {
                    group: GroupId(gi),
                    conn,
                });
            }
        }
    }

    fn acknowledged(&mut self, conn: ConnId, n: u16) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut up_to = None;
        let mut count = 0u64;
        for _ in 0..n {
            let Some(frame) = c.inflight.pop_front() else {
                break;
            };
            if let Some((t, _)) = frame.last() {
                up_to = Some(*t);
            }
            count = count.saturating_add(u64::try_from(frame.len()).unwrap_or(u64::MAX));
        }
        let gi = c.group;
        if let Some(g) = self.groups.get_mut(gi) {
            g.acknowledged = g.acknowledged.saturating_add(count);
        }
        if let Some(up_to) = up_to {
            self.actions.push_back(Action::Acknowledged {
                group: GroupId(gi),
                up_to,
            });
        }
    }

    /// Queues an answer with no event barrier.
    fn answer(&mut self, conn: ConnId, asdu: Asdu) {
        self.push_answer(conn, 0, AnswerBody::Asdu(asdu));
    }

    fn push_answer(&mut self, conn: ConnId, after_events: usize, body: AnswerBody) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.answers.len() >= MAX_ANSWERS {
            self.close(conn, CloseReason::AnswerBacklog);
            return;
        }
        c.answers.push_back(Answer { after_events, body });
    }

    fn on_asdu(&mut self, conn: ConnId, raw: Vec<u8>) {
        let peer = match self.conns.get(&conn) {
            Some(c) => c.peer,
            None => return,
        };
        match Asdu::decode(&raw, &self.config.sizes) {
            Ok(asdu) => self.on_request(conn, asdu),
            Err(AsduError::UnknownTypeId(t)) => {
                tracing::warn!(%peer, type_id = t, "unknown type identification");
                let mut raw = raw;
                if let Some(c) = raw.get_mut(2) {
                    *c = (*c & 0x80) | 0x40 | Cause::UNKNOWN_TYPE_ID.value();
                }
                self.push_answer(conn, 0, AnswerBody::Raw(raw));
            }
            Err(e) => tracing::warn!(%peer, error = %e, "undecodable ASDU ignored"),
        }
    }

    fn on_request(&mut self, conn: ConnId, req: Asdu) {
        let tid = req.type_id;
        let cause = req.cot.cause;
        let Some(obj) = req.objects.first().copied() else {
            return;
        };
        if !tid.is_command() && !tid.is_parameter() && (tid as u8) < 100 {
            self.answer(conn, req.mirror(Cause::UNKNOWN_TYPE_ID, true));
            return;
        }
        let ca = self.config.common_address;
        let broadcast = req.common_address.is_broadcast(&self.config.sizes);
        let station_wide = matches!(
            tid,
            TypeId::C_IC_NA_1 | TypeId::C_CI_NA_1 | TypeId::C_CS_NA_1
        );
        if req.common_address != ca && !(broadcast && station_wide) {
            self.answer(conn, req.mirror(Cause::UNKNOWN_COMMON_ADDRESS, true));
            return;
        }
        let confirm = |ok: bool| {
            let mut a = req.mirror(Cause::ACTIVATION_CON, !ok);
            a.common_address = ca;
            a
        };
        match tid {
            TypeId::C_RD_NA_1 => {
                if cause != Cause::REQUEST {
                    self.answer(conn, req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                let point = self
                    .conns
                    .get(&conn)
                    .and_then(|c| self.groups.get(c.group))
                    .and_then(|g| g.db.get(&obj.ioa))
                    .copied();
                match point {
                    Some(p) => {
                        let a = Asdu::single(
                            p.type_id,
                            Cot::new(Cause::REQUEST),
                            ca,
                            object_as(&p, p.type_id),
                        );
                        self.answer(conn, a);
                    }
                    None => self.answer(conn, req.mirror(Cause::UNKNOWN_IOA, true)),
                }
            }
            TypeId::C_IC_NA_1 | TypeId::C_CI_NA_1 => {
                if cause == Cause::DEACTIVATION {
                    self.answer(conn, req.mirror(Cause::DEACTIVATION_CON, false));
                    return;
                }
                if cause != Cause::ACTIVATION {
                    self.answer(conn, req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                let scan = match obj.element {
                    InformationElement::Interrogation { qoi: 20 } => Some(Scan::Station),
                    InformationElement::Interrogation { qoi: 21..=36 } => None,
                    InformationElement::Interrogation { .. } => {
                        self.answer(conn, confirm(false));
                        return;
                    }
                    InformationElement::CounterInterrogation { rqt: 5, frz: 0 } => {
                        Some(Scan::Counters)
                    }
                    _ => None,
                };
                self.answer(conn, confirm(true));
                let barrier = self
                    .conns
                    .get(&conn)
                    .and_then(|c| self.groups.get(c.group))
                    .map_or(0, |g| g.events.len());
                if let Some(scan) = scan {
                    self.push_answer(conn, barrier, AnswerBody::Scan { scan, after: None });
                }
                let mut term = req.mirror(Cause::ACTIVATION_TERMINATION, false);
                term.common_address = ca;
                self.push_answer(conn, barrier, AnswerBody::Asdu(term));
            }
            TypeId::C_CS_NA_1
            | TypeId::C_TS_NA_1
            | TypeId::C_TS_TA_1
            | TypeId::C_RP_NA_1
            | TypeId::C_CD_NA_1 => {
                if cause != Cause::ACTIVATION {
                    self.answer(conn, req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                self.answer(conn, confirm(true));
                if let InformationElement::ClockSync { time } = obj.element {
                    self.actions.push_back(Action::ClockSync { time });
                }
            }
            _ => self.on_command(conn, &req, obj),
        }
    }

    fn on_command(&mut self, conn: ConnId, req: &Asdu, obj: InformationObject) {
        let tid = req.type_id;
        let cause = req.cot.cause;
        let Some(point) = self.commands.get(&obj.ioa).copied() else {
            self.answer(conn, req.mirror(Cause::UNKNOWN_IOA, true));
            return;
        };
        if tid.without_time() != point.type_id.without_time() {
            self.answer(conn, req.mirror(Cause::UNKNOWN_TYPE_ID, true));
            return;
        }
        let now = self.now;
        let wall = self.wall_unix_ms;
        let max_age = self.config.command_max_age;
        let select_timeout = self.config.select_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let peer = c.peer;
        c.selections.retain(|s| s.expires > now);
        if cause == Cause::DEACTIVATION {
            c.selections.retain(|s| s.ioa != obj.ioa);
            self.answer(conn, req.mirror(Cause::DEACTIVATION_CON, false));
            return;
        }
        if cause != Cause::ACTIVATION {
            self.answer(conn, req.mirror(Cause::UNKNOWN_CAUSE, true));
            return;
        }
        if tid.time_tag() == TimeTagKind::Cp56 && !fresh(obj.time, wall, max_age) {
            tracing::warn!(%peer, ioa = %obj.ioa, type_id = %tid, "time-tagged command too old (or no wall clock); refused");
            self.answer(conn, req.mirror(Cause::ACTIVATION_CON, true));
            return;
        }
        let element = with_select(&obj.element, false);
        if is_select(&obj.element) {
            c.selections.retain(|s| s.ioa != obj.ioa);
            c.selections.push(Selection {
                ioa: obj.ioa,
                type_id: tid.without_time(),
                element,
                expires: now.checked_add(select_timeout).unwrap_or(now),
            });
            self.answer(conn, req.mirror(Cause::ACTIVATION_CON, false));
            return;
        }
        let selected = c.selections.iter().position(|s| s.ioa == obj.ioa);
        let matching = selected
            .and_then(|i| c.selections.get(i))
            .is_some_and(|s| s.type_id == tid.without_time() && s.element == element);
        if let Some(i) = selected {
            c.selections.remove(i);
        }
        if point.select_before_operate && tid.has_select() && !matching {
            tracing::info!(%peer, ioa = %obj.ioa, type_id = %tid, "execute without a matching select refused");
            self.answer(conn, req.mirror(Cause::ACTIVATION_CON, true));
            return;
        }
        if self.pending.len() >= MAX_PENDING_COMMANDS {
            tracing::warn!(%peer, ioa = %obj.ioa, "too many unanswered commands; refused");
            self.answer(conn, req.mirror(Cause::ACTIVATION_CON, true));
            return;
        }
        let token = CommandToken(self.next_command);
        self.next_command = self.next_command.wrapping_add(1);
        self.pending.insert(
            token,
            PendingCommand {
                conn,
                request: req.clone(),
            },
        );
        tracing::debug!(%peer, command = %token, ioa = %obj.ioa, type_id = %tid, "command to the applet");
        self.actions.push_back(Action::Command {
            token,
            request: CommandRequest {
                type_id: tid,
                common_address: req.common_address,
                ioa: obj.ioa,
                element: obj.element,
                time: obj.time,
            },
        });
    }

    /// Sends what the window of `conn` allows: answers whose event barrier is passed, group
    /// events otherwise.
    fn fill(&mut self, conn: ConnId) {
        let ca = self.config.common_address;
        let sizes = self.config.sizes;
        let now = self.now;
        let Self { conns, groups, .. } = self;
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        let Some(g) = groups.get_mut(c.group) else {
            return;
        };
        while c.link.can_send() {
            let barrier = c.answers.front().map(|a| a.after_events);
            if barrier.is_some_and(|b| b > 0) && g.events.is_empty() {
                // cannot happen (the barrier counts queued events); never wait forever
                c.answers.iter_mut().for_each(|a| a.after_events = 0);
                continue;
            }
            let (bytes, events) = match barrier {
                Some(0) => {
                    let Some(bytes) = next_answer(c, g, ca, &sizes) else {
                        continue;
                    };
                    (bytes, Vec::new())
                }
                _ => {
                    let limit = barrier.unwrap_or(usize::MAX);
                    let Some((asdu, events)) = next_events(g, limit, ca, &sizes) else {
                        if g.events.is_empty() {
                            break;
                        }
                        continue;
                    };
                    for a in &mut c.answers {
                        a.after_events = a.after_events.saturating_sub(events.len());
                    }
                    match asdu.encode(&sizes) {
                        Ok(bytes) => (bytes, events),
                        Err(e) => {
                            tracing::warn!(peer = %c.peer, error = %e, "events not encodable; dropped");
                            continue;
                        }
                    }
                }
            };
            let n = u64::try_from(events.len()).unwrap_or(u64::MAX);
            if c.link.send_asdu(bytes, now).is_err() {
                // can_send was checked; put the events back rather than lose them
                for e in events.into_iter().rev() {
                    g.events.push_front(e);
                }
                break;
            }
            g.sent = g.sent.saturating_add(n);
            c.inflight.push_back(events);
        }
    }
}

/// The next answer ASDU of `c` (the front answer has no barrier); `None` when the front
/// answer is finished (it is removed; call again).
fn next_answer(c: &mut Conn, g: &Group, ca: CommonAddress, sizes: &AsduSizes) -> Option<Vec<u8>> {
    let front = c.answers.front_mut()?;
    let result = match &mut front.body {
        AnswerBody::Raw(raw) => Some(std::mem::take(raw)),
        AnswerBody::Asdu(asdu) => match asdu.encode(sizes) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(peer = %c.peer, error = %e, "answer not encodable; dropped");
                None
            }
        },
        AnswerBody::Scan { scan, after } => {
            match next_scan_asdu(&g.db, *scan, after, ca, sizes) {
                Some(asdu) => {
                    // more may follow: keep the scan at the front
                    return asdu.encode(sizes).ok();
                }
                None => None,
            }
        }
    };
    c.answers.pop_front();
    result
}

/// The next interrogation answer ASDU after IOA `after`, packed with points of one type.
fn next_scan_asdu(
    db: &BTreeMap<Ioa, Point>,
    scan: Scan,
    after: &mut Option<Ioa>,
    ca: CommonAddress,
    sizes: &AsduSizes,
) -> Option<Asdu> {
    let range = match *after {
        Some(last) => db.range((Bound::Excluded(last), Bound::Unbounded)),
        None => db.range(..),
    };
    let cot = Cot::new(scan.cause());
    let mut current: Option<Asdu> = None;
    for (ioa, p) in range {
        if !scan.includes(p) {
            *after = Some(*ioa);
            continue;
        }
        let (type_id, obj) = scan.object(p);
        match current.as_mut() {
            None => {
                let a = Asdu::single(type_id, cot, ca, obj);
                if a.encode(sizes).is_ok() {
                    current = Some(a);
                }
            }
            Some(a) => {
                if a.type_id != type_id || !a.try_push(obj, sizes) {
                    break;
                }
            }
        }
        *after = Some(*ioa);
    }
    current
}

/// The next spontaneous ASDU: up to `limit` queued events of the front event's type.
fn next_events(
    g: &mut Group,
    limit: usize,
    ca: CommonAddress,
    sizes: &AsduSizes,
) -> Option<(Asdu, Vec<(EventToken, Point)>)> {
    let (_, first) = g.events.front()?;
    let type_id = first.type_id;
    let mut asdu = Asdu::new(type_id, Cot::new(Cause::SPONTANEOUS), ca);
    let mut taken = Vec::new();
    while taken.len() < limit {
        let Some((_, p)) = g.events.front() else {
            break;
        };
        if p.type_id != type_id || asdu.objects.iter().any(|o| o.ioa == p.ioa) {
            break;
        }
        if !asdu.try_push(object_as(p, type_id), sizes) {
            break;
        }
        if let Some(e) = g.events.pop_front() {
            taken.push(e);
        }
    }
    if taken.is_empty() {
        // an event that does not encode alone (checked when queued; never expected)
        g.events.pop_front();
        return None;
    }
    Some((asdu, taken))
}

/// True when a command's CP56 time is within `max_age` of the wall clock.
fn fresh(time: Option<TimeTag>, wall_unix_ms: Option<i64>, max_age: Duration) -> bool {
    let (Some(TimeTag::Cp56(t)), Some(wall)) = (time, wall_unix_ms) else {
        return false;
    };
    if t.invalid {
        return false;
    }
    let Ok(ms) = t.to_unix_ms() else {
        return false;
    };
    let max = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    wall.abs_diff(ms) <= max
}
