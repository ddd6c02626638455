//! The Redis key of a Sparkplug edge node's birth/death sequence counter.
//!
//! The mqtt-client `INCR`s [`BdSeqKey`] (`fieldbridge:sparkplug:bdseq:<device_alias>`, a
//! plain integer) before every connection of a device with `payload_format: sparkplug`; the
//! connection's bdSeq is `(counter - 1) mod 256`. So bdSeq increments with every connection,
//! across restarts of the applet, as long as Redis keeps its data.

use crate::Alias;

/// The prefix of a bdSeq counter key; the MQTT device alias follows.
pub const BD_SEQ_KEY_PREFIX: &str = "fieldbridge:sparkplug:bdseq:";

/// The Redis key of one MQTT device's bdSeq counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BdSeqKey(String);

impl BdSeqKey {
    /// The key of `device`'s counter.
    pub fn new(device: &Alias) -> Self {
        Self(format!("{BD_SEQ_KEY_PREFIX}{device}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BdSeqKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_names_the_device() {
        let key = BdSeqKey::new(&Alias::new("cloud").unwrap());
        assert_eq!(key.as_str(), "fieldbridge:sparkplug:bdseq:cloud");
    }
}
