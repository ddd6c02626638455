//! The raw configuration: what the JSON file (and the workbook) holds, before validation.
//! A device or a signal is a row: column name -> cell. Typed views are built by
//! [`crate::validate`].

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Env, Serialized};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::row::Row;

/// The Redis URL used when the config and the environment name none.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Where the config lives on a gateway.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fieldbridge/config.json";
/// The environment variable prefix for top-level settings (`FIELDBRIDGE_REDIS_URL`, ...).
pub const ENV_PREFIX: &str = "FIELDBRIDGE_";
/// The top-level settings an environment variable may override.
pub const ENV_KEYS: [&str; 2] = ["redis_url", "stream_max_len"];

/// The configuration file as written: top-level settings, device rows, signal rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// The approximate cap of the tag bus stream (entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_max_len: Option<serde_json::Value>,
    #[serde(default)]
    pub devices: Vec<Row>,
    #[serde(default)]
    pub signals: Vec<Row>,
    /// Top-level keys this version does not know (reported as warnings).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// The top-level settings figment layers.
#[derive(Debug, Serialize, Deserialize)]
struct TopLevel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_max_len: Option<serde_json::Value>,
}

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
}

impl RawConfig {
    /// Parses JSON text (no defaults, no environment): the pure `&str -> model` step.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        serde_json::from_str(text).map_err(|e| LoadError::Parse {
            origin: "config".into(),
            message: e.to_string(),
        })
    }

    /// Loads the file at `path`, layered with figment: defaults, then the file, then the
    /// `FIELDBRIDGE_*` environment variables of [`ENV_KEYS`].
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let io_error = |source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        // The rows are parsed once, by serde_json (syntax errors with line and column), straight
        // from the file: the text of a big config (megabytes) is never in RAM next to its rows.
        // figment layers only the top-level settings (defaults, file, environment), so a config
        // of thousands of rows is never copied into figment's value tree (it would take ~25x
        // the file's size in RAM).
        let mut raw: Self =
            serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
                match e.io_error_kind() {
                    Some(kind) => io_error(std::io::Error::new(kind, e.to_string())),
                    None => LoadError::Parse {
                        origin: path.display().to_string(),
                        message: e.to_string(),
                    },
                }
            })?;
        let top: TopLevel = Figment::new()
            .merge(Serialized::default("redis_url", DEFAULT_REDIS_URL))
            .merge(Serialized::defaults(TopLevel {
                redis_url: raw.redis_url.take(),
                stream_max_len: raw.stream_max_len.take(),
            }))
            .merge(Env::prefixed(ENV_PREFIX).only(&ENV_KEYS))
            .extract()
            .map_err(|e| LoadError::Parse {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
        raw.redis_url = top.redis_url;
        raw.stream_max_len = top.stream_max_len;
        Ok(raw)
    }

    /// The JSON text of this config, pretty-printed, with a final newline.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
