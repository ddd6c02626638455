//! A tokio TLS client/server pair on loopback, with the test PKI: the accepted link, every
//! refusal (each a classified, counted security event) and a KeyUpdate under traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config::tls104::{Iec104Tls, PeerCertificate, TlsVersion};
use contract::stats::SecurityEventKind as K;
use iec60870::transport::LinkStream;
use iec62351::{LoadError, TlsAcceptor, TlsConnector, TlsLink};
use testrig::{PkiLeaf, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Outcome {
    server: Result<TlsLink, std::io::Error>,
    client: Result<TlsLink, std::io::Error>,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

async fn pair(server: &Iec104Tls, client: &Iec104Tls) -> Outcome {
    let acceptor = TlsAcceptor::load("slave1", server).unwrap();
    let connector = TlsConnector::load("master1", client).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a = acceptor.clone();
    let server_side = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let mut link = a.handshake(tcp, peer).await?;
        // one byte from the client proves the handshake finished on both ends
        let mut b = [0u8; 1];
        link.read_exact(&mut b).await?;
        link.write_all(&b).await?;
        link.flush().await?;
        Ok(link)
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = match connector.handshake(tcp, addr).await {
        Ok(mut link) => {
            // TLS 1.3: the client's handshake ends before the server verified its certificate
            let r = async {
                link.write_all(&[7]).await?;
                link.flush().await?;
                let mut b = [0u8; 1];
                link.read_exact(&mut b).await?;
                Ok::<_, std::io::Error>(())
            }
            .await;
            r.map(|()| link)
        }
        Err(e) => Err(e),
    };
    let server = tokio::time::timeout(Duration::from_secs(10), server_side)
        .await
        .expect("server side hangs")
        .unwrap();
    Outcome {
        server,
        client,
        acceptor,
        connector,
    }
}

fn events(log: &iec62351::SecurityLog) -> Vec<(K, u64)> {
    log.stats().events.into_iter().collect()
}

#[tokio::test]
async fn mutual_authentication_tls13_and_tls12() {
    let pki = TestPki::generate();
    for v in [TlsVersion::V1_3, TlsVersion::V1_2] {
        let mut s = pki.iec104_tls(&pki.server);
        let mut c = pki.iec104_tls(&pki.client);
        s.version_max = v;
        c.version_min = v;
        c.version_max = v;
        let o = pair(&s, &c).await;
        let link = o.client.expect("client");
        let version = link.protocol_version().unwrap();
        assert_eq!(
            format!("{version:?}"),
            if v == TlsVersion::V1_3 {
                "TLSv1_3"
            } else {
                "TLSv1_2"
            }
        );
        let server = o.server.expect("server");
        assert_eq!(server.peer_certificate(), Some(pki.client.der.as_slice()));
        assert_eq!(o.acceptor.log().stats().handshakes, 1);
        assert_eq!(o.connector.log().stats().handshakes, 1);
        assert!(events(o.acceptor.log()).is_empty());
        assert!(events(o.connector.log()).is_empty());
    }
}

#[tokio::test]
async fn the_server_refuses_bad_client_certificates() {
    let pki = TestPki::generate();
    let cases: [(&PkiLeaf, K, bool); 4] = [
        (&pki.expired_client, K::CertificateExpired, false),
        (&pki.not_yet_valid_client, K::CertificateNotYetValid, false),
        (&pki.revoked_client, K::CertificateRevoked, true),
        (&pki.other_client, K::CertificateUnknown, false),
    ];
    for (leaf, kind, with_crl) in cases {
        let mut s = pki.iec104_tls(&pki.server);
        if with_crl {
            s.crl_file = Some(pki.crl_pem.clone());
        }
        let mut c = pki.iec104_tls(leaf);
        if leaf.common_name.contains("other") {
            c.ca_certificate = pki.ca_cert.clone();
        }
        let o = pair(&s, &c).await;
        assert!(o.server.is_err(), "{}", leaf.common_name);
        assert!(o.client.is_err(), "{}", leaf.common_name);
        let stats = o.acceptor.log().stats();
        assert_eq!(
            events(o.acceptor.log()),
            vec![(kind, 1)],
            "{}",
            leaf.common_name
        );
        let last = stats.last.unwrap();
        assert_eq!(last.subject, format!("CN={}", leaf.common_name));
        assert!(last.peer.starts_with("127.0.0.1:"));
        assert_eq!(stats.handshakes, 0);
        // the client learns of it from the server's alert (after its TLS 1.3 handshake)
        // (an expired own certificate is reported at load too)
        assert_eq!(o.connector.log().stats().count(K::HandshakeFailed), 1);
        assert_eq!(o.connector.log().stats().handshakes, 0);
        let detail = o.connector.log().stats().last.unwrap().detail;
        assert!(detail.contains("the peer refused"), "{detail}");
    }
}

#[tokio::test]
async fn the_client_refuses_bad_server_certificates() {
    let pki = TestPki::generate();
    let cases: [(&PkiLeaf, K, Option<&Path>); 4] = [
        (&pki.expired_server, K::CertificateExpired, None),
        (&pki.not_yet_valid_server, K::CertificateNotYetValid, None),
        (
            &pki.revoked_server,
            K::CertificateRevoked,
            Some(&pki.crl_der),
        ),
        (&pki.other_server, K::CertificateUnknown, None),
    ];
    for (leaf, kind, crl) in cases {
        let s = pki.iec104_tls(leaf);
        let mut c = pki.iec104_tls(&pki.client);
        c.crl_file = crl.map(Path::to_path_buf);
        let o = pair(&s, &c).await;
        assert!(o.client.is_err(), "{}", leaf.common_name);
        assert_eq!(
            events(o.connector.log()),
            vec![(kind, 1)],
            "{}",
            leaf.common_name
        );
        let last = o.connector.log().stats().last.unwrap();
        assert_eq!(last.subject, format!("CN={}", leaf.common_name));
        // the server sees the client's alert: a handshake failure (and an expired own
        // certificate is reported at load)
        let server_events = events(o.acceptor.log());
        assert!(
            server_events.contains(&(K::HandshakeFailed, 1)),
            "{server_events:?}"
        );
    }
}

#[tokio::test]
async fn allow_list_by_fingerprint_and_by_file() {
    let pki = TestPki::generate();
    for entry in [
        PeerCertificate::Sha256(pki.client.sha256),
        PeerCertificate::File(pki.client.cert.clone()),
    ] {
        let mut s = pki.iec104_tls(&pki.server);
        s.peer_certificates = vec![entry];
        let o = pair(&s, &pki.iec104_tls(&pki.client)).await;
        assert!(o.server.is_ok() && o.client.is_ok());
        let o = pair(&s, &pki.iec104_tls(&pki.client2)).await;
        assert!(o.server.is_err());
        assert_eq!(events(o.acceptor.log()), vec![(K::CertificateUnknown, 1)]);
        assert!(o
            .acceptor
            .log()
            .stats()
            .last
            .unwrap()
            .detail
            .contains("peer_certificates"));
    }
    // the master pins the outstation the same way
    let mut c = pki.iec104_tls(&pki.client);
    c.peer_certificates = vec![PeerCertificate::Sha256(pki.client2.sha256)];
    let o = pair(&pki.iec104_tls(&pki.server), &c).await;
    assert!(o.client.is_err());
    assert_eq!(events(o.connector.log()), vec![(K::CertificateUnknown, 1)]);
}

#[tokio::test]
async fn a_tls12_peer_is_refused_when_13_is_required() {
    let pki = TestPki::generate();
    let mut s = pki.iec104_tls(&pki.server);
    s.version_min = TlsVersion::V1_3;
    let mut c = pki.iec104_tls(&pki.client);
    c.version_max = TlsVersion::V1_2;
    let o = pair(&s, &c).await;
    assert!(o.server.is_err() && o.client.is_err());
    assert_eq!(events(o.acceptor.log()), vec![(K::HandshakeFailed, 1)]);
    assert_eq!(events(o.connector.log()), vec![(K::HandshakeFailed, 1)]);
}

#[tokio::test]
async fn a_plaintext_peer_is_refused() {
    let pki = TestPki::generate();
    let acceptor = TlsAcceptor::load("slave1", &pki.iec104_tls(&pki.server)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a = acceptor.clone();
    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        a.handshake(tcp, peer).await.map(|_| ())
    });
    let mut plain = TcpStream::connect(addr).await.unwrap();
    // STARTDT act
    plain
        .write_all(&[0x68, 0x04, 0x07, 0x00, 0x00, 0x00])
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut sink)).await;
    assert!(server.await.unwrap().is_err());
    assert_eq!(events(acceptor.log()), vec![(K::HandshakeFailed, 1)]);
    let detail = acceptor.log().stats().last.unwrap().detail;
    assert!(detail.contains("plaintext"), "{detail}");

    // and the master refuses a plaintext outstation
    let connector = TlsConnector::load("master1", &pki.iec104_tls(&pki.client)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 512];
        let _ = tcp.read(&mut b).await;
        let _ = tcp.write_all(&[0x68, 0x04, 0x0b, 0x00, 0x00, 0x00]).await;
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(connector.handshake(tcp, addr).await.is_err());
    assert_eq!(events(connector.log()), vec![(K::HandshakeFailed, 1)]);
}

#[tokio::test]
async fn expiring_certificates_are_warned_of() {
    let pki = TestPki::generate();
    // own certificate: at load
    let acceptor = TlsAcceptor::load("slave1", &pki.iec104_tls(&pki.expiring_server)).unwrap();
    assert_eq!(events(acceptor.log()), vec![(K::CertificateExpiresSoon, 1)]);
    let last = acceptor.log().stats().last.unwrap();
    assert!(
        last.detail.contains("own certificate expires"),
        "{}",
        last.detail
    );
    assert_eq!(last.peer, "");
    // checked again: not twice a day
    acceptor.check_own_certificate();
    assert_eq!(events(acceptor.log()), vec![(K::CertificateExpiresSoon, 1)]);
    // the peer's: after the handshake, which succeeds
    let o = pair(
        &pki.iec104_tls(&pki.server),
        &pki.iec104_tls(&pki.expiring_client),
    )
    .await;
    assert!(o.server.is_ok());
    assert_eq!(
        events(o.acceptor.log()),
        vec![(K::CertificateExpiresSoon, 1)]
    );
    let last = o.acceptor.log().stats().last.unwrap();
    assert!(
        last.detail.contains("in 9 days") || last.detail.contains("in 10 days"),
        "{}",
        last.detail
    );
    let mut quiet = pki.iec104_tls(&pki.server);
    quiet.expiry_warning_days = 5;
    let o = pair(&quiet, &pki.iec104_tls(&pki.expiring_client)).await;
    assert!(events(o.acceptor.log()).is_empty());
}

#[tokio::test]
async fn load_errors_name_the_column() {
    use std::os::unix::fs::PermissionsExt;
    let pki = TestPki::generate();
    let key = pki.write_file("open.key", &std::fs::read(&pki.client.key).unwrap());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = pki.iec104_tls(&pki.client);
    c.private_key = key.clone();
    let e = TlsConnector::load("m", &c).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::File {
                column: "private_key",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("world-accessible"), "{e}");
    // the key is never in the message
    let pem = std::fs::read_to_string(&key).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!e.to_string().contains(body));

    // nor in the Debug of a loaded connector (a DeviceSpec may be logged with `?`)
    let loaded = TlsConnector::load("m", &pki.iec104_tls(&pki.client)).unwrap();
    let client_pem = std::fs::read_to_string(&pki.client.key).unwrap();
    let debug = format!("{loaded:?}");
    assert!(debug.contains("CN=fieldbridge client"), "{debug}");
    for line in client_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!debug.contains(line));
    }

    let mut c = pki.iec104_tls(&pki.client);
    c.private_key = pki.server.key.clone();
    let e = TlsConnector::load("m", &c).unwrap_err();
    assert!(e.to_string().contains("certificate and private_key"), "{e}");

    let mut c = pki.iec104_tls(&pki.client);
    c.crl_file = Some(pki.client.key.clone());
    let e = TlsConnector::load("m", &c).unwrap_err();
    assert!(e.to_string().starts_with("crl_file: "), "{e}");

    let mut c = pki.iec104_tls(&pki.client);
    c.ca_certificate = pki.dir().join("missing.pem");
    let e = TlsAcceptor::load("s", &c).unwrap_err();
    assert!(e.to_string().starts_with("ca_certificate: "), "{e}");

    let mut c = pki.iec104_tls(&pki.client);
    c.version_min = TlsVersion::V1_3;
    c.version_max = TlsVersion::V1_2;
    assert!(matches!(
        TlsAcceptor::load("s", &c),
        Err(LoadError::Profile(_))
    ));
}

/// Sends `total` bytes in chunks with a KeyUpdate every few chunks from both ends; the other
/// end echoes. Every byte comes back, in order.
#[tokio::test]
async fn key_update_under_traffic_loses_no_byte() {
    let pki = TestPki::generate();
    let o = pair(&pki.iec104_tls(&pki.server), &pki.iec104_tls(&pki.client)).await;
    let mut client = o.client.unwrap();
    let mut server = o.server.unwrap();
    let total: usize = 2 * 1024 * 1024;
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        let mut n_total = 0usize;
        let mut updates = 0;
        while n_total < total {
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0);
            server.write_all(&buf[..n]).await.unwrap();
            n_total += n;
            if n_total / (256 * 1024) > updates {
                updates += 1;
                assert!(server.renew_keys());
            }
            server.flush().await.unwrap();
        }
        updates
    });
    let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(&mut client);
    let mut back = Vec::with_capacity(total);
    let reader = async {
        let mut buf = vec![0u8; 8192];
        while back.len() < total {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0);
            back.extend_from_slice(&buf[..n]);
        }
    };
    let writer = async {
        for chunk in data.chunks(1000) {
            wr.write_all(chunk).await.unwrap();
        }
        wr.flush().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(reader, writer)
    })
    .await
    .expect("traffic stalls");
    assert!(back == data, "bytes lost or reordered");
    let server_updates = echo.await.unwrap();
    assert!(server_updates >= 7);
    // the client renews as well (on TLS 1.3)
    assert!(client.renew_keys());
}

#[tokio::test]
async fn no_key_update_on_tls12() {
    let pki = TestPki::generate();
    let mut c = pki.iec104_tls(&pki.client);
    c.version_max = TlsVersion::V1_2;
    let o = pair(&pki.iec104_tls(&pki.server), &c).await;
    assert!(!o.client.unwrap().renew_keys());
    assert!(!o.server.unwrap().renew_keys());
}
