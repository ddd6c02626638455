//! The secured streams and the transports the IEC 104 stack plugs in.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use config::tls104::Iec104Tls;
use iec60870::transport::{Acceptor, Connector, Handshake, LinkStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ProtocolVersion;

use crate::events::SecurityLog;
use crate::load::{ClientMaterial, LoadError, Material, ServerMaterial};
use crate::verify::Presented;

/// A TLS stream of an IEC 104 link (either side).
#[derive(Debug)]
pub struct TlsLink {
    stream: Inner,
    /// Until the first plaintext arrives: where a refusal by the peer is recorded. In TLS 1.3
    /// the client's handshake ends before the server has verified the client's certificate;
    /// a server refusing it answers with an alert on the first read.
    verdict: Option<(SecurityLog, SocketAddr)>,
}

#[derive(Debug)]
enum Inner {
    Client(tokio_rustls::client::TlsStream<TcpStream>),
    Server(tokio_rustls::server::TlsStream<TcpStream>),
}

impl TlsLink {
    /// The negotiated version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        match &self.stream {
            Inner::Client(s) => s.get_ref().1.protocol_version(),
            Inner::Server(s) => s.get_ref().1.protocol_version(),
        }
    }

    /// The DER of the peer's end-entity certificate.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        let certs = match &self.stream {
            Inner::Client(s) => s.get_ref().1.peer_certificates(),
            Inner::Server(s) => s.get_ref().1.peer_certificates(),
        };
        certs.and_then(|c| c.first()).map(|c| c.as_ref())
    }
}

impl LinkStream for TlsLink {
    /// A TLS 1.3 KeyUpdate (requesting the peer's); `false` on TLS 1.2.
    fn renew_keys(&mut self) -> bool {
        if self.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
            return false;
        }
        let r = match &mut self.stream {
            Inner::Client(s) => s.get_mut().1.refresh_traffic_keys(),
            Inner::Server(s) => s.get_mut().1.refresh_traffic_keys(),
        };
        r.is_ok()
    }
}

impl AsyncRead for TlsLink {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match &mut this.stream {
            Inner::Client(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Server(s) => Pin::new(s).poll_read(cx, buf),
        };
        if let Poll::Ready(ref result) = r {
            match result {
                Err(e) => {
                    if let Some((log, peer)) = this.verdict.take() {
                        log.refused_after_handshake(peer, e);
                    }
                }
                Ok(()) if buf.filled().len() > before => this.verdict = None,
                Ok(()) => {}
            }
        }
        r
    }
}

impl AsyncWrite for TlsLink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Inner::Client(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Server(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Inner::Client(s) => Pin::new(s).poll_flush(cx),
            Inner::Server(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Inner::Client(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Server(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What a connector or acceptor holds: one side's material, the log, the renewal.
#[derive(Debug)]
struct Endpoint<M> {
    side: M,
    log: SecurityLog,
    renewal: Option<Duration>,
}

impl<M: AsRef<Material>> Endpoint<M> {
    /// Checks the own certificate's expiry at once.
    fn new(device: &str, tls: &Iec104Tls, side: M) -> Self {
        let e = Self {
            side,
            log: SecurityLog::new(device, tls.expiry_warning_days),
            renewal: tls.renewal,
        };
        e.check_own();
        e
    }

    fn check_own(&self) {
        if let Some((summary, fp)) = &self.side.as_ref().own_summary {
            self.log.check_own(*fp, summary);
        }
    }

    /// Logs and counts a handshake's outcome; `slot` holds what the peer presented.
    fn finish(
        &self,
        peer: SocketAddr,
        slot: &Presented,
        result: io::Result<Inner>,
    ) -> io::Result<TlsLink> {
        match result {
            Ok(stream) => {
                // only a client learns of a refusal after its handshake (TLS 1.3)
                let verdict = matches!(stream, Inner::Client(_)).then(|| (self.log.clone(), peer));
                let link = TlsLink { stream, verdict };
                self.log.handshake_ok(peer, link.peer_certificate());
                Ok(link)
            }
            Err(e) => {
                let presented = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                self.log.handshake_failed(peer, &e, presented.as_deref());
                Err(e)
            }
        }
    }
}

/// The master's TLS: connects as client with the device row's certificate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsConnector(Arc<Endpoint<ClientMaterial>>);

impl TlsConnector {
    /// Reads the device's TLS files (a load error names the column and file) and checks the
    /// own certificate's expiry.
    pub fn load(device: &str, tls: &Iec104Tls) -> Result<Self, LoadError> {
        let side = Material::load(tls)?.client()?;
        Ok(Self(Arc::new(Endpoint::new(device, tls, side))))
    }

    /// The device's security log (counters for the status).
    pub fn log(&self) -> &SecurityLog {
        &self.0.log
    }

    /// Checks the own certificate's expiry again (warns at most once a day); call it now
    /// and then, e.g. with each stats write.
    pub fn check_own_certificate(&self) {
        self.0.check_own();
    }

    /// The handshake as client on a TCP stream connected to `peer`.
    pub async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> io::Result<TlsLink> {
        let slot = Presented::default();
        let config = Arc::new(self.0.side.config(slot.clone()));
        // the name is not checked (see the crate docs); the IP fills the required field
        let name = ServerName::IpAddress(peer.ip().into());
        let r = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await;
        self.0.finish(peer, &slot, r.map(Inner::Client))
    }
}

impl Connector for TlsConnector {
    fn connect(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake {
        let this = self.clone();
        Box::pin(async move {
            let link = this.handshake(tcp, peer).await?;
            Ok(Box::new(link) as Box<dyn LinkStream>)
        })
    }

    fn renewal(&self) -> Option<Duration> {
        self.0.renewal
    }
}

/// The slave's TLS: accepts masters presenting a certificate the device row accepts.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsAcceptor(Arc<Endpoint<ServerMaterial>>);

impl TlsAcceptor {
    /// Reads the device's TLS files (a load error names the column and file) and checks the
    /// own certificate's expiry.
    pub fn load(device: &str, tls: &Iec104Tls) -> Result<Self, LoadError> {
        let side = Material::load(tls)?.server()?;
        Ok(Self(Arc::new(Endpoint::new(device, tls, side))))
    }

    /// The device's security log (counters for the status).
    pub fn log(&self) -> &SecurityLog {
        &self.0.log
    }

    /// Checks the own certificate's expiry again (warns at most once a day).
    pub fn check_own_certificate(&self) {
        self.0.check_own();
    }

    /// The handshake as server on a TCP stream accepted from `peer`.
    pub async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> io::Result<TlsLink> {
        let slot = Presented::default();
        let config = self
            .0
            .side
            .config(slot.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let r = tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await;
        self.0.finish(peer, &slot, r.map(Inner::Server))
    }
}

impl Acceptor for TlsAcceptor {
    fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake {
        let this = self.clone();
        Box::pin(async move {
            let link = this.handshake(tcp, peer).await?;
            Ok(Box::new(link) as Box<dyn LinkStream>)
        })
    }

    fn renewal(&self) -> Option<Duration> {
        self.0.renewal
    }
}
