//! `fieldbridge status`: prints the supervisor's status file as a table (or as JSON): the
//! applets, then each IEC 104 slave device's masters and counters when the file has them
//! (`supervisor::Status::render`), then the MQTT publisher's counters from the tag bus.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use supervisor::{State, Status};

use crate::exit::Exit;

/// Options of `fieldbridge status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The supervisor's status file
    #[arg(long, value_name = "PATH", default_value = supervisor::DEFAULT_STATUS_PATH)]
    pub status_file: PathBuf,
    /// Print the file's JSON as it is
    #[arg(long)]
    pub json: bool,
}

/// Exit status: [`Exit::Ok`] when the supervisor runs and every applet that should run does;
/// [`Exit::Failure`] when something is not running as configured (invalid config, restarting,
/// supervisor gone, no status file).
pub fn run(args: Args) -> anyhow::Result<Exit> {
    let status = match Status::read(&args.status_file) {
        Ok(s) => s,
        Err(supervisor::StatusError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "no status file at {}: is `fieldbridge supervise` running?",
                args.status_file.display()
            );
            return Ok(Exit::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    let alive = status.supervisor.running
        && std::path::Path::new(&format!("/proc/{}", status.supervisor.pid)).exists();
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&status).context("encoding the status")?;
        s.push('\n');
        s
    } else {
        status.render(supervisor::status::unix_now(), alive)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    if !args.json {
        let url = super::redis_url(None, Some(&status.supervisor.config));
        if let Some(lines) = publisher_stats(&url) {
            std::io::stdout().lock().write_all(lines.as_bytes())?;
        }
    }
    let healthy = alive
        && status
            .applets
            .values()
            .all(|a| matches!(a.state, State::Running | State::Disabled));
    Ok(if healthy { Exit::Ok } else { Exit::Failure })
}

/// The publisher's counters from the stats hash (`tagbus::stats`, written by `mqtt-client`
/// every 5 s), as lines for the table; `None` when Redis or the hash is not there (the table
/// stands alone).
fn publisher_stats(url: &str) -> Option<String> {
    let stats =
        tagbus::stats::read_publisher_stats(url, std::time::Duration::from_millis(500)).ok()??;
    let age_s = supervisor::status::unix_now().saturating_sub(stats.updated_ms / 1000);
    let mut out = format!("\nMQTT publisher counters (updated {age_s} s ago):\n");
    for (device, counters) in &stats.devices {
        let figures: Vec<String> = tagbus::stats::Counter::ALL
            .iter()
            .map(|&c| format!("{} {}", c.label(), counters.get(c)))
            .collect();
        out.push_str(&format!("  {device}: {}\n", figures.join(", ")));
    }
    Some(out)
}
