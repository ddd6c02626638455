//! The command line: one subcommand per applet, and the multi-call name handling.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

/// Applets that can be run through a symlink of their name.
pub const APPLET_NAMES: &[&str] = &[
    "supervise",
    "iec104-master",
    "iec104-slave",
    "modbus-master",
    "mqtt-client",
    "config",
    "tag",
    "status",
    #[cfg(feature = "demo")]
    "demo",
];

/// When called as `mqtt-client` (a symlink), behave as `fieldbridge mqtt-client`.
pub fn multicall_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(str::to_owned);
    if let Some(name) = name {
        if APPLET_NAMES.contains(&name.as_str()) {
            if let Some(first) = args.first_mut() {
                *first = OsString::from(name);
            }
            args.insert(0, OsString::from("fieldbridge"));
        }
    }
    args
}

/// fieldbridge: an IEC 60870-5-104 and Modbus to MQTT protocol gateway.
#[derive(Debug, Parser)]
#[command(
    name = "fieldbridge",
    version,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub applet: Applet,
}

/// Options every applet that talks to Redis has.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL of the tag bus [default: FIELDBRIDGE_REDIS_URL, else the config's redis_url,
    /// else redis://127.0.0.1:6379]
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `-c FILE` and `-d LEVEL`, one meaning in every applet that runs from the configuration
/// (the supervisor starts each protocol applet as `fieldbridge <applet> -c FILE -d LEVEL`).
/// An applet with another default says so with `mut_arg` (`demo`, `tag`).
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Configuration file
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        global = true,
        default_value = config::DEFAULT_CONFIG_PATH
    )]
    pub config: PathBuf,
    /// Log level: error, warn, info, debug or trace (or `target=level,...` directives)
    #[arg(
        short = 'd',
        long = "debug",
        value_name = "LEVEL",
        global = true,
        default_value = "info"
    )]
    pub debug: String,
}

#[derive(Debug, Subcommand)]
pub enum Applet {
    /// Run the gateway: start, watch and restart the protocol applets (procd runs this)
    Supervise(crate::applets::supervise::Args),
    /// Print the supervisor's state of each protocol
    Status(crate::applets::status::Args),
    /// IEC 60870-5-104 controlling station driver: outstations -> tag bus
    #[command(name = "iec104-master")]
    Iec104Master(crate::applets::iec104_master::Args),
    /// IEC 60870-5-104 controlled station: tag bus -> SCADA masters, their commands back
    #[command(name = "iec104-slave")]
    Iec104Slave(crate::applets::iec104_slave::Args),
    /// Modbus RTU and Modbus TCP master driver: slaves -> tag bus
    #[command(name = "modbus-master")]
    ModbusMaster(crate::applets::modbus_master::Args),
    /// MQTT publisher: tag bus -> brokers
    #[command(name = "mqtt-client")]
    MqttClient(crate::applets::mqtt_client::Args),
    /// Read and write the tag bus (a debugging and scripting aid)
    Tag(TagArgs),
    /// Check, show, import and export the configuration
    Config(ConfigArgs),
    /// Run the whole chain on this machine with simulated devices, printing what MQTT receives
    #[cfg(feature = "demo")]
    Demo(crate::applets::demo::Args),
}

/// Options of `fieldbridge tag`; the config file is read for its `redis_url` when it exists.
#[derive(Debug, Args)]
#[command(
    mut_arg("config", |a| a.help("Configuration file to take redis_url from (used if it exists)")),
    mut_arg("debug", |a| a.default_value("warn"))
)]
pub struct TagArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(subcommand)]
    pub command: TagCommand,
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Print a tag's value (the CSV text `value,timestamp_ms,flags`)
    Get {
        /// The tag key, e.g. tag/rtu1/cb1/in
        key: String,
    },
    /// Write a value through the drivers' writer (SET + PUBLISH + XADD); KEY `-` reads
    /// lines `KEY CSV` from stdin and writes them pipelined
    Set {
        /// The tag key, or `-` for lines from stdin
        key: String,
        /// The value: an integer, a float or nan
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
        /// Flags, space separated (e.g. "iv nt")
        #[arg(long, default_value = "")]
        flags: String,
        /// Timestamp in Unix milliseconds [default: now]
        #[arg(long)]
        ts: Option<u64>,
    },
    /// Print values as they arrive (`KEY CSV` per line), after the current ones
    Watch {
        /// Redis glob of the keys to watch
        #[arg(default_value = "tag/*")]
        pattern: String,
        /// Only live values, not the current ones first
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration (JSON, or a .xlsx/.ods workbook); prints every error with its
    /// path or cell; exit 3 on errors
    Validate {
        /// The JSON configuration file or a workbook
        #[arg(default_value = config::DEFAULT_CONFIG_PATH)]
        file: PathBuf,
    },
    /// Print the validated configuration (secrets masked)
    Show {
        /// The JSON configuration file
        #[arg(default_value = config::DEFAULT_CONFIG_PATH)]
        file: PathBuf,
    },
    /// Read a workbook (sheets Devices, Signals, optional Settings), validate it and write
    /// the JSON configuration atomically, only when it is valid
    Import {
        /// The workbook (.xlsx, .xlsm or .ods)
        workbook: PathBuf,
        /// The JSON configuration to write
        #[arg(short = 'o', long = "output", value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        output: PathBuf,
        /// Print what would change against the current configuration; write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the configuration as a workbook (sheets Devices, Signals, Settings)
    Export {
        /// The JSON configuration to export
        #[arg(short = 'c', long = "config", value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// The workbook to write (.xlsx), or - for standard output
        #[arg(
            short = 'o',
            long = "output",
            value_name = "WORKBOOK",
            default_value = "fieldbridge.xlsx"
        )]
        output: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-c FILE -d LEVEL`, as the supervisor passes them, in every applet that takes them.
    #[test]
    fn every_applet_takes_c_and_d_alike() {
        let runs: &[&[&str]] = &[
            &["supervise"],
            &["iec104-master"],
            &["iec104-slave"],
            &["modbus-master"],
            &["mqtt-client"],
            &["tag", "get", "tag/a/b/in"],
            #[cfg(feature = "demo")]
            &["demo"],
        ];
        for run in runs {
            let args = [&["fieldbridge"], *run, &["-c", "/x.json", "-d", "debug"]].concat();
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let common = match &cli.applet {
                Applet::Supervise(a) => &a.common,
                Applet::Iec104Master(a) => &a.common,
                Applet::Iec104Slave(a) => &a.common,
                Applet::ModbusMaster(a) => &a.common,
                Applet::MqttClient(a) => &a.common,
                Applet::Tag(a) => &a.common,
                #[cfg(feature = "demo")]
                Applet::Demo(a) => &a.common,
                Applet::Status(_) | Applet::Config(_) => unreachable!(),
            };
            assert_eq!(common.config, Path::new("/x.json"), "{args:?}");
            assert_eq!(common.debug, "debug", "{args:?}");
        }
    }

    #[cfg(not(feature = "demo"))]
    #[test]
    fn without_the_demo_feature_there_is_no_demo_applet() {
        assert!(!APPLET_NAMES.contains(&"demo"));
        assert!(Cli::try_parse_from(["fieldbridge", "demo"]).is_err());
    }

    #[test]
    fn defaults_differ_only_where_the_applet_says_so() {
        let common = |args: &[&str]| match Cli::try_parse_from(args).unwrap().applet {
            Applet::Tag(a) => a.common,
            Applet::MqttClient(a) => a.common,
            #[cfg(feature = "demo")]
            Applet::Demo(a) => a.common,
            _ => unreachable!(),
        };
        let mqtt = common(&["fieldbridge", "mqtt-client"]);
        assert_eq!(mqtt.config, Path::new(config::DEFAULT_CONFIG_PATH));
        assert_eq!(mqtt.debug, "info");
        let tag = common(&["fieldbridge", "tag", "get", "tag/a/b/in"]);
        assert_eq!(tag.config, Path::new(config::DEFAULT_CONFIG_PATH));
        assert_eq!(tag.debug, "warn");
        #[cfg(feature = "demo")]
        assert_eq!(
            common(&["fieldbridge", "demo"]).config,
            Path::new("config/demo.json")
        );
    }
}
