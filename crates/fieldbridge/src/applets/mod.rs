//! The applets: each turns its command line into a call of the crate that does the work.

mod config_cmd;
#[cfg(feature = "demo")]
pub mod demo;
pub mod iec104_master;
pub mod iec104_slave;
pub mod modbus_master;
pub mod mqtt_client;
pub mod status;
pub mod supervise;
mod tag;

use std::io::Write;

use crate::cli::{Applet, Cli, CommonArgs, RedisArgs};
use crate::exit::Exit;

/// Runs the applet the command line chose.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.applet {
        Applet::Supervise(args) => supervise::run(args),
        Applet::Status(args) => status::run(args),
        Applet::Iec104Master(args) => iec104_master::run(args),
        Applet::Iec104Slave(args) => iec104_slave::run(args),
        Applet::ModbusMaster(args) => modbus_master::run(args),
        Applet::MqttClient(args) => mqtt_client::run(args),
        Applet::Tag(args) => tag::run(args),
        Applet::Config(args) => config_cmd::run(args),
        #[cfg(feature = "demo")]
        Applet::Demo(args) => demo::run(args),
    }
}

/// The error that ends an applet with [`Exit::Config`]: its configuration cannot be read or
/// has errors (each error was printed already; this is the summary line).
#[derive(Debug)]
pub struct ConfigRefused(pub String);

impl std::fmt::Display for ConfigRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigRefused {}

/// What a protocol applet runs on: the validated configuration and the tag bus URL.
pub struct Loaded {
    pub config: config::Config,
    pub redis_url: String,
}

/// The one way a protocol applet loads its configuration: reads `-c FILE` (the environment
/// layered over it), takes the Redis URL ([`redis_url_of`]), validates, and prints every error
/// of `applet`'s part on stderr, one a line. Fails with [`ConfigRefused`] when the file cannot
/// be read or that part has errors; errors of other applets' parts do not matter here.
pub fn load_for(
    applet: config::Applet,
    common: &CommonArgs,
    redis: &RedisArgs,
) -> anyhow::Result<Loaded> {
    let path = &common.config;
    let raw = config::RawConfig::load(path).map_err(|e| ConfigRefused(format!("{applet}: {e}")))?;
    let redis_url = redis_url_of(redis.redis_url.as_deref(), &raw);
    // Validation consumes the rows: they are never all in RAM next to the typed config.
    let validated = config::validate_owned(raw);
    let errors = validated.errors_for(applet);
    if !errors.is_empty() {
        let mut stderr = std::io::stderr().lock();
        for e in &errors {
            let _ = writeln!(stderr, "{applet}: {}: {e}", path.display());
        }
        return Err(ConfigRefused(format!(
            "{applet}: {} configuration error(s) in {}; not starting",
            errors.len(),
            path.display()
        ))
        .into());
    }
    Ok(Loaded {
        config: validated.config,
        redis_url,
    })
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
