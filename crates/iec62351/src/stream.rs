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
pub enum TlsLink {
    /// The master's end.
    Client(tokio_rustls::client::TlsStream<TcpStream>),
    /// The slave's end.
    Server(tokio_rustls::server::TlsStream<TcpStream>),
}

impl TlsLink {
    /// The negotiated version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        match self {
            Self::Client(s) => s.get_ref().1.protocol_version(),
            Self::Server(s) => s.get_ref().1.protocol_version(),
        }
    }

    /// The DER of the peer's end-entity certificate.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        let certs = match self {
            Self::Client(s) => s.get_ref().1.peer_certificates(),
            Self::Server(s) => s.get_ref().1.peer_certificates(),
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
        let r = match self {
            Self::Client(s) => s.get_mut().1.refresh_traffic_keys(),
            Self::Server(s) => s.get_mut().1.refresh_traffic_keys(),
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
        match self.get_mut() {
            Self::Client(s) => Pin::new(s).poll_read(cx, buf),
            Self::Server(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TlsLink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Client(s) => Pin::new(s).poll_write(cx, buf),
            Self::Server(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Client(s) => Pin::new(s).poll_flush(cx),
            Self::Server(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Client(s) => Pin::new(s).poll_shutdown(cx),
            Self::Server(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

fn presented(p: &Presented) -> Option<Vec<u8>> {
    p.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn check_own(material: &Material, log: &SecurityLog) {
    if let Some((summary, fp)) = &material.own_summary {
        log.check_own(*fp, summary);
    }
}

#[derive(Debug)]
struct ConnectorInner {
    material: ClientMaterial,
    log: SecurityLog,
    renewal: Option<Duration>,
}

/// The master's TLS: connects as client with the device row's certificate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsConnector(Arc<ConnectorInner>);

impl TlsConnector {
    /// Reads the device's TLS files (a load error names the column and file) and checks the
    /// own certificate's expiry.
    pub fn load(device: &str, tls: &Iec104Tls) -> Result<Self, LoadError> {
        let material = Material::load(tls)?.client()?;
        let log = SecurityLog::new(device, tls.expiry_warning_days);
        check_own(&material.material, &log);
        Ok(Self(Arc::new(ConnectorInner {
            material,
            log,
            renewal: tls.renewal,
        })))
    }

    /// The device's security log (counters for the status).
    pub fn log(&self) -> &SecurityLog {
        &self.0.log
    }

    /// Checks the own certificate's expiry again (warns at most once a day); call it now
    /// and then, e.g. with each stats write.
    pub fn check_own_certificate(&self) {
        check_own(&self.0.material.material, &self.0.log);
    }

    /// The handshake as client on a TCP stream connected to `peer`.
    pub async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> io::Result<TlsLink> {
        let slot = Presented::default();
        let config = Arc::new(self.0.material.config(slot.clone()));
        // the name is not checked (see the crate docs); the IP fills the required field
        let name = ServerName::IpAddress(peer.ip().into());
        match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(s) => {
                let link = TlsLink::Client(s);
                self.0.log.handshake_ok(peer, link.peer_certificate());
                Ok(link)
            }
            Err(e) => {
                self.0
                    .log
                    .handshake_failed(peer, &e, presented(&slot).as_deref());
                Err(e)
            }
        }
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

#[derive(Debug)]
struct AcceptorInner {
    material: ServerMaterial,
    log: SecurityLog,
    renewal: Option<Duration>,
}

/// The slave's TLS: accepts masters presenting a certificate the device row accepts.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsAcceptor(Arc<AcceptorInner>);

impl TlsAcceptor {
    /// Reads the device's TLS files (a load error names the column and file) and checks the
    /// own certificate's expiry.
    pub fn load(device: &str, tls: &Iec104Tls) -> Result<Self, LoadError> {
        let material = Material::load(tls)?.server()?;
        let log = SecurityLog::new(device, tls.expiry_warning_days);
        check_own(&material.material, &log);
        Ok(Self(Arc::new(AcceptorInner {
            material,
            log,
            renewal: tls.renewal,
        })))
    }

    /// The device's security log (counters for the status).
    pub fn log(&self) -> &SecurityLog {
        &self.0.log
    }

    /// Checks the own certificate's expiry again (warns at most once a day).
    pub fn check_own_certificate(&self) {
        check_own(&self.0.material.material, &self.0.log);
    }

    /// The handshake as server on a TCP stream accepted from `peer`.
    pub async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> io::Result<TlsLink> {
        let slot = Presented::default();
        let config = self
            .0
            .material
            .config(slot.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        match tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await
        {
            Ok(s) => {
                let link = TlsLink::Server(s);
                self.0.log.handshake_ok(peer, link.peer_certificate());
                Ok(link)
            }
            Err(e) => {
                self.0
                    .log
                    .handshake_failed(peer, &e, presented(&slot).as_deref());
                Err(e)
            }
        }
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
