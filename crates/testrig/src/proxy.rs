//! A loopback TCP proxy that counts the bytes it forwards in each direction: the TCP payload
//! bytes of a client's connection to a server (for MQTT over plain TCP, exactly the MQTT
//! bytes; over TLS, the TLS records).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Listens on a free 127.0.0.1 port and forwards every connection to `127.0.0.1:<target>`.
/// When one side closes, both are closed (a server restart reaches the client). Stopped,
/// with its connections, on drop.
pub struct CountingProxy {
    port: u16,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Counts {
    /// Client to server.
    up: AtomicU64,
    /// Server to client.
    down: AtomicU64,
    connections: AtomicU64,
}

impl CountingProxy {
    /// Starts the proxy in front of `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, st, o) = (counts.clone(), stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                c.connections.fetch_add(1, Ordering::Relaxed);
                {
                    let mut open = o.lock().unwrap();
                    open.retain(|s: &TcpStream| s.peer_addr().is_ok());
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(&client, &server, c.clone(), true);
                pipe(&server, &client, c.clone(), false);
            }
        });
        Self {
            port,
            counts,
            stop,
            open,
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes forwarded client to server so far.
    pub fn up(&self) -> u64 {
        self.counts.up.load(Ordering::Relaxed)
    }

    /// Bytes forwarded server to client so far.
    pub fn down(&self) -> u64 {
        self.counts.down.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to` in a thread, counting; closes both at the end.
fn pipe(from: &TcpStream, to: &TcpStream, counts: Arc<Counts>, up: bool) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            let counter = if up { &counts.up } else { &counts.down };
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
