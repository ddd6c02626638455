//! The exit status of every applet: one meaning per code, the same in each applet (README,
//! "Exit codes").

use std::process::ExitCode;

/// How an applet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, stopped by SIGTERM/SIGINT, or nothing to do (no enabled device); `status`:
    /// every applet runs as configured.
    Ok,
    /// 1: it failed while running (an I/O error, Redis not reachable at start), or the answer
    /// is no: `status` (an applet not running as configured, no supervisor), `tag get` (no
    /// value), `tag set -` (lines refused).
    Failure,
    /// 2: the command line is wrong (clap's own code for a usage error).
    Usage,
    /// 3: the configuration cannot be read or has errors (a protocol applet: in its part;
    /// `config validate` and `config import`: anywhere), or a file it names cannot be used:
    /// nothing was started or written.
    Config,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_usage_error_exits_with_clap_s_code() {
        let err =
            crate::cli::Cli::try_parse_from(["fieldbridge", "mqtt-client", "--nope"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(Exit::Usage.code()));
    }
}
