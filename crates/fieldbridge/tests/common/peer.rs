//! A Python peer (a c104 station, a scripted master) that the test drives by lines on its
//! stdin and reads by lines on its stdout; killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testrig::KillOnDrop;

pub struct LinePeer {
    child: KillOnDrop,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl LinePeer {
    /// Starts `script args...` with the peer venv's Python.
    pub fn start(script: &Path, args: &[&str]) -> LinePeer {
        let mut child = Command::new(testrig::peer_python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LinePeer {
            child: KillOnDrop(child),
            stdin,
            lines,
        }
    }

    /// The next line within `timeout` (`None` after it, or when the peer has ended).
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// SIGKILL (and reap).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Writes one line to the peer.
    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }
}
