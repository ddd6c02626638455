//! `fieldbridge status` (not built yet: a later issue delivers it).

use std::process::ExitCode;

/// Options of `fieldbridge status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: std::path::PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the status applet is not part of this build yet")
}
