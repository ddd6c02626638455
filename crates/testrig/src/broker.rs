//! The MQTT brokers the publisher's end-to-end tests run against: mosquitto (Debian), aedes
//! (npm), amqtt (PyPI) and rmqtt (`rmqttd` from crates.io), each a real process on free
//! loopback ports in a temporary directory, killed on drop. [`BrokerKind::features`] lists what each has; a test
//! case names the features it needs and [`broker_case`] skips it by name when one is missing.
//!
//! Where the programs come from (tests/setup installs them):
//! - mosquitto: `PATH` (Debian package `mosquitto`);
//! - rmqttd: `FIELDBRIDGE_RMQTTD`, else `<repo>/tests/peers/rmqtt/bin/rmqttd`;
//! - aedes: `node` (`FIELDBRIDGE_NODE`, else `PATH`) running
//!   `<repo>/tests/peers/node/aedes-broker.mjs` with the packages of that folder;
//! - amqtt: `FIELDBRIDGE_AMQTT`, else the venv `<repo>/tests/peers/amqtt` (`bin/amqtt`).
//!
//! A missing broker skips its cases with a named message, except under `CI=true` for the
//! brokers CI installs ([`BrokerKind::required_in_ci`]), where it fails the test: a missing
//! one is a broken setup.
//!
//! rmqttd is opt-in (`FIELDBRIDGE_SETUP_RMQTT=1 tests/setup`, or `FIELDBRIDGE_RMQTTD`): it is
//! only distributed as source, ~690 crates (Kafka, Pulsar, NATS bridges, a raft cluster, C
//! builds of librdkafka and aws-lc). Measured: its niced release build had compiled 201 of
//! them (the light ones) in 63 minutes and 580 s of CPU when it was stopped; extrapolated,
//! at least 33 CPU-minutes, 17 minutes or more on a free 2-core CI box, against a CI budget
//! of 30 minutes for a run that takes ~10 without it. aedes (npm ci: 5-23 s) and amqtt (a
//! venv: 17 s of CPU, 30-95 s with the download) are the two independent brokers CI runs;
//! the rmqtt cases skip by name when it is absent, also under CI. Its configuration here is
//! written from rmqtt's source and documentation, not yet run.
//!
//! What the other brokers do differently (found by these tests, or read in rmqtt's source):
//! - aedes 1.2 sends PUBRELs of packet ids its subscriber does not hold; rumqttc closed the
//!   connection on them (patched: answered with PUBCOMP, vendor/rumqttc/FIELDBRIDGE.md).
//! - aedes closes a persistent session on its PUBREC of a retained QoS 2 message (aedes
//!   issue 1003), and sends retained messages at their own QoS, above the subscription's.
//! - aedes refuses MQTT 5 with CONNACK 0x84; amqtt closes the connection without a CONNACK.
//! - aedes closes, without a reason, the connection of a client with more QoS 2 publishes
//!   awaiting PUBREL than `maxInflightInbound`; the publisher halves its window until it fits.
//! - amqtt delivers at the subscription's QoS, also above the QoS of the publish, sends a
//!   retained message twice to a new subscriber, and never requires a client certificate.
//! - rmqtt's CONNACK Receive Maximum is the smaller of its listener's `max_inflight` and the
//!   client's own Receive Maximum; a QoS 1/2 publish beyond it closes the connection, and
//!   a QoS 2 one is routed before that check, so its resend may be delivered twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port, workspace_root, KillOnDrop, Listener, Mosquitto};
use crate::{MosquittoBuilder, TlsFiles};

/// An MQTT broker implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Mosquitto,
    Rmqtt,
    Aedes,
    Amqtt,
}

/// What a test may need from a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// MQTT 5 (CONNECT with protocol level 5).
    Mqtt5,
    /// The Receive Maximum of an MQTT 5 CONNACK, set by the test.
    ReceiveMaximum,
    /// MQTT over WebSocket (and over WebSocket over TLS).
    WebSocket,
    /// MQTT over TLS, with and without client certificates.
    Tls,
    /// Username/password authentication from users the test defines.
    PasswordAuth,
    /// Retained messages.
    Retain,
    /// The Last Will.
    LastWill,
    /// QoS 2 in both directions.
    Qos2,
    /// A limit on a client's QoS 2 publishes awaiting PUBREL, enforced by closing the
    /// connection of an MQTT 3.1.1 client that exceeds it.
    Qos2InflightLimit,
    /// Persistent sessions (subscriptions and queued messages) that survive a broker restart.
    PersistentSessions,
}

impl Feature {
    /// Every feature.
    pub const ALL: [Feature; 10] = [
        Feature::Mqtt5,
        Feature::ReceiveMaximum,
        Feature::WebSocket,
        Feature::Tls,
        Feature::PasswordAuth,
        Feature::Retain,
        Feature::LastWill,
        Feature::Qos2,
        Feature::Qos2InflightLimit,
        Feature::PersistentSessions,
    ];

    /// How the skip message names it.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::Mqtt5 => "MQTT 5",
            Feature::ReceiveMaximum => "configurable Receive Maximum",
            Feature::WebSocket => "WebSocket listener",
            Feature::Tls => "TLS listener",
            Feature::PasswordAuth => "password authentication",
            Feature::Retain => "retained messages",
            Feature::LastWill => "Last Will",
            Feature::Qos2 => "QoS 2",
            Feature::Qos2InflightLimit => "QoS 2 in-flight limit that closes the connection",
            Feature::PersistentSessions => "sessions that survive a restart",
        }
    }
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl BrokerKind {
    /// Every broker the tests know.
    pub const ALL: [BrokerKind; 4] = [
        BrokerKind::Mosquitto,
        BrokerKind::Rmqtt,
        BrokerKind::Aedes,
        BrokerKind::Amqtt,
    ];

    /// Whether tests/setup installs it, so that CI must have it.
    pub fn required_in_ci(self) -> bool {
        self != BrokerKind::Rmqtt
    }

    /// Its name in test output.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Rmqtt => "rmqtt",
            BrokerKind::Aedes => "aedes",
            BrokerKind::Amqtt => "amqtt",
        }
    }

    /// The features it has, as the harness configures it.
    pub fn features(self) -> &'static [Feature] {
        use Feature::*;
        match self {
            // rmqtt: rmqtt-acl's users carry a password; retained messages need the
            // rmqtt-retainer plugin, sessions across restarts rmqtt-session-storage (sled).
            BrokerKind::Mosquitto | BrokerKind::Rmqtt => &Feature::ALL,
            // aedes speaks MQTT 3.1/3.1.1 only; its default persistence is in memory.
            BrokerKind::Aedes => &[
                WebSocket,
                Tls,
                PasswordAuth,
                Retain,
                LastWill,
                Qos2,
                Qos2InflightLimit,
            ],
            // amqtt speaks MQTT 3.1.1 only, keeps sessions in memory, never requires a client
            // certificate (it asks for one) and has no in-flight limit. Its password file
            // works for mosquitto_sub, but the rumqttc subscriber gets no CONNACK after the
            // first connection is reset (not investigated further): no PasswordAuth.
            BrokerKind::Amqtt => &[WebSocket, Tls, Retain, LastWill, Qos2],
        }
    }

    /// Whether it has `feature`.
    pub fn has(self, feature: Feature) -> bool {
        self.features().contains(&feature)
    }

    /// The program that runs it, or why it is not there.
    pub fn program(self) -> Result<PathBuf, String> {
        match self {
            BrokerKind::Mosquitto => find_program("mosquitto")
                .ok_or_else(|| "mosquitto is not installed (Debian package mosquitto)".into()),
            BrokerKind::Rmqtt => {
                let p = std::env::var_os("FIELDBRIDGE_RMQTTD")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| workspace_root().join("tests/peers/rmqtt/bin/rmqttd"));
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "rmqttd is not at {} (FIELDBRIDGE_SETUP_RMQTT=1 tests/setup builds it; or set FIELDBRIDGE_RMQTTD)",
                        p.display()
                    ))
                }
            }
            BrokerKind::Aedes => {
                let node = std::env::var_os("FIELDBRIDGE_NODE")
                    .map(PathBuf::from)
                    .or_else(|| find_program("node"))
                    .ok_or("node is not installed (tests/setup installs nodejs)")?;
                let modules = aedes_dir().join("node_modules/aedes");
                if modules.is_dir() {
                    Ok(node)
                } else {
                    Err(format!(
                        "aedes is not installed in {} (tests/setup runs npm ci there)",
                        aedes_dir().display()
                    ))
                }
            }
            BrokerKind::Amqtt => {
                let p = std::env::var_os("FIELDBRIDGE_AMQTT")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| workspace_root().join("tests/peers/amqtt/bin/amqtt"));
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "amqtt is not at {} (tests/setup installs it; or set FIELDBRIDGE_AMQTT)",
                        p.display()
                    ))
                }
            }
        }
    }

    /// A builder for this broker.
    pub fn builder(self) -> BrokerBuilder {
        BrokerBuilder::new(self)
    }
}

/// Whether the case `test` runs on `broker`: false, with a `skipped: <broker> has no
/// <feature>` line on stderr, when the broker lacks one of `needs`; false with a named line
/// when the broker is not installed, except under `CI=true`, where that panics (for the
/// brokers CI installs). The lines go through [`skip_note`].
pub fn broker_case(test: &str, broker: BrokerKind, needs: &[Feature]) -> bool {
    if let Some(f) = needs.iter().find(|f| !broker.has(**f)) {
        skip_note(&format!(
            "{test}: skipped: {broker} has no {}",
            f.describe()
        ));
        return false;
    }
    if let Err(why) = broker.program() {
        assert!(
            !broker.required_in_ci() || std::env::var("CI").as_deref() != Ok("true"),
            "{test} on {broker}: {why}; CI must have this broker (tests/setup installs it)"
        );
        skip_note(&format!("{test}: skipped: {broker} is missing: {why}"));
        return false;
    }
    true
}

/// Writes a line about a skipped case or check to the process's stderr directly, past the
/// test harness's capture, so that it shows in the output of `cargo test`.
pub fn skip_note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn aedes_dir() -> PathBuf {
    workspace_root().join("tests/peers/node")
}

/// Builds a broker with the listeners and limits a test asks for.
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    kind: BrokerKind,
    listeners: Vec<Listener>,
    users: Vec<(String, String)>,
    inflight: Option<u16>,
    persistent: bool,
}

impl BrokerBuilder {
    /// No listener yet (a plain TCP one is added if none is asked for).
    pub fn new(kind: BrokerKind) -> Self {
        Self {
            kind,
            listeners: Vec::new(),
            users: Vec::new(),
            inflight: None,
            persistent: false,
        }
    }
    /// Adds a listener.
    pub fn listener(mut self, l: Listener) -> Self {
        self.listeners.push(l);
        self
    }
    /// Requires a username and password (clients without them are refused).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }
    /// The QoS 1/2 in-flight limit per client, in both directions: the Receive Maximum of
    /// MQTT 5 CONNACKs, and the QoS 2 limit past which an MQTT 3.1.1 client is disconnected
    /// (mosquitto `max_inflight_messages`, rmqtt `max_inflight`, aedes `maxInflightInbound`).
    /// Default: 20 on every broker (mosquitto's default).
    pub fn inflight(mut self, n: u16) -> Self {
        self.inflight = Some(n);
        self
    }
    /// Sessions saved to disk (in the broker's directory) and restored by [`Broker::restart`].
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Starts the broker and waits until every listener accepts connections. The message
    /// queue of an offline or slow subscriber is unlimited on every broker.
    pub fn start(self) -> Broker {
        let listeners = if self.listeners.is_empty() {
            vec![Listener::Tcp]
        } else {
            self.listeners.clone()
        };
        let inflight = self.inflight.unwrap_or(20);
        match self.kind {
            BrokerKind::Mosquitto => {
                let mut b = MosquittoBuilder::new()
                    .config_line("max_queued_messages 0")
                    .config_line(&format!("max_inflight_messages {inflight}"));
                for l in listeners {
                    b = b.listener(l);
                }
                for (u, p) in &self.users {
                    b = b.user(u, p);
                }
                if self.persistent {
                    b = b.persistent();
                }
                Broker {
                    kind: self.kind,
                    inner: Inner::Mosquitto(b.start()),
                }
            }
            BrokerKind::Rmqtt | BrokerKind::Aedes | BrokerKind::Amqtt => {
                let dir = tempfile::tempdir().expect("tempdir");
                let ports: Vec<(Listener, u16)> =
                    listeners.into_iter().map(|l| (l, free_port())).collect();
                let program = self.kind.program().unwrap_or_else(|e| panic!("{e}"));
                let args = match self.kind {
                    BrokerKind::Rmqtt => {
                        rmqtt_config(dir.path(), &ports, &self.users, inflight, self.persistent)
                    }
                    BrokerKind::Aedes => aedes_config(dir.path(), &ports, &self.users, inflight),
                    _ => amqtt_config(dir.path(), &ports, &self.users, &program),
                };
                let mut p = BrokerProcess {
                    name: self.kind.name(),
                    dir,
                    program,
                    args,
                    ports,
                    child: None,
                };
                p.spawn();
                Broker {
                    kind: self.kind,
                    inner: Inner::Process(p),
                }
            }
        }
    }
}

/// Writes rmqttd's configuration into `dir` and returns its arguments.
fn rmqtt_config(
    dir: &Path,
    ports: &[(Listener, u16)],
    users: &[(String, String)],
    inflight: u16,
    persistent: bool,
) -> Vec<String> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let mut startups = vec!["\"rmqtt-acl\"", "\"rmqtt-retainer\""];
    if persistent {
        startups.push("\"rmqtt-session-storage\"");
    }
    let mut conf = format!(
        "[node]\nid = 1\n\n[rpc]\nserver_addr = \"127.0.0.1:{rpc}\"\n\n\
         [log]\nto = \"file\"\nlevel = \"info\"\ndir = {logdir}\nfile = \"rmqtt.log\"\n\n\
         [plugins]\ndir = {plugins}\ndefault_startups = [{startups}]\n\
         disabled_default_startups = [\"rmqtt-http-api\", \"rmqtt-counter\"]\n\n",
        rpc = free_port(),
        logdir = q(dir),
        plugins = q(&plugins),
        startups = startups.join(", "),
    );
    for (i, (l, port)) in ports.iter().enumerate() {
        let (kind, tls) = match l {
            Listener::Tcp => ("tcp", None),
            Listener::Tls(t) => ("tls", Some(t)),
            Listener::WebSocket => ("ws", None),
            Listener::WebSocketTls(t) => ("wss", Some(t)),
        };
        conf.push_str(&format!(
            "[listener.{kind}.l{i}]\nenable = true\naddr = \"127.0.0.1:{port}\"\n\
             allow_anonymous = {anon}\nmax_inflight = {inflight}\nmax_mqueue_len = 10000000\n\
             message_retry_interval = \"20s\"\nmessage_expiry_interval = \"3600s\"\n",
            anon = users.is_empty()
        ));
        if let Some(t) = tls {
            conf.push_str(&format!(
                "cert = {}\nkey = {}\ncross_certificate = {}\n",
                q(&t.cert_file),
                q(&t.key_file),
                t.require_certificate
            ));
            if t.require_certificate {
                conf.push_str(&format!("client_ca_certs = {}\n", q(&t.ca_file)));
            }
        }
        conf.push('\n');
    }
    std::fs::write(dir.join("rmqtt.toml"), conf).expect("rmqtt.toml");
    // ACL: the test's users with their passwords, else everyone; everything allowed.
    let mut rules: Vec<String> = users
        .iter()
        .map(|(u, p)| format!("[\"allow\", {{ user = {u:?}, password = {p:?} }}]"))
        .collect();
    rules.push(if users.is_empty() {
        "[\"allow\", \"all\"]".into()
    } else {
        "[\"deny\", \"all\"]".into()
    });
    std::fs::write(
        plugins.join("rmqtt-acl.toml"),
        format!(
            "disconnect_if_pub_rejected = true\nrules = [\n  {}\n]\n",
            rules.join(",\n  ")
        ),
    )
    .expect("rmqtt-acl.toml");
    std::fs::write(
        plugins.join("rmqtt-retainer.toml"),
        "storage.type = \"ram\"\nmax_retained_messages = 0\n",
    )
    .expect("rmqtt-retainer.toml");
    if persistent {
        std::fs::write(
            plugins.join("rmqtt-session-storage.toml"),
            format!(
                "storage.type = \"sled\"\nstorage.sled.path = {}\nstorage.sled.cache_capacity = \"64M\"\n",
                q(&dir.join("session"))
            ),
        )
        .expect("rmqtt-session-storage.toml");
    }
    vec!["-f".into(), dir.join("rmqtt.toml").display().to_string()]
}

/// Writes the aedes script's configuration into `dir` and returns its arguments.
fn aedes_config(
    dir: &Path,
    ports: &[(Listener, u16)],
    users: &[(String, String)],
    inflight: u16,
) -> Vec<String> {
    let tls = |t: &TlsFiles| {
        format!(
            ", \"ca_file\": {:?}, \"cert_file\": {:?}, \"key_file\": {:?}, \"require_certificate\": {}",
            t.ca_file.display().to_string(),
            t.cert_file.display().to_string(),
            t.key_file.display().to_string(),
            t.require_certificate
        )
    };
    let listeners: Vec<String> = ports
        .iter()
        .map(|(l, port)| {
            let (kind, extra) = match l {
                Listener::Tcp => ("tcp", String::new()),
                Listener::Tls(t) => ("tls", tls(t)),
                Listener::WebSocket => ("ws", String::new()),
                Listener::WebSocketTls(t) => ("wss", tls(t)),
            };
            format!("{{\"kind\": \"{kind}\", \"port\": {port}{extra}}}")
        })
        .collect();
    let users: Vec<String> = users
        .iter()
        .map(|(u, p)| format!("[{u:?}, {p:?}]"))
        .collect();
    let conf = format!(
        "{{\"listeners\": [{}], \"users\": [{}], \"max_inflight_inbound\": {inflight}}}\n",
        listeners.join(", "),
        users.join(", ")
    );
    let path = dir.join("aedes.json");
    std::fs::write(&path, conf).expect("aedes.json");
    vec![
        aedes_dir().join("aedes-broker.mjs").display().to_string(),
        path.display().to_string(),
    ]
}

/// Writes amqtt's configuration (YAML, here in its JSON form) into `dir` and returns its
/// arguments.
fn amqtt_config(
    dir: &Path,
    ports: &[(Listener, u16)],
    users: &[(String, String)],
    program: &Path,
) -> Vec<String> {
    let listeners: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (l, port))| {
            let (kind, tls) = match l {
                Listener::Tcp => ("tcp", None),
                Listener::Tls(t) => ("tcp", Some(t)),
                Listener::WebSocket => ("ws", None),
                Listener::WebSocketTls(t) => ("ws", Some(t)),
            };
            let tls = tls
                .map(|t| {
                    format!(
                        ", \"ssl\": true, \"cafile\": {:?}, \"certfile\": {:?}, \"keyfile\": {:?}",
                        t.ca_file.display().to_string(),
                        t.cert_file.display().to_string(),
                        t.key_file.display().to_string()
                    )
                })
                .unwrap_or_default();
            format!("\"l{i}\": {{\"type\": \"{kind}\", \"bind\": \"127.0.0.1:{port}\"{tls}}}")
        })
        .collect();
    // Users: a password file of argon2 hashes (made with amqtt's own pwdlib).
    let auth = if users.is_empty() {
        "\"amqtt.plugins.authentication.AnonymousAuthPlugin\": {\"allow_anonymous\": true}"
            .to_owned()
    } else {
        let python = program.with_file_name("python");
        let mut file = String::new();
        for (user, password) in users {
            let out = Command::new(&python)
                .args([
                    "-c",
                    "import sys; from pwdlib.hashers.argon2 import Argon2Hasher; print(Argon2Hasher().hash(sys.argv[1]))",
                    password,
                ])
                .output()
                .expect("amqtt's python");
            assert!(out.status.success(), "argon2 hash: {out:?}");
            file.push_str(&format!("{user}:{}", String::from_utf8_lossy(&out.stdout)));
        }
        let path = dir.join("passwd");
        std::fs::write(&path, file).expect("passwd");
        format!(
            "\"amqtt.plugins.authentication.AnonymousAuthPlugin\": {{\"allow_anonymous\": false}}, \"amqtt.plugins.authentication.FileAuthPlugin\": {{\"password_file\": {:?}}}",
            path.display().to_string()
        )
    };
    // amqtt needs a listener "default", whose settings the others take where they keep
    // amqtt's defaults: a plain TCP one on a port of its own.
    let conf = format!(
        "{{\"listeners\": {{\"default\": {{\"type\": \"tcp\", \"bind\": \"127.0.0.1:{}\"}}, {}}}, \"plugins\": {{{}}}}}\n",
        free_port(),
        listeners.join(", "),
        auth
    );
    let path = dir.join("amqtt.json");
    std::fs::write(&path, conf).expect("amqtt.json");
    vec!["-c".into(), path.display().to_string()]
}

/// A running broker; killed on drop.
pub struct Broker {
    kind: BrokerKind,
    inner: Inner,
}

enum Inner {
    Mosquitto(Mosquitto),
    Process(BrokerProcess),
}

impl Broker {
    /// A broker of `kind` with one plain TCP listener.
    pub fn start(kind: BrokerKind) -> Self {
        BrokerBuilder::new(kind).start()
    }
    /// Which broker it is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }
    /// The port of the first listener (the plain TCP one by default).
    pub fn port(&self) -> u16 {
        self.listener_port(0)
    }
    /// The port of the n-th listener, in the order they were added.
    pub fn listener_port(&self, n: usize) -> u16 {
        match &self.inner {
            Inner::Mosquitto(m) => m.listener_port(n),
            Inner::Process(p) => p.ports[n].1,
        }
    }
    /// The broker's log so far.
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Mosquitto(m) => m.log(),
            Inner::Process(p) => p.log(),
        }
    }
    /// Kills the broker with SIGKILL.
    pub fn kill(&mut self) {
        match &mut self.inner {
            Inner::Mosquitto(m) => m.kill(),
            Inner::Process(p) => {
                if let Some(mut c) = p.child.take() {
                    c.kill();
                }
            }
        }
    }
    /// Starts it again with the same configuration, ports and directory.
    pub fn restart(&mut self) {
        self.kill();
        match &mut self.inner {
            Inner::Mosquitto(m) => m.restart(),
            Inner::Process(p) => p.spawn(),
        }
    }
}

/// rmqttd, amqtt or node with the aedes script, in its own directory (its working directory: rmqttd
/// also reads `./rmqtt.toml`), stdout and stderr appended to `broker.log` there.
struct BrokerProcess {
    name: &'static str,
    dir: tempfile::TempDir,
    program: PathBuf,
    args: Vec<String>,
    ports: Vec<(Listener, u16)>,
    child: Option<KillOnDrop>,
}

impl BrokerProcess {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("broker.log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        self.child = Some(KillOnDrop(child));
        for (_, port) in &self.ports {
            if let Err(e) = wait_for_port(*port, Duration::from_secs(20)) {
                panic!("{}: {e}; log:\n{}", self.name, self.log());
            }
        }
    }

    fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.dir.path().join("rmqtt.log")).unwrap_or_default());
        s
    }
}
