//! Both sides of a supervised process: how the supervisor starts one, and what the child
//! does first ([`on_start`]) so that it dies with its supervisor.
//!
//! The workspace forbids `unsafe`, so there is no `pre_exec` hook to set
//! `PR_SET_PDEATHSIG` between fork and exec. Instead:
//! - the supervisor starts each child in its own process group (`process_group(0)`, safe),
//!   stops it by signalling the whole group, and after it exited sends SIGKILL to the group
//!   so nothing it started survives it; a Ctrl-C on a terminal reaches the supervisor only,
//!   which then stops the children in order;
//! - it passes `FIELDBRIDGE_SUPERVISED=1` and `FIELDBRIDGE_SUPERVISOR_PID=<pid>`; the child
//!   (the fieldbridge binary's `main` calls [`on_start`] first thing) sets its own
//!   parent-death signal to SIGKILL and then checks that its parent is still that pid: if the
//!   supervisor died between fork and the prctl, the child was already re-parented and exits.
//!   So a supervisor that is killed (SIGKILL, a crash) takes its children with it, and the
//!   one procd starts next finds the serial ports and MQTT client ids free.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits: the supervisor runs
//! on a current-thread runtime and spawns from its main thread, which lives as long as it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use config::Applet;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Set to `1` in the environment of a supervised child.
pub const ENV_SUPERVISED: &str = "FIELDBRIDGE_SUPERVISED";
/// The supervisor's pid, in the environment of a supervised child.
pub const ENV_SUPERVISOR_PID: &str = "FIELDBRIDGE_SUPERVISOR_PID";

/// The child side: call first thing in `main`. Does nothing unless started by a supervisor
/// (`FIELDBRIDGE_SUPERVISED=1`). Then: the parent-death signal is SIGKILL, and if the
/// supervisor is already gone the process exits (status 1) before doing anything.
pub fn on_start() {
    if std::env::var_os(ENV_SUPERVISED).is_none_or(|v| v != "1") {
        return;
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("fieldbridge: cannot set the parent-death signal: {e}\n").as_bytes(),
        );
    }
    let expected = std::env::var(ENV_SUPERVISOR_PID)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(expected) = expected {
        if nix::unistd::getppid() != Pid::from_raw(expected) {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"fieldbridge: the supervisor that started this process is gone; exiting\n",
            );
            std::process::exit(1);
        }
    }
}

/// How the supervisor starts an applet: `<program> <applet> -c <config> -d <level>`.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The executable; by default `/proc/self/exe`, the supervisor's own binary (the same
    /// version, even when an upgrade replaced the file on disk).
    pub program: PathBuf,
    /// `argv[0]` the child sees (`fieldbridge`, so `ps` shows `fieldbridge mqtt-client ...`).
    pub arg0: OsString,
    /// The config file, passed as `-c`.
    pub config: PathBuf,
    /// The log level, passed as `-d`.
    pub log_level: String,
}

impl Launcher {
    /// The supervisor's own binary, run as `fieldbridge <applet> -c FILE -d LEVEL`.
    pub fn new(config: PathBuf, log_level: String) -> Self {
        Self {
            program: default_program(),
            arg0: OsString::from("fieldbridge"),
            config,
            log_level,
        }
    }

    /// Starts the applet in its own process group, stdin from /dev/null, stdout and stderr
    /// shared with the supervisor (so its log goes where the supervisor's goes).
    pub fn spawn(&self, applet: Applet) -> std::io::Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg0(&self.arg0)
            .arg(applet.as_str())
            .arg("-c")
            .arg(&self.config)
            .arg("-d")
            .arg(&self.log_level)
            .env(ENV_SUPERVISED, "1")
            .env(ENV_SUPERVISOR_PID, std::process::id().to_string())
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        cmd.spawn()
    }
}

fn default_program() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

/// Sends `signal` to the process group `pgid` (the child's pid). Errors (no such group) are
/// ignored: the group is already gone.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            let _ = nix::sys::signal::killpg(Pid::from_raw(pgid), signal);
        }
    }
}
