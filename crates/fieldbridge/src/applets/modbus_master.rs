//! `fieldbridge modbus-master`: Modbus RTU (serial) and Modbus TCP devices -> tag bus, and
//! `out` tags -> writes. The work is done by the `modbus-master` crate.

use crate::cli::{CommonArgs, RedisArgs};
use crate::exit::Exit;

/// Options of `fieldbridge modbus-master`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    crate::logging::init(&args.common.debug);
    let super::Loaded { config, redis_url } =
        super::load_for(config::Applet::ModbusMaster, &args.common, &args.redis)?;
    let path = &args.common.config;
    let rt = super::runtime()?;
    rt.block_on(async move {
        tracing::info!(config = %path.display(), redis = %config::redact_url(&redis_url), "modbus-master starting");
        let shutdown = super::shutdown_signal()?;
        modbus_master::run(&config, &redis_url, shutdown).await?;
        Ok(Exit::Ok)
    })
}
