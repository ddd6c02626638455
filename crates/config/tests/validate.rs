#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
use config::{validate, Applet, DeviceKind, Protocol, RawConfig, SignalKind};
use serde_json::json;

fn example() -> RawConfig {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/example.json");
    RawConfig::load(std::path::Path::new(path)).unwrap()
}

#[test]
fn the_example_is_valid_without_warnings() {
    let v = validate(&example());
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    assert_eq!(v.config.devices.len(), 5);
    assert!(v.config.signals.len() >= 40);
    for applet in Applet::ALL {
        assert!(v.config.applet_has_work(applet));
    }
}

#[test]
fn five_mistakes_give_five_errors_with_paths() {
    let mut raw = example();
    raw.devices[0].insert("mqtt_qos".into(), json!(3)); // 1: qos out of range
    raw.devices[1].insert("port".into(), json!("abc")); // 2: port not a number
    raw.signals[3].insert("signal_alias".into(), json!("lo cal")); // 3: bad alias
    raw.signals[0].insert("type_id".into(), json!("M_XX_NA_1")); // 4: unknown type
    let last = raw.signals.len() - 1;
    raw.signals[last].insert("source_device_alias".into(), json!("rtu9")); // 5: dangling
    let v = validate(&raw);
    let text: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
    assert_eq!(v.errors.len(), 5, "{text:#?}");
    let expect = [
        "devices[0].mqtt_qos: 3 is out of range 0..=2",
        "devices[1].port: expected an integer, got \"abc\"",
        "signals[0].type_id: \"M_XX_NA_1\" is not a known type identification",
        "signals[3].signal_alias: alias \"lo cal\" contains whitespace",
        &format!("signals[{last}].source_device_alias: no device \"rtu9\" in devices"),
    ];
    for (got, want) in text.iter().zip(expect) {
        assert!(got.starts_with(want), "{got} does not start with {want}");
    }
}

#[test]
fn errors_belong_to_their_protocol() {
    let mut raw = example();
    raw.devices[3].insert("baudrate".into(), json!("fast"));
    let v = validate(&raw);
    assert_eq!(v.errors.len(), 1);
    assert_eq!(v.errors[0].protocol, Some(Protocol::ModbusRtu));
    assert!(v.errors_for(Applet::MqttClient).is_empty());
    assert!(v.errors_for(Applet::Iec104Master).is_empty());
    assert_eq!(v.errors_for(Applet::ModbusMaster).len(), 1);
    // The invalid device and its signals are left out; the rest stays.
    assert!(v
        .config
        .devices
        .iter()
        .all(|d| d.alias.as_str() != "meter1"));
    assert!(v
        .config
        .signals
        .iter()
        .all(|s| s.device.as_str() != "meter1"));
    assert!(v
        .config
        .signals
        .iter()
        .any(|s| s.device.as_str() == "cloud"));
}

#[test]
fn spreadsheet_cells_are_read_leniently() {
    let raw = RawConfig::parse(
        &json!({
            "devices": [
                {"name": "B", "device_alias": "b", "protocol": "MQTT", "ip": "broker", "port": "1883",
                 "mqtt_qos": 1.0, "mqtt_retain": "yes", "enable": "TRUE", "enable_threshold": "0", "client_id": ""},
                {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "10.0.0.1 10.0.0.2",
                 "asdu_address": "7", "t1_s": 20.0, "gi_interval_s": "", "bogus": "x"}
            ],
            "signals": [
                {"device_alias": "r", "signal_alias": "s1", "info_address": 1.0, "type_id": 13},
                {"device_alias": "b", "signal_alias": "s1", "source_device_alias": "r", "source_signal_alias": "s1"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let v = validate(&raw);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    assert_eq!(
        v.warnings[0].to_string(),
        "devices[1].bogus: unknown column bogus, ignored"
    );
    let DeviceKind::Mqtt(m) = &v.config.devices[0].kind else {
        panic!()
    };
    assert_eq!(
        (
            m.port,
            m.qos.as_u8(),
            m.retain,
            m.enable_threshold,
            m.client_id.clone()
        ),
        (1883, 1, true, false, None)
    );
    let DeviceKind::Iec104Master(r) = &v.config.devices[1].kind else {
        panic!()
    };
    assert_eq!(r.hosts, vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        (r.common_address.0, r.link.t1.as_secs(), r.gi_interval),
        (7, 20, None)
    );
    let SignalKind::Mqtt(s) = &v.config.signals[1].kind else {
        panic!()
    };
    assert_eq!(s.topic.as_str(), "tag/r/s1/in");
    assert_eq!(s.source.to_string(), "tag/r/s1/in");
}

#[test]
fn tls_files_are_not_looked_for_on_the_validating_machine() {
    // A config is often validated on a laptop: whether the files exist is checked where they
    // are used, when the mqtt-client starts on the gateway.
    let raw = RawConfig::parse(
        &json!({"devices": [{"name": "B", "device_alias": "b", "protocol": "mqtt", "ip": "h", "auth": "tls",
                              "client_certificate": "/nonexistent/cert.pem"}]})
        .to_string(),
    )
    .unwrap();
    let text: Vec<String> = validate(&raw)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        vec!["devices[0].ca_certificate: required when auth is tls"]
    );
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(
        &path,
        r#"{"redis_url": "redis://127.0.0.1:1", "devices": [], "signals": []}"#,
    )
    .unwrap();
    assert_eq!(
        RawConfig::load(&path).unwrap().redis_url.as_deref(),
        Some("redis://127.0.0.1:1")
    );
    std::fs::write(&path, r#"{"devices": []}"#).unwrap();
    assert_eq!(
        RawConfig::load(&path).unwrap().redis_url.as_deref(),
        Some(config::DEFAULT_REDIS_URL)
    );
    std::fs::write(&path, "{\"devices\": [}").unwrap();
    let e = RawConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

/// `validate_owned` (what the applets use: it drops each row once read) finds exactly what
/// `validate` finds: the same typed config, errors and warnings, duplicates and dangling
/// sources included, in the same order.
#[test]
fn validating_owned_rows_gives_the_same_result() {
    let mut raw = example();
    let n = raw.signals.len();
    let dup = raw.signals[2].clone();
    raw.signals.push(dup.clone()); // a duplicate of signals[2]
    raw.signals.push(dup); // and another one: both name signals[2] as the first
    raw.signals[n - 1].insert("source_signal_alias".into(), json!("nope")); // dangling
    raw.signals[0].insert("signal_alias".into(), json!(7)); // a number as an alias
    raw.signals[1].insert("my_note".into(), json!("x")); // an unknown column: a warning
    let a = validate(&raw);
    let b = config::validate_owned(raw.clone());
    assert_eq!(a.config, b.config);
    assert_eq!(a.errors, b.errors);
    assert_eq!(a.warnings, b.warnings);
    let text: Vec<String> = a.errors.iter().map(ToString::to_string).collect();
    let dups: Vec<&String> = text
        .iter()
        .filter(|t| t.contains("duplicate signal_alias"))
        .collect();
    assert_eq!(dups.len(), 2, "{text:#?}");
    assert!(
        dups.iter().all(|t| t.ends_with("(also signals[2])")),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|t| t.contains("no signal \"nope\"")),
        "{text:#?}"
    );
    // signals[0] (cb1) is now "7": the signal whose source it was lost it.
    assert!(
        text.iter().any(|t| t.contains("no signal \"cb1\"")),
        "{text:#?}"
    );
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
}

#[test]
fn redis_over_tls_is_refused_with_a_reason() {
    let raw = RawConfig::parse(
        r#"{"redis_url": "rediss://user:secret@10.0.0.1:6380", "devices": [], "signals": []}"#,
    )
    .unwrap();
    let v = validate(&raw);
    let text: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].contains("rediss://") && text[0].contains("not supported"),
        "{text:?}"
    );
    assert!(
        !text[0].contains("secret"),
        "the password is never shown: {text:?}"
    );
}
