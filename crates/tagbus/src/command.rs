//! Commands and their outcomes: the contract between whoever issues a command (the MQTT
//! command path, `fieldbridge tag set`) and the driver that executes it.
//!
//! - A command is a value written to `tag/<device>/<signal>/out` like any other tag value.
//!   Its `timestamp_ms` is when it was issued: it is the command's id, and a driver refuses
//!   a command older than the signal's configured maximum age (never sent late). Drivers act
//!   only on live `out` values (the PUBLISH feed), never on the key's stored value, so a
//!   restart never replays an old command.
//! - The driver reports the outcome with [`TagWriter::write_result`](crate::TagWriter::write_result):
//!   SET + PUBLISH of [`CommandResult`] (`outcome,command_ts_ms,result_ts_ms`, e.g.
//!   `confirmed,1732280000000,1732280000150`) on [`ResultKey`] `cmd/<device>/<signal>/result`.
//!   Subscribe to `cmd/*/*/result` for every outcome.

use std::fmt;
use std::str::FromStr;

use crate::{Alias, KeyError, TagKey, ValueError};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandOutcome {
    /// The device confirmed it (IEC 104: positive ACT_CON; Modbus: the write's echo).
    Confirmed,
    /// The device refused it (IEC 104: negative ACT_CON or COT 44-47; Modbus: an exception).
    Rejected,
    /// No answer within the command timeout.
    Timeout,
    /// The link to the device is down: nothing was sent.
    LinkDown,
    /// Older than the signal's maximum command age: refused, nothing was sent.
    TooOld,
    /// The signal takes no commands.
    NotWritable,
    /// The value does not fit the command type (e.g. 7 for a single command).
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

    /// The outcome's name: `confirmed`, `rejected`, `timeout`, `link_down`, `too_old`,
    /// `not_writable`, `invalid`.
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
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ValueError::BadNumber(s.chars().take(32).collect()))
    }
}

/// The outcome of one command: `outcome,command_ts_ms,result_ts_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandResult {
    pub outcome: CommandOutcome,
    /// The `timestamp_ms` of the `out` value this answers (the command's id).
    pub command_ts_ms: u64,
    /// When the outcome was known.
    pub result_ts_ms: u64,
}

impl fmt::Display for CommandResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{}",
            self.outcome, self.command_ts_ms, self.result_ts_ms
        )
    }
}

impl FromStr for CommandResult {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > crate::MAX_CSV_LEN {
            return Err(ValueError::TooLong(s.len()));
        }
        let mut it = s.split(',');
        let (Some(outcome), Some(cmd), Some(res), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(ValueError::FieldCount(s.split(',').count()));
        };
        let ts = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValueError::BadTimestamp(t.chars().take(32).collect()));
            }
            t.parse::<u64>()
                .map_err(|_| ValueError::BadTimestamp(t.chars().take(32).collect()))
        };
        Ok(Self {
            outcome: outcome.parse()?,
            command_ts_ms: ts(cmd)?,
            result_ts_ms: ts(res)?,
        })
    }
}

/// Where a signal's command outcomes go: `cmd/<device>/<signal>/result` (key and channel).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResultKey {
    pub device: Alias,
    pub signal: Alias,
}

/// The prefix of every result key.
pub const RESULT_PREFIX: &str = "cmd/";
const RESULT_SUFFIX: &str = "/result";

impl ResultKey {
    /// The result key of a tag's signal.
    pub fn of(tag: &TagKey) -> Self {
        Self {
            device: tag.device.clone(),
            signal: tag.signal.clone(),
        }
    }

    /// The `out` tag the results answer.
    pub fn out_tag(&self) -> TagKey {
        TagKey::new(
            self.device.clone(),
            self.signal.clone(),
            crate::Direction::Out,
        )
    }

    /// The Redis glob matching every result key.
    pub fn pattern() -> String {
        format!("{RESULT_PREFIX}*/*{RESULT_SUFFIX}")
    }
}

impl fmt::Display for ResultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{RESULT_PREFIX}{}/{}{RESULT_SUFFIX}",
            self.device, self.signal
        )
    }
}

impl FromStr for ResultKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let inner = s
            .strip_prefix(RESULT_PREFIX)
            .and_then(|r| r.strip_suffix(RESULT_SUFFIX))
            .ok_or_else(|| KeyError::WrongShape(s.to_owned()))?;
        let (device, signal) = inner
            .split_once('/')
            .ok_or_else(|| KeyError::WrongShape(s.to_owned()))?;
        Ok(Self {
            device: Alias::new(device)?,
            signal: Alias::new(signal)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips_and_rejects_garbage() {
        let r: CommandResult = "link_down,1732280000000,1732280000150".parse().unwrap();
        assert_eq!(r.outcome, CommandOutcome::LinkDown);
        assert_eq!(r.to_string(), "link_down,1732280000000,1732280000150");
        for bad in [
            "",
            "ok,1,2",
            "confirmed,1",
            "confirmed,a,2",
            "confirmed,1,2,3",
            "confirmed,-1,2",
        ] {
            assert!(bad.parse::<CommandResult>().is_err(), "{bad}");
        }
        for o in CommandOutcome::ALL {
            assert_eq!(o.as_str().parse::<CommandOutcome>().unwrap(), o);
        }
    }

    #[test]
    fn result_keys() {
        let tag: TagKey = "tag/rtu1/cb1/out".parse().unwrap();
        let k = ResultKey::of(&tag);
        assert_eq!(k.to_string(), "cmd/rtu1/cb1/result");
        assert_eq!("cmd/rtu1/cb1/result".parse::<ResultKey>().unwrap(), k);
        assert_eq!(k.out_tag(), tag);
        assert_eq!(ResultKey::pattern(), "cmd/*/*/result");
        for bad in [
            "cmd/rtu1/result",
            "cmd/a/b/c/result",
            "tag/a/b/result",
            "cmd/a b/c/result",
        ] {
            assert!(bad.parse::<ResultKey>().is_err(), "{bad}");
        }
    }
}
