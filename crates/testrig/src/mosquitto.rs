//! A real mosquitto broker with the listeners a test asks for.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, require_program, wait_for_port, KillOnDrop};

/// TLS files of a listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Require a client certificate signed by the CA.
    pub require_certificate: bool,
}

/// A listener kind.
#[derive(Debug, Clone)]
pub enum Listener {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls(TlsFiles),
    /// MQTT over WebSocket.
    WebSocket,
    /// MQTT over WebSocket over TLS.
    WebSocketTls(TlsFiles),
}

/// Builds a mosquitto configuration.
#[derive(Debug, Default, Clone)]
pub struct MosquittoBuilder {
    listeners: Vec<Listener>,
    users: Vec<(String, String)>,
    extra: Vec<String>,
    persistent: bool,
    /// Lines for every listener's section (listener-scoped options).
    per_listener: Vec<String>,
}

impl MosquittoBuilder {
    /// No listener yet (a plain TCP one is added if none is asked for).
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a listener.
    pub fn listener(mut self, l: Listener) -> Self {
        self.listeners.push(l);
        self
    }
    /// Requires a username and password (a password file made with mosquitto_passwd).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }
    /// Adds a raw line to mosquitto.conf (e.g. `max_inflight_messages 20`).
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Saves sessions in the broker's directory every second (they survive a restart).
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Adds a raw line to every listener's section of mosquitto.conf, for the options that
    /// apply per listener (e.g. `max_topic_alias 4`).
    pub fn listener_line(mut self, line: &str) -> Self {
        self.per_listener.push(line.into());
        self
    }

    /// Starts the broker and waits until every listener accepts connections.
    pub fn start(self) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let listeners = if self.listeners.is_empty() {
            vec![Listener::Tcp]
        } else {
            self.listeners
        };
        let mut conf = String::from("per_listener_settings false\n");
        conf.push_str(&format!(
            "log_dest file {}\n",
            dir.path().join("mosquitto.log").display()
        ));
        conf.push_str("log_type all\nconnection_messages true\n");
        if self.persistent {
            conf.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                dir.path().display()
            ));
        } else {
            conf.push_str("persistence false\n");
        }
        if self.users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pwfile = dir.path().join("passwd");
            std::fs::write(&pwfile, "").expect("passwd");
            for (user, pass) in &self.users {
                let status = Command::new(require_program("mosquitto_passwd", "mosquitto"))
                    .arg("-b")
                    .arg(&pwfile)
                    .arg(user)
                    .arg(pass)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
            }
            conf.push_str("allow_anonymous false\n");
            conf.push_str(&format!("password_file {}\n", pwfile.display()));
        }
        for line in &self.extra {
            conf.push_str(line);
            conf.push('\n');
        }
        let mut ports = Vec::new();
        for l in &listeners {
            let port = free_port();
            ports.push((l.clone(), port));
            conf.push_str(&format!("listener {port} 127.0.0.1\n"));
            for line in &self.per_listener {
                conf.push_str(line);
                conf.push('\n');
            }
            let tls = match l {
                Listener::Tcp => None,
                Listener::Tls(t) => Some(t),
                Listener::WebSocket => {
                    conf.push_str("protocol websockets\n");
                    None
                }
                Listener::WebSocketTls(t) => {
                    conf.push_str("protocol websockets\n");
                    Some(t)
                }
            };
            if let Some(t) = tls {
                conf.push_str(&format!(
                    "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                    t.ca_file.display(),
                    t.cert_file.display(),
                    t.key_file.display(),
                    t.require_certificate
                ));
            }
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, &conf).expect("mosquitto.conf");
        let mut m = Mosquitto {
            dir,
            conf_path,
            ports,
            child: None,
        };
        m.spawn();
        m
    }
}

/// A running mosquitto; killed on drop.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    conf_path: PathBuf,
    ports: Vec<(Listener, u16)>,
    child: Option<KillOnDrop>,
}

impl Mosquitto {
    /// A broker with one plain TCP listener.
    pub fn start() -> Self {
        MosquittoBuilder::new().start()
    }

    fn spawn(&mut self) {
        let child = Command::new(require_program("mosquitto", "mosquitto"))
            .arg("-c")
            .arg(&self.conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto");
        self.child = Some(KillOnDrop(child));
        for (_, port) in &self.ports {
            if let Err(e) = wait_for_port(*port, Duration::from_secs(10)) {
                panic!("mosquitto: {e}; log:\n{}", self.log());
            }
        }
    }

    /// The port of the first listener (the plain TCP one by default).
    pub fn port(&self) -> u16 {
        self.ports[0].1
    }

    /// The port of the n-th listener, in the order they were added.
    pub fn listener_port(&self, n: usize) -> u16 {
        self.ports[n].1
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Kills the broker with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again with the same configuration and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The pid of the running broker, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(KillOnDrop::pid)
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}
