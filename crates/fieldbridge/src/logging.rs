//! Logging: `tracing` to stderr in a plain format procd/logd keep readable.

use tracing_subscriber::EnvFilter;

/// Sets up logging at `level` (error, warn, info, debug, trace, or a tracing filter).
/// `RUST_LOG`, when set, wins.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
