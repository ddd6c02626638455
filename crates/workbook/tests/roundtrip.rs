//! import(export(config)) == canonical(config): for the example and for generated configs.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use proptest::option::of as o;
use proptest::prelude::*;
use serde_json::{json, Value};

use config::{RawConfig, Row};
use workbook::{canonical, export, read_workbook, read_workbook_bytes};

fn example() -> RawConfig {
    RawConfig::parse(&std::fs::read_to_string(common::repo_file("config/example.json")).unwrap())
        .unwrap()
}

fn round_trip(raw: &RawConfig) -> workbook::Imported {
    let bytes = export(raw).unwrap();
    read_workbook_bytes(bytes, "export.xlsx").unwrap()
}

/// A valid config round-trips: the same rows back, valid without warnings, the same typed
/// config.
fn round_trips_valid(raw: &RawConfig) {
    let direct = config::validate(raw);
    assert!(direct.errors.is_empty(), "{:?}", direct.errors);
    let imported = round_trip(raw);
    assert_eq!(imported.raw, canonical(raw));
    let report = imported.check();
    assert!(report.is_valid(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.validated.config, direct.config);
}

#[test]
fn the_example_round_trips() {
    let raw = example();
    assert_eq!(raw.devices.len(), 5);
    assert!(raw.signals.len() >= 24);
    let imported = round_trip(&raw);
    assert_eq!(imported.raw, canonical(&raw));
    let report = imported.check();
    assert!(report.is_valid(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.validated.config, config::validate(&raw).config);
}

#[test]
fn old_column_names_are_exported_under_their_new_names() {
    let raw = RawConfig::parse(
        r#"{"devices": [{"name": "R", "device_alias": "r", "protocol": "iec104-master",
            "ip": "h", "asdu_address": 1, "t3": 30, "command_max_age": 5}], "signals": []}"#,
    )
    .unwrap();
    let imported = round_trip(&raw);
    assert_eq!(imported.raw, canonical(&raw));
    let row = &imported.raw.devices[0];
    assert_eq!(row.get("t3_s"), Some(&json!(30)));
    assert_eq!(row.get("command_max_age_ms"), Some(&json!(5000)));
    assert!(!row.contains_key("t3") && !row.contains_key("command_max_age"));
    let report = imported.check();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.validated.config, config::validate(&raw).config);
}

#[test]
fn iec104_slave_columns_round_trip() {
    let raw = RawConfig::parse(
        r#"{"devices": [
            {"name": "M", "device_alias": "mb", "protocol": "modbus-tcp", "ip": "127.0.0.1"},
            {"name": "SCADA", "device_alias": "scada", "protocol": "iec104-slave", "ip": "::",
             "port": 2405, "asdu_address": 300, "cot_size": 2, "ca_size": 2, "ioa_size": 2,
             "k": 10, "w": 5, "t0_s": 20, "t1_s": 12, "t2_s": 8, "t3_s": 25,
             "allowed_masters": "10.0.0.1, 10.0.0.2 fd00::3",
             "redundancy_groups": "10.0.0.1 10.0.0.2; fd00::3", "accept_clock_sync": 1,
             "command_max_age_ms": 5000, "select_timeout_s": 15, "command_timeout_s": "20"}
        ], "signals": [
            {"device_alias": "mb", "signal_alias": "p", "function": 3, "address": 7, "writable": 1},
            {"signal_name": "P to SCADA", "device_alias": "scada", "signal_alias": "p_in",
             "source_device_alias": "mb", "source_signal_alias": "p", "info_address": 4001,
             "type_id": "M_ME_TE_1", "multiplier": 0.01, "offset": -2.5},
            {"signal_name": "P from SCADA", "device_alias": "scada", "signal_alias": "p_out",
             "source_device_alias": "mb", "source_signal_alias": "p", "info_address": "4002",
             "type_id": 49, "select_before_operate": true}
        ]}"#,
    )
    .unwrap();
    round_trips_valid(&raw);
    let h = workbook::device_header(&raw.devices);
    assert!(h.iter().any(|c| c == "redundancy_groups"), "{h:?}");
    let s = workbook::signal_header(&raw.signals);
    assert!(s.iter().any(|c| c == "source_signal_alias"), "{s:?}");
}

#[test]
fn iec104_tls_columns_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::pem_file(dir.path(), "ca.pem", "CERTIFICATE", 0o644);
    let own = common::pem_file(dir.path(), "own.pem", "CERTIFICATE", 0o644);
    let key = common::pem_file(dir.path(), "own.key", "PRIVATE KEY", 0o600);
    let crl = common::pem_file(dir.path(), "crl.pem", "X509 CRL", 0o644);
    let peers = format!("{own}; {}", "AB:".repeat(31) + "CD");
    let tls = json!({"tls": 1, "ca_certificate": ca, "certificate": own, "private_key": key,
        "peer_certificates": peers, "crl_file": crl, "tls_version_min": 1.2,
        "tls_version_max": "1.3", "tls_renewal_s": 900, "tls_expiry_warning_days": 45});
    let mut master = json!({"name": "R", "device_alias": "rtu", "protocol": "iec104-master",
        "ip": "127.0.0.1", "asdu_address": 1});
    let mut slave = json!({"name": "S", "device_alias": "scada", "protocol": "iec104-slave",
        "asdu_address": 2, "tls": "1"});
    for (k, v) in tls.as_object().unwrap() {
        master[k] = v.clone();
        if k != "tls" {
            slave[k] = v.clone();
        }
    }
    let raw =
        RawConfig::parse(&json!({"devices": [master, slave], "signals": []}).to_string()).unwrap();
    round_trips_valid(&raw);
    let h = workbook::device_header(&raw.devices);
    for c in config::tls104::COLUMNS {
        assert!(h.iter().any(|x| x == c), "{c} not in {h:?}");
    }
}

#[test]
fn the_committed_example_workbook_is_the_example_json() {
    let imported = read_workbook(&common::repo_file("config/example.xlsx")).unwrap();
    assert_eq!(
        imported.raw,
        canonical(&example()),
        "config/example.xlsx is stale: run config/make-example.sh"
    );
    assert!(imported.check().is_valid());
}

#[test]
fn the_header_puts_common_columns_first() {
    let raw = example();
    let h = workbook::device_header(&raw.devices);
    assert_eq!(&h[..4], &["name", "device_alias", "enable", "protocol"]);
    // MQTT's columns, then IEC 104's (ip and port already there), then Modbus RTU's.
    let pos = |c: &str| h.iter().position(|x| x == c).unwrap();
    assert!(pos("ip") < pos("mqtt_qos"));
    assert!(pos("last_will_retain") < pos("asdu_address"));
    assert!(pos("asdu_address") < pos("serial_port"));
    assert!(
        !h.iter().any(|c| c == "ws_path"),
        "unused columns are left out"
    );
    let s = workbook::signal_header(&raw.signals);
    assert_eq!(
        &s[..5],
        &[
            "signal_name",
            "device_alias",
            "signal_alias",
            "enable",
            "log"
        ]
    );
}

#[test]
fn odd_values_survive() {
    let raw: RawConfig = serde_json::from_value(json!({
        "stream_max_len": 200000.0,
        "colour": [1, 2],
        "devices": [{"name": " padded ", "device_alias": "a", "x": null, "y": "", "big": 12345678901234567890u64,
                     "t": "_x0041_ <&>\"' ünï", "f": 1e-7, "neg": -3.0, "b": false}],
        "signals": []
    }))
    .unwrap();
    let imported = round_trip(&raw);
    assert_eq!(imported.raw, canonical(&raw));
    assert_eq!(imported.raw.devices[0]["t"], json!("_x0041_ <&>\"' ünï"));
    assert_eq!(imported.raw.stream_max_len, Some(json!(200000)));
}

// ---- generated configs ----

/// An integer as a spreadsheet may hold it: a number, a float, text, padded text.
fn int_cell(lo: i64, hi: i64) -> impl Strategy<Value = Value> {
    (lo..=hi, 0..4u8).prop_map(|(n, k)| match k {
        0 => json!(n),
        1 => json!(n as f64),
        2 => json!(n.to_string()),
        _ => json!(format!(" {n} ")),
    })
}

fn bool_cell() -> impl Strategy<Value = Value> {
    (any::<bool>(), 0..4u8).prop_map(|(b, k)| match k {
        0 => json!(b),
        1 => json!(u8::from(b)),
        2 => json!(if b { "TRUE" } else { "FALSE" }),
        _ => json!(if b { "yes" } else { "no" }),
    })
}

fn text() -> impl Strategy<Value = Value> {
    "[A-Za-z0-9äöüÅ_.-][A-Za-z0-9 äöüÅ_.&<>-]{0,20}".prop_map(Value::String)
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::sample::select(options).prop_map(|s| json!(s))
}

fn float_cell() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-1.0e6..1.0e6f64).prop_map(|f| json!(f)),
        (-1000i64..1000).prop_map(|n| json!(n as f64 / 8.0)),
        (-1.0e3..1.0e3f64).prop_map(|f| json!(f.to_string())),
    ]
}

type Cells = Vec<(&'static str, Option<Value>)>;

fn row(cells: Cells) -> Row {
    cells
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
}

fn common() -> impl Strategy<Value = Cells> {
    (text(), proptest::option::of(bool_cell()))
        .prop_map(|(name, enable)| vec![("name", Some(name)), ("enable", enable)])
}

fn mqtt_device() -> impl Strategy<Value = Row> {
    (
        common(),
        o(int_cell(1, 65_535)),
        o(int_cell(0, 2)),
        o(bool_cell()),
        o(bool_cell()),
        prop_oneof![Just(None), Just(Some("none")), Just(Some("password"))],
        o(text()),
        o(int_cell(5, 65_535)),
        o(pick(&["tcp", "ws"])),
        o(pick(&["csv", "json", "JSON"])),
        o((int_cell(0, 2), bool_cell())),
    )
        .prop_map(
            |(c, port, qos, retain, thr, auth, client_id, keepalive, transport, fmt, lw)| {
                let mut cells = c;
                cells.extend([
                    ("protocol", Some(json!("mqtt"))),
                    ("ip", Some(json!("127.0.0.1"))),
                    ("port", port),
                    ("mqtt_qos", qos),
                    ("mqtt_retain", retain),
                    ("enable_threshold", thr),
                    ("client_id", client_id),
                    ("keepalive_s", keepalive),
                    ("transport", transport),
                    ("payload_format", fmt),
                ]);
                if let Some(auth) = auth {
                    cells.push(("auth", Some(json!(auth))));
                    if auth == "password" {
                        cells.push(("username", Some(json!("gw"))));
                        cells.push(("password", Some(json!("s3cret"))));
                    }
                }
                if let Some((q, retain)) = lw {
                    cells.extend([
                        ("use_last_will", Some(json!(1))),
                        ("last_will_topic", Some(json!("site/status"))),
                        ("last_will_message", Some(json!("offline"))),
                        ("last_will_qos", Some(q)),
                        ("last_will_retain", Some(retain)),
                    ]);
                }
                row(cells)
            },
        )
}

fn iec_device() -> impl Strategy<Value = Row> {
    (
        common(),
        pick(&["127.0.0.1", "127.0.0.2, 127.0.0.3", "rtu.local"]),
        o(int_cell(1, 65_535)),
        int_cell(0, 65_535),
        o(int_cell(0, 255)),
        o(int_cell(12, 20)),
        o(int_cell(1, 12)),
        o((int_cell(11, 255), int_cell(1, 10))),
        o(int_cell(0, 86_400)),
        o(int_cell(1, 600)),
    )
        .prop_map(|(c, ip, port, ca, oa, k, w, t12, gi, cmd_to)| {
            let mut cells = c;
            cells.extend([
                ("protocol", Some(json!("iec104-master"))),
                ("ip", Some(ip)),
                ("port", port),
                ("asdu_address", Some(ca)),
                ("originator_address", oa),
                ("k", k),
                ("w", w),
                ("gi_interval_s", gi),
                ("command_timeout_s", cmd_to),
            ]);
            if let Some((t1, t2)) = t12 {
                cells.extend([("t1_s", Some(t1)), ("t2_s", Some(t2))]);
            }
            row(cells)
        })
}

fn slave_device() -> impl Strategy<Value = Row> {
    (
        common(),
        o(pick(&["0.0.0.0", "127.0.0.1", "::"])),
        int_cell(1, 65_534),
        prop_oneof![
            Just((None, None)),
            Just((Some("10.0.0.1 10.0.0.2"), None)),
            Just((None, Some("10.0.0.1; 10.0.0.2 10.0.0.3"))),
            Just((Some("10.0.0.1,10.0.0.2"), Some("10.0.0.2; 10.0.0.1"))),
        ],
        o(bool_cell()),
        o(int_cell(1, 3_600_000)),
        o(int_cell(1, 600)),
        o(int_cell(1, 600)),
    )
        .prop_map(
            |(c, ip, ca, (allowed, groups), sync, age, select, timeout)| {
                let mut cells = c;
                cells.extend([
                    ("protocol", Some(json!("iec104-slave"))),
                    ("ip", ip),
                    ("asdu_address", Some(ca)),
                    ("allowed_masters", allowed.map(|a| json!(a))),
                    ("redundancy_groups", groups.map(|g| json!(g))),
                    ("accept_clock_sync", sync),
                    ("command_max_age_ms", age),
                    ("select_timeout_s", select),
                    ("command_timeout_s", timeout),
                ]);
                row(cells)
            },
        )
}

fn modbus_device() -> impl Strategy<Value = Row> {
    (
        common(),
        any::<bool>(),
        int_cell(1, 247),
        o(pick(&["N", "E", "O", "even"])),
        o(proptest::sample::select(&[1200i64, 9600, 19200, 115_200][..]).prop_map(|b| json!(b))),
        o(int_cell(10, 60_000)),
        o(int_cell(10, 86_400_000)),
        o(int_cell(0, 10)),
    )
        .prop_map(|(c, rtu, id, parity, baud, timeout, poll, retries)| {
            let mut cells = c;
            cells.extend([
                ("modbus_id", Some(id)),
                ("timeout_ms", timeout),
                ("poll_interval_ms", poll),
                ("retries", retries),
            ]);
            if rtu {
                cells.extend([
                    ("protocol", Some(json!("modbus-rtu"))),
                    ("serial_port", Some(json!("/dev/ttyS1"))),
                    ("parity", parity),
                    ("baudrate", baud),
                ]);
            } else {
                cells.extend([
                    ("protocol", Some(json!("modbus-tcp"))),
                    ("ip", Some(json!("127.0.0.1"))),
                ]);
            }
            row(cells)
        })
}

/// A signal spec: which device (an index, reduced modulo the count), and its cells.
fn iec_signal() -> impl Strategy<Value = (usize, Cells)> {
    (
        any::<usize>(),
        o(text()),
        0..4u8,
        prop_oneof![
            pick(&[
                "M_SP_NA_1",
                "m_dp_tb_1",
                "M_ME_NC_1",
                "M_IT_NA_1",
                "C_SC_NA_1"
            ]),
            proptest::sample::select(&[1i64, 3, 13, 36][..]).prop_map(|n| json!(n)),
            proptest::sample::select(&["9", "30"][..]).prop_map(|s| json!(s)),
        ],
        o(float_cell()),
        o(float_cell()),
        o(bool_cell()),
        o(pick(&["extra note", "x"])),
    )
        .prop_map(|(dev, name, ioa_kind, tid, mult, off, log, comment)| {
            (
                dev,
                vec![
                    ("signal_name", name),
                    // The IOA itself is set from the signal's position (unique per device);
                    // ioa_kind picks its cell type.
                    ("info_address", Some(json!(ioa_kind))),
                    ("type_id", Some(tid)),
                    ("multiplier", mult),
                    ("offset", off),
                    ("log", log),
                    ("comment", comment),
                ],
            )
        })
}

fn modbus_signal() -> impl Strategy<Value = (usize, Cells)> {
    (
        any::<usize>(),
        prop_oneof![
            Just((json!(1), None)),
            Just((json!(2), Some(json!("bool")))),
            Just((json!("3"), Some(json!("u16")))),
            Just((json!(3.0), Some(json!("f32")))),
            Just((json!(4), Some(json!("I32")))),
            Just((json!(16), Some(json!("float64")))),
        ],
        int_cell(0, 60_000),
        o(float_cell()),
        o(pick(&["big", "little"])),
    )
        .prop_map(|(dev, (function, data_type), address, mult, order)| {
            (
                dev,
                vec![
                    ("function", Some(function)),
                    ("data_type", data_type),
                    ("address", Some(address)),
                    ("multiplier", mult),
                    ("word_order", order),
                ],
            )
        })
}

fn mqtt_signal() -> impl Strategy<Value = (usize, usize, Option<Value>)> {
    (
        any::<usize>(),
        any::<usize>(),
        proptest::option::of(pick(&["site1/a", "plant/x/y/z"])),
    )
}

prop_compose! {
    fn config()(
        mqtt in proptest::collection::vec(mqtt_device(), 1..3),
        iec in proptest::collection::vec(iec_device(), 1..3),
        modbus in proptest::collection::vec(modbus_device(), 0..3),
        slaves in proptest::collection::vec(slave_device(), 0..3),
        slave_signals in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..10),
        iec_signals in proptest::collection::vec(iec_signal(), 0..10),
        modbus_signals in proptest::collection::vec(modbus_signal(), 0..10),
        mqtt_signals in proptest::collection::vec(mqtt_signal(), 0..10),
        redis_url in proptest::option::of(Just("redis://127.0.0.1:6380".to_owned())),
        stream_max_len in proptest::option::of(int_cell(1000, 1_000_000)),
    ) -> RawConfig {
        let mut raw = RawConfig { redis_url, stream_max_len, ..RawConfig::default() };
        let mut add = |rows: Vec<Row>, prefix: &str| -> Vec<String> {
            rows.into_iter().enumerate().map(|(i, mut r)| {
                let alias = format!("{prefix}{i}");
                r.insert("device_alias".into(), json!(alias));
                raw.devices.push(r);
                alias
            }).collect()
        };
        let mqtt_aliases = add(mqtt, "mq");
        let iec_aliases = add(iec, "rtu");
        let modbus_aliases = add(modbus, "mb");
        let slave_aliases = add(slaves, "scada");
        // Each slave listens on its own port.
        for (i, r) in raw.devices.iter_mut().filter(|r| r["protocol"] == json!("iec104-slave")).enumerate() {
            r.insert("port".into(), json!(2404 + i));
        }
        let mut sources = Vec::new();
        let mut iec_rows = Vec::new();
        for (i, (dev, cells)) in iec_signals.into_iter().enumerate() {
            let d = &iec_aliases[dev % iec_aliases.len()];
            let mut r = row(cells);
            let ioa = 100 + i as i64;
            let kind = r["info_address"].as_u64().unwrap_or(0);
            r.insert("info_address".into(), match kind { 0 => json!(ioa), 1 => json!(ioa as f64), _ => json!(ioa.to_string()) });
            r.insert("device_alias".into(), json!(d));
            r.insert("signal_alias".into(), json!(format!("p{i}")));
            sources.push((d.clone(), format!("p{i}")));
            iec_rows.push(raw.signals.len());
            raw.signals.push(r);
        }
        if !slave_aliases.is_empty() && !iec_rows.is_empty() {
            // A slave row serves (or commands) an IEC 104 point with the point's own type.
            for (i, (dev, src)) in slave_signals.into_iter().enumerate() {
                let source = &raw.signals[iec_rows[src % iec_rows.len()]];
                let cells: Cells = vec![
                    ("device_alias", Some(json!(slave_aliases[dev % slave_aliases.len()]))),
                    ("signal_alias", Some(json!(format!("v{i}")))),
                    ("source_device_alias", Some(source["device_alias"].clone())),
                    ("source_signal_alias", Some(source["signal_alias"].clone())),
                    ("info_address", Some(json!(1000 + i))),
                    ("type_id", Some(source["type_id"].clone())),
                ];
                raw.signals.push(row(cells));
            }
        }
        if !modbus_aliases.is_empty() {
            for (i, (dev, cells)) in modbus_signals.into_iter().enumerate() {
                let d = &modbus_aliases[dev % modbus_aliases.len()];
                let mut r = row(cells);
                r.insert("device_alias".into(), json!(d));
                r.insert("signal_alias".into(), json!(format!("r{i}")));
                sources.push((d.clone(), format!("r{i}")));
                raw.signals.push(r);
            }
        }
        if !sources.is_empty() {
            for (i, (dev, src, topic)) in mqtt_signals.into_iter().enumerate() {
                let (sd, ss) = &sources[src % sources.len()];
                let mut cells: Cells = vec![
                    ("source_device_alias", Some(json!(sd))),
                    ("source_signal_alias", Some(json!(ss))),
                    ("topic", topic),
                ];
                cells.push(("device_alias", Some(json!(mqtt_aliases[dev % mqtt_aliases.len()]))));
                cells.push(("signal_alias", Some(json!(format!("u{i}")))));
                raw.signals.push(row(cells));
            }
        }
        raw
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip(raw in config()) {
        let direct = config::validate(&raw);
        prop_assert!(direct.errors.is_empty(), "the generator made an invalid config: {:?}", direct.errors);
        let imported = round_trip(&raw);
        prop_assert_eq!(&imported.raw, &canonical(&raw));
        let report = imported.check();
        prop_assert!(report.is_valid(), "{:?}", report.errors);
        prop_assert_eq!(&report.validated.config, &direct.config);
        // Exporting the import gives the same workbook again.
        prop_assert_eq!(export(&imported.raw).unwrap(), export(&raw).unwrap());
    }
}
