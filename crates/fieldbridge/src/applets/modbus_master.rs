//! `fieldbridge modbus-master`: Modbus RTU (serial) and Modbus TCP devices -> tag bus, and
//! `out` tags -> writes. The work is done by the `modbus-master` crate.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{ConfigArg, DebugArg, RedisArgs};

/// Options of `fieldbridge modbus-master`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub debug: DebugArg,
    #[command(flatten)]
    pub redis: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init(&args.debug.debug);
    let path = &args.config.config;
    let raw =
        config::RawConfig::load(path).with_context(|| format!("loading {}", path.display()))?;
    let url = super::redis_url_of(args.redis.redis_url.as_deref(), &raw);
    // Validation consumes the rows: they are never all in RAM next to the typed config.
    let validated = config::validate_owned(raw);
    let errors = validated.errors_for(config::Applet::ModbusMaster);
    if !errors.is_empty() {
        let mut stderr = std::io::stderr().lock();
        for e in &errors {
            let _ = writeln!(stderr, "{e}");
        }
        let _ = writeln!(
            stderr,
            "modbus-master: {} configuration error(s); not starting",
            errors.len()
        );
        return Ok(ExitCode::from(2));
    }
    let config = validated.config;
    let rt = super::runtime()?;
    rt.block_on(async move {
        tracing::info!(config = %path.display(), redis = %config::redact_url(&url), "modbus-master starting");
        let shutdown = super::shutdown_signal()?;
        modbus_master::run(&config, &url, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
