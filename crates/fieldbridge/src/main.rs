//! `fieldbridge`: one static multi-call binary with every applet of the gateway.
//!
//! `fieldbridge <applet> ...`, or a symlink named after the applet (`mqtt-client -c FILE`).
//! `main` only wires: it picks the applet, sets up logging and hands over.
//! The applets, their shared options and exit codes: docs/architecture.md ("Entry points",
//! "crates/fieldbridge") and the README ("Exit codes").

mod applets;
mod cli;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    supervisor::on_start(); // a supervised child dies with its supervisor
    let cli = cli::Cli::parse_from(cli::multicall_args(std::env::args_os()));
    match applets::run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            // The error chain, once, on stderr (logging may not be up yet).
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("fieldbridge: {e:#}\n").as_bytes(),
            );
            if e.is::<applets::ConfigRefused>() {
                exit::Exit::Config.into()
            } else {
                exit::Exit::Failure.into()
            }
        }
    }
}
