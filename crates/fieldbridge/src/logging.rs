//! Logging: `tracing` to journald or to stderr, one setup for every applet.
//!
//! - **journald** when its socket (`/run/systemd/journal/socket`) exists and stderr is not a
//!   terminal (someone running an applet by hand wants to see its log): native fields,
//!   priorities from the levels, `SYSLOG_IDENTIFIER=fieldbridge-<applet>`.
//! - **stderr** otherwise, the OpenWrt case: procd passes a service's stderr to logd, which
//!   adds the time and the service's tag. So one plain line per event, no ANSI colours, no
//!   timestamp, prefixed with the applet and its pid (all children of the supervisor share
//!   its stderr, and logd tags them all with the supervisor's pid):
//!   `mqtt-client[1234]: WARN broker unreachable host=10.0.0.9 retry_in_ms=2000`.
//!   On a terminal each line starts with a UTC timestamp.
//! - `FIELDBRIDGE_LOG=stderr` or `FIELDBRIDGE_LOG=journald` overrides the choice. The
//!   journald support is the cargo feature `journald` (default; OpenWrt builds can drop it).
//!
//! The filter is `-d`/`RUST_LOG` as `target=level` directives (`info`,
//! `mqtt_client=debug,info`): tracing-subscriber's `Targets`, not its `EnvFilter`, whose span
//! and field matching links a regex engine into every device binary (packaging/README.md,
//! "Size").
//!
//! Secrets are never logged: passwords and keys are `config::Secret`, whose Debug and
//! Display print `***`, and config error messages never show a secret cell.

use std::io::IsTerminal;
use std::path::Path;

use tracing::{Event, Subscriber};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The journald socket whose presence selects journald.
const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// Sets up logging at `level` (error, warn, info, debug, trace, or `target=level`
/// directives). `RUST_LOG`, when set and valid, wins.
pub fn init(level: &str) {
    let filter = || {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|v| v.parse::<Targets>().ok())
            .or_else(|| level.parse::<Targets>().ok())
            .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
    };
    let name = applet_name();
    let choice = std::env::var("FIELDBRIDGE_LOG").unwrap_or_default();
    let terminal = std::io::stderr().is_terminal();
    let journald = match choice.as_str() {
        "stderr" => false,
        "journald" => true,
        _ => !terminal && Path::new(JOURNALD_SOCKET).exists(),
    };
    #[cfg(feature = "journald")]
    if journald {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer.with_syslog_identifier(format!("fieldbridge-{name}"));
            let _ = tracing_subscriber::registry()
                .with(filter())
                .with(layer)
                .try_init();
            return;
        }
    }
    #[cfg(not(feature = "journald"))]
    let _ = journald;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        // A closed stderr must not panic the process (the default reports a failed write
        // with eprintln!, which panics when stderr is gone).
        .log_internal_errors(false)
        .event_format(Plain {
            prefix: format!("{name}[{}]", std::process::id()),
            timestamps: terminal,
        });
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(layer)
        .try_init();
}

/// The applet this process runs (`mqtt-client`, ...), from the command line.
fn applet_name() -> String {
    crate::cli::multicall_args(std::env::args_os())
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| crate::cli::APPLET_NAMES.contains(a))
        .unwrap_or("fieldbridge")
        .to_owned()
}

/// One plain line per event: `[time ]applet[pid]: LEVEL span{fields}: message field=value`.
struct Plain {
    prefix: String,
    timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if self.timestamps {
            SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        write!(writer, "{}: {} ", self.prefix, event.metadata().level())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                writer.write_str(": ")?;
            }
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
