//! Validation errors and warnings, each with the place it refers to.

use std::fmt;

use crate::Protocol;

/// The part of the config a row belongs to (the workbook sheet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// A top-level setting.
    Top,
    /// The `devices` array (sheet `Devices`).
    Devices,
    /// The `signals` array (sheet `Signals`).
    Signals,
}

impl Section {
    /// The JSON key of the array (or "" for top level).
    pub fn json_key(self) -> &'static str {
        match self {
            Section::Top => "",
            Section::Devices => "devices",
            Section::Signals => "signals",
        }
    }
    /// The workbook sheet name.
    pub fn sheet(self) -> &'static str {
        match self {
            Section::Top => "Settings",
            Section::Devices => "Devices",
            Section::Signals => "Signals",
        }
    }
}

/// Where an error is: `signals[3].source_device_alias`, `devices[0]`, `redis_url`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigPath {
    pub section: Section,
    /// The 0-based index in the array (None for top-level settings).
    pub index: Option<usize>,
    /// The column (JSON key), when the error is about one.
    pub column: Option<String>,
}

impl ConfigPath {
    /// A row, or a column of a row.
    pub fn row(section: Section, index: usize, column: Option<&str>) -> Self {
        Self {
            section,
            index: Some(index),
            column: column.map(str::to_owned),
        }
    }
    /// A top-level setting.
    pub fn top(key: &str) -> Self {
        Self {
            section: Section::Top,
            index: None,
            column: Some(key.to_owned()),
        }
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section.json_key())?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        match (&self.column, self.section) {
            (Some(c), Section::Top) => f.write_str(c),
            (Some(c), _) => write!(f, ".{c}"),
            (None, _) => Ok(()),
        }
    }
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: ConfigPath,
    /// The protocol whose part of the config the error belongs to (None: all of them).
    pub protocol: Option<Protocol>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A list of validation errors (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
