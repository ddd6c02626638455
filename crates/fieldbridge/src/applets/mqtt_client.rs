//! `fieldbridge mqtt-client`: the MQTT publisher (tag bus -> brokers). The work is done by
//! the `mqtt-client` crate; this module parses the WCC Lite style command line and wires.

use std::io::Write;

use tagbus::Alias;

use crate::cli::{CommonArgs, RedisArgs};
use crate::exit::Exit;

/// Options of `fieldbridge mqtt-client`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the tag bus traffic read (stream entries and snapshot values), decoded
    #[arg(short = 'r', long = "redis")]
    pub redis: bool,
    /// Print the MQTT packets sent and received
    #[arg(short = 'm', long = "mqtt")]
    pub mqtt: bool,
    #[command(flatten)]
    pub redis_url: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    crate::logging::init(&args.common.debug);
    let path = &args.common.config;
    // load_for validation consumes the rows (a big config is megabytes): they are gone
    // before the plan is built.
    let super::Loaded {
        mut config,
        redis_url: url,
    } = super::load_for(config::Applet::MqttClient, &args.common, &args.redis_url)?;
    mqtt_client::retain_used_signals(&mut config);
    let plans = match mqtt_client::plan(&config) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                err_line(&format!("mqtt-client: {}: {e}", path.display()));
            }
            return Ok(Exit::Config);
        }
    };
    if plans.is_empty() {
        tracing::warn!("no enabled MQTT device in the configuration; nothing to do");
        return Ok(Exit::Ok);
    }
    let stream_max_len = config.stream_max_len;
    // The typed config is not needed any more either.
    drop(config);
    let stats_url = url.clone();
    let mut opts = mqtt_client::PublisherOptions::new(url);
    opts.stream_max_len = stream_max_len;
    opts.trace_redis = args.redis;
    opts.trace_mqtt = args.mqtt;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let mut handles = Vec::new();
        let mut stats: Vec<(Alias, mqtt_client::Stats)> = Vec::new();
        for plan in plans {
            let alias = plan.alias.clone();
            match mqtt_client::spawn_publisher(plan, opts.clone()) {
                Ok(h) => {
                    stats.push((alias, h.stats().clone()));
                    handles.push(h);
                }
                Err(e) => {
                    err_line(&format!("mqtt-client: device {alias}: {e}"));
                    return Ok(Exit::Config);
                }
            }
        }
        let shutdown = super::shutdown_signal()?;
        tokio::select! {
            _ = shutdown => {}
            _ = write_stats(stats_url, stats.clone()) => {}
        }
        for (alias, s) in &stats {
            tracing::info!(
                device = %alias,
                published = s.published(),
                acked = s.acked(),
                trimmed = s.trimmed(),
                rejected = s.rejected(),
                dropped_threshold = s.dropped_threshold(),
                suppressed_deadband = s.suppressed_deadband(),
                connects = s.connects(),
                "mqtt-client stopping"
            );
        }
        drop(handles);
        Ok(Exit::Ok)
    })
}

/// How often the counters are written to the stats hash (`tagbus::stats`), for
/// `fieldbridge status`.
const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the counters of every device to the stats hash for ever (errors are retried at the
/// next tick: the figures are a display aid, never a reason to stop publishing).
async fn write_stats(url: String, devices: Vec<(Alias, mqtt_client::Stats)>) {
    let Ok(mut writer) = tagbus::stats::StatsWriter::new(&url) else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(STATS_EVERY);
    loop {
        tick.tick().await;
        let stats = tagbus::stats::PublisherStats {
            updated_ms: tagbus::now_ms(),
            devices: devices
                .iter()
                .map(|(alias, s)| (alias.clone(), s.counters()))
                .collect(),
        };
        if let Err(e) = writer.write(&stats).await {
            tracing::debug!(error = %e, "publisher counters not written");
        }
    }
}

fn err_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}
