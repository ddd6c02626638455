//! `fieldbridge iec104-master`: the IEC 60870-5-104 controlling station driver
//! (the work is in the `iec104-master` crate).

use config::Applet;

use crate::cli::{CommonArgs, RedisArgs};
use crate::exit::Exit;

/// Options of `fieldbridge iec104-master`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Frame tracing: off, apci, asdu (decoded ASDUs) or hex (plus the octets)
    #[arg(long = "decode", value_name = "LEVEL", default_value = "off")]
    pub decode: String,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let decode: iec60870::DecodeLevel = args
        .decode
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--decode: {e}"))?;
    if decode == iec60870::DecodeLevel::Off {
        crate::logging::init(&args.common.debug);
    } else {
        // frame tracing logs at info on its own target: keep it visible at any level
        crate::logging::init(&format!("{},iec60870::decode=info", args.common.debug));
    }
    let loaded = super::load_for(Applet::Iec104Master, &args.common, &args.redis)?;
    let devices = iec104_master::device_specs(&loaded.config);
    if devices.is_empty() {
        tracing::warn!("no enabled iec104-master device in the configuration; nothing to do");
        return Ok(Exit::Ok);
    }
    let mut opts = iec104_master::Options::new(loaded.redis_url);
    opts.stream_max_len = loaded.config.stream_max_len;
    opts.decode_level = decode;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let shutdown = super::shutdown_signal()?;
        iec104_master::run(devices, opts, shutdown).await?;
        Ok(Exit::Ok)
    })
}
