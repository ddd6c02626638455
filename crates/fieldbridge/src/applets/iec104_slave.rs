//! `fieldbridge iec104-slave`: the IEC 60870-5-104 controlled station SCADA masters connect
//! to (the work is in the `iec104-slave` crate).

use config::Applet;

use crate::cli::{CommonArgs, RedisArgs};
use crate::exit::Exit;

/// Options of `fieldbridge iec104-slave`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    crate::logging::init(&args.common.debug);
    let loaded = super::load_for(Applet::Iec104Slave, &args.common, &args.redis)?;
    let slaves = iec104_slave::slave_settings(&loaded.config, &loaded.redis_url);
    // the typed configuration (every row of every protocol) is not needed any more
    drop(loaded);
    if slaves.is_empty() {
        tracing::warn!("no enabled iec104-slave device in the configuration; nothing to do");
        return Ok(Exit::Ok);
    }
    let rt = super::runtime()?;
    rt.block_on(async move {
        let shutdown = super::shutdown_signal()?;
        iec104_slave::run_all(slaves, shutdown).await?;
        Ok(Exit::Ok)
    })
}
