//! `fieldbridge supervise`: runs the protocol applets whose part of the config is valid, and
//! keeps them running (the `supervisor` crate does the work).

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::CommonArgs;
use crate::exit::Exit;

/// Options of `fieldbridge supervise`; `-c` and `-d` are passed on to the applets it starts.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where to write the state of each applet (JSON; read by `fieldbridge status`)
    #[arg(long, value_name = "PATH", default_value = supervisor::DEFAULT_STATUS_PATH)]
    pub status_file: PathBuf,
    /// Seconds a child gets between SIGTERM and SIGKILL
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub stop_timeout: u64,
    /// Testing aid: run this program instead of the fieldbridge binary itself, as
    /// `PROGRAM <applet> -c FILE -d LEVEL` (e.g. a script that stays up)
    #[arg(long, value_name = "PATH", hide = true)]
    pub child_program: Option<PathBuf>,
    /// Testing aid: the first restart delay in milliseconds (default 1000)
    #[arg(long, value_name = "MS", hide = true)]
    pub backoff_min_ms: Option<u64>,
    /// Testing aid: a run this long (milliseconds) resets the backoff (default 60000)
    #[arg(long, value_name = "MS", hide = true)]
    pub stable_after_ms: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    crate::logging::init(&args.common.debug);
    let mut opts =
        supervisor::Options::new(args.common.config, args.status_file, args.common.debug);
    opts.stop_timeout = Duration::from_secs(args.stop_timeout);
    if let Some(program) = args.child_program {
        opts.launcher.program = program;
    }
    if let Some(ms) = args.backoff_min_ms {
        opts.backoff_min = Duration::from_millis(ms);
    }
    if let Some(ms) = args.stable_after_ms {
        opts.stable_after = Duration::from_millis(ms);
    }
    // Current-thread: the children's parent-death signal is tied to the spawning thread.
    let rt = super::runtime()?;
    rt.block_on(supervisor::supervise(opts))?;
    Ok(Exit::Ok)
}
