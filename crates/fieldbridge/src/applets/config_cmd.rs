//! `fieldbridge config validate|show|import|export`: the configuration and its workbook.
//!
//! Reports (errors, warnings, summaries, the dry-run's changes) go to standard output; a
//! file that cannot be read at all is one error line on standard error. A configuration with
//! errors, or one that cannot be read, exits with [`Exit::Config`].

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use config::{Applet, RawConfig};

use super::ConfigRefused;
use crate::cli::{ConfigArgs, ConfigCommand};
use crate::exit::Exit;

/// The JSON config and an exported workbook hold passwords: only their owner reads them.
const SECRET_FILE_MODE: u32 = 0o600;

pub fn run(args: ConfigArgs) -> anyhow::Result<Exit> {
    match args.command {
        ConfigCommand::Validate { file } => {
            if is_workbook(&file) {
                validate_workbook(&file)
            } else {
                validate(&file)
            }
        }
        ConfigCommand::Show { file } => show(&file),
        ConfigCommand::Import {
            workbook,
            output,
            dry_run,
        } => import(&workbook, &output, dry_run),
        ConfigCommand::Export { config, output } => export(&config, &output),
    }
}

/// A workbook by its name (.xlsx, .xlsm, .ods, and the legacy .xls/.xlsb, which the reader
/// refuses with a hint) or by its first bytes (a zip or an OLE file, not JSON text).
fn is_workbook(path: &Path) -> bool {
    let by_name = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["xlsx", "xlsm", "ods", "xls", "xlsb"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(e))
    });
    let mut head = [0u8; 4];
    let by_content = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && (head == *b"PK\x03\x04" || head == [0xD0, 0xCF, 0x11, 0xE0]);
    by_name || by_content
}

/// A configuration or workbook that cannot be read: the error that exits with [`Exit::Config`].
fn unreadable(e: impl std::fmt::Display) -> anyhow::Error {
    ConfigRefused(format!("{e:#}")).into()
}

fn validate(file: &Path) -> anyhow::Result<Exit> {
    let raw = RawConfig::load(file).map_err(unreadable)?;
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
        Ok(Exit::Ok)
    } else {
        writeln!(out, "{}: {} errors", file.display(), validated.errors.len())?;
        Ok(Exit::Config)
    }
}

/// Reads and checks a workbook, printing every warning and error at its cell. Returns the
/// import when it is valid.
fn check_workbook(path: &Path, out: &mut impl Write) -> anyhow::Result<Option<workbook::Imported>> {
    let imported = workbook::read_workbook(path).map_err(unreadable)?;
    let report = imported.check();
    for w in &report.warnings {
        writeln!(out, "warning: {w}")?;
    }
    for e in &report.errors {
        writeln!(out, "error: {e}")?;
    }
    if report.is_valid() {
        let c = &report.validated.config;
        writeln!(
            out,
            "{}: valid ({} devices, {} signals)",
            path.display(),
            c.devices.len(),
            c.signals.len()
        )?;
        Ok(Some(imported))
    } else {
        writeln!(out, "{}: {} errors", path.display(), report.errors.len())?;
        Ok(None)
    }
}

fn validate_workbook(path: &Path) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    Ok(match check_workbook(path, &mut out)? {
        Some(_) => Exit::Ok,
        None => Exit::Config,
    })
}

/// The config file as written (no defaults, no environment): what an export shows and an
/// import is compared against.
fn read_json(path: &Path) -> anyhow::Result<RawConfig> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    RawConfig::parse(&text).map_err(|e| match e {
        config::LoadError::Parse { message, .. } => {
            anyhow::anyhow!("{}: {message}", path.display())
        }
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

fn import(path: &Path, output: &Path, dry_run: bool) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let Some(imported) = check_workbook(path, &mut out)? else {
        writeln!(out, "nothing written")?;
        return Ok(Exit::Config);
    };
    let current = if output.exists() {
        match read_json(output) {
            Ok(raw) => Some(raw),
            Err(e) => {
                writeln!(
                    out,
                    "the current configuration is unreadable ({e:#}); it is replaced whole"
                )?;
                None
            }
        }
    } else {
        writeln!(out, "{} does not exist yet", output.display())?;
        None
    };
    let diff = workbook::diff(&current.unwrap_or_default(), &imported.raw);
    if dry_run {
        writeln!(out, "changes against {}:", output.display())?;
        write!(out, "{diff}")?;
        writeln!(out, "dry run: nothing written")?;
        return Ok(Exit::Ok);
    }
    let json = imported.raw.to_json_pretty();
    workbook::write_file_atomic(output, json.as_bytes(), SECRET_FILE_MODE)
        .with_context(|| format!("writing {}", output.display()))?;
    let count = |what| {
        let (a, r, c) = diff.counts(what);
        format!("{what}s {a} added, {r} removed, {c} changed")
    };
    writeln!(
        out,
        "wrote {} ({}; {}; {})",
        output.display(),
        count("device"),
        count("signal"),
        count("setting")
    )?;
    Ok(Exit::Ok)
}

fn export(config_path: &Path, output: &Path) -> anyhow::Result<Exit> {
    let raw = read_json(config_path).map_err(unreadable)?;
    let validated = config::validate(&raw);
    let bytes =
        workbook::export(&raw).with_context(|| format!("exporting {}", config_path.display()))?;
    let to_stdout = output.as_os_str() == "-";
    let summary = if to_stdout {
        std::io::stdout().lock().write_all(&bytes)?;
        None
    } else {
        workbook::write_file_atomic(output, &bytes, SECRET_FILE_MODE)
            .with_context(|| format!("writing {}", output.display()))?;
        Some(format!(
            "wrote {} ({} devices, {} signals)",
            output.display(),
            raw.devices.len(),
            raw.signals.len()
        ))
    };
    // With the workbook on standard output, messages go to standard error.
    let mut msg: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    if let Some(s) = summary {
        writeln!(msg, "{s}")?;
    }
    if !validated.errors.is_empty() {
        writeln!(
            msg,
            "warning: {} has {} errors; exported as it is (`fieldbridge config validate` lists them)",
            config_path.display(),
            validated.errors.len()
        )?;
    }
    Ok(Exit::Ok)
}

fn show(file: &Path) -> anyhow::Result<Exit> {
    let mut raw = RawConfig::load(file).map_err(unreadable)?;
    for row in raw.devices.iter_mut() {
        for column in workbook::SECRET_COLUMNS {
            if let Some(v) = row.get_mut(column) {
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
    Ok(Exit::Ok)
}
