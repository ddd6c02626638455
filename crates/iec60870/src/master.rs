//! The controlling station (master/client) over tokio.
//!
//! [`spawn_master`] starts a task that connects to the configured addresses in turn (each
//! with `connect_timeout`), sends STARTDT act, and runs the link. Reconnection happens inside
//! the task with exponential backoff and jitter (`reconnect_min` doubling up to
//! `reconnect_max`, +-25 % jitter; reset after a connection reached STARTDT con), so it never
//! loops tightly. The task ends when every [`MasterHandle`] is dropped or on
//! [`MasterHandle::shutdown`].
//!
//! Nothing is sent before STARTDT con: requests made while the link is not active fail at
//! once with [`MasterError::LinkDown`] / [`CommandResult::LinkDown`] (commands are never queued
//! for a later connection). Received ASDUs are all delivered as [`MasterEvent::Asdu`], in
//! order, including confirmations; the event channel is bounded, so a slow consumer applies
//! back-pressure to the link (keep draining it).
//!
//! Command confirmations are matched by type, common address and IOA (never by originator
//! address). COT 44-47 are failures whatever the P/N bit says.
//!
//! With a [`Connector`] in [`MasterConfig::transport`] every connection is secured by it right
//! after the TCP connect (a failed handshake counts as a failed connect: next address, then
//! backoff; there is no plaintext fallback). When the connector sets a renewal interval the
//! session's keys are renewed on it while the link is active: in place when the stream can
//! ([`crate::transport::LinkStream::renew_keys`], the TLS 1.3 KeyUpdate), otherwise by a
//! planned reconnect to the same address: STOPDT act (acknowledging everything received), STOPDT con (the outstation answers it only
//! once all its I frames are acknowledged, and sends none after it), close, connect again at
//! once, STARTDT. Nothing is lost or duplicated: every I frame of the old connection was
//! delivered and acknowledged. The planned reconnect waits while commands are pending; the
//! application sees no [`MasterEvent::Disconnected`] for it, only [`MasterEvent::Connected`]
//! and [`MasterEvent::Active`] again (a new activation: it interrogates again). Requests made
//! during the few round trips of the renewal fail with [`MasterError::LinkDown`].

use crate::asdu::{Asdu, AsduError, InformationElement, InformationObject};
use crate::command::{
    check_command_timeout, ActTerm, Command, CommandResult, CommandSequence, CommandStep,
};
use crate::decode::DecodeLevel;
use crate::link::{ConfigError, Link, LinkConfig, LinkEvent, Role};
use crate::session::{now, read_some, Session, SessionError, READ_CHUNK};
use crate::time::Cp56Time2a;
use crate::transport::{BoxLinkStream, Connector};
use crate::types::{AsduSizes, Cause, CommonAddress, Cot, Ioa, TypeId};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Master configuration.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Outstation addresses, tried in turn.
    pub addrs: Vec<SocketAddr>,
    /// Timeout of one TCP connect (t0); default 30 s.
    pub connect_timeout: Duration,
    /// APCI parameters.
    pub link: LinkConfig,
    /// ASDU field sizes.
    pub sizes: AsduSizes,
    /// Protocol logging.
    pub decode_level: DecodeLevel,
    /// Originator address put in the COT of sent ASDUs (0 by default).
    pub originator: u8,
    /// Time to wait for ACT_CON of a command or system command; default 10 s.
    pub command_timeout: Duration,
    /// Time to wait for ACT_TERM after a positive execute ACT_CON of a command with
    /// [`ActTerm::Await`]; default 2 s (missing ACT_TERM is not an error).
    pub act_term_timeout: Duration,
    /// First reconnect delay; default 1 s.
    pub reconnect_min: Duration,
    /// Largest reconnect delay; default 30 s.
    pub reconnect_max: Duration,
    /// Capacity of the request and event channels and of the send queue; default 256.
    pub queue_size: usize,
    /// Secures each connection (TLS); `None`: plain TCP.
    pub transport: Option<Arc<dyn Connector>>,
}

impl MasterConfig {
    /// Checks the link parameters, the command timeouts and that the channels have room.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.link.validate()?;
        check_command_timeout("command_timeout", self.command_timeout)?;
        check_command_timeout("act_term_timeout", self.act_term_timeout)?;
        if self.queue_size == 0 {
            return Err(ConfigError::BadQueueSize);
        }
        if self.reconnect_min < MIN_RECONNECT_DELAY || self.reconnect_max < self.reconnect_min {
            return Err(ConfigError::BadReconnect);
        }
        Ok(())
    }

    /// Defaults for the given addresses.
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        let link = LinkConfig::default();
        Self {
            addrs,
            connect_timeout: link.t0,
            link,
            sizes: AsduSizes::default(),
            decode_level: DecodeLevel::Off,
            originator: 0,
            command_timeout: Duration::from_secs(10),
            act_term_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            queue_size: 256,
            transport: None,
        }
    }
}

/// What the master reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MasterEvent {
    /// TCP connected.
    Connected(SocketAddr),
    /// STARTDT con received: data transfer is active, requests may be sent.
    Active,
    /// The connection ended (or a connect attempt round failed).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// An ASDU arrived.
    Asdu(Asdu),
}

/// Errors of the master handle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MasterError {
    /// The master task has ended.
    #[error("master task has ended")]
    Shutdown,
    /// The link is not active (not connected or before STARTDT con).
    #[error("link not active")]
    LinkDown,
    /// Too many queued sends or pending commands.
    #[error("queue full")]
    QueueFull,
    /// The ASDU cannot be encoded.
    #[error("cannot encode ASDU: {0}")]
    Encode(#[from] AsduError),
    /// The element is not a command element.
    #[error("not a command element")]
    NotACommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    type_id: TypeId,
    ca: CommonAddress,
    ioa: Ioa,
}

impl Key {
    fn of(asdu: &Asdu) -> Option<Self> {
        Some(Self {
            type_id: asdu.type_id,
            ca: asdu.common_address,
            ioa: asdu.first_ioa()?,
        })
    }

    fn matches(&self, answer: &Key) -> bool {
        self.type_id == answer.type_id
            && self.ioa == answer.ioa
            && (self.ca == answer.ca || self.ca == CommonAddress::BROADCAST)
    }
}

enum Request {
    Send {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), MasterError>>,
    },
    Transaction {
        bytes: Vec<u8>,
        key: Key,
        con: oneshot::Sender<Result<CommandResult, MasterError>>,
        term: Option<oneshot::Sender<()>>,
    },
    Shutdown,
}

type ConReceiver = oneshot::Receiver<Result<CommandResult, MasterError>>;
type Answers = (ConReceiver, Option<oneshot::Receiver<()>>);

/// The system time as CP56Time2a (None before 2000 or after 2099).
fn system_time() -> Option<Cp56Time2a> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    Cp56Time2a::from_unix_ms(i64::try_from(ms).ok()?).ok()
}

struct Pending {
    key: Key,
    con: Option<oneshot::Sender<Result<CommandResult, MasterError>>>,
    term: Option<oneshot::Sender<()>>,
}

impl Pending {
    fn is_dead(&self) -> bool {
        let con_dead = self.con.as_ref().is_none_or(|c| c.is_closed());
        let term_dead = self.term.as_ref().is_none_or(|t| t.is_closed());
        con_dead && term_dead
    }
}

/// Handle to a master task; cheap to clone. The task ends when all handles are dropped.
#[derive(Clone)]
pub struct MasterHandle {
    tx: mpsc::Sender<Request>,
    sizes: AsduSizes,
    originator: u8,
    command_timeout: Duration,
    act_term_timeout: Duration,
}

impl std::fmt::Debug for MasterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterHandle").finish_non_exhaustive()
    }
}

/// The command type for an element without time tag; `None` for non-command elements.
pub fn command_type(element: &InformationElement) -> Option<TypeId> {
    use InformationElement as E;
    Some(match element {
        E::SingleCommand { .. } => TypeId::C_SC_NA_1,
        E::DoubleCommand { .. } => TypeId::C_DC_NA_1,
        E::RegulatingStep { .. } => TypeId::C_RC_NA_1,
        E::SetpointNormalized { .. } => TypeId::C_SE_NA_1,
        E::SetpointScaled { .. } => TypeId::C_SE_NB_1,
        E::SetpointFloat { .. } => TypeId::C_SE_NC_1,
        E::Bitstring32Command { .. } => TypeId::C_BO_NA_1,
        E::ParameterNormalized { .. } => TypeId::P_ME_NA_1,
        E::ParameterScaled { .. } => TypeId::P_ME_NB_1,
        E::ParameterFloat { .. } => TypeId::P_ME_NC_1,
        E::ParameterActivation { .. } => TypeId::P_AC_NA_1,
        _ => return None,
    })
}

impl MasterHandle {
    fn cot(&self, cause: Cause) -> Cot {
        Cot {
            originator: self.originator,
            ..Cot::new(cause)
        }
    }

    /// Queues an ASDU for sending; it goes out as soon as the k window allows.
    /// Fails with `LinkDown` unless data transfer is active.
    pub async fn send_asdu(&self, asdu: Asdu) -> Result<(), MasterError> {
        let bytes = asdu.encode(&self.sizes)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Send { bytes, reply })
            .await
            .map_err(|_| MasterError::Shutdown)?;
        rx.await.map_err(|_| MasterError::Shutdown)?
    }

    /// Sends an ASDU and waits for its ACT_CON (up to `command_timeout`); with `wait_term`,
    /// then waits up to `act_term_timeout` for ACT_TERM.
    pub async fn transaction(
        &self,
        asdu: Asdu,
        wait_term: bool,
    ) -> Result<CommandResult, MasterError> {
        let (con_rx, term_rx) = self.submit(asdu, wait_term).await?;
        match self.confirmation(con_rx).await? {
            CommandResult::Confirmed { .. } => {
                let terminated = match term_rx {
                    Some(t) => self.termination(t).await,
                    None => false,
                };
                Ok(CommandResult::Confirmed { terminated })
            }
            r => Ok(r),
        }
    }

    /// Queues a transaction: the receivers of its ACT_CON and (with `wait_term`) ACT_TERM.
    async fn submit(&self, asdu: Asdu, wait_term: bool) -> Result<Answers, MasterError> {
        let bytes = asdu.encode(&self.sizes)?;
        let key = Key::of(&asdu).ok_or(AsduError::NoObjects)?;
        let (con, con_rx) = oneshot::channel();
        let (term, term_rx) = if wait_term {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        self.tx
            .send(Request::Transaction {
                bytes,
                key,
                con,
                term,
            })
            .await
            .map_err(|_| MasterError::Shutdown)?;
        Ok((con_rx, term_rx))
    }

    /// Waits up to `command_timeout` for the ACT_CON.
    async fn confirmation(&self, con_rx: ConReceiver) -> Result<CommandResult, MasterError> {
        match tokio::time::timeout(self.command_timeout, con_rx).await {
            Err(_) => Ok(CommandResult::Timeout),
            Ok(Err(_)) => Err(MasterError::Shutdown),
            Ok(Ok(r)) => r,
        }
    }

    /// Waits up to `act_term_timeout` for the ACT_TERM: whether it came.
    async fn termination(&self, term_rx: oneshot::Receiver<()>) -> bool {
        matches!(
            tokio::time::timeout(self.act_term_timeout, term_rx).await,
            Ok(Ok(()))
        )
    }

    /// Runs a command through its [`CommandSequence`]: direct or select-before-operate,
    /// nothing sent after its deadline, ACT_TERM awaited as the command says. Time-tagged
    /// types carry the system time of each send.
    pub async fn execute(&self, command: Command) -> Result<CommandResult, MasterError> {
        let (mut seq, mut step) = CommandSequence::start(command, now());
        let mut term_rx = None;
        loop {
            step = match step {
                CommandStep::Done(r) => return Ok(r),
                CommandStep::Send { select } => {
                    let asdu = seq.command().asdu(select, self.originator, system_time());
                    let wait_term = !select && seq.command().act_term == ActTerm::Await;
                    let (con_rx, term) = self.submit(asdu, wait_term).await?;
                    term_rx = term;
                    let r = self.confirmation(con_rx).await?;
                    seq.on_confirmation(r, now())
                }
                CommandStep::AwaitTermination => {
                    let received = match term_rx.take() {
                        Some(t) => self.termination(t).await,
                        None => false,
                    };
                    seq.on_termination(received)
                }
            };
        }
    }

    /// Station general interrogation (C_IC_NA_1, QOI 20); returns at ACT_CON. The points
    /// (COT 20) and ACT_TERM arrive as [`MasterEvent::Asdu`].
    pub async fn general_interrogation(
        &self,
        ca: CommonAddress,
    ) -> Result<CommandResult, MasterError> {
        let obj = InformationObject::new(Ioa(0), InformationElement::Interrogation { qoi: 20 });
        let asdu = Asdu::single(TypeId::C_IC_NA_1, self.cot(Cause::ACTIVATION), ca, obj);
        self.transaction(asdu, false).await
    }

    /// General counter interrogation (C_CI_NA_1, RQT 5, FRZ 0); returns at ACT_CON. The
    /// integrated totals (COT 37) and ACT_TERM arrive as events.
    pub async fn counter_interrogation(
        &self,
        ca: CommonAddress,
    ) -> Result<CommandResult, MasterError> {
        let obj = InformationObject::new(
            Ioa(0),
            InformationElement::CounterInterrogation { rqt: 5, frz: 0 },
        );
        let asdu = Asdu::single(TypeId::C_CI_NA_1, self.cot(Cause::ACTIVATION), ca, obj);
        self.transaction(asdu, false).await
    }

    /// Clock synchronisation (C_CS_NA_1); returns at ACT_CON.
    pub async fn clock_sync(
        &self,
        ca: CommonAddress,
        time: Cp56Time2a,
    ) -> Result<CommandResult, MasterError> {
        let obj = InformationObject::new(Ioa(0), InformationElement::ClockSync { time });
        let asdu = Asdu::single(TypeId::C_CS_NA_1, self.cot(Cause::ACTIVATION), ca, obj);
        self.transaction(asdu, false).await
    }

    /// A direct command or parameter (type chosen from the element, no time tag); returns
    /// at ACT_CON.
    pub async fn command(
        &self,
        ca: CommonAddress,
        ioa: Ioa,
        element: InformationElement,
    ) -> Result<CommandResult, MasterError> {
        let tid = command_type(&element).ok_or(MasterError::NotACommand)?;
        self.execute(Command::direct(tid, ca, ioa, element)).await
    }

    /// A command with CP56 time tag (types 58-64, the current time); returns at ACT_CON.
    pub async fn command_with_time(
        &self,
        ca: CommonAddress,
        ioa: Ioa,
        element: InformationElement,
    ) -> Result<CommandResult, MasterError> {
        let tid = command_type(&element)
            .filter(|t| t.is_command())
            .and_then(TypeId::with_cp56)
            .ok_or(MasterError::NotACommand)?;
        self.execute(Command::direct(tid, ca, ioa, element)).await
    }

    /// Select-before-operate: select (S/E=1), wait for ACT_CON, execute (S/E=0), wait for
    /// ACT_CON and then up to `act_term_timeout` for ACT_TERM. Returns the first failure,
    /// or `Confirmed { terminated }` of the execute step.
    pub async fn select_before_operate(
        &self,
        ca: CommonAddress,
        ioa: Ioa,
        element: InformationElement,
    ) -> Result<CommandResult, MasterError> {
        let tid = command_type(&element).ok_or(MasterError::NotACommand)?;
        self.execute(Command {
            select_before_operate: true,
            act_term: ActTerm::Await,
            ..Command::direct(tid, ca, ioa, element)
        })
        .await
    }

    /// Stops the master task (closing any connection).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
    }
}

/// Starts a master task. Must be called inside a tokio runtime.
///
/// An invalid configuration (see [`MasterConfig::validate`]) yields one
/// [`MasterEvent::Disconnected`] naming the error and a task that never connects.
pub fn spawn_master(config: MasterConfig) -> (MasterHandle, mpsc::Receiver<MasterEvent>) {
    let cap = config.queue_size.max(1);
    let (tx, rx) = mpsc::channel(cap);
    let (ev_tx, ev_rx) = mpsc::channel(cap);
    let handle = MasterHandle {
        tx,
        sizes: config.sizes,
        originator: config.originator,
        command_timeout: config.command_timeout,
        act_term_timeout: config.act_term_timeout,
    };
    match config.validate() {
        Ok(()) => {
            // The caller's span (e.g. one naming the device) covers the task's lines.
            tokio::spawn(tracing::Instrument::in_current_span(run(config, rx, ev_tx)));
        }
        Err(e) => {
            tracing::error!(error = %e, "invalid master configuration");
            let _ = ev_tx.try_send(MasterEvent::Disconnected {
                reason: format!("invalid configuration: {e}"),
            });
            drop(rx);
        }
    }
    (handle, ev_rx)
}

/// Never less than this between connection rounds.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(10);

fn jittered(d: Duration) -> Duration {
    // +-25 %; try_from never panics (unlike mul_f64 on overflow)
    let factor = 0.75 + fastrand::f64() * 0.5;
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(d)
        .max(MIN_RECONNECT_DELAY)
}

enum Offline {
    Continue,
    Shutdown,
}

/// Answers requests while no link is active.
fn reject(req: Option<Request>) -> Offline {
    match req {
        None | Some(Request::Shutdown) => Offline::Shutdown,
        Some(Request::Send { reply, .. }) => {
            let _ = reply.send(Err(MasterError::LinkDown));
            Offline::Continue
        }
        Some(Request::Transaction { con, .. }) => {
            let _ = con.send(Ok(CommandResult::LinkDown));
            Offline::Continue
        }
    }
}

async fn run(
    config: MasterConfig,
    mut rx: mpsc::Receiver<Request>,
    events: mpsc::Sender<MasterEvent>,
) {
    let mut delay = config.reconnect_min;
    // the address of a planned reconnect (key renewal), tried first and without delay
    let mut renew_at: Option<SocketAddr> = None;
    loop {
        let mut connected = None;
        let order: Vec<SocketAddr> = renew_at
            .take()
            .into_iter()
            .chain(config.addrs.iter().copied())
            .collect();
        for addr in &order {
            tracing::debug!(%addr, "connecting");
            let attempt = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr));
            tokio::pin!(attempt);
            let res = loop {
                tokio::select! {
                    r = &mut attempt => break Some(r),
                    req = rx.recv() => if let Offline::Shutdown = reject(req) { break None },
                }
            };
            let tcp = match res {
                None => return,
                Some(Ok(Ok(stream))) => stream,
                Some(Ok(Err(e))) => {
                    tracing::info!(%addr, error = %e, "connect failed");
                    continue;
                }
                Some(Err(_)) => {
                    tracing::info!(%addr, "connect timed out");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            match secure(&config, tcp, *addr, &mut rx).await {
                Secured::Stream(stream) => {
                    connected = Some((*addr, stream));
                    break;
                }
                // the transport logged and counted why
                Secured::Failed => {}
                Secured::Shutdown => return,
            }
        }
        let reason = match connected {
            Some((addr, stream)) => {
                tracing::info!(%addr, "connected");
                let _ = events.send(MasterEvent::Connected(addr)).await;
                let outcome = run_session(&config, stream, &mut rx, &events).await;
                if outcome.was_active {
                    delay = config.reconnect_min;
                }
                if outcome.shutdown {
                    return;
                }
                if outcome.renew {
                    tracing::info!(%addr, "session renewed by a planned reconnect");
                    renew_at = Some(addr);
                    continue;
                }
                tracing::info!(%addr, reason = %outcome.reason, "disconnected");
                outcome.reason
            }
            None => "no address reachable".to_string(),
        };
        let _ = events.send(MasterEvent::Disconnected { reason }).await;
        let sleep = tokio::time::sleep(jittered(delay));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                req = rx.recv() => if let Offline::Shutdown = reject(req) { return },
            }
        }
        delay = delay.saturating_mul(2).min(config.reconnect_max);
    }
}

enum Secured {
    Stream(BoxLinkStream),
    Failed,
    Shutdown,
}

/// Runs the transport's handshake (within `connect_timeout`) while answering requests.
async fn secure(
    config: &MasterConfig,
    tcp: TcpStream,
    addr: SocketAddr,
    rx: &mut mpsc::Receiver<Request>,
) -> Secured {
    let Some(connector) = &config.transport else {
        return Secured::Stream(Box::new(tcp));
    };
    let handshake = tokio::time::timeout(config.connect_timeout, connector.connect(tcp, addr));
    tokio::pin!(handshake);
    loop {
        tokio::select! {
            r = &mut handshake => return match r {
                Ok(Ok(stream)) => Secured::Stream(stream),
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "handshake failed");
                    Secured::Failed
                }
                Err(_) => {
                    tracing::warn!(%addr, "handshake timed out");
                    Secured::Failed
                }
            },
            req = rx.recv() => if let Offline::Shutdown = reject(req) { return Secured::Shutdown },
        }
    }
}

struct SessionOutcome {
    reason: String,
    was_active: bool,
    shutdown: bool,
    /// Ended by a planned reconnect (key renewal): connect again at once.
    renew: bool,
}

/// Retry delay of a renewal put off while commands are pending.
const RENEWAL_RETRY: Duration = Duration::from_secs(1);

/// The next renewal instant `every` from now, if any.
fn renewal_due(every: Option<Duration>) -> Option<tokio::time::Instant> {
    every.and_then(|d| tokio::time::Instant::now().checked_add(d))
}

struct MasterSession<'a> {
    config: &'a MasterConfig,
    queue: VecDeque<Vec<u8>>,
    pending: Vec<Pending>,
    was_active: bool,
}

impl MasterSession<'_> {
    /// Matches an answer against pending transactions.
    fn on_answer(&mut self, asdu: &Asdu) {
        let cause = asdu.cot.cause;
        let is_con = cause == Cause::ACTIVATION_CON || cause == Cause::DEACTIVATION_CON;
        let is_term = cause == Cause::ACTIVATION_TERMINATION;
        let is_failure = cause.is_unknown_failure();
        if !(is_con || is_term || is_failure) {
            return;
        }
        let Some(key) = Key::of(asdu) else { return };
        self.pending.retain(|p| !p.is_dead());
        if is_con || is_failure {
            let Some(p) = self
                .pending
                .iter_mut()
                .find(|p| p.con.is_some() && p.key.matches(&key))
            else {
                return;
            };
            let result = if asdu.cot.negative || is_failure {
                p.term = None;
                CommandResult::Rejected {
                    cause,
                    negative: asdu.cot.negative,
                }
            } else {
                CommandResult::Confirmed { terminated: false }
            };
            if let Some(c) = p.con.take() {
                let _ = c.send(Ok(result));
            }
        } else if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.con.is_none() && p.term.is_some() && p.key.matches(&key))
        {
            if let Some(t) = p.term.take() {
                let _ = t.send(());
            }
        }
        self.pending.retain(|p| !p.is_dead());
    }

    fn on_request(&mut self, req: Request, link: &mut Link) -> bool {
        let active = link.is_started();
        match req {
            Request::Shutdown => return false,
            Request::Send { bytes, reply } => {
                let r = if !active {
                    Err(MasterError::LinkDown)
                } else if self.queue.len() >= self.config.queue_size {
                    Err(MasterError::QueueFull)
                } else {
                    self.queue.push_back(bytes);
                    Ok(())
                };
                let _ = reply.send(r);
            }
            Request::Transaction {
                bytes,
                key,
                con,
                term,
            } => {
                self.pending.retain(|p| !p.is_dead());
                if !active {
                    let _ = con.send(Ok(CommandResult::LinkDown));
                } else if self.queue.len() >= self.config.queue_size
                    || self.pending.len() >= self.config.queue_size
                {
                    tracing::warn!("too many pending commands; command not sent");
                    let _ = con.send(Err(MasterError::QueueFull));
                } else {
                    self.queue.push_back(bytes);
                    self.pending.push(Pending {
                        key,
                        con: Some(con),
                        term,
                    });
                }
            }
        }
        true
    }

    fn fill_window(&mut self, link: &mut Link) {
        while link.can_send() {
            let Some(bytes) = self.queue.pop_front() else {
                break;
            };
            if link.send_asdu(bytes, now()).is_err() {
                break;
            }
        }
    }

    fn fail_all(&mut self) {
        for p in self.pending.drain(..) {
            if let Some(c) = p.con {
                let _ = c.send(Ok(CommandResult::LinkDown));
            }
        }
        self.queue.clear();
    }
}

async fn run_session(
    config: &MasterConfig,
    stream: BoxLinkStream,
    rx: &mut mpsc::Receiver<Request>,
    events: &mpsc::Sender<MasterEvent>,
) -> SessionOutcome {
    let mut session = Session::new(
        stream,
        Link::new(Role::Controlling, config.link, now()),
        config.sizes,
        config.decode_level,
    );
    session.link.start(now());
    let mut ms = MasterSession {
        config,
        queue: VecDeque::new(),
        pending: Vec::new(),
        was_active: false,
    };
    let mut buf = [0u8; READ_CHUNK];
    let mut shutdown = false;
    let renewal = config.transport.as_ref().and_then(|t| t.renewal());
    let mut next_renewal: Option<tokio::time::Instant> = None;
    let mut renewing = false;
    let result: Result<(), SessionError> = async {
        loop {
            while let Some(ev) = session.link.poll_event() {
                match ev {
                    LinkEvent::Started => {
                        ms.was_active = true;
                        next_renewal = renewal_due(renewal);
                        tracing::info!("data transfer started");
                        let _ = events.send(MasterEvent::Active).await;
                    }
                    LinkEvent::Stopped if renewing => {
                        tracing::debug!("data transfer stopped for the renewal");
                        session.flush().await?;
                        return Ok(());
                    }
                    LinkEvent::Stopped => tracing::info!("data transfer stopped"),
                    LinkEvent::Acknowledged(_) => {}
                    LinkEvent::Asdu(bytes) => match Asdu::decode(&bytes, &config.sizes) {
                        Ok(asdu) => {
                            ms.on_answer(&asdu);
                            let _ = events.send(MasterEvent::Asdu(asdu)).await;
                        }
                        Err(e) => session.bad_asdu(&e),
                    },
                }
            }
            ms.fill_window(&mut session.link);
            session.flush().await?;
            let deadline = session.deadline();
            tokio::select! {
                r = read_some(&mut session.stream, &mut buf) => {
                    let n = r?;
                    session.on_read(buf.get(..n).unwrap_or_default())?;
                }
                _ = tokio::time::sleep_until(deadline) => session.on_timeout()?,
                _ = sleep_until_some(next_renewal) => {
                    next_renewal = None;
                    if !session.link.is_started() {
                        // renewed on the next activation
                    } else if session.stream.renew_keys() {
                        tracing::debug!("session keys renewed (key update)");
                        next_renewal = renewal_due(renewal);
                    } else if !ms.pending.is_empty() || !ms.queue.is_empty() {
                        next_renewal = renewal_due(Some(RENEWAL_RETRY));
                    } else {
                        tracing::debug!("renewing the session: STOPDT");
                        renewing = true;
                        session.link.stop(now());
                    }
                    session.flush().await?;
                }
                req = rx.recv() => match req {
                    Some(req) => if !ms.on_request(req, &mut session.link) {
                        shutdown = true;
                        return Ok(());
                    },
                    None => {
                        shutdown = true;
                        return Ok(());
                    }
                },
            }
        }
    }
    .await;
    ms.fail_all();
    let renew = renewing && !shutdown && result.is_ok();
    if renew {
        // close_notify for TLS; the peer sees an orderly close
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut session.stream).await;
    }
    SessionOutcome {
        reason: match result {
            Ok(()) if renew => "renewal".to_string(),
            Ok(()) => "shutdown".to_string(),
            Err(e) => e.to_string(),
        },
        was_active: ms.was_active,
        shutdown,
        renew,
    }
}

/// Sleeps until `at`; for ever when `None`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
