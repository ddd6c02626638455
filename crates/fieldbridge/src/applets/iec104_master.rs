//! `fieldbridge iec104-master`: the IEC 60870-5-104 controlling station driver
//! (the work is in the `iec104-master` crate).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use config::Applet;

/// Options of `fieldbridge iec104-master`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: std::path::PathBuf,
    /// Log level: error, warn, info, debug, trace (or a tracing filter)
    #[arg(
        short = 'd',
        long = "debug",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub debug: String,
    /// Redis URL of the tag bus (default: FIELDBRIDGE_REDIS_URL, else the config's redis_url)
    #[arg(long = "redis-url", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Frame tracing: off, apci, asdu (decoded ASDUs) or hex (plus the octets)
    #[arg(long = "decode", value_name = "LEVEL", default_value = "off")]
    pub decode: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let decode: iec60870::DecodeLevel = args
        .decode
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--decode: {e}"))?;
    if decode == iec60870::DecodeLevel::Off {
        crate::logging::init(&args.debug);
    } else {
        // frame tracing logs at info on its own target: keep it visible at any level
        crate::logging::init(&format!("{},iec60870::decode=info", args.debug));
    }
    let raw = config::RawConfig::load(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let url = super::redis_url_of(args.redis_url.as_deref(), &raw);
    // Validation consumes the rows: they are never all in RAM next to the typed config.
    let validated = config::validate_owned(raw);
    let errors = validated.errors_for(Applet::Iec104Master);
    if !errors.is_empty() {
        let mut err = std::io::stderr().lock();
        for e in &errors {
            let _ = writeln!(err, "{e}");
        }
        let _ = writeln!(
            err,
            "iec104-master: {} configuration error(s); not starting",
            errors.len()
        );
        return Ok(ExitCode::from(1));
    }
    let devices = iec104_master::device_specs(&validated.config);
    if devices.is_empty() {
        tracing::warn!("no enabled iec104-master device in the configuration; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let mut opts = iec104_master::Options::new(url);
    opts.stream_max_len = validated.config.stream_max_len;
    opts.decode_level = decode;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let shutdown = super::shutdown_signal()?;
        iec104_master::run(devices, opts, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
