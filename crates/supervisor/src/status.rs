//! The status file: what the supervisor is doing, for `fieldbridge status` and the LuCI page.
//!
//! JSON, rewritten atomically (a temporary file in the same directory, then rename) after
//! every change, so a reader never sees half a file. Times are Unix seconds (UTC).
//! It lives on tmpfs (`/var/run`), so it is not fsync'ed: flash is not worn by it.
//!
//! ```json
//! {
//!   "version": 1,
//!   "supervisor": {"pid": 812, "config": "/etc/fieldbridge/config.json", "started": 1795358298,
//!                  "updated": 1795358300, "running": true, "config_loaded": 1795358298},
//!   "applets": {
//!     "iec104-master": {"state": "disabled", "restarts": 0, "since": 1795358298,
//!                       "message": "no enabled device of protocol iec104-master"},
//!     "modbus-master": {"state": "invalid_config", "restarts": 0, "since": 1795358298,
//!                       "errors": ["devices[2].modbus_id: expected an integer, got \"abc\""],
//!                       "message": "not started: 1 config error (first: devices[2].modbus_id: ...)"},
//!     "mqtt-client": {"state": "backoff", "restarts": 3, "since": 1795358299,
//!                     "next_start": 1795358303,
//!                     "last_exit": {"at": 1795358299, "code": 1, "ran_ms": 230,
//!                                   "description": "exit code 1"},
//!                     "message": "exit code 1; restarting in 4 s"}
//!   },
//!   "slaves": {
//!     "scada": {"updated_ms": 1795358300120,
//!               "masters": [{"address": "10.0.0.5:40001", "group": 0, "started": true,
//!                            "since_ms": 1795358290010}],
//!               "sent": 1200, "buffered": 0, "dropped": 0, "refused": 1, "commands": 3}
//!   },
//!   "tls": {
//!     "rtu": {"updated_ms": 1795358300120, "handshakes": 4,
//!             "events": {"certificate_revoked": 1},
//!             "last": {"kind": "certificate_revoked", "peer": "10.0.0.9:19998",
//!                      "subject": "CN=rtu-old", "detail": "revoked by the CRL",
//!                      "at_ms": 1795358299000}}
//!   }
//! }
//! ```
//! `state` is one of `running` (with `pid`), `backoff` (with `next_start`), `stopping`,
//! `invalid_config` (with `errors`), `disabled`, `stopped`; `last_exit` has `code` or
//! `signal`. A `config_error` in `supervisor` says the file could not be read at all.
//! `slaves` (left out when empty) holds, while the IEC 104 slave applet runs, each of its
//! devices' [`SlaveStats`] as the applet last wrote them (see [`crate::slaves`]); its times
//! are Unix milliseconds, as their names say. `tls` (left out when empty) holds, while an IEC
//! 104 applet runs, the [`TlsStats`] of each of its devices with `tls` 1 (see
//! [`crate::tls`]): handshakes, security events by kind and the last event.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tagbus::stats::{SecurityEventKind, SlaveCounter, SlaveStats, TlsStats};

/// Where `fieldbridge supervise` writes its state by default.
pub const DEFAULT_STATUS_PATH: &str = "/var/run/fieldbridge/status.json";

/// The format version of the status file.
pub const STATUS_VERSION: u32 = 1;

/// The whole status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The format version ([`STATUS_VERSION`]).
    pub version: u32,
    pub supervisor: SupervisorStatus,
    /// Each protocol applet by name (`mqtt-client`, `iec104-master`, `modbus-master`).
    pub applets: BTreeMap<String, AppletStatus>,
    /// Each IEC 104 slave device by alias: its masters and counters, while its applet runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slaves: BTreeMap<String, SlaveStats>,
    /// Each IEC 104 device with `tls` 1 by alias: its security events, while its applet runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tls: BTreeMap<String, TlsStats>,
}

/// The supervisor itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub pid: u32,
    /// The config file it runs.
    pub config: PathBuf,
    /// When it started (Unix seconds).
    pub started: u64,
    /// When this file was written (Unix seconds).
    pub updated: u64,
    /// Whether it is running (false in the last file written when it stopped).
    pub running: bool,
    /// When the config was last read (Unix seconds), and why it could not be read if so.
    pub config_loaded: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

/// What a protocol applet is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The process runs (`pid`).
    Running,
    /// It exited and will be started again at `next_start`.
    Backoff,
    /// Being stopped (config change or shutdown).
    Stopping,
    /// Not running because its part of the config has errors (`errors`).
    InvalidConfig,
    /// Not running: no enabled device of its protocols.
    Disabled,
    /// Not running because the supervisor stopped.
    Stopped,
}

impl State {
    /// The word in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::InvalidConfig => "invalid_config",
            State::Disabled => "disabled",
            State::Stopped => "stopped",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// When (Unix seconds).
    pub at: u64,
    /// Its exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it had run, in milliseconds.
    pub ran_ms: u64,
    /// `exit code 1`, `killed by signal 9 (SIGKILL)`, or why it could not be started.
    pub description: String,
}

/// One protocol applet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppletStatus {
    pub state: State,
    /// Its process id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How often it was started again after it exited (config reloads do not count).
    pub restarts: u64,
    /// Since when it is in this state (Unix seconds).
    pub since: u64,
    /// In `backoff`: when it is started again (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start: Option<u64>,
    /// Its last exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
    /// In `invalid_config`: every error of its part of the config (`path: message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// One line saying why it is in this state.
    pub message: String,
}

/// Errors reading or writing the status file.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a fieldbridge status file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    to_unix(SystemTime::now())
}

/// A time in Unix seconds (0 before 1970).
pub fn to_unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Status {
    /// Writes the file atomically: `<path>.tmp` then rename; creates the directory.
    pub fn write_atomic(&self, path: &Path) -> Result<(), StatusError> {
        let io = |source| StatusError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        text.push('\n');
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a status file.
    pub fn read(path: &Path) -> Result<Self, StatusError> {
        let text = std::fs::read_to_string(path).map_err(|source| StatusError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StatusError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The human table of `fieldbridge status`; `alive` says whether the supervisor's
    /// process still exists (a file left by a supervisor that was killed is stale).
    pub fn render(&self, now: u64, alive: bool) -> String {
        let mut out = String::new();
        let sup = &self.supervisor;
        let _ = if sup.running && alive {
            writeln!(
                out,
                "supervisor: running, pid {}, up {}, config {}",
                sup.pid,
                human_duration(now.saturating_sub(sup.started)),
                sup.config.display()
            )
        } else if sup.running {
            writeln!(
                out,
                "supervisor: NOT RUNNING (pid {} is gone; this file is {} old and stale), config {}",
                sup.pid,
                human_duration(now.saturating_sub(sup.updated)),
                sup.config.display()
            )
        } else {
            writeln!(
                out,
                "supervisor: stopped {} ago, config {}",
                human_duration(now.saturating_sub(sup.updated)),
                sup.config.display()
            )
        };
        if let Some(e) = &sup.config_error {
            let _ = writeln!(out, "config error: {e}");
        }
        let rows: Vec<[String; 6]> = self
            .applets
            .iter()
            .map(|(name, a)| {
                [
                    name.clone(),
                    a.state.as_str().to_owned(),
                    a.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    a.restarts.to_string(),
                    human_duration(now.saturating_sub(a.since)),
                    a.message.clone(),
                ]
            })
            .collect();
        let header = ["APPLET", "STATE", "PID", "RESTARTS", "FOR", "DETAIL"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: [&str; 6]| {
            let mut s = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
                if i == last {
                    s.push_str(cell);
                } else {
                    let _ = write!(s, "{cell:<w$}  ");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&mut out, header);
        for row in &rows {
            line(
                &mut out,
                [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
            );
        }
        for (name, a) in &self.applets {
            if let Some(e) = &a.last_exit {
                let _ = writeln!(
                    out,
                    "{name}: last exit {} ago: {} after {}",
                    human_duration(now.saturating_sub(e.at)),
                    e.description,
                    human_duration(e.ran_ms / 1000)
                );
            }
            for e in &a.errors {
                let _ = writeln!(out, "{name}: config error: {e}");
            }
        }
        if !self.slaves.is_empty() {
            let _ = writeln!(out, "\nIEC 104 slave devices:");
        }
        for (device, stats) in &self.slaves {
            render_slave(&mut out, device, stats, now);
        }
        if !self.tls.is_empty() {
            let _ = writeln!(out, "\nIEC 104 TLS devices:");
        }
        for (device, stats) in &self.tls {
            render_tls(&mut out, device, stats, now);
        }
        out
    }
}

/// A TLS device's lines: handshakes and events by kind, then the last event.
fn render_tls(out: &mut String, device: &str, stats: &TlsStats, now: u64) {
    let mut figures = vec![format!("handshakes {}", stats.handshakes)];
    figures.extend(
        SecurityEventKind::ALL
            .iter()
            .filter(|&&k| stats.count(k) > 0)
            .map(|&k| format!("{} {}", k.label(), stats.count(k))),
    );
    let _ = writeln!(
        out,
        "  {device} (updated {} ago): {}",
        human_duration(now.saturating_sub(stats.updated_ms / 1000)),
        figures.join(", ")
    );
    let Some(last) = &stats.last else {
        let _ = writeln!(out, "    no security event");
        return;
    };
    let mut what = vec![last.kind.name().to_owned()];
    if !last.peer.is_empty() {
        what.push(format!("peer {}", last.peer));
    }
    if !last.subject.is_empty() {
        what.push(format!("subject {:?}", last.subject));
    }
    let _ = writeln!(
        out,
        "    last event {} ago: {}{}",
        human_duration(now.saturating_sub(last.at_ms / 1000)),
        what.join(", "),
        if last.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", last.detail)
        }
    );
}

/// A slave device's lines: its counters, then one line per master.
fn render_slave(out: &mut String, device: &str, stats: &SlaveStats, now: u64) {
    let figures: Vec<String> = SlaveCounter::ALL
        .iter()
        .map(|&c| format!("{} {}", c.label(), stats.get(c)))
        .collect();
    let _ = writeln!(
        out,
        "  {device} (updated {} ago): {}",
        human_duration(now.saturating_sub(stats.updated_ms / 1000)),
        figures.join(", ")
    );
    if stats.masters.is_empty() {
        let _ = writeln!(out, "    no master connected");
    }
    for m in &stats.masters {
        let _ = writeln!(
            out,
            "    master {}  group {}  {} for {}",
            m.address,
            m.group,
            m.state_word(),
            human_duration(now.saturating_sub(m.since_ms / 1000))
        );
    }
}

/// A time in Unix milliseconds (0 before 1970).
pub fn to_unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `3d4h`, `2h5m`, `4m12s`, `7s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        let mut applets = BTreeMap::new();
        applets.insert(
            "mqtt-client".to_owned(),
            AppletStatus {
                state: State::Running,
                pid: Some(42),
                restarts: 2,
                since: 1000,
                next_start: None,
                last_exit: Some(ExitInfo {
                    at: 990,
                    code: Some(1),
                    signal: None,
                    ran_ms: 1500,
                    description: "exit code 1".into(),
                }),
                errors: vec![],
                message: "running".into(),
            },
        );
        applets.insert(
            "modbus-master".to_owned(),
            AppletStatus {
                state: State::InvalidConfig,
                pid: None,
                restarts: 0,
                since: 1000,
                next_start: None,
                last_exit: None,
                errors: vec!["devices[2].modbus_id: required, but empty".into()],
                message: "not started: 1 config error".into(),
            },
        );
        Status {
            version: STATUS_VERSION,
            supervisor: SupervisorStatus {
                pid: 7,
                config: "/etc/fieldbridge/config.json".into(),
                started: 900,
                updated: 1000,
                running: true,
                config_loaded: 900,
                config_error: None,
            },
            applets,
            slaves: BTreeMap::new(),
            tls: BTreeMap::new(),
        }
    }

    fn with_tls() -> Status {
        let mut s = sample();
        let mut rtu = TlsStats {
            updated_ms: 1_063_000,
            handshakes: 4,
            ..Default::default()
        };
        for (kind, at_ms) in [
            (SecurityEventKind::CertificateUnknown, 1_000_000),
            (SecurityEventKind::CertificateRevoked, 1_050_000),
            (SecurityEventKind::CertificateRevoked, 1_060_000),
        ] {
            rtu.record(tagbus::stats::SecurityEvent {
                kind,
                peer: "10.0.0.9:19998".into(),
                subject: "CN=rtu-old, O=Utility".into(),
                detail: "revoked by the CRL".into(),
                at_ms,
            });
        }
        s.tls.insert("rtu".to_owned(), rtu);
        s.tls.insert(
            "scada".to_owned(),
            TlsStats {
                updated_ms: 1_064_000,
                handshakes: 1,
                ..Default::default()
            },
        );
        s
    }

    fn with_slave() -> Status {
        let master = |address: &str, group, started, since_ms| tagbus::stats::MasterState {
            address: address.parse().unwrap(),
            group,
            started,
            since_ms,
        };
        let mut s = sample();
        s.slaves.insert(
            "scada".to_owned(),
            SlaveStats {
                updated_ms: 1_063_500,
                masters: vec![
                    master("10.0.0.5:40001", 0, true, 940_000),
                    master("[fd00::6]:2404", 0, false, 1_005_000),
                    master("10.0.0.7:40003", 1, true, 1_060_000),
                ],
                sent: 1200,
                buffered: 7,
                dropped: 2,
                refused: 1,
                commands: 3,
            },
        );
        s.slaves.insert("spare".to_owned(), SlaveStats::default());
        s
    }

    #[test]
    fn round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/status.json");
        let s = sample();
        s.write_atomic(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), s);
        assert!(!dir.path().join("sub/status.json.tmp").exists());
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["applets"]["modbus-master"]["state"], "invalid_config");
    }

    #[test]
    fn renders_a_table() {
        let t = sample().render(1065, true);
        assert!(t.contains("supervisor: running, pid 7, up 2m45s"), "{t}");
        assert!(
            t.contains("modbus-master  invalid_config  -    0         1m5s  not started"),
            "{t}"
        );
        assert!(
            t.contains("mqtt-client: last exit 1m15s ago: exit code 1 after 1s"),
            "{t}"
        );
        assert!(
            t.contains("modbus-master: config error: devices[2].modbus_id"),
            "{t}"
        );
        assert!(sample().render(1065, false).contains("NOT RUNNING"));
    }

    #[test]
    fn slaves_round_trip_and_are_left_out_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let s = with_slave();
        s.write_atomic(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), s);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v["slaves"]["scada"]["masters"][1]["address"],
            "[fd00::6]:2404"
        );
        assert_eq!(v["slaves"]["scada"]["masters"][1]["started"], false);
        assert_eq!(v["slaves"]["scada"]["dropped"], 2);
        sample().write_atomic(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("slaves"), "{text}");
        assert_eq!(Status::read(&path).unwrap(), sample());
    }

    #[test]
    fn renders_the_slave_devices() {
        let t = with_slave().render(1065, true);
        assert!(t.contains("\nIEC 104 slave devices:\n"), "{t}");
        assert!(
            t.contains(
                "  scada (updated 2s ago): sent 1200, buffered 7, dropped by the stream cap 2, \
                 masters refused 1, commands 3\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("    master 10.0.0.5:40001  group 0  started for 2m5s\n"),
            "{t}"
        );
        assert!(
            t.contains("    master [fd00::6]:2404  group 0  standby for 1m0s\n"),
            "{t}"
        );
        assert!(
            t.contains("    master 10.0.0.7:40003  group 1  started for 5s\n"),
            "{t}"
        );
        assert!(t.contains("  spare (updated "), "{t}");
        assert!(t.contains("    no master connected\n"), "{t}");
        assert!(!sample().render(1065, true).contains("slave"));
    }

    #[test]
    fn tls_round_trips_and_is_left_out_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let s = with_tls();
        s.write_atomic(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), s);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["tls"]["rtu"]["events"]["certificate_revoked"], 2);
        assert_eq!(v["tls"]["rtu"]["last"]["kind"], "certificate_revoked");
        assert_eq!(v["tls"]["rtu"]["last"]["peer"], "10.0.0.9:19998");
        assert!(v["tls"]["scada"]["last"].is_null());
        sample().write_atomic(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tls"), "{text}");
        assert_eq!(Status::read(&path).unwrap(), sample());
    }

    #[test]
    fn renders_the_tls_devices() {
        let t = with_tls().render(1065, true);
        assert!(t.contains("\nIEC 104 TLS devices:\n"), "{t}");
        assert!(
            t.contains(
                "  rtu (updated 2s ago): handshakes 4, certificates revoked 2, \
                 certificates unknown 1\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "    last event 5s ago: certificate_revoked, peer 10.0.0.9:19998, \
                 subject \"CN=rtu-old, O=Utility\": revoked by the CRL\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("  scada (updated 1s ago): handshakes 1\n    no security event\n"),
            "{t}"
        );
        assert!(!sample().render(1065, true).contains("TLS"));
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(61), "1m1s");
        assert_eq!(human_duration(3700), "1h1m");
        assert_eq!(human_duration(90_000), "1d1h");
    }
}
