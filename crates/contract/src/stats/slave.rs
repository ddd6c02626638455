//! The state of an `iec104-slave` device: its connected masters and its counters.
//!
//! Each slave device has a hash of its own, [`SlaveStatsKey`]
//! (`fieldbridge:stats:iec104-slave:<device>`), replaced as a whole on every write (so a
//! master that went away never lingers). Fields:
//! - [`UPDATED_FIELD`] (ms since the Unix epoch) and one field per [`SlaveCounter`]
//!   (`sent`, `buffered`, `dropped`, `refused`, `commands`), decimal;
//! - one field per connected master, `master:<ip:port>` (`master:10.0.0.5:40001`,
//!   `master:[fd00::5]:40001`), valued `<group>,<started|standby>,<since_ms>`
//!   (`0,started,1732280000000`).
//!
//! The same struct is what the supervisor's status file holds under `slaves` (serde).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::UPDATED_FIELD;
use crate::Alias;

/// The prefix of a slave device's stats hash; the device alias follows.
pub const SLAVE_STATS_KEY_PREFIX: &str = "fieldbridge:stats:iec104-slave:";
/// The prefix of a master's field in the hash; its `ip:port` follows.
pub const MASTER_FIELD_PREFIX: &str = "master:";

/// The Redis key of one slave device's stats hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlaveStatsKey(String);

impl SlaveStatsKey {
    /// The key of `device`'s hash.
    pub fn new(device: &Alias) -> Self {
        Self(format!("{SLAVE_STATS_KEY_PREFIX}{device}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SlaveStatsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One master connected to a slave device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterState {
    /// The master's end of the connection (`ip:port`).
    pub address: SocketAddr,
    /// Its redundancy group (0-based).
    pub group: u16,
    /// Started (STARTDT: it receives the data) or standby (connected, not started).
    pub started: bool,
    /// When it connected, or when it was last started or stopped (ms since the Unix epoch).
    pub since_ms: u64,
}

impl MasterState {
    /// The word for [`MasterState::started`] in the hash and in the tables.
    pub fn state_word(&self) -> &'static str {
        if self.started {
            STARTED
        } else {
            STANDBY
        }
    }

    fn field(&self) -> (String, String) {
        (
            format!("{MASTER_FIELD_PREFIX}{}", self.address),
            format!("{},{},{}", self.group, self.state_word(), self.since_ms),
        )
    }

    /// A master field back, `None` when it is not one (or not readable).
    fn from_field(field: &str, value: &str) -> Option<Self> {
        let address = field.strip_prefix(MASTER_FIELD_PREFIX)?.parse().ok()?;
        let mut parts = value.trim().split(',');
        let group = parts.next()?.parse().ok()?;
        let started = match parts.next()? {
            STARTED => true,
            STANDBY => false,
            _ => return None,
        };
        let since_ms = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            address,
            group,
            started,
            since_ms,
        })
    }
}

const STARTED: &str = "started";
const STANDBY: &str = "standby";

/// One counter of a slave device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlaveCounter {
    /// Events sent to masters (acknowledged or not).
    Sent,
    /// Events waiting for a started master (all groups).
    Buffered,
    /// Events the stream cap trimmed before the slave sent them.
    Dropped,
    /// Connections refused by `allowed_masters`.
    Refused,
    /// Commands received from masters.
    Commands,
}

impl SlaveCounter {
    /// Every counter, in the order the tables show them.
    pub const ALL: [SlaveCounter; 5] = [
        SlaveCounter::Sent,
        SlaveCounter::Buffered,
        SlaveCounter::Dropped,
        SlaveCounter::Refused,
        SlaveCounter::Commands,
    ];

    /// Its hash field (and the status file's key: the [`SlaveStats`] field of the same name).
    pub fn name(self) -> &'static str {
        match self {
            SlaveCounter::Sent => "sent",
            SlaveCounter::Buffered => "buffered",
            SlaveCounter::Dropped => "dropped",
            SlaveCounter::Refused => "refused",
            SlaveCounter::Commands => "commands",
        }
    }

    /// What it counts, in words (the `fieldbridge status` table).
    pub fn label(self) -> &'static str {
        match self {
            SlaveCounter::Sent => "sent",
            SlaveCounter::Buffered => "buffered",
            SlaveCounter::Dropped => "dropped by the stream cap",
            SlaveCounter::Refused => "masters refused",
            SlaveCounter::Commands => "commands",
        }
    }

    /// The counter a field name stands for.
    pub fn from_name(name: &str) -> Option<SlaveCounter> {
        SlaveCounter::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The state of one slave device: when it was written, its masters and its counters.
/// Counters start at 0 with each process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveStats {
    /// When the applet wrote it (ms since the Unix epoch).
    pub updated_ms: u64,
    /// The connected masters, by group then address.
    pub masters: Vec<MasterState>,
    pub sent: u64,
    pub buffered: u64,
    pub dropped: u64,
    pub refused: u64,
    pub commands: u64,
}

impl SlaveStats {
    /// The value of one counter.
    pub fn get(&self, counter: SlaveCounter) -> u64 {
        match counter {
            SlaveCounter::Sent => self.sent,
            SlaveCounter::Buffered => self.buffered,
            SlaveCounter::Dropped => self.dropped,
            SlaveCounter::Refused => self.refused,
            SlaveCounter::Commands => self.commands,
        }
    }

    fn slot(&mut self, counter: SlaveCounter) -> &mut u64 {
        match counter {
            SlaveCounter::Sent => &mut self.sent,
            SlaveCounter::Buffered => &mut self.buffered,
            SlaveCounter::Dropped => &mut self.dropped,
            SlaveCounter::Refused => &mut self.refused,
            SlaveCounter::Commands => &mut self.commands,
        }
    }

    /// The hash fields and their values: [`UPDATED_FIELD`], the counters, then the masters.
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![(UPDATED_FIELD.to_owned(), self.updated_ms.to_string())];
        for counter in SlaveCounter::ALL {
            fields.push((counter.name().to_owned(), self.get(counter).to_string()));
        }
        fields.extend(self.masters.iter().map(MasterState::field));
        fields
    }

    /// Reads the hash fields back, masters sorted by group then address. A field that is
    /// not one of the above or whose value cannot be read is skipped (the figures are a
    /// display aid); a missing counter is 0.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut stats = SlaveStats::default();
        for (field, value) in fields {
            if let Some(master) = MasterState::from_field(field, value) {
                stats.masters.push(master);
                continue;
            }
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            if field == UPDATED_FIELD {
                stats.updated_ms = value;
            } else if let Some(counter) = SlaveCounter::from_name(field) {
                *stats.slot(counter) = value;
            }
        }
        stats.masters.sort_by_key(|m| (m.group, m.address));
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SlaveStats {
        SlaveStats {
            updated_ms: 1_732_280_005_000,
            masters: vec![
                MasterState {
                    address: "10.0.0.5:40001".parse().unwrap(),
                    group: 0,
                    started: true,
                    since_ms: 1_732_280_000_000,
                },
                MasterState {
                    address: "[fd00::6]:2404".parse().unwrap(),
                    group: 0,
                    started: false,
                    since_ms: 1_732_280_001_000,
                },
                MasterState {
                    address: "10.0.0.7:1".parse().unwrap(),
                    group: 1,
                    started: true,
                    since_ms: 0,
                },
            ],
            sent: 10,
            buffered: 2,
            dropped: 1,
            refused: 3,
            commands: 4,
        }
    }

    #[test]
    fn fields_round_trip() {
        let stats = sample();
        let fields = stats.to_fields();
        assert_eq!(
            fields,
            [
                ("updated_ms", "1732280005000"),
                ("sent", "10"),
                ("buffered", "2"),
                ("dropped", "1"),
                ("refused", "3"),
                ("commands", "4"),
                ("master:10.0.0.5:40001", "0,started,1732280000000"),
                ("master:[fd00::6]:2404", "0,standby,1732280001000"),
                ("master:10.0.0.7:1", "1,started,0"),
            ]
            .map(|(f, v)| (f.to_owned(), v.to_owned()))
        );
        // Hash field order is Redis's: reading sorts the masters.
        let back =
            SlaveStats::from_fields(fields.iter().rev().map(|(f, v)| (f.as_str(), v.as_str())));
        assert_eq!(back, stats);
    }

    #[test]
    fn unreadable_fields_are_skipped() {
        let stats = SlaveStats::from_fields([
            ("updated_ms", "soon"),
            ("sent", "5"),
            ("buffered", "-1"),
            ("unknown", "1"),
            ("master:10.0.0.5", "0,started,1"),
            ("master:10.0.0.5:70000", "0,started,1"),
            ("master:10.0.0.6:1", "0,running,1"),
            ("master:10.0.0.6:2", "x,started,1"),
            ("master:10.0.0.6:3", "0,started"),
            ("master:10.0.0.6:4", "0,started,1,9"),
            ("master:10.0.0.6:5", "70000,standby,1"),
            ("master:10.0.0.6:6", " 1,standby,7 "),
            ("master:", ""),
            ("", ""),
        ]);
        assert_eq!(
            stats,
            SlaveStats {
                sent: 5,
                masters: vec![MasterState {
                    address: "10.0.0.6:6".parse().unwrap(),
                    group: 1,
                    started: false,
                    since_ms: 7,
                }],
                ..Default::default()
            }
        );
        for c in SlaveCounter::ALL {
            assert_eq!(SlaveCounter::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn counter_names_are_the_status_file_keys() {
        let json = serde_json::to_value(sample()).unwrap();
        for c in SlaveCounter::ALL {
            assert_eq!(json[c.name()], sample().get(c), "{}", c.name());
        }
        assert_eq!(json["masters"][1]["address"], "[fd00::6]:2404");
        assert_eq!(json["masters"][1]["started"], false);
        let back: SlaveStats = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn key_names_the_device() {
        let key = SlaveStatsKey::new(&Alias::new("scada.a").unwrap());
        assert_eq!(key.as_str(), "fieldbridge:stats:iec104-slave:scada.a");
        assert_eq!(key.to_string(), key.as_str());
    }

    proptest! {
        #[test]
        fn any_fields_decode_without_panic(fields in proptest::collection::vec((".{0,24}", ".{0,24}"), 0..12)) {
            let _ = SlaveStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str())));
        }

        #[test]
        fn any_stats_round_trip(
            masters in proptest::collection::btree_map(
                (any::<[u8; 4]>(), any::<u16>()),
                (any::<u16>(), any::<bool>(), any::<u64>()),
                0..6,
            ),
            counters in any::<[u64; 6]>(),
        ) {
            let stats = SlaveStats {
                updated_ms: counters[0],
                masters: masters
                    .iter()
                    .map(|(&(ip, port), &(group, started, since_ms))| MasterState {
                        address: SocketAddr::from((ip, port)),
                        group,
                        started,
                        since_ms,
                    })
                    .collect(),
                sent: counters[1],
                buffered: counters[2],
                dropped: counters[3],
                refused: counters[4],
                commands: counters[5],
            };
            let mut sorted = stats.clone();
            sorted.masters.sort_by_key(|m| (m.group, m.address));
            let fields = stats.to_fields();
            prop_assert_eq!(
                SlaveStats::from_fields(fields.iter().map(|(f, v)| (f.as_str(), v.as_str()))),
                sorted
            );
        }
    }
}
