//! The byte stream under a link: plain TCP, or a secured one (IEC 62351-3 TLS) that a
//! [`Connector`] (master) or [`Acceptor`] (outstation) makes from the TCP stream. The stack
//! knows nothing of TLS: it only asks a stream to renew its keys in place and, when the stream
//! cannot (TLS 1.2), the master renews by a planned reconnect (see [`crate::master`]).

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream a link runs on.
pub trait LinkStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Starts a renewal of the session keys in place (the TLS 1.3 KeyUpdate); what it sends
    /// goes out with the next flush. `false`: this stream cannot renew in place (plain TCP,
    /// TLS 1.2).
    fn renew_keys(&mut self) -> bool {
        false
    }
}

impl LinkStream for TcpStream {}

/// A boxed [`LinkStream`].
pub type BoxLinkStream = Box<dyn LinkStream>;

/// The future of a handshake: the secured stream, or why there is none (the connection is
/// then closed; the transport has logged and counted the failure).
pub type Handshake = Pin<Box<dyn Future<Output = io::Result<BoxLinkStream>> + Send>>;

/// The client side of a secured transport (the master's).
pub trait Connector: Send + Sync + Debug {
    /// Secures a TCP stream just connected to `peer`.
    fn connect(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake;
    /// How often a session's keys are renewed; `None`: never.
    fn renewal(&self) -> Option<Duration>;
}

/// The server side of a secured transport (the outstation's).
pub trait Acceptor: Send + Sync + Debug {
    /// Secures a TCP stream just accepted from `peer`.
    fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake;
    /// How often a session's keys are renewed in place; `None`: never.
    fn renewal(&self) -> Option<Duration>;
}
