//! Command outcomes: how a master driver reports what became of a value written to an `out`
//! tag.
//!
//! # The contract (every master driver follows it: Modbus, IEC 104, ...)
//!
//! - A consumer (the MQTT command path, `fieldbridge tag set`, a script) writes a command as
//!   an ordinary tag value to `tag/<device>/<signal>/out`. Its `timestamp_ms` is when the
//!   command was issued.
//! - The driver executes only values that arrive LIVE on the `out` channel after it started
//!   (never the value stored in the key: an old command is never replayed after a restart),
//!   and refuses one whose `timestamp_ms` is older than the device's `command_max_age_ms`.
//! - For every command it received, the driver writes exactly one [`CommandResult`] to the
//!   key `result/<device>/<signal>` ([`TagKey::result_key`]): `SET` (the latest outcome) and
//!   `PUBLISH` on the channel of the same name, in one `MULTI`. Results are not added to the
//!   durable stream (they are answers to a live caller, not measurements).
//! - The result's text is `outcome,command_timestamp_ms,result_timestamp_ms,detail`, e.g.
//!   `confirmed,1732280000000,1732280000042,` or
//!   `rejected,1732280000000,1732280000042,illegal_data_address`: `command_timestamp_ms` is
//!   the `out` value's timestamp (a caller matches its command by it), `detail` is empty or one
//!   lowercase code (`[a-z0-9_]`, at most [`MAX_DETAIL_LEN`] bytes).
//! - On `confirmed` the driver also writes the raw value it put on the wire to the signal's
//!   `rout` tag, with the command's timestamp.

use crate::{Alias, KeyError, TagKey};
use std::fmt;
use std::str::FromStr;

/// The prefix of every command result key.
pub const RESULT_PREFIX: &str = "result/";
/// The longest `detail` code.
pub const MAX_DETAIL_LEN: usize = 32;

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandOutcome {
    /// The device acknowledged it (Modbus: the write echo; IEC 104: ACTCON positive, and
    /// ACTTERM where the protocol sends one).
    Confirmed,
    /// The device answered no (Modbus exception; IEC 104 negative confirmation), or the value
    /// cannot be represented in the signal's type; `detail` says why.
    Rejected,
    /// The device did not answer in time (after the configured retries).
    Timeout,
    /// The link to the device is down or the device is backed off as not answering.
    LinkDown,
    /// The command was older than the device's `command_max_age_ms` when it was to be sent.
    TooOld,
    /// The signal is not writable (or not configured).
    NotWritable,
    /// The value does not fit the signal's command type (e.g. 7 for a single command);
    /// nothing was sent.
    Invalid,
}

impl CommandOutcome {
    /// Every outcome.
    pub const ALL: [CommandOutcome; 7] = [
        CommandOutcome::Confirmed,
        CommandOutcome::Rejected,
        CommandOutcome::Timeout,
        CommandOutcome::LinkDown,
        CommandOutcome::TooOld,
        CommandOutcome::NotWritable,
        CommandOutcome::Invalid,
    ];

    /// The text form: `confirmed`, `rejected`, `timeout`, `link_down`, `too_old`, `not_writable`,
    /// `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Confirmed => "confirmed",
            CommandOutcome::Rejected => "rejected",
            CommandOutcome::Timeout => "timeout",
            CommandOutcome::LinkDown => "link_down",
            CommandOutcome::TooOld => "too_old",
            CommandOutcome::NotWritable => "not_writable",
            CommandOutcome::Invalid => "invalid",
        }
    }
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CommandOutcome {
    type Err = ResultError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ResultError::UnknownOutcome(s.chars().take(32).collect()))
    }
}

/// Why a result text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("unknown command outcome {0:?}")]
    UnknownOutcome(String),
    #[error("expected outcome,command_timestamp_ms,result_timestamp_ms,detail (4 fields)")]
    FieldCount,
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
    #[error(
        "detail {0:?} is not a lowercase code of at most {MAX_DETAIL_LEN} characters [a-z0-9_]"
    )]
    BadDetail(String),
}

/// A detail code: lowercase `[a-z0-9_]`, at most [`MAX_DETAIL_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Detail(String);

impl Detail {
    /// Validates a detail code.
    pub fn new(code: &str) -> Result<Self, ResultError> {
        if code.is_empty()
            || code.len() > MAX_DETAIL_LEN
            || !code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ResultError::BadDetail(code.chars().take(32).collect()));
        }
        Ok(Self(code.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The result of one command (see the module docs for its text form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub outcome: CommandOutcome,
    /// The `timestamp_ms` of the `out` value this answers.
    pub command_timestamp_ms: u64,
    /// When the driver decided the outcome (Unix ms).
    pub timestamp_ms: u64,
    pub detail: Option<Detail>,
}

impl CommandResult {
    /// A result decided now.
    pub fn now(outcome: CommandOutcome, command_timestamp_ms: u64) -> Self {
        Self {
            outcome,
            command_timestamp_ms,
            timestamp_ms: crate::now_ms(),
            detail: None,
        }
    }

    /// The same result with a detail code (an invalid code is left out).
    pub fn with_detail(mut self, code: &str) -> Self {
        self.detail = Detail::new(code).ok();
        self
    }
}

impl fmt::Display for CommandResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.outcome,
            self.command_timestamp_ms,
            self.timestamp_ms,
            self.detail.as_ref().map(Detail::as_str).unwrap_or("")
        )
    }
}

impl FromStr for CommandResult {
    type Err = ResultError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fields = s.split(',');
        let (Some(outcome), Some(cmd_ts), Some(ts), Some(detail), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(ResultError::FieldCount);
        };
        let ts_of = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| ResultError::BadTimestamp(t.chars().take(32).collect()))
        };
        let detail = detail.trim();
        Ok(Self {
            outcome: outcome.trim().parse()?,
            command_timestamp_ms: ts_of(cmd_ts)?,
            timestamp_ms: ts_of(ts)?,
            detail: if detail.is_empty() {
                None
            } else {
                Some(Detail::new(detail)?)
            },
        })
    }
}

impl TagKey {
    /// The key (and channel) of the command results of this tag's signal:
    /// `result/<device>/<signal>` (whatever this key's direction).
    pub fn result_key(&self) -> String {
        format!("{RESULT_PREFIX}{}/{}", self.device, self.signal)
    }

    /// A Redis glob of every result key of a device (`result/<device>/*`).
    pub fn result_pattern(device: &Alias) -> String {
        format!("{RESULT_PREFIX}{device}/*")
    }

    /// The `out` tag a result key belongs to.
    pub fn from_result_key(key: &str) -> Result<TagKey, KeyError> {
        let rest = key
            .strip_prefix(RESULT_PREFIX)
            .ok_or_else(|| KeyError::WrongShape(key.to_owned()))?;
        let mut parts = rest.split('/');
        let (Some(device), Some(signal), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::WrongShape(key.to_owned()));
        };
        Ok(TagKey::new(
            Alias::new(device)?,
            Alias::new(signal)?,
            crate::Direction::Out,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_text_round_trips() {
        let r = CommandResult {
            outcome: CommandOutcome::Rejected,
            command_timestamp_ms: 1_732_280_000_000,
            timestamp_ms: 1_732_280_000_042,
            detail: Some(Detail::new("illegal_data_address").unwrap()),
        };
        let text = r.to_string();
        assert_eq!(
            text,
            "rejected,1732280000000,1732280000042,illegal_data_address"
        );
        assert_eq!(text.parse::<CommandResult>().unwrap(), r);
        let ok: CommandResult = "confirmed,1,2,".parse().unwrap();
        assert_eq!(ok.outcome, CommandOutcome::Confirmed);
        assert_eq!(ok.detail, None);
        for o in CommandOutcome::ALL {
            assert_eq!(o.as_str().parse::<CommandOutcome>().unwrap(), o);
        }
        for bad in [
            "",
            "confirmed,1,2",
            "maybe,1,2,",
            "confirmed,x,2,",
            "rejected,1,2,Bad Detail",
            "confirmed,1,2,,",
        ] {
            assert!(bad.parse::<CommandResult>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn result_keys() {
        let k: TagKey = "tag/m1/sp/out".parse().unwrap();
        assert_eq!(k.result_key(), "result/m1/sp");
        assert_eq!(TagKey::from_result_key("result/m1/sp").unwrap(), k);
        assert!(TagKey::from_result_key("result/m1").is_err());
        assert!(TagKey::from_result_key("tag/m1/sp/out").is_err());
        assert_eq!(TagKey::result_pattern(&k.device), "result/m1/*");
    }
}
