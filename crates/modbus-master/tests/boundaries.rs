//! Every Modbus setting at its boundaries (min - 1, min, max, max + 1), fed through
//! `config::validate` and through the driver's start (`modbus_master::buses`): a value
//! validation accepts must start, a value it refuses must not (or not fit the typed field).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use config::modbus::{
    DataType, Function, ModbusTiming, ADDRESS, BIT, RTU_LINE_SETTINGS, TCP_LINK_SETTINGS,
    TIMING_SETTINGS,
};
use config::{validate, Config, DeviceKind, IntColumn, RawConfig, SignalKind};
use modbus_master::pdu::Request;

const RTU: &str = r#""protocol": "modbus-rtu", "serial_port": "/dev/ttyS9", "modbus_id": 1"#;
const TCP: &str = r#""protocol": "modbus-tcp", "ip": "127.0.0.1""#;
const SIGNAL: &str = r#""function": 3, "address": 0, "data_type": "u16""#;

fn config(device: &str, signal: &str) -> (Config, Vec<String>) {
    let text = format!(
        r#"{{"devices": [{{"name": "d", "device_alias": "d", {device}}}],
            "signals": [{{"device_alias": "d", "signal_alias": "s", {signal}}}]}}"#
    );
    let v = validate(&RawConfig::parse(&text).unwrap());
    let errors = v.errors.iter().map(ToString::to_string).collect();
    (v.config, errors)
}

/// The valid base config with one typed field set to `v`, bypassing validation; None when
/// the typed field cannot hold `v`.
fn with_device_setting(mut c: Config, column: &str, v: i64) -> Option<Config> {
    let ms = |v: i64| u64::try_from(v).ok().map(Duration::from_millis);
    let timing = |t: &mut ModbusTiming| -> Option<()> {
        match column {
            "modbus_id" => t.modbus_id = u8::try_from(v).ok()?,
            "timeout_ms" => t.timeout = ms(v)?,
            "poll_interval_ms" => t.poll_interval = ms(v)?,
            "inter_frame_delay_ms" => t.inter_frame_delay = Some(ms(v)?),
            "retries" => t.retries = u8::try_from(v).ok()?,
            "command_max_age_ms" => t.command_max_age = ms(v)?,
            "max_gap" => t.max_gap = u16::try_from(v).ok()?,
            other => panic!("no typed field for {other}: add it to this test"),
        }
        Some(())
    };
    match &mut c.devices[0].kind {
        DeviceKind::ModbusRtu(r) => match column {
            "baudrate" => r.baudrate = u32::try_from(v).ok()?,
            "data_bits" => r.data_bits = u8::try_from(v).ok()?,
            "stop_bits" => r.stop_bits = u8::try_from(v).ok()?,
            _ => timing(&mut r.timing)?,
        },
        DeviceKind::ModbusTcp(t) => match column {
            "port" => t.port = u16::try_from(v).ok()?,
            _ => timing(&mut t.timing)?,
        },
        _ => unreachable!(),
    }
    Some(c)
}

fn boundaries(c: &IntColumn) -> [i64; 4] {
    [c.min - 1, c.min, c.max, c.max + 1]
}

#[test]
fn every_device_setting_agrees_at_its_boundaries() {
    let mut checked = 0;
    for (device, link) in [(RTU, RTU_LINE_SETTINGS), (TCP, TCP_LINK_SETTINGS)] {
        let (base, errors) = config(device, SIGNAL);
        assert!(errors.is_empty(), "{errors:?}");
        for setting in link.iter().chain(TIMING_SETTINGS) {
            for v in boundaries(setting) {
                let cell = format!(r#"{device}, "{}": {v}"#, setting.name);
                let (validated, errors) = config(&cell, SIGNAL);
                let accepted = errors.is_empty();
                assert_eq!(
                    accepted,
                    setting.accepts(v),
                    "{} = {v}: {errors:?}",
                    setting.name
                );
                if accepted {
                    // What validates starts, exactly as validated.
                    modbus_master::buses(&validated)
                        .unwrap_or_else(|e| panic!("{} = {v} validates but: {e}", setting.name));
                } else {
                    assert!(
                        errors.iter().any(|e| e.contains(setting.name)),
                        "{} = {v}: {errors:?}",
                        setting.name
                    );
                }
                let started = with_device_setting(base.clone(), setting.name, v)
                    .is_some_and(|c| modbus_master::buses(&c).is_ok());
                assert_eq!(
                    started, accepted,
                    "{} = {v}: validation and the driver's start disagree",
                    setting.name
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        4 * (RTU_LINE_SETTINGS.len() + TCP_LINK_SETTINGS.len() + 2 * TIMING_SETTINGS.len())
    );
}

#[test]
fn signal_settings_agree_at_their_boundaries() {
    let cases: Vec<(String, i64, &IntColumn)> = boundaries(&ADDRESS)
        .into_iter()
        .map(|v| {
            (
                format!(r#""function": 3, "data_type": "u16", "address": {v}"#),
                v,
                &ADDRESS,
            )
        })
        .chain(boundaries(&BIT).into_iter().map(|v| {
            (
                format!(r#""function": 3, "address": 0, "data_type": "bool", "bit": {v}"#),
                v,
                &BIT,
            )
        }))
        .collect();
    let (base, _) = config(
        RTU,
        r#""function": 3, "address": 0, "data_type": "bool", "bit": 0"#,
    );
    for (signal, v, column) in cases {
        let (validated, errors) = config(RTU, &signal);
        let accepted = errors.is_empty();
        assert_eq!(accepted, column.accepts(v), "{signal}: {errors:?}");
        if accepted {
            modbus_master::buses(&validated).unwrap();
        }
        let mut typed = base.clone();
        let SignalKind::Modbus(m) = &mut typed.signals[0].kind else {
            unreachable!()
        };
        let fits = match column.name {
            "address" => u16::try_from(v).map(|a| m.address = a).is_ok(),
            _ => u8::try_from(v).map(|b| m.bit = Some(b)).is_ok(),
        };
        let started = fits && modbus_master::buses(&typed).is_ok();
        assert_eq!(
            started, accepted,
            "{signal}: validation and the driver disagree"
        );
    }
    // A multi-register value must end inside the address space: 65534 holds a u32, 65535
    // does not.
    for (address, ok) in [(65_534, true), (65_535, false)] {
        let (validated, errors) = config(
            RTU,
            &format!(r#""function": 3, "data_type": "u32", "address": {address}"#),
        );
        assert_eq!(errors.is_empty(), ok, "{errors:?}");
        let mut typed = base.clone();
        let SignalKind::Modbus(m) = &mut typed.signals[0].kind else {
            unreachable!()
        };
        (m.address, m.data_type, m.bit) = (address, DataType::U32, None);
        assert_eq!(modbus_master::buses(&typed).is_ok(), ok);
        if ok {
            modbus_master::buses(&validated).unwrap();
        }
    }
}

#[test]
fn function_codes_and_read_plans_follow_the_protocol_limits() {
    for code in 0..=17 {
        let (_, errors) = config(RTU, &format!(r#""function": {code}, "address": 0"#));
        assert_eq!(
            errors.is_empty(),
            Function::from_code(code).is_some(),
            "function {code}: {errors:?}"
        );
    }
    // The largest reads the plan builds are ones the codec encodes (and one more is not).
    for (function, data_type, limit) in [
        (1, "bool", config::modbus::MAX_READ_BITS),
        (3, "u16", config::modbus::MAX_READ_REGISTERS),
    ] {
        let signals: Vec<String> = (0..=limit)
            .map(|a| {
                format!(
                    r#"{{"device_alias": "d", "signal_alias": "s{a}", "function": {function}, "address": {a}, "data_type": "{data_type}"}}"#
                )
            })
            .collect();
        let text = format!(
            r#"{{"devices": [{{"name": "d", "device_alias": "d", {RTU}}}], "signals": [{}]}}"#,
            signals.join(",")
        );
        let v = validate(&RawConfig::parse(&text).unwrap());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let buses = modbus_master::buses(&v.config).unwrap();
        let blocks = buses[0].devices[0].blocks();
        let counts: Vec<u16> = blocks.iter().map(|b| b.count).collect();
        assert_eq!(counts, [limit, 1]);
        for b in blocks {
            b.request().encode(&mut Vec::new()).unwrap();
        }
        let too_many = match function {
            1 => Request::ReadCoils {
                address: 0,
                count: limit + 1,
            },
            _ => Request::ReadHoldingRegisters {
                address: 0,
                count: limit + 1,
            },
        };
        assert!(too_many.encode(&mut Vec::new()).is_err());
    }
}
