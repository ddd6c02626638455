//! `fieldbridge config validate|show`.

use std::io::Write;
use std::process::ExitCode;

use config::{Applet, RawConfig};

use crate::cli::{ConfigArgs, ConfigCommand};

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Validate { file } => validate(&file),
        ConfigCommand::Show { file } => show(&file),
    }
}

fn validate(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let raw = RawConfig::load(file)?;
    let validated = config::validate(&raw);
    let mut out = std::io::stdout().lock();
    for w in &validated.warnings {
        writeln!(out, "warning: {w}")?;
    }
    for e in &validated.errors {
        writeln!(out, "error: {e}")?;
    }
    let c = &validated.config;
    if validated.errors.is_empty() {
        writeln!(
            out,
            "{}: valid ({} devices, {} signals)",
            file.display(),
            c.devices.len(),
            c.signals.len()
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "{}: {} errors", file.display(), validated.errors.len())?;
        Ok(ExitCode::FAILURE)
    }
}

/// Columns whose cells are secrets: masked whenever a config is shown or logged.
pub const SECRET_COLUMNS: &[&str] = &["password", "last_will_password", "client_key_password"];

fn show(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut raw = RawConfig::load(file)?;
    for row in raw.devices.iter_mut() {
        for column in SECRET_COLUMNS {
            if let Some(v) = row.get_mut(*column) {
                *v = serde_json::Value::String("***".into());
            }
        }
    }
    let validated = config::validate(&raw);
    let mut out = std::io::stdout().lock();
    out.write_all(raw.to_json_pretty().as_bytes())?;
    for applet in Applet::ALL {
        let errors = validated.errors_for(applet);
        let state = if !validated.config.applet_has_work(applet) {
            "no enabled devices"
        } else if errors.is_empty() {
            "valid"
        } else {
            "INVALID"
        };
        writeln!(out, "# {applet}: {state}")?;
    }
    Ok(ExitCode::SUCCESS)
}
