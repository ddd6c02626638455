//! `fieldbridge mqtt-client`: the MQTT publisher (tag bus -> brokers). The work is done by
//! the `mqtt-client` crate; this module parses the WCC Lite style command line and wires.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{ConfigArg, DebugArg, RedisArgs};

/// Options of `fieldbridge mqtt-client`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub debug: DebugArg,
    /// Print the tag bus traffic read (stream entries and snapshot values), decoded
    #[arg(short = 'r', long = "redis")]
    pub redis: bool,
    /// Print the MQTT packets sent and received
    #[arg(short = 'm', long = "mqtt")]
    pub mqtt: bool,
    #[command(flatten)]
    pub redis_url: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.debug.debug);
    let path = &args.config.config;
    let raw = match config::RawConfig::load(path) {
        Ok(raw) => raw,
        Err(e) => {
            // The error names the file already.
            err_line(&format!("mqtt-client: {e}"));
            return Ok(ExitCode::from(2));
        }
    };
    let validated = config::validate(&raw);
    let errors = validated.errors_for(config::Applet::MqttClient);
    if !errors.is_empty() {
        for e in &errors {
            err_line(&format!("mqtt-client: {}: {e}", path.display()));
        }
        err_line(&format!(
            "mqtt-client: {} error(s) in the MQTT configuration; not starting",
            errors.len()
        ));
        return Ok(ExitCode::from(2));
    }
    let plans = match mqtt_client::plan(&validated.config) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                err_line(&format!("mqtt-client: {}: {e}", path.display()));
            }
            return Ok(ExitCode::from(2));
        }
    };
    if plans.is_empty() {
        tracing::warn!("no enabled MQTT device in the configuration; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    // --redis-url, else the config's redis_url (load() layered FIELDBRIDGE_REDIS_URL over it),
    // else the default: the same order as `applets::redis_url`, without loading the file twice.
    let url = args
        .redis_url
        .redis_url
        .clone()
        .or_else(|| raw.redis_url.clone())
        .unwrap_or_else(|| config::DEFAULT_REDIS_URL.to_owned());
    // The raw and validated config are not needed any more (a big config is megabytes).
    drop(validated);
    drop(raw);
    let mut opts = mqtt_client::PublisherOptions::new(url);
    opts.trace_redis = args.redis;
    opts.trace_mqtt = args.mqtt;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let mut handles = Vec::new();
        for plan in plans {
            let alias = plan.alias.to_string();
            match mqtt_client::spawn_publisher(plan, opts.clone()) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    err_line(&format!("mqtt-client: device {alias}: {e}"));
                    return Ok(ExitCode::from(2));
                }
            }
        }
        shutdown_signal().await;
        for h in &handles {
            let s = h.stats();
            tracing::info!(
                published = s.published(),
                acked = s.acked(),
                dropped_threshold = s.dropped_threshold(),
                trimmed = s.trimmed(),
                connects = s.connects(),
                "mqtt-client stopping"
            );
        }
        drop(handles);
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

fn err_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}
