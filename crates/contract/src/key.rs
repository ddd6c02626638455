//! Tag keys: `tag/<device_alias>/<signal_alias>/<direction>`.

use std::fmt;
use std::str::FromStr;

/// The longest alias accepted, in bytes.
pub const MAX_ALIAS_LEN: usize = 64;

/// Why an alias or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("alias is empty")]
    EmptyAlias,
    #[error("alias {0:?} is longer than {MAX_ALIAS_LEN} bytes")]
    AliasTooLong(String),
    #[error("alias {0:?} contains whitespace, a control character or one of / * ? [ ] \\ + #")]
    BadAliasChar(String),
    #[error("key {0:?} does not start with \"tag/\"")]
    NotATag(String),
    #[error("key {0:?} is not tag/<device>/<signal>/<direction>")]
    WrongShape(String),
    #[error("unknown direction {0:?} (expected in, out, rin or rout)")]
    UnknownDirection(String),
}

/// Characters an alias may not hold: the key separator, Redis glob characters (a pattern
/// must match exactly the keys meant) and MQTT wildcards (the default topic is the key).
pub const FORBIDDEN_ALIAS_CHARS: &str = "/*?[]\\+#";

/// A device or signal alias: non-empty, at most [`MAX_ALIAS_LEN`] bytes, no whitespace, no
/// control characters, none of [`FORBIDDEN_ALIAS_CHARS`]. Validated once, when it is built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Alias(String);

impl Alias {
    /// Validates `s` as an alias.
    pub fn new(s: &str) -> Result<Self, KeyError> {
        if s.is_empty() {
            return Err(KeyError::EmptyAlias);
        }
        if s.len() > MAX_ALIAS_LEN {
            return Err(KeyError::AliasTooLong(s.to_owned()));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN_ALIAS_CHARS.contains(c))
        {
            return Err(KeyError::BadAliasChar(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The alias text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Alias {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Which way a tag's value flows, and whether it is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// From a field device, in engineering units (written by a master driver).
    In,
    /// To a field device: a command or set-point (executed by a master driver).
    Out,
    /// `In`, raw as the protocol carried it.
    RawIn,
    /// `Out`, raw.
    RawOut,
}

impl Direction {
    /// All directions, in key order.
    pub const ALL: [Direction; 4] = [
        Direction::In,
        Direction::Out,
        Direction::RawIn,
        Direction::RawOut,
    ];

    /// The key suffix: `in`, `out`, `rin` or `rout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::RawIn => "rin",
            Direction::RawOut => "rout",
        }
    }

    /// Whether values of this direction go to the durable stream (see the crate docs).
    pub fn is_streamed(self) -> bool {
        matches!(self, Direction::In | Direction::Out)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in" => Ok(Direction::In),
            "out" => Ok(Direction::Out),
            "rin" => Ok(Direction::RawIn),
            "rout" => Ok(Direction::RawOut),
            other => Err(KeyError::UnknownDirection(other.to_owned())),
        }
    }
}

/// A tag's name on the bus: `tag/<device>/<signal>/<direction>`; also its Redis key and its
/// PUBLISH channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagKey {
    pub device: Alias,
    pub signal: Alias,
    pub direction: Direction,
}

/// The prefix of every tag key.
pub const TAG_PREFIX: &str = "tag/";

impl TagKey {
    /// A key from its parts.
    pub fn new(device: Alias, signal: Alias, direction: Direction) -> Self {
        Self {
            device,
            signal,
            direction,
        }
    }

    /// The same device and signal in another direction (`in` -> `rin`, `out` -> ...).
    pub fn with_direction(&self, direction: Direction) -> Self {
        Self {
            device: self.device.clone(),
            signal: self.signal.clone(),
            direction,
        }
    }

    /// A Redis glob pattern matching the keys of one direction (`tag/*/*/in`), or of all.
    pub fn pattern(direction: Option<Direction>) -> String {
        match direction {
            Some(d) => format!("{TAG_PREFIX}*/*/{d}"),
            None => format!("{TAG_PREFIX}*"),
        }
    }

    /// A Redis glob pattern matching every tag of one device.
    pub fn device_pattern(device: &Alias, direction: Direction) -> String {
        format!("{TAG_PREFIX}{device}/*/{direction}")
    }
}

impl fmt::Display for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TAG_PREFIX}{}/{}/{}",
            self.device, self.signal, self.direction
        )
    }
}

impl FromStr for TagKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(TAG_PREFIX)
            .ok_or_else(|| KeyError::NotATag(s.to_owned()))?;
        let mut parts = rest.split('/');
        let (Some(device), Some(signal), Some(direction), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::WrongShape(s.to_owned()));
        };
        Ok(Self {
            device: Alias::new(device)?,
            signal: Alias::new(signal)?,
            direction: direction.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let k: TagKey = "tag/rtu1/cb1/in".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.device.as_str(), "rtu1");
        assert_eq!(k.signal.as_str(), "cb1");
        assert_eq!(k.direction, Direction::In);
        assert_eq!(k.to_string(), "tag/rtu1/cb1/in");
        assert_eq!(
            k.with_direction(Direction::RawIn).to_string(),
            "tag/rtu1/cb1/rin"
        );
    }

    #[test]
    fn bad_keys_are_errors() {
        for bad in [
            "",
            "tag/",
            "tag//cb1/in",
            "tag/rtu1/cb1",
            "tag/rtu1/cb1/in/x",
            "tag/rtu1/cb1/sideways",
            "tag/rt u1/cb1/in",
            "tag/rtu1/c\tb1/in",
            "foo/rtu1/cb1/in",
            "TAG/rtu1/cb1/in",
            "tag/rtu*/cb1/in",
            "tag/rtu1/cb#/in",
        ] {
            assert!(bad.parse::<TagKey>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(Alias::new(""), Err(KeyError::EmptyAlias));
        assert!(Alias::new(&"x".repeat(MAX_ALIAS_LEN + 1)).is_err());
        assert!(Alias::new(&"x".repeat(MAX_ALIAS_LEN)).is_ok());
    }

    #[test]
    fn patterns() {
        assert_eq!(TagKey::pattern(Some(Direction::In)), "tag/*/*/in");
        assert_eq!(TagKey::pattern(None), "tag/*");
    }
}

/// The name of a durable-feed consumer group on the stream: `mqtt:<device>` for the MQTT
/// publisher of a broker device, `iec104-slave:<device>:<n>` for redundancy group `n`
/// (0-based) of an IEC 104 slave device. A name never changes across restarts: the group's
/// position and pending entries are what makes the feed durable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroup(String);

impl ConsumerGroup {
    /// The group of an MQTT broker device's publisher.
    pub fn mqtt(device: &Alias) -> Self {
        Self(format!("mqtt:{device}"))
    }

    /// The group of redundancy group `group` of an IEC 104 slave device.
    pub fn iec104_slave(device: &Alias, group: usize) -> Self {
        Self(format!("iec104-slave:{device}:{group}"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsumerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
