//! `fieldbridge supervise`: runs each protocol applet (`mqtt-client`, `iec104-master`,
//! `modbus-master`) whose part of the configuration is valid, as a child process, and keeps
//! it running; writes what it does to a status file (its format: docs/contracts.md, "The
//! status file"; where it fits: docs/architecture.md).
//!
//! Decisions:
//! - **Which applets run** ([`plan`]): an applet with no enabled device row of its protocols
//!   is `disabled`; one with such rows and any validation error of its protocols (or of a
//!   top-level setting) is `invalid_config`, every error is logged and it is not started;
//!   else it runs. The others run regardless.
//! - **A part** ([`Part`]) is what a SIGHUP compares: `redis_url`, `stream_max_len`, the
//!   device rows of the applet's protocols and the signal rows of those devices, as written.
//!   The MQTT part does not include the source rows its signals point to (only their
//!   existence matters, and a missing one is an error of the MQTT part, which changes it).
//!   Reordering rows of a protocol counts as a change.
//! - **A config that cannot be read** (missing, not JSON): at start every applet is
//!   `invalid_config` and the supervisor waits for a SIGHUP (procd would only restart it in a
//!   loop); on SIGHUP everything keeps running as it was and the status file says so.
//! - **Restarts**: 1 s doubling up to 60 s with equal jitter (crates/backoff); a child that
//!   ran 60 s or more starts again from 1 s. A config change restarts at once, no backoff.
//!   A restarted child reads the config file as it is then (apply edits with SIGHUP).
//!   On SIGHUP, an applet whose part is unchanged keeps running; one waiting in backoff is
//!   started at once (the fix may be outside the config: a certificate, a serial port).
//! - **Stopping**: SIGTERM to the child's process group, SIGKILL after 5 s; on SIGTERM or
//!   SIGINT the supervisor stops all children that way and exits 0; a second signal kills
//!   at once.
//! - **Quality of a gone applet's values**: when a master applet exits for any reason (stopped,
//!   killed, crashed), the supervisor writes the gateway's link-loss mark (`nt nolink`, see
//!   `tagbus::mark_no_link`) on every `in`/`rin` value of the devices of the part it ran
//!   with, so no consumer sees a value nobody refreshes as good. An applet that stops on
//!   SIGTERM marks them itself; the supervisor then finds nothing left to mark. A value the
//!   next run wrote first is never overwritten.
//! - **Children die with it**: see [`child`] (process groups + a parent-death signal the child
//!   sets itself, as the workspace forbids `unsafe` and so `pre_exec`).
//! - **Logs**: children share the supervisor's stderr (procd/logd or journald take both).
//! - **Status file** ([`status`]): JSON under `/var/run/fieldbridge`, rewritten atomically
//!   after every change; the last write (on exit) says `"running": false` and every applet
//!   `stopped`. `fieldbridge status` also notices a file whose supervisor pid is gone.
//!   While the IEC 104 slave applet runs, the file also holds each of its devices' masters
//!   and counters, read from the tag bus every 5 s ([`slaves`]), and while an IEC 104 applet
//!   runs, the security events of each of its devices with `tls` 1 ([`tls`]).
//!
//! # Running it
//!
//! ```text
//! fieldbridge supervise -c /etc/fieldbridge/config.json [-d info] \
//!     [--status-file /var/run/fieldbridge/status.json] [--stop-timeout 5]
//! ```
//! Each applet runs as `fieldbridge <applet> -c FILE -d LEVEL` (so every protocol applet
//! takes `-c` and `-d`), from `/proc/self/exe`, in its own process group, with
//! `FIELDBRIDGE_SUPERVISED=1` and `FIELDBRIDGE_SUPERVISOR_PID`. Signals: SIGHUP reloads,
//! SIGTERM/SIGINT stop (exit status 0). Another program (the `demo` applet, a test) runs it
//! as a child with a config and a status file in a temporary directory and stops it with
//! SIGTERM.
//!
//! Hidden options, for tests only: `--child-program PATH` runs `PATH <applet> -c FILE -d
//! LEVEL` instead of the fieldbridge binary (a script that stays up, or one that dies), and
//! `--backoff-min-ms MS` shortens the first restart delay, `--stable-after-ms MS` the run
//! that resets the backoff.

pub mod child;
pub mod plan;
mod run;
pub mod slaves;
pub mod status;
pub mod tls;

pub use child::{on_start, Launcher, ENV_SUPERVISED, ENV_SUPERVISOR_PID};
pub use plan::{Desired, Part, Plan};
pub use run::{supervise, Options, SuperviseError};
pub use status::{AppletStatus, ExitInfo, State, Status, StatusError, DEFAULT_STATUS_PATH};
