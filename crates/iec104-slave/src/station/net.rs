//! The tokio layer: one task owns the listener, the [`Station`] and the sockets; a small
//! read task and write task per socket move bytes through bounded channels.
//!
//! A socket whose write channel is full (the master does not read) is closed. Actions go
//! to the applet through a bounded channel; while the applet does not take them the task
//! keeps serving its handle (acknowledgements of one group are merged) and stops reading
//! the sockets once [`MAX_OUTBOX`] actions wait.
//!
//! With an [`Acceptor`] (IEC 62351-3 TLS) every accepted socket is secured first, in a task
//! of its own (at most [`MAX_HANDSHAKES`] at a time, each within t0); only a secured socket
//! becomes a connection of the station. A failed handshake closes that socket (the acceptor
//! logged and counted it); the others are served on. A secured socket has one task for both
//! directions, which also renews the session keys on the acceptor's interval (TLS 1.3
//! KeyUpdate; on TLS 1.2 the slave never forces a renewal: a fieldbridge master renews by a
//! planned reconnect, after which anything not acknowledged is requeued as for any
//! reconnect).

use super::{
    Action, CommandPoint, CommandToken, ConnId, EventToken, GroupId, QueueError, Station,
    StationConfig, StationStatus,
};
use iec60870::transport::{Acceptor, BoxLinkStream};
use iec60870::{Point, PointDb};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Actions waiting for the applet beyond which the sockets are not read.
pub const MAX_OUTBOX: usize = 4096;
/// Capacity of the action channel to the applet.
const ACTION_CHANNEL: usize = 1024;
/// Capacity of the handle's request channel.
const REQUEST_CHANNEL: usize = 256;
/// Frames waiting to be written per socket before it is closed as not reading.
const WRITE_CHANNEL: usize = 512;
/// Reads waiting for the station task, all sockets together.
const READ_CHANNEL: usize = 256;
/// `queue_event` calls waiting for queue space beyond which the handle is not served.
const MAX_PARKED: usize = 1024;
const READ_CHUNK: usize = 4096;
/// TLS handshakes in progress at most; a socket accepted beyond them is closed at once.
pub const MAX_HANDSHAKES: usize = 8;
/// A secured socket whose write does not complete in this time is closed.
const TLS_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the [`StationHandle`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StationError {
    /// The station task has ended.
    #[error("station task has ended")]
    Shutdown,
    /// The event was not queued (unknown group, point not encodable).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

enum Request {
    QueueEvent {
        group: GroupId,
        token: EventToken,
        point: Point,
        reply: oneshot::Sender<Result<(), QueueError>>,
    },
    SetPoint(Point),
    CommandResult(CommandToken, bool),
    Status(oneshot::Sender<StationStatus>),
    Shutdown,
}

/// Handle to a running station (cheap to clone).
#[derive(Debug, Clone)]
pub struct StationHandle {
    tx: mpsc::Sender<Request>,
    local_addr: SocketAddr,
}

impl StationHandle {
    /// The bound listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues an event (see [`Station::queue_event`]); waits while the group's queue is full.
    pub async fn queue_event(
        &self,
        group: GroupId,
        token: EventToken,
        point: Point,
    ) -> Result<(), StationError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::QueueEvent {
            group,
            token,
            point,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StationError::Shutdown)??;
        Ok(())
    }

    /// Stores a point in every group's database without an event.
    pub async fn set_point(&self, point: Point) -> Result<(), StationError> {
        self.send(Request::SetPoint(point)).await
    }

    /// The result of an [`Action::Command`].
    pub async fn command_result(
        &self,
        token: CommandToken,
        positive: bool,
    ) -> Result<(), StationError> {
        self.send(Request::CommandResult(token, positive)).await
    }

    /// Connections and counters.
    pub async fn status(&self) -> Result<StationStatus, StationError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Status(reply)).await?;
        rx.await.map_err(|_| StationError::Shutdown)
    }

    /// Closes every connection and the listener.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
    }

    async fn send(&self, r: Request) -> Result<(), StationError> {
        self.tx.send(r).await.map_err(|_| StationError::Shutdown)
    }
}

/// Binds `bind` and starts the station task; the receiver gets every [`Action`] but
/// [`Action::Close`] (the task closes the socket itself).
pub async fn spawn_station(
    bind: SocketAddr,
    config: StationConfig,
    points: PointDb,
    commands: Vec<CommandPoint>,
) -> io::Result<(StationHandle, mpsc::Receiver<Action>)> {
    spawn_secured_station(bind, config, points, commands, None).await
}

/// [`spawn_station`] whose sockets `acceptor` secures (none: plain TCP).
pub async fn spawn_secured_station(
    bind: SocketAddr,
    config: StationConfig,
    points: PointDb,
    commands: Vec<CommandPoint>,
    acceptor: Option<Arc<dyn Acceptor>>,
) -> io::Result<(StationHandle, mpsc::Receiver<Action>)> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(bind).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(REQUEST_CHANNEL);
    let (actions_tx, actions_rx) = mpsc::channel(ACTION_CHANNEL);
    tracing::info!(%local_addr, tls = acceptor.is_some(), "IEC 104 station listening");
    let handshake_timeout = config.link.t0;
    let station = Station::new(config, points, commands);
    let secure = acceptor.map(|acceptor| Secure {
        acceptor,
        timeout: handshake_timeout,
        in_progress: 0,
    });
    tokio::spawn(run(station, listener, secure, rx, actions_tx));
    Ok((StationHandle { tx, local_addr }, actions_rx))
}

fn wall_clock_ms() -> Option<i64> {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

enum Input {
    Data(Vec<u8>),
    Closed,
}

struct Socket {
    peer: SocketAddr,
    write: mpsc::Sender<Vec<u8>>,
    /// The read task of a plain socket (a secured socket's task ends by itself).
    reader: Option<JoinHandle<()>>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // the writer ends when its channel closes (dropping the write half)
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

/// The TLS side of the station.
struct Secure {
    acceptor: Arc<dyn Acceptor>,
    timeout: Duration,
    in_progress: usize,
}

/// The end of one handshake: the secured stream, or `None` when it failed.
struct Handshaken {
    peer: SocketAddr,
    stream: Option<BoxLinkStream>,
}

struct Parked {
    group: GroupId,
    token: EventToken,
    point: Point,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

struct Task {
    station: Station,
    sockets: HashMap<ConnId, Socket>,
    outbox: VecDeque<Action>,
    parked: VecDeque<Parked>,
    input_tx: mpsc::Sender<(ConnId, Input)>,
}

impl Task {
    fn tick(&mut self) -> Instant {
        if let Some(ms) = wall_clock_ms() {
            self.station.set_wall_clock(ms);
        }
        Instant::now()
    }

    /// A new connection of the station, `None` when it refuses the master.
    fn accept(&mut self, peer: SocketAddr) -> Option<ConnId> {
        let now = self.tick();
        match self.station.accept(peer, now) {
            Ok(c) => Some(c),
            Err(reason) => {
                tracing::warn!(%peer, %reason, "master refused");
                None
            }
        }
    }

    /// A secured socket: one task reads, writes and renews the session keys.
    fn add_secured(
        &mut self,
        mut stream: BoxLinkStream,
        peer: SocketAddr,
        renewal: Option<Duration>,
    ) {
        let Some(conn) = self.accept(peer) else {
            return;
        };
        let (write, mut write_rx) = mpsc::channel::<Vec<u8>>(WRITE_CHANNEL);
        let input = self.input_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let mut renew = renewal.and_then(|d| tokio::time::Instant::now().checked_add(d));
            loop {
                let due = async {
                    match renew {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = stream.read(&mut buf) => match forward(r, &buf, conn, peer, &input).await {
                        Read::More => {}
                        Read::Closed => break,
                        Read::StationGone => return,
                    },
                    bytes = write_rx.recv() => {
                        let Some(bytes) = bytes else {
                            // the station closed the connection: close_notify, then go
                            let _ = tokio::time::timeout(TLS_WRITE_TIMEOUT, stream.shutdown()).await;
                            return;
                        };
                        let written = tokio::time::timeout(TLS_WRITE_TIMEOUT, async {
                            stream.write_all(&bytes).await?;
                            stream.flush().await
                        })
                        .await;
                        if !matches!(written, Ok(Ok(()))) {
                            tracing::debug!(%peer, "write failed");
                            break;
                        }
                    }
                    () = due => {
                        renew = None;
                        if stream.renew_keys() {
                            if let Err(e) = stream.flush().await {
                                tracing::debug!(%peer, error = %e, "write failed");
                                break;
                            }
                            tracing::debug!(%peer, "session keys renewed (key update)");
                            renew = renewal.and_then(|d| tokio::time::Instant::now().checked_add(d));
                        }
                    }
                }
            }
            let _ = input.send((conn, Input::Closed)).await;
        });
        self.sockets.insert(
            conn,
            Socket {
                peer,
                write,
                reader: None,
            },
        );
    }

    fn add_socket(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Some(conn) = self.accept(peer) else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (write, mut write_rx) = mpsc::channel::<Vec<u8>>(WRITE_CHANNEL);
        tokio::spawn(async move {
            while let Some(bytes) = write_rx.recv().await {
                if let Err(e) = wr.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let input = self.input_tx.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let r = rd.read(&mut buf).await;
                match forward(r, &buf, conn, peer, &input).await {
                    Read::More => {}
                    Read::Closed => break,
                    Read::StationGone => return,
                }
            }
            let _ = input.send((conn, Input::Closed)).await;
        });
        self.sockets.insert(
            conn,
            Socket {
                peer,
                write,
                reader: Some(reader),
            },
        );
    }

    /// Writes what the station has for every socket, moves actions to the outbox and
    /// serves parked events; repeats while anything moved.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            let conns: Vec<ConnId> = self.station.connections().collect();
            for conn in conns {
                while let Some(bytes) = self.station.poll_transmit(conn) {
                    moved = true;
                    let full = match self.sockets.get(&conn) {
                        Some(s) => s.write.try_send(bytes).is_err(),
                        None => false,
                    };
                    if full {
                        if let Some(s) = self.sockets.get(&conn) {
                            tracing::warn!(peer = %s.peer, "master does not read; closing");
                        }
                        self.station.on_closed(conn, Instant::now());
                        break;
                    }
                }
            }
            while let Some(action) = self.station.poll_action() {
                moved = true;
                self.route(action);
            }
            while let Some(p) = self.parked.front() {
                if self.station.queue_space(p.group) == 0 {
                    break;
                }
                if let Some(p) = self.parked.pop_front() {
                    moved = true;
                    let r = self.station.queue_event(p.group, p.token, p.point);
                    let _ = p.reply.send(r);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn route(&mut self, action: Action) {
        match action {
            Action::Close { conn, .. } => {
                self.sockets.remove(&conn);
            }
            Action::Disconnected { conn, .. } => {
                self.sockets.remove(&conn);
                self.outbox.push_back(action);
            }
            Action::Acknowledged { group, up_to } => {
                if let Some(Action::Acknowledged { group: g, up_to: u }) = self.outbox.back_mut() {
                    if *g == group {
                        *u = up_to;
                        return;
                    }
                }
                self.outbox.push_back(action);
            }
            other => self.outbox.push_back(other),
        }
    }

    fn request(&mut self, r: Request) -> bool {
        match r {
            Request::QueueEvent {
                group,
                token,
                point,
                reply,
            } => {
                let waiting = self.parked.iter().any(|p| p.group == group);
                let known = group.0 < self.station.group_count();
                if known && (waiting || self.station.queue_space(group) == 0) {
                    self.parked.push_back(Parked {
                        group,
                        token,
                        point,
                        reply,
                    });
                    return true;
                }
                let _ = reply.send(self.station.queue_event(group, token, point));
            }
            Request::SetPoint(p) => self.station.set_point(p),
            Request::CommandResult(token, positive) => self.station.command_result(token, positive),
            Request::Status(reply) => {
                let _ = reply.send(self.station.status());
            }
            Request::Shutdown => return false,
        }
        true
    }
}

/// What a socket's read means for its task.
enum Read {
    /// Data went to the station (or nothing happened): read on.
    More,
    /// EOF or an error: the socket is done (the task reports it closed).
    Closed,
    /// The station task has ended.
    StationGone,
}

/// Hands the result of one read of `buf` to the station.
async fn forward(
    r: io::Result<usize>,
    buf: &[u8],
    conn: ConnId,
    peer: SocketAddr,
    input: &mpsc::Sender<(ConnId, Input)>,
) -> Read {
    match r {
        Ok(0) => Read::Closed,
        Ok(n) => {
            let data = buf.get(..n).unwrap_or_default().to_vec();
            if input.send((conn, Input::Data(data))).await.is_err() {
                return Read::StationGone;
            }
            Read::More
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "read failed");
            Read::Closed
        }
    }
}

/// Starts the handshake of an accepted socket (closes it when too many are in progress).
fn start_handshake(
    secure: &mut Secure,
    stream: TcpStream,
    peer: SocketAddr,
    done: &mpsc::Sender<Handshaken>,
) {
    if secure.in_progress >= MAX_HANDSHAKES {
        tracing::warn!(%peer, "too many TLS handshakes in progress; connection closed");
        return;
    }
    secure.in_progress = secure.in_progress.saturating_add(1);
    let _ = stream.set_nodelay(true);
    let handshake = secure.acceptor.accept(stream, peer);
    let timeout = secure.timeout;
    let done = done.clone();
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(s)) => Some(s),
            // the acceptor logged and counted why
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::warn!(%peer, "TLS handshake timed out; connection closed");
                None
            }
        };
        let _ = done.send(Handshaken { peer, stream }).await;
    });
}

async fn run(
    station: Station,
    listener: TcpListener,
    mut secure: Option<Secure>,
    mut requests: mpsc::Receiver<Request>,
    actions: mpsc::Sender<Action>,
) {
    let (input_tx, mut inputs) = mpsc::channel(READ_CHANNEL);
    let (handshaken_tx, mut handshaken) = mpsc::channel::<Handshaken>(MAX_HANDSHAKES);
    let mut t = Task {
        station,
        sockets: HashMap::new(),
        outbox: VecDeque::new(),
        parked: VecDeque::new(),
        input_tx,
    };
    loop {
        t.flush();
        let deadline = t
            .station
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| {
                let now = tokio::time::Instant::now();
                now.checked_add(Duration::from_secs(3600)).unwrap_or(now)
            });
        let read_sockets = t.outbox.len() < MAX_OUTBOX;
        let serve_handle = t.parked.len() < MAX_PARKED;
        let has_action = !t.outbox.is_empty();
        tokio::select! {
            acc = listener.accept() => match (acc, secure.as_mut()) {
                (Ok((stream, peer)), Some(sec)) => start_handshake(sec, stream, peer, &handshaken_tx),
                (Ok((stream, peer)), None) => t.add_socket(stream, peer),
                (Err(e), _) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(h) = handshaken.recv() => {
                if let Some(sec) = secure.as_mut() {
                    sec.in_progress = sec.in_progress.saturating_sub(1);
                    if let Some(stream) = h.stream {
                        let renewal = sec.acceptor.renewal();
                        t.add_secured(stream, h.peer, renewal);
                    }
                }
            },
            Some((conn, input)) = inputs.recv(), if read_sockets => {
                let now = t.tick();
                match input {
                    Input::Data(bytes) => t.station.on_bytes(conn, &bytes, now),
                    Input::Closed => t.station.on_closed(conn, now),
                }
            },
            req = requests.recv(), if serve_handle => match req {
                Some(r) => if !t.request(r) { return },
                None => return,
            },
            permit = actions.reserve(), if has_action => {
                if let (Ok(permit), Some(a)) = (permit, t.outbox.pop_front()) {
                    permit.send(a);
                } else {
                    // the applet dropped its receiver: keep serving, discard actions
                    t.outbox.clear();
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let now = t.tick();
                t.station.on_timeout(now);
            },
        }
    }
}
