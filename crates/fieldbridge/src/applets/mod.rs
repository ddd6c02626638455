//! The applets: each turns its command line into a call of the crate that does the work.

mod config_cmd;
pub mod demo;
pub mod iec104_master;
pub mod modbus_master;
pub mod mqtt_client;
pub mod status;
pub mod supervise;
mod tag;

use std::process::ExitCode;

use crate::cli::{Applet, Cli};

/// Runs the applet the command line chose.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.applet {
        Applet::Supervise(args) => supervise::run(args),
        Applet::Status(args) => status::run(args),
        Applet::Iec104Master(args) => iec104_master::run(args),
        Applet::ModbusMaster(args) => modbus_master::run(args),
        Applet::MqttClient(args) => mqtt_client::run(args),
        Applet::Tag(args) => tag::run(args),
        Applet::Config(args) => config_cmd::run(args),
        Applet::Demo(args) => demo::run(args),
    }
}

/// The Redis URL: `--redis-url`, else `FIELDBRIDGE_REDIS_URL`, else the config's `redis_url`
/// (when a config is given and exists), else the default.
pub fn redis_url(flag: Option<&str>, config_path: Option<&std::path::Path>) -> String {
    if let Some(url) = flag {
        return url.to_owned();
    }
    if let Some(path) = config_path.filter(|p| p.exists()) {
        // load() layers FIELDBRIDGE_REDIS_URL over the file.
        if let Ok(raw) = config::RawConfig::load(path) {
            if let Some(url) = raw.redis_url {
                return url;
            }
        }
    }
    std::env::var("FIELDBRIDGE_REDIS_URL").unwrap_or_else(|_| config::DEFAULT_REDIS_URL.to_owned())
}

/// [`redis_url`] for a config already loaded (`load()` layered `FIELDBRIDGE_REDIS_URL` over
/// the file): the file is not read a second time.
pub fn redis_url_of(flag: Option<&str>, raw: &config::RawConfig) -> String {
    flag.map(str::to_owned)
        .or_else(|| raw.redis_url.clone())
        .unwrap_or_else(|| config::DEFAULT_REDIS_URL.to_owned())
}

/// A current-thread tokio runtime: every applet is I/O bound and the target has one or two
/// cores, so one thread per process is the footprint we want.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// What stops an applet: SIGTERM (procd, the supervisor) or SIGINT (a terminal). Registered
/// now (inside the runtime), so a failure is an error at start, not an applet that cannot be
/// stopped; the future logs which signal came.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM; stopping"),
            _ = int.recv() => tracing::info!("interrupted; stopping"),
        }
    })
}
