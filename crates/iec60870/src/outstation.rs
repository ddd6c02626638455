//! The controlled station (outstation/server) over tokio, serving a [`PointDb`].
//!
//! One master connection is served at a time; a new connection replaces the old one (so a
//! half-open old connection cannot lock the master out). The outstation answers:
//! - general interrogation C_IC_NA_1 (QOI 20): ACT_CON, every point except integrated totals
//!   and protection events with COT 20 (as the type without time tag), ACT_TERM; group
//!   interrogations (QOI 21-36) get ACT_CON and ACT_TERM only;
//! - counter interrogation C_CI_NA_1: ACT_CON, integrated totals with COT 37, ACT_TERM;
//! - read C_RD_NA_1: the point with COT 5, or COT 47 (negative) when unknown;
//! - clock sync, test (C_TS_NA_1, C_TS_TA_1), reset process, delay acquisition: ACT_CON;
//! - process commands (45-64) and parameters (110-113) go to the [`CommandHandler`]:
//!   select (S/E=1) -> ACT_CON; execute -> ACT_CON, and for set-points ACT_TERM after a
//!   positive execute. A selection expires after `select_timeout`.
//! - Monitor-direction types get COT 44, an unexpected cause COT 45, another station's common
//!   address COT 46 (all negative).
//!
//! [`OutstationHandle::update`] stores a point and, while data transfer is started, sends it
//! spontaneously (COT 3) with its own type. The send queue is bounded (`max_queued`): when
//! full, a spontaneous update is dropped with a warning (the database keeps the value and
//! the next interrogation carries it).

use crate::asdu::{Asdu, AsduError, InformationElement, InformationObject, TimeTag};
use crate::decode::DecodeLevel;
use crate::link::{Link, LinkConfig, LinkEvent, Role};
use crate::session::{now, read_some, Session, SessionError, READ_CHUNK};
use crate::time::Cp56Time2a;
use crate::types::{AsduSizes, Cause, CommonAddress, Cot, DoublePointValue, Ioa, Quality, TypeId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Outstation configuration.
#[derive(Debug, Clone)]
pub struct OutstationConfig {
    /// Listening address (port 0 picks a free port; see [`OutstationHandle::local_addr`]).
    pub bind: SocketAddr,
    /// This station's common address.
    pub common_address: CommonAddress,
    /// APCI parameters.
    pub link: LinkConfig,
    /// ASDU field sizes.
    pub sizes: AsduSizes,
    /// Protocol logging.
    pub decode_level: DecodeLevel,
    /// How long a selection stays valid; default 10 s.
    pub select_timeout: Duration,
    /// Bound of the send queue and the update channel; default 1024.
    pub max_queued: usize,
}

impl OutstationConfig {
    /// Defaults for the given address and common address.
    pub fn new(bind: SocketAddr, common_address: CommonAddress) -> Self {
        Self {
            bind,
            common_address,
            link: LinkConfig::default(),
            sizes: AsduSizes::default(),
            decode_level: DecodeLevel::Off,
            select_timeout: Duration::from_secs(10),
            max_queued: 1024,
        }
    }
}

/// A monitor point: type, address, value with quality, optional time tag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The type it is reported with (spontaneously; interrogation uses the untagged type).
    pub type_id: TypeId,
    /// Information object address.
    pub ioa: Ioa,
    /// Value and quality.
    pub element: InformationElement,
    /// Time tag, required for time-tagged types.
    pub time: Option<TimeTag>,
}

impl Point {
    fn plain(type_id: TypeId, ioa: Ioa, element: InformationElement) -> Self {
        Self {
            type_id,
            ioa,
            element,
            time: None,
        }
    }

    /// A single point (M_SP_NA_1).
    pub fn single(ioa: Ioa, value: bool, quality: Quality) -> Self {
        Self::plain(
            TypeId::M_SP_NA_1,
            ioa,
            InformationElement::SinglePoint { value, quality },
        )
    }

    /// A double point (M_DP_NA_1).
    pub fn double(ioa: Ioa, value: DoublePointValue, quality: Quality) -> Self {
        Self::plain(
            TypeId::M_DP_NA_1,
            ioa,
            InformationElement::DoublePoint { value, quality },
        )
    }

    /// A normalised measured value (M_ME_NA_1), raw -32768..=32767.
    pub fn normalized(ioa: Ioa, value: i16, quality: Quality) -> Self {
        Self::plain(
            TypeId::M_ME_NA_1,
            ioa,
            InformationElement::Normalized { value, quality },
        )
    }

    /// A scaled measured value (M_ME_NB_1).
    pub fn scaled(ioa: Ioa, value: i16, quality: Quality) -> Self {
        Self::plain(
            TypeId::M_ME_NB_1,
            ioa,
            InformationElement::Scaled { value, quality },
        )
    }

    /// A short floating point measured value (M_ME_NC_1).
    pub fn float(ioa: Ioa, value: f32, quality: Quality) -> Self {
        Self::plain(
            TypeId::M_ME_NC_1,
            ioa,
            InformationElement::Float { value, quality },
        )
    }

    /// Integrated totals (M_IT_NA_1), sent on counter interrogation only.
    pub fn counter(ioa: Ioa, counter: i32) -> Self {
        Self::plain(
            TypeId::M_IT_NA_1,
            ioa,
            InformationElement::IntegratedTotal {
                counter,
                seq: 0,
                cy: false,
                ca: false,
                iv: false,
            },
        )
    }

    /// The same point with a CP56 time tag, as the time-tagged type (e.g. M_SP_NA_1 ->
    /// M_SP_TB_1); points of other types are returned unchanged.
    pub fn with_time(self, time: Cp56Time2a) -> Self {
        match self.type_id.with_cp56() {
            Some(type_id) => Self {
                type_id,
                time: Some(TimeTag::Cp56(time)),
                ..self
            },
            None => self,
        }
    }

    /// A point; checks that the element and time tag fit a monitor type.
    pub fn new(
        type_id: TypeId,
        ioa: Ioa,
        element: InformationElement,
        time: Option<TimeTag>,
    ) -> Result<Self, AsduError> {
        if !type_id.is_monitor() {
            return Err(AsduError::ElementMismatch(type_id));
        }
        let p = Self {
            type_id,
            ioa,
            element,
            time,
        };
        // validates element/time against the type
        p.asdu(Cot::new(Cause::SPONTANEOUS), CommonAddress(1), false)
            .encode(&AsduSizes::default())?;
        Ok(p)
    }

    fn object(&self, keep_time: bool) -> InformationObject {
        InformationObject {
            ioa: self.ioa,
            element: self.element,
            time: if keep_time { self.time } else { None },
        }
    }

    fn asdu(&self, cot: Cot, ca: CommonAddress, untagged: bool) -> Asdu {
        let tid = if untagged {
            self.type_id.without_time()
        } else {
            self.type_id
        };
        let keep = tid == self.type_id;
        Asdu::single(tid, cot, ca, self.object(keep))
    }

    fn is_counter(&self) -> bool {
        matches!(self.element, InformationElement::IntegratedTotal { .. })
    }

    fn is_protection(&self) -> bool {
        matches!(
            self.element,
            InformationElement::ProtectionEvent { .. }
                | InformationElement::ProtectionStartEvents { .. }
                | InformationElement::ProtectionOutputCircuits { .. }
        )
    }
}

/// The outstation's points by IOA.
#[derive(Debug, Clone, Default)]
pub struct PointDb {
    points: BTreeMap<Ioa, Point>,
}

impl PointDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a point.
    pub fn insert(&mut self, point: Point) {
        self.points.insert(point.ioa, point);
    }

    /// The point at `ioa`.
    pub fn get(&self, ioa: Ioa) -> Option<&Point> {
        self.points.get(&ioa)
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Points in IOA order.
    pub fn iter(&self) -> impl Iterator<Item = &Point> {
        self.points.values()
    }
}

/// A command or parameter received from the master.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandRequest {
    /// Type identification.
    pub type_id: TypeId,
    /// Common address it was sent to.
    pub common_address: CommonAddress,
    /// Information object address.
    pub ioa: Ioa,
    /// The command element (S/E bit included).
    pub element: InformationElement,
    /// CP56 time tag of types 58-64.
    pub time: Option<TimeTag>,
}

/// The application's side of commands. Return `true` to accept (positive ACT_CON).
///
/// The methods run on the outstation task: they must not block (hand long work to another
/// task and answer at once).
pub trait CommandHandler: Send + 'static {
    /// A select (S/E=1). Default: accept.
    fn select(&mut self, _req: &CommandRequest) -> bool {
        true
    }
    /// An execute (S/E=0), a command without S/E bit, or a parameter.
    fn execute(&mut self, req: &CommandRequest) -> bool;
    /// Whether this point accepts execution only after a select. Default: no.
    fn requires_select(&mut self, _type_id: TypeId, _ioa: Ioa) -> bool {
        false
    }
    /// Clock synchronisation. Default: accept.
    fn clock_sync(&mut self, _time: Cp56Time2a) -> bool {
        true
    }
    /// Reset process command. Default: accept.
    fn reset_process(&mut self, _qrp: u8) -> bool {
        true
    }
}

/// A handler that accepts every command.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl CommandHandler for AcceptAll {
    fn execute(&mut self, _req: &CommandRequest) -> bool {
        true
    }
}

/// Errors of the outstation handle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutstationError {
    /// The outstation task has ended.
    #[error("outstation task has ended")]
    Shutdown,
}

enum Request {
    Update(Point),
    Shutdown,
}

/// Handle to a running outstation.
#[derive(Debug, Clone)]
pub struct OutstationHandle {
    tx: mpsc::Sender<Request>,
    local_addr: SocketAddr,
}

impl OutstationHandle {
    /// The bound listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stores a point and sends it spontaneously (COT 3) when data transfer is started.
    pub async fn update(&self, point: Point) -> Result<(), OutstationError> {
        self.tx
            .send(Request::Update(point))
            .await
            .map_err(|_| OutstationError::Shutdown)
    }

    /// Stops the outstation (closing the connection and the listener).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
    }
}

/// Binds the listener and starts the outstation task.
pub async fn spawn_outstation<H: CommandHandler>(
    config: OutstationConfig,
    db: PointDb,
    handler: H,
) -> std::io::Result<OutstationHandle> {
    config
        .link
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(config.bind).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(config.max_queued.max(1));
    tracing::info!(%local_addr, "outstation listening");
    tokio::spawn(run(config, db, Box::new(handler), listener, rx));
    Ok(OutstationHandle { tx, local_addr })
}

struct Station {
    config: OutstationConfig,
    db: PointDb,
    handler: Box<dyn CommandHandler>,
    /// Selected (type, ioa) -> expiry.
    selected: HashMap<(TypeId, Ioa), Instant>,
    queue: VecDeque<Asdu>,
}

impl Station {
    fn ca(&self) -> CommonAddress {
        self.config.common_address
    }

    fn push(&mut self, asdu: Asdu) {
        self.queue.push_back(asdu);
    }

    fn cot(&self, cause: Cause) -> Cot {
        Cot::new(cause)
    }

    /// Packs points into ASDUs of one type each (SQ=0), as large as fit.
    fn send_points<'a>(&mut self, points: impl Iterator<Item = &'a Point>, cause: Cause) {
        let cot = self.cot(cause);
        let ca = self.ca();
        let sizes = self.config.sizes;
        let mut current: Option<Asdu> = None;
        let mut out = Vec::new();
        for p in points {
            let single = p.asdu(cot, ca, cause != Cause::REQUESTED_BY_GENERAL_COUNTER);
            let Some(obj) = single.objects.first().copied() else {
                continue;
            };
            if let Some(cur) = current.as_mut() {
                if cur.type_id == single.type_id && cur.try_push(obj, &sizes) {
                    continue;
                }
            }
            if let Some(done) = current.take() {
                out.push(done);
            }
            current = Some(single);
        }
        out.extend(current);
        for a in out {
            self.push(a);
        }
    }

    fn handle(&mut self, req: Asdu) {
        let tid = req.type_id;
        let cause = req.cot.cause;
        let Some(obj) = req.objects.first().copied() else {
            return;
        };
        let broadcast = req.common_address.is_broadcast(&self.config.sizes);
        if !tid.is_command() && !tid.is_parameter() && (tid as u8) < 100 {
            self.push(req.mirror(Cause::UNKNOWN_TYPE_ID, true));
            return;
        }
        let station_wide = matches!(
            tid,
            TypeId::C_IC_NA_1 | TypeId::C_CI_NA_1 | TypeId::C_CS_NA_1
        );
        if req.common_address != self.ca() && !(broadcast && station_wide) {
            self.push(req.mirror(Cause::UNKNOWN_COMMON_ADDRESS, true));
            return;
        }
        let answer = |st: &mut Station, ok: bool| {
            let mut a = req.mirror(Cause::ACTIVATION_CON, !ok);
            a.common_address = st.ca();
            st.push(a);
        };
        match tid {
            TypeId::C_RD_NA_1 => {
                if cause != Cause::REQUEST {
                    self.push(req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                match self.db.get(obj.ioa).copied() {
                    Some(p) => {
                        let a = p.asdu(self.cot(Cause::REQUEST), self.ca(), false);
                        self.push(a);
                    }
                    None => self.push(req.mirror(Cause::UNKNOWN_IOA, true)),
                }
            }
            TypeId::C_IC_NA_1 | TypeId::C_CI_NA_1 => {
                if cause == Cause::DEACTIVATION {
                    self.push(req.mirror(Cause::DEACTIVATION_CON, false));
                    return;
                }
                if cause != Cause::ACTIVATION {
                    self.push(req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                answer(self, true);
                let db = std::mem::take(&mut self.db);
                match obj.element {
                    InformationElement::Interrogation { qoi: 20 } => self.send_points(
                        db.iter().filter(|p| !p.is_counter() && !p.is_protection()),
                        Cause::INTERROGATED_BY_STATION,
                    ),
                    InformationElement::CounterInterrogation { rqt: 5, .. } => self.send_points(
                        db.iter().filter(|p| p.is_counter()),
                        Cause::REQUESTED_BY_GENERAL_COUNTER,
                    ),
                    _ => {}
                }
                self.db = db;
                let mut term = req.mirror(Cause::ACTIVATION_TERMINATION, false);
                term.common_address = self.ca();
                self.push(term);
            }
            TypeId::C_CS_NA_1
            | TypeId::C_TS_NA_1
            | TypeId::C_TS_TA_1
            | TypeId::C_RP_NA_1
            | TypeId::C_CD_NA_1 => {
                if cause != Cause::ACTIVATION {
                    self.push(req.mirror(Cause::UNKNOWN_CAUSE, true));
                    return;
                }
                let ok = match obj.element {
                    InformationElement::ClockSync { time } => self.handler.clock_sync(time),
                    InformationElement::ResetProcess { qrp } => self.handler.reset_process(qrp),
                    _ => true,
                };
                answer(self, ok);
            }
            _ => self.handle_command(&req, obj),
        }
    }

    fn handle_command(&mut self, req: &Asdu, obj: InformationObject) {
        let tid = req.type_id;
        let cause = req.cot.cause;
        let key = (tid.without_time(), obj.ioa);
        let cmd = CommandRequest {
            type_id: tid,
            common_address: req.common_address,
            ioa: obj.ioa,
            element: obj.element,
            time: obj.time,
        };
        if cause == Cause::DEACTIVATION {
            self.selected.remove(&key);
            self.push(req.mirror(Cause::DEACTIVATION_CON, false));
            return;
        }
        if cause != Cause::ACTIVATION {
            self.push(req.mirror(Cause::UNKNOWN_CAUSE, true));
            return;
        }
        let select = crate::command::is_select(&obj.element);
        let now = now();
        self.selected.retain(|_, exp| *exp > now);
        if select {
            let ok = self.handler.select(&cmd);
            if ok {
                let exp = now.checked_add(self.config.select_timeout).unwrap_or(now);
                self.selected.insert(key, exp);
            }
            self.push(req.mirror(Cause::ACTIVATION_CON, !ok));
            return;
        }
        let was_selected = self.selected.remove(&key).is_some();
        let ok = if !was_selected && self.handler.requires_select(tid, obj.ioa) {
            tracing::info!(ioa = %obj.ioa, type_id = %tid, "execute without select rejected");
            false
        } else {
            self.handler.execute(&cmd)
        };
        self.push(req.mirror(Cause::ACTIVATION_CON, !ok));
        if ok && tid.is_setpoint() {
            self.push(req.mirror(Cause::ACTIVATION_TERMINATION, false));
        }
    }

    fn fill_window(&mut self, link: &mut Link) {
        while link.can_send() {
            let Some(asdu) = self.queue.pop_front() else {
                break;
            };
            match asdu.encode(&self.config.sizes) {
                Ok(bytes) => {
                    if link.send_asdu(bytes, now()).is_err() {
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode answer; dropped"),
            }
        }
    }
}

async fn run(
    config: OutstationConfig,
    db: PointDb,
    handler: Box<dyn CommandHandler>,
    listener: TcpListener,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut st = Station {
        config,
        db,
        handler,
        selected: HashMap::new(),
        queue: VecDeque::new(),
    };
    let mut session: Option<Session> = None;
    let mut buf = [0u8; READ_CHUNK];
    loop {
        if let Some(s) = session.as_mut() {
            let r = drive(&mut st, s).await;
            if let Err(e) = r {
                tracing::info!(error = %e, "connection closed");
                session = None;
                st.queue.clear();
            }
        }
        let deadline = session.as_ref().map(Session::deadline);
        let has_session = session.is_some();
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((stream, peer)) => {
                    tracing::info!(%peer, replaced = has_session, "master connected");
                    let _ = stream.set_nodelay(true);
                    st.queue.clear();
                    st.selected.clear();
                    session = Some(new_session(&st.config, stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            req = rx.recv() => match req {
                None | Some(Request::Shutdown) => return,
                Some(Request::Update(p)) => {
                    st.db.insert(p);
                    if session.as_ref().is_some_and(|s| s.link.is_started()) {
                        if st.queue.len() >= st.config.max_queued {
                            tracing::warn!(ioa = %p.ioa, "send queue full; spontaneous update dropped");
                        } else {
                            let a = p.asdu(st.cot(Cause::SPONTANEOUS), st.ca(), false);
                            st.push(a);
                        }
                    }
                }
            },
            r = async {
                match session.as_mut() {
                    Some(s) => read_some(&mut s.stream, &mut buf).await,
                    None => std::future::pending().await,
                }
            } => {
                let res = match (r, session.as_mut()) {
                    (Ok(n), Some(s)) => s.on_read(buf.get(..n).unwrap_or_default()),
                    (Err(e), _) => Err(SessionError::Io(e)),
                    (Ok(_), None) => Ok(()),
                };
                if let Err(e) = res {
                    tracing::info!(error = %e, "connection closed");
                    session = None;
                    st.queue.clear();
                }
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(s) = session.as_mut() {
                    if let Err(e) = s.on_timeout() {
                        tracing::info!(error = %e, "connection closed");
                        session = None;
                        st.queue.clear();
                    }
                }
            },
        }
    }
}

fn new_session(config: &OutstationConfig, stream: TcpStream) -> Session {
    Session::new(
        Box::new(stream),
        Link::new(Role::Controlled, config.link, now()),
        config.sizes,
        config.decode_level,
    )
}

/// Processes link events, fills the window and writes.
async fn drive(st: &mut Station, s: &mut Session) -> Result<(), SessionError> {
    loop {
        let mut any = false;
        while let Some(ev) = s.link.poll_event() {
            any = true;
            match ev {
                LinkEvent::Started => tracing::info!("data transfer started"),
                LinkEvent::Stopped => {
                    tracing::info!("data transfer stopped");
                    st.queue.clear();
                }
                LinkEvent::Acknowledged(_) => {}
                LinkEvent::Asdu(bytes) => match Asdu::decode(&bytes, &st.config.sizes) {
                    Ok(asdu) => st.handle(asdu),
                    Err(AsduError::UnknownTypeId(t)) => {
                        tracing::warn!(type_id = t, "unknown type identification");
                        // answer COT 44 by echoing the raw ASDU with the cause changed
                        let mut raw = bytes;
                        if let Some(c) = raw.get_mut(2) {
                            *c = (*c & 0x80) | 0x40 | Cause::UNKNOWN_TYPE_ID.value();
                        }
                        let _ = s.link.send_asdu(raw, now());
                    }
                    Err(e) => s.bad_asdu(&e),
                },
            }
        }
        st.fill_window(&mut s.link);
        s.flush().await?;
        if !any {
            return Ok(());
        }
    }
}
