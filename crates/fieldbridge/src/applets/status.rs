//! `fieldbridge status`: prints the supervisor's status file as a table (or as JSON).

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

/// The publisher's counters from the tag bus Redis (written by `mqtt-client` every 5 s), as
/// lines for the table; `None` when Redis or the hash is not there (the table stands alone).
fn publisher_stats(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client
        .get_connection_with_timeout(std::time::Duration::from_millis(500))
        .ok()?;
    let map: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(super::mqtt_client::STATS_KEY)
        .query(&mut conn)
        .ok()?;
    if map.is_empty() {
        return None;
    }
    let updated: u64 = map
        .get("updated_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let age_s = supervisor::status::unix_now().saturating_sub(updated / 1000);
    let mut devices: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = Default::default();
    for (k, v) in &map {
        if let Some((dev, counter)) = k.rsplit_once('.') {
            devices.entry(dev).or_default().push((counter, v.as_str()));
        }
    }
    let mut out = format!("\nMQTT publisher counters (updated {age_s} s ago):\n");
    for (dev, counters) in devices {
        let get = |n: &str| {
            counters
                .iter()
                .find(|(c, _)| *c == n)
                .map(|(_, v)| *v)
                .unwrap_or("0")
        };
        out.push_str(&format!(
            "  {dev}: published {}, acknowledged {}, dropped by the stream cap {}, refused by the broker {}, connects {}, repeats dropped by enable_threshold {}\n",
            get("published"),
            get("acked"),
            get("trimmed"),
            get("rejected"),
            get("connects"),
            get("dropped_threshold")
        ));
    }
    Some(out)
}
