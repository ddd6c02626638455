//! What the configuration asks of each protocol applet: run it (with which part of the
//! config), hold it back (and why), or nothing to do. Pure: config in, plan out.

use std::collections::{BTreeMap, BTreeSet};

use config::{cell_bool, cell_text, Applet, ConfigError, Protocol, RawConfig, Validated};
use serde_json::{json, Value};

/// An applet's part of the configuration: the top-level settings every applet uses
/// (`redis_url`, `stream_max_len`), the device rows of its protocols and the signal rows of
/// those devices, as written; for a publisher (MQTT, IEC 104 slave) also the sources its
/// signals name: each source signal row, and its device's `protocol` and `enable` (what a
/// publisher's validation and mapping read of them; the type of a source decides what a
/// slave sends and whether a deadband applies). Two equal parts run the same; a SIGHUP
/// restarts an applet only when its part changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Part(Value);

impl Part {
    /// The part of `applet` in `raw`.
    pub fn of(raw: &RawConfig, applet: Applet) -> Self {
        let devices: Vec<&config::Row> = raw
            .devices
            .iter()
            .filter(|row| row_protocol(row).is_some_and(|p| p.applet() == applet))
            .collect();
        let aliases: BTreeSet<String> = devices
            .iter()
            .filter_map(|row| row.get("device_alias").and_then(cell_text))
            .map(|a| a.trim().to_owned())
            .collect();
        let signals: Vec<&config::Row> = raw
            .signals
            .iter()
            .filter(|row| {
                row.get("device_alias")
                    .and_then(cell_text)
                    .is_some_and(|a| aliases.contains(a.trim()))
            })
            .collect();
        let alias_of = |row: &config::Row, column: &str| {
            row.get(column)
                .and_then(cell_text)
                .map(|a| a.trim().to_owned())
        };
        let sources: BTreeSet<(String, String)> = signals
            .iter()
            .filter_map(|row| {
                Some((
                    alias_of(row, "source_device_alias")?,
                    alias_of(row, "source_signal_alias")?,
                ))
            })
            .collect();
        let source_devices: BTreeSet<&str> = sources.iter().map(|(d, _)| d.as_str()).collect();
        let source_signals: Vec<&config::Row> = raw
            .signals
            .iter()
            .filter(|row| {
                alias_of(row, "device_alias")
                    .zip(alias_of(row, "signal_alias"))
                    .is_some_and(|pair| sources.contains(&pair))
            })
            .collect();
        let source_device_rows: Vec<Value> = raw
            .devices
            .iter()
            .filter(|row| {
                alias_of(row, "device_alias").is_some_and(|a| source_devices.contains(a.as_str()))
            })
            .map(|row| {
                json!({
                    "device_alias": row.get("device_alias"),
                    "protocol": row.get("protocol"),
                    "enable": row.get("enable"),
                })
            })
            .collect();
        Self(json!({
            "redis_url": raw.redis_url,
            "stream_max_len": raw.stream_max_len,
            "devices": devices,
            "signals": signals,
            "sources": {"devices": source_device_rows, "signals": source_signals},
        }))
    }

    /// The aliases of its device rows (enabled or not; rows whose alias is not valid are
    /// left out): the devices whose `tag/<device>/*/in` values the applet writes.
    pub fn device_aliases(&self) -> Vec<tagbus::Alias> {
        self.0
            .get("devices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|row| row.get("device_alias").and_then(cell_text))
            .filter_map(|a| tagbus::Alias::new(a.trim()).ok())
            .collect()
    }

    /// The aliases of its enabled device rows with `tls` 1 (IEC 104 over TLS): the devices
    /// whose TLS stats the applet writes.
    pub fn tls_device_aliases(&self) -> Vec<tagbus::Alias> {
        self.0
            .get("devices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|row| row.get("tls").and_then(cell_bool) == Some(true))
            .filter(|row| row.get("enable").and_then(cell_bool).unwrap_or(true))
            .filter_map(|row| row.get("device_alias").and_then(cell_text))
            .filter_map(|a| tagbus::Alias::new(a.trim()).ok())
            .collect()
    }
}

/// Where the tag bus is, for the supervisor's own writes (the marks of a dead applet's values).
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    /// The config's `redis_url` (with `FIELDBRIDGE_REDIS_URL` layered over it), else the default.
    pub redis_url: String,
    pub stream_max_len: u64,
}

/// What an applet should be doing according to the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// No enabled device of its protocols: not started.
    Disabled,
    /// Its part has errors: not started. Every error, as `path: message`.
    Invalid(Vec<String>),
    /// Run it with this part of the config.
    Run(Part),
}

impl Desired {
    /// A word for logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Desired::Disabled => "disabled",
            Desired::Invalid(_) => "invalid config",
            Desired::Run(_) => "valid",
        }
    }
}

/// The plan of every protocol applet, plus the validation warnings (for the log).
#[derive(Debug, Clone)]
pub struct Plan {
    pub applets: BTreeMap<Applet, Desired>,
    pub warnings: Vec<ConfigError>,
    /// The tag bus of this config (`None` when it could not be read).
    pub bus: Option<Bus>,
}

impl Plan {
    /// Validates `raw` and decides for each applet. An applet with no enabled device row of
    /// its protocols is [`Desired::Disabled`] (even when top-level settings have errors: it
    /// would not run anyway); one with such rows and any error of its own or a top-level one
    /// ([`Validated::errors_for`]) is [`Desired::Invalid`]; else [`Desired::Run`].
    pub fn from_raw(raw: &RawConfig) -> Self {
        let validated: Validated = config::validate(raw);
        let applets = Applet::ALL
            .iter()
            .map(|&applet| {
                let has_enabled_rows = raw.devices.iter().any(|row| {
                    row_protocol(row).is_some_and(|p| p.applet() == applet)
                        // An unreadable `enable` cell counts as enabled: its error shows.
                        && row.get("enable").and_then(cell_bool).unwrap_or(true)
                });
                let errors = validated.errors_for(applet);
                let desired = if !has_enabled_rows {
                    Desired::Disabled
                } else if !errors.is_empty() {
                    Desired::Invalid(errors.iter().map(|e| e.to_string()).collect())
                } else if !validated.config.applet_has_work(applet) {
                    Desired::Disabled
                } else {
                    Desired::Run(Part::of(raw, applet))
                };
                (applet, desired)
            })
            .collect();
        Self {
            applets,
            warnings: validated.warnings,
            bus: Some(Bus {
                redis_url: raw
                    .redis_url
                    .clone()
                    .unwrap_or_else(|| config::DEFAULT_REDIS_URL.to_owned()),
                stream_max_len: validated.config.stream_max_len,
            }),
        }
    }

    /// Every applet held back because the configuration could not be read at all.
    pub fn unreadable(message: &str) -> Self {
        Self {
            applets: Applet::ALL
                .iter()
                .map(|&a| (a, Desired::Invalid(vec![message.to_owned()])))
                .collect(),
            warnings: Vec::new(),
            bus: None,
        }
    }

    /// The plan of one applet.
    pub fn get(&self, applet: Applet) -> &Desired {
        self.applets.get(&applet).unwrap_or(&Desired::Disabled)
    }
}

fn row_protocol(row: &config::Row) -> Option<Protocol> {
    row.get("protocol")
        .and_then(cell_text)
        .and_then(|s| s.parse::<Protocol>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{
      "devices": [
        {"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt", "ip": "127.0.0.1", "password": "pw"},
        {"name": "RTU", "device_alias": "rtu1", "protocol": "iec104-master", "ip": "127.0.0.1", "asdu_address": 1},
        {"name": "Meter", "device_alias": "m1", "protocol": "modbus-tcp", "ip": "127.0.0.1", "modbus_id": 1},
        {"name": "SCADA", "device_alias": "scada", "protocol": "iec104-slave", "ip": "127.0.0.1", "asdu_address": 5}
      ],
      "signals": [
        {"device_alias": "rtu1", "signal_alias": "cb1", "info_address": 100, "type_id": "M_SP_NA_1"},
        {"device_alias": "cloud", "signal_alias": "cb1", "source_device_alias": "rtu1", "source_signal_alias": "cb1"}
      ]
    }"#;

    fn plan(text: &str) -> Plan {
        Plan::from_raw(&RawConfig::parse(text).unwrap())
    }

    #[test]
    fn all_valid_all_run() {
        let p = plan(BASE);
        for a in Applet::ALL {
            assert!(matches!(p.get(a), Desired::Run(_)), "{a}: {:?}", p.get(a));
        }
    }

    #[test]
    fn invalid_part_is_held_back_others_run() {
        let text = BASE.replace(r#""modbus_id": 1"#, r#""modbus_id": "x""#);
        let p = plan(&text);
        assert!(matches!(p.get(Applet::MqttClient), Desired::Run(_)));
        assert!(matches!(p.get(Applet::Iec104Master), Desired::Run(_)));
        match p.get(Applet::ModbusMaster) {
            Desired::Invalid(errors) => {
                assert!(errors.iter().any(|e| e.contains("modbus_id")), "{errors:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_devices_or_disabled_is_disabled() {
        let text = BASE.replace(r#""modbus_id": 1"#, r#""modbus_id": 1, "enable": 0"#);
        assert_eq!(plan(&text).get(Applet::ModbusMaster), &Desired::Disabled);
        let p = plan(r#"{"devices": [], "signals": []}"#);
        for a in Applet::ALL {
            assert_eq!(p.get(a), &Desired::Disabled);
        }
    }

    #[test]
    fn a_part_names_its_devices() {
        let p = plan(BASE);
        let Desired::Run(part) = p.get(Applet::Iec104Master) else {
            panic!("{:?}", p.get(Applet::Iec104Master));
        };
        assert_eq!(part.device_aliases(), [tagbus::Alias::new("rtu1").unwrap()]);
        let Desired::Run(part) = p.get(Applet::ModbusMaster) else {
            panic!("{:?}", p.get(Applet::ModbusMaster));
        };
        assert_eq!(part.device_aliases(), [tagbus::Alias::new("m1").unwrap()]);
    }

    #[test]
    fn a_part_names_its_tls_devices() {
        // As written (the part of an applet that runs has validated).
        let raw = RawConfig::parse(
            r#"{"devices": [
                {"device_alias": "plain", "protocol": "iec104-master"},
                {"device_alias": "secure", "protocol": "iec104-master", "tls": 1},
                {"device_alias": "off", "protocol": "iec104-master", "tls": "1", "enable": 0},
                {"device_alias": "zero", "protocol": "iec104-master", "tls": 0},
                {"device_alias": "scada", "protocol": "iec104-slave", "tls": "yes"}
            ], "signals": []}"#,
        )
        .unwrap();
        let names = |applet| {
            Part::of(&raw, applet)
                .tls_device_aliases()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Applet::Iec104Master), ["secure"]);
        assert_eq!(names(Applet::Iec104Slave), ["scada"]);
        assert!(names(Applet::ModbusMaster).is_empty());
    }

    #[test]
    fn a_change_touches_only_its_part() {
        let before = plan(BASE);
        let after = plan(&BASE.replace(r#""asdu_address": 1"#, r#""asdu_address": 2"#));
        assert_eq!(
            before.get(Applet::MqttClient),
            after.get(Applet::MqttClient)
        );
        assert_eq!(
            before.get(Applet::ModbusMaster),
            after.get(Applet::ModbusMaster)
        );
        assert_ne!(
            before.get(Applet::Iec104Master),
            after.get(Applet::Iec104Master)
        );
        // A source a publisher forwards is part of the publisher's part: its signal row and
        // its device's protocol and enable, nothing else of the device, no other signal.
        let changed_source = BASE.replace(
            r#""info_address": 100, "type_id": "M_SP_NA_1""#,
            r#""info_address": 100, "type_id": "M_DP_NA_1""#,
        );
        let disabled_source = BASE.replace(
            r#""protocol": "iec104-master", "ip""#,
            r#""protocol": "iec104-master", "enable": 0, "ip""#,
        );
        let other_signal = BASE.replace(
            r#""signals": ["#,
            r#""signals": [{"device_alias": "rtu1", "signal_alias": "cb2", "info_address": 101, "type_id": "M_SP_NA_1"},"#,
        );
        for (what, text) in [("type", &changed_source), ("enable", &disabled_source)] {
            assert_ne!(
                before.get(Applet::MqttClient),
                plan(text).get(Applet::MqttClient),
                "{what}"
            );
        }
        assert_eq!(
            before.get(Applet::MqttClient),
            plan(&other_signal).get(Applet::MqttClient)
        );
        assert_eq!(
            before.get(Applet::ModbusMaster),
            plan(&changed_source).get(Applet::ModbusMaster)
        );
        // A top-level setting is everybody's.
        let after = plan(&BASE.replacen('{', r#"{"redis_url": "redis://127.0.0.1:7000","#, 1));
        for a in Applet::ALL {
            assert_ne!(before.get(a), after.get(a), "{a}");
        }
    }
}
