//! Test support for fieldbridge's integration tests: real `redis-server` and `mosquitto`
//! processes on free loopback ports, each in its own temporary directory, killed when the
//! handle drops (also when the test panics). Nothing here is a mock.
//! (Its place in fieldbridge: docs/architecture.md, "Cross-cutting concerns".)
//!
//! The Python protocol peers (c104, pymodbus) live in a venv made by
//! `tests/peers/setup-venv.sh`; [`peer_python`] finds its interpreter.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod bench;
mod mosquitto;
pub use mosquitto::{Listener, Mosquitto, MosquittoBuilder, TlsFiles};
mod certs;
pub use certs::TestCerts;
mod pki;
pub use pki::{PkiLeaf, TestPki};
mod bus;
pub use bus::{RedisConn, Subscription};
mod subscriber;
pub use subscriber::{SeqSubscriber, SubscriberThread};
mod broker;
pub use broker::{broker_case, skip_note, Broker, BrokerBuilder, BrokerKind, Feature};
mod proxy;
pub use proxy::CountingProxy;

/// Errors starting a test server.
pub type Result<T> = std::result::Result<T, String>;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "nothing accepted connections on port {port} within {timeout:?}"
    ))
}

/// The repository's top directory (where Cargo.lock is).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            return PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        }
    }
    dir
}

/// The Python interpreter of the peer venv: `FIELDBRIDGE_PEER_PYTHON`, else `<repo>/.venv`.
/// Panics with the fix when neither exists: CI creates the venv, so a missing peer is a
/// broken setup, not a reason to skip.
pub fn peer_python() -> PathBuf {
    if let Some(p) = std::env::var_os("FIELDBRIDGE_PEER_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "the Python peer venv is missing: run tests/peers/setup-venv.sh (or set FIELDBRIDGE_PEER_PYTHON)"
    );
    p
}

/// The path of a program, or a panic naming the package that provides it.
pub fn require_program(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/bin"),
            PathBuf::from("/sbin"),
        ])
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found: install the Debian package {package} (tests/setup does it)");
}

/// A `fieldbridge <args...>` process run by a test: `RUST_LOG` removed, stdout discarded,
/// stderr appended to a log file (a restart appends to the same log); killed on drop.
pub struct AppletProcess {
    child: Option<KillOnDrop>,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl AppletProcess {
    /// Starts `<bin> <args...>` (panics when it cannot: a test helper).
    pub fn spawn(bin: &Path, args: &[&str], log: PathBuf) -> Self {
        let mut a = Self {
            child: None,
            bin: bin.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            log,
        };
        a.respawn();
        a
    }

    /// Starts `<bin> <applet> -c <config> --redis-url <url> -d info`.
    pub fn start(bin: &Path, applet: &str, config: &Path, redis_url: &str, log: PathBuf) -> Self {
        let config = config.to_string_lossy();
        Self::spawn(
            bin,
            &[
                applet,
                "-c",
                &config,
                "--redis-url",
                redis_url,
                "-d",
                "info",
            ],
            log,
        )
    }

    fn respawn(&mut self) {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.bin.display()));
        self.child = Some(KillOnDrop(child));
    }

    /// The pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(KillOnDrop::pid)
    }

    /// SIGKILL (and reap).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.respawn();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `needle` appears `count` times in the log; panics with the log after
    /// `timeout`.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} x{count} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A child process that is killed and reaped on drop.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    /// Kills it with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real redis-server on a free loopback port, in a temporary directory.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<KillOnDrop>,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a redis-server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a redis-server with extra `--option value` arguments (e.g. AOF).
    pub fn start_with(extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = require_program("redis-server", "redis-server");
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if !self.extra_args.iter().any(|a| a == "--appendonly") {
            cmd.arg("--appendonly").arg("no");
        }
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("redis-server: {e}"))?;
        self.child = Some(KillOnDrop(child));
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server on port {} not ready within {timeout:?}",
            self.port
        ))
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The pid of the running redis-server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(KillOnDrop::pid)
    }

    /// Its working directory (where an AOF file goes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills it with SIGKILL (no save, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// A plain connection, to look at the tag bus as an outside consumer does.
    pub fn connect(&self) -> RedisConn {
        RedisConn::open(&self.url())
    }

    /// Runs a command with `redis-cli` and returns its output (for assertions).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(require_program("redis-cli", "redis-tools"))
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }
}
