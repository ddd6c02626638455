//! The stats hashes: the MQTT publisher's counters, for `fieldbridge status`, and each
//! `iec104-slave` device's masters and counters ([`slave`]) and each TLS IEC 104 device's
//! security events ([`tls`]), for the supervisor's status file.
//!
//! The supervisor's status file is the supervisor's own; a child's figures travel through the
//! tag bus Redis instead. `mqtt-client` writes the hash [`PUBLISHER_STATS_KEY`] every few
//! seconds with the fields [`UPDATED_FIELD`] (ms since the Unix epoch) and
//! `<device>.<counter>` for each [`Counter`], e.g. `cloud.published`. A device alias may hold
//! a `.`; a counter name never does, so a field splits at its last `.`.

use std::collections::BTreeMap;

use crate::Alias;

mod slave;
mod tls;
pub use slave::{
    MasterState, SlaveCounter, SlaveStats, SlaveStatsKey, MASTER_FIELD_PREFIX,
    SLAVE_STATS_KEY_PREFIX,
};
pub use tls::{
    SecurityEvent, SecurityEventKind, TlsStats, TlsStatsKey, HANDSHAKES_FIELD, TLS_STATS_KEY_PREFIX,
};

/// The Redis hash of the MQTT publisher's counters.
pub const PUBLISHER_STATS_KEY: &str = "fieldbridge:stats:mqtt-client";
/// The field holding when a stats hash was last written (ms since the Unix epoch).
pub const UPDATED_FIELD: &str = "updated_ms";

/// One counter of a publisher device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Publishes handed to the broker (snapshot included).
    Published,
    /// Stream entries acknowledged after the broker acknowledged them (or unmapped/dropped).
    Acked,
    /// Stream entries the cap trimmed before the publisher read or acknowledged them.
    Trimmed,
    /// Publishes the broker refused (MQTT 5 failure reason codes).
    Rejected,
    /// Values dropped by `enable_threshold`.
    DroppedThreshold,
    /// Successful connections (CONNACK accepted).
    Connects,
}

impl Counter {
    /// Every counter, in the order `fieldbridge status` shows them.
    pub const ALL: [Counter; 6] = [
        Counter::Published,
        Counter::Acked,
        Counter::Trimmed,
        Counter::Rejected,
        Counter::Connects,
        Counter::DroppedThreshold,
    ];

    /// The counter's name in the hash field `<device>.<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Published => "published",
            Counter::Acked => "acked",
            Counter::Trimmed => "trimmed",
            Counter::Rejected => "rejected",
            Counter::DroppedThreshold => "dropped_threshold",
            Counter::Connects => "connects",
        }
    }

    /// What the counter counts, in words (the `fieldbridge status` table).
    pub fn label(self) -> &'static str {
        match self {
            Counter::Published => "published",
            Counter::Acked => "acknowledged",
            Counter::Trimmed => "dropped by the stream cap",
            Counter::Rejected => "refused by the broker",
            Counter::DroppedThreshold => "repeats dropped by enable_threshold",
            Counter::Connects => "connects",
        }
    }

    /// The counter a field name stands for.
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The counters of one publisher device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub published: u64,
    pub acked: u64,
    pub trimmed: u64,
    pub rejected: u64,
    pub dropped_threshold: u64,
    pub connects: u64,
}

impl Counters {
    /// The value of one counter.
    pub fn get(&self, counter: Counter) -> u64 {
        let mut copy = *self;
        *copy.slot(counter)
    }

    fn slot(&mut self, counter: Counter) -> &mut u64 {
        match counter {
            Counter::Published => &mut self.published,
            Counter::Acked => &mut self.acked,
            Counter::Trimmed => &mut self.trimmed,
            Counter::Rejected => &mut self.rejected,
            Counter::DroppedThreshold => &mut self.dropped_threshold,
            Counter::Connects => &mut self.connects,
        }
    }
}

/// The whole stats hash: when it was written and every device's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStats {
    pub updated_ms: u64,
    pub devices: BTreeMap<Alias, Counters>,
}

impl PublisherStats {
    /// The hash fields and their values, [`UPDATED_FIELD`] first.
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![(UPDATED_FIELD.to_owned(), self.updated_ms.to_string())];
        for (device, counters) in &self.devices {
            for counter in Counter::ALL {
                fields.push((
                    format!("{device}.{}", counter.name()),
                    counters.get(counter).to_string(),
                ));
            }
        }
        fields
    }

    /// Reads the hash fields back. A field that is not a counter of a valid alias, or whose
    /// value is not a number, is skipped (the figures are a display aid); a device missing a
    /// counter shows it as 0.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut stats = PublisherStats::default();
        for (field, value) in fields {
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            if field == UPDATED_FIELD {
                stats.updated_ms = value;
                continue;
            }
            let Some((device, name)) = field.rsplit_once('.') else {
                continue;
            };
            let (Ok(device), Some(counter)) = (Alias::new(device), Counter::from_name(name)) else {
                continue;
            };
            *stats.devices.entry(device).or_default().slot(counter) = value;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut stats = PublisherStats {
            updated_ms: 1_732_280_000_000,
            ..Default::default()
        };
        let counters = Counters {
            published: 10,
            acked: 9,
            trimmed: 1,
            rejected: 2,
            dropped_threshold: 3,
            connects: 4,
        };
        stats
            .devices
            .insert(Alias::new("site.cloud").unwrap(), counters);
        let fields = stats.to_fields();
        assert_eq!(
            fields.first().unwrap(),
            &("updated_ms".to_owned(), "1732280000000".to_owned())
        );
        assert!(fields.contains(&("site.cloud.dropped_threshold".to_owned(), "3".to_owned())));
        assert_eq!(fields.len(), 7);
        let back =
            PublisherStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str())));
        assert_eq!(back, stats);
    }

    #[test]
    fn foreign_fields_are_skipped() {
        let stats = PublisherStats::from_fields([
            ("updated_ms", "x"),
            ("cloud.published", "5"),
            ("cloud.unknown", "1"),
            ("nodot", "1"),
            ("bad/alias.acked", "1"),
            ("cloud.acked", "-1"),
        ]);
        assert_eq!(stats.updated_ms, 0);
        assert_eq!(stats.devices.len(), 1);
        let cloud = stats.devices.get(&Alias::new("cloud").unwrap()).unwrap();
        assert_eq!(
            *cloud,
            Counters {
                published: 5,
                ..Default::default()
            }
        );
        for c in Counter::ALL {
            assert_eq!(Counter::from_name(c.name()), Some(c));
        }
    }
}
