//! Every numeric IEC 104 setting at its boundaries (min-1, min, max, max+1, 0) through
//! `config::validate` and through the driver's start (`device::master_config`, the stack's
//! checks): both accept or both refuse, and a refusal of validation names the cell.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::num::NonZeroU16;
use std::time::Duration;

use config::iec104::Interval;
use iec104_master::command::CommandSpec;
use iec104_master::{device, device_specs, DeviceSpec, Options};
use iec60870::{CaSize, CommonAddress, CotSize, Ioa, IoaSize};
use serde_json::{json, Value};

/// A valid device with a monitor (`m`, IOA 1), a single command (`sc`, IOA 2), a set-point
/// (`sp`, IOA 3) and a bitstring command (`bo`, IOA 4).
fn raw() -> Value {
    json!({
        "devices": [{"name": "R", "device_alias": "r", "protocol": "iec104-master",
                     "ip": "127.0.0.1", "asdu_address": 1}],
        "signals": [
            {"device_alias": "r", "signal_alias": "m", "info_address": 1, "type_id": "M_ME_NC_1"},
            {"device_alias": "r", "signal_alias": "sc", "info_address": 2, "type_id": "C_SC_NA_1"},
            {"device_alias": "r", "signal_alias": "sp", "info_address": 3, "type_id": "C_SE_NC_1"},
            {"device_alias": "r", "signal_alias": "bo", "info_address": 4, "type_id": "C_BO_NA_1"}
        ]
    })
}

/// Where a cell is: the device row, or a signal row by index.
#[derive(Clone, Copy)]
enum Row {
    Device,
    Signal(usize),
}

impl Row {
    fn path(self, column: &str) -> String {
        match self {
            Row::Device => format!("devices[0].{column}"),
            Row::Signal(i) => format!("signals[{i}].{column}"),
        }
    }
}

/// Sets a value on the driver's input; `false` when its type cannot carry it.
type Apply = fn(&mut DeviceSpec, i64) -> bool;

struct Setting {
    row: Row,
    column: &'static str,
    values: &'static [i64],
    /// Other cells of the case (e.g. a smaller `ca_size`), set in both.
    with: &'static [(&'static str, i64)],
    apply: Apply,
}

fn secs(v: i64) -> Option<Duration> {
    u64::try_from(v).ok().map(Duration::from_secs)
}

fn sig<'a>(spec: &'a mut DeviceSpec, alias: &str) -> &'a mut CommandSpec {
    spec.commands
        .get_mut(&tagbus::Alias::new(alias).unwrap())
        .unwrap()
}

fn interval(v: i64) -> Option<Option<Interval>> {
    match v {
        0 => Some(None),
        v => u64::try_from(v)
            .ok()
            .and_then(Interval::from_secs)
            .map(Some),
    }
}

fn settings() -> Vec<Setting> {
    use Row::{Device as D, Signal as S};
    let t = |column, values, with, apply| Setting {
        row: D,
        column,
        values,
        with,
        apply,
    };
    vec![
        t(
            "port",
            &[-1, 0, 1, 65_535, 65_536],
            &[],
            |s, v| match u16::try_from(v).ok().and_then(NonZeroU16::new) {
                Some(p) => {
                    s.device.port = p;
                    true
                }
                None => false,
            },
        ),
        t(
            "k",
            &[-1, 0, 1, 32_767, 32_768, 65_536],
            &[("w", 1)],
            |s, v| {
                s.device.link.w = 1;
                u16::try_from(v).map(|k| s.device.link.k = k).is_ok()
            },
        ),
        t("w", &[-1, 0, 1, 12, 13], &[("k", 12)], |s, v| {
            s.device.link.k = 12;
            u16::try_from(v).map(|w| s.device.link.w = w).is_ok()
        }),
        t("t0_s", &[-1, 0, 1, 255, 256], &[], |s, v| {
            secs(v).map(|d| s.device.link.t0 = d).is_some()
        }),
        t("t1_s", &[-1, 0, 1, 2, 255, 256], &[("t2_s", 1)], |s, v| {
            s.device.link.t2 = Duration::from_secs(1);
            secs(v).map(|d| s.device.link.t1 = d).is_some()
        }),
        t(
            "t2_s",
            &[-1, 0, 1, 254, 255, 256],
            &[("t1_s", 255)],
            |s, v| {
                s.device.link.t1 = Duration::from_secs(255);
                secs(v).map(|d| s.device.link.t2 = d).is_some()
            },
        ),
        t(
            "t3_s",
            &[-1, 0, 1, 86_400, 86_401, 100_000, 172_800, 172_801],
            &[],
            |s, v| secs(v).map(|d| s.device.link.t3 = d).is_some(),
        ),
        t("cot_size", &[-1, 0, 1, 2, 3], &[], |s, v| {
            u8::try_from(v)
                .ok()
                .and_then(|n| CotSize::from_octets(n).ok())
                .map(|c| s.device.sizes.cot = c)
                .is_some()
        }),
        t("ca_size", &[-1, 0, 1, 2, 3], &[], |s, v| {
            u8::try_from(v)
                .ok()
                .and_then(|n| CaSize::from_octets(n).ok())
                .map(|c| s.device.sizes.ca = c)
                .is_some()
        }),
        t("ioa_size", &[-1, 0, 1, 2, 3, 4], &[], |s, v| {
            // the signals' addresses 1-4 fit every size
            u8::try_from(v)
                .ok()
                .and_then(|n| IoaSize::from_octets(n).ok())
                .map(|i| s.device.sizes.ioa = i)
                .is_some()
        }),
        t("asdu_address", &[-1, 0, 1, 65_535, 65_536], &[], |s, v| {
            u16::try_from(v)
                .map(|a| s.device.common_address = CommonAddress(a))
                .is_ok()
        }),
        t("asdu_address", &[255, 256], &[("ca_size", 1)], |s, v| {
            s.device.sizes.ca = CaSize::One;
            u16::try_from(v)
                .map(|a| s.device.common_address = CommonAddress(a))
                .is_ok()
        }),
        t("originator_address", &[-1, 0, 255, 256], &[], |s, v| {
            u8::try_from(v)
                .map(|o| s.device.originator_address = o)
                .is_ok()
        }),
        t("originator_address", &[0, 1], &[("cot_size", 1)], |s, v| {
            s.device.sizes.cot = CotSize::One;
            u8::try_from(v)
                .map(|o| s.device.originator_address = o)
                .is_ok()
        }),
        t("command_timeout_s", &[-1, 0, 1, 600, 601], &[], |s, v| {
            secs(v).map(|d| s.device.command_timeout = d).is_some()
        }),
        t(
            "command_max_age_ms",
            &[-1, 0, 1, 100, 3_600_000, 3_600_001],
            &[],
            |s, v| {
                u64::try_from(v)
                    .map(|ms| s.device.command_max_age = Duration::from_millis(ms))
                    .is_ok()
            },
        ),
        t(
            "gi_interval_s",
            &[-1, 0, 1, 2_678_400, 2_678_401],
            &[],
            |s, v| interval(v).map(|i| s.device.gi_interval = i).is_some(),
        ),
        t(
            "clock_sync_interval_s",
            &[-1, 0, 1, 2_678_400, 2_678_401],
            &[],
            |s, v| {
                interval(v)
                    .map(|i| s.device.clock_sync_interval = i)
                    .is_some()
            },
        ),
        t(
            "counter_interrogation_interval_s",
            &[-1, 0, 1, 2_678_400, 2_678_401],
            &[],
            |s, v| {
                interval(v)
                    .map(|i| s.device.counter_interrogation_interval = i)
                    .is_some()
            },
        ),
        // information object addresses against ioa_size (signal 0 is the monitor)
        Setting {
            row: S(0),
            column: "info_address",
            values: &[-1, 0, 16_777_215, 16_777_216],
            with: &[],
            apply: |s, v| match u32::try_from(v) {
                Ok(a) => {
                    s.monitors[0].ioa = a;
                    true
                }
                Err(_) => false,
            },
        },
        Setting {
            row: S(1),
            column: "info_address",
            values: &[255, 256],
            with: &[("ioa_size", 1)],
            apply: |s, v| {
                s.device.sizes.ioa = IoaSize::One;
                u32::try_from(v).map(|a| sig(s, "sc").ioa = Ioa(a)).is_ok()
            },
        },
        Setting {
            row: S(1),
            column: "info_address",
            values: &[65_535, 65_536],
            with: &[("ioa_size", 2)],
            apply: |s, v| {
                s.device.sizes.ioa = IoaSize::Two;
                u32::try_from(v).map(|a| sig(s, "sc").ioa = Ioa(a)).is_ok()
            },
        },
        // qualifiers: QU of a single command, QL of a set-point, none of a bitstring
        Setting {
            row: S(1),
            column: "qualifier",
            values: &[-1, 0, 31, 32],
            with: &[],
            apply: |s, v| u8::try_from(v).map(|q| sig(s, "sc").qualifier = q).is_ok(),
        },
        Setting {
            row: S(2),
            column: "qualifier",
            values: &[-1, 0, 127, 128, 256],
            with: &[],
            apply: |s, v| u8::try_from(v).map(|q| sig(s, "sp").qualifier = q).is_ok(),
        },
        Setting {
            row: S(3),
            column: "qualifier",
            values: &[-1, 0, 1],
            with: &[],
            apply: |s, v| u8::try_from(v).map(|q| sig(s, "bo").qualifier = q).is_ok(),
        },
    ]
}

fn set(raw: &mut Value, row: Row, column: &str, v: i64) {
    let cell = match row {
        Row::Device => &mut raw["devices"][0],
        Row::Signal(i) => &mut raw["signals"][i],
    };
    cell[column] = v.into();
}

fn validate(raw: &Value) -> config::Validated {
    config::validate(&config::RawConfig::parse(&raw.to_string()).unwrap())
}

#[test]
fn validation_and_the_driver_start_agree_on_every_boundary() {
    let base = validate(&raw());
    assert!(base.errors.is_empty(), "{:?}", base.errors);
    let base_spec = device_specs(&base.config).pop().unwrap();
    let opts = Options::new("redis://127.0.0.1:1");
    let addrs = || vec!["127.0.0.1:2404".parse().unwrap()];
    assert!(device::master_config(&base_spec, addrs(), &opts).is_ok());

    let mut cases = 0;
    let mut refused = 0;
    for s in settings() {
        for &v in s.values {
            let mut raw = raw();
            for &(column, w) in s.with {
                set(&mut raw, Row::Device, column, w);
            }
            set(&mut raw, s.row, s.column, v);
            let validated = validate(&raw);
            let config_ok = validated.errors.is_empty();

            let mut spec = base_spec.clone();
            let driver_ok =
                (s.apply)(&mut spec, v) && device::master_config(&spec, addrs(), &opts).is_ok();
            let case = format!("{} = {v} (with {:?})", s.column, s.with);
            assert_eq!(
                config_ok, driver_ok,
                "{case}: validation {config_ok}, driver start {driver_ok}; errors {:?}",
                validated.errors
            );
            if config_ok {
                // what validates is what the driver gets
                let from_config = device_specs(&validated.config).pop().unwrap();
                assert!(
                    device::master_config(&from_config, addrs(), &opts).is_ok(),
                    "{case}"
                );
            } else {
                // at the cell, or at the other cell of a rule between two (t2 < t1)
                let mut paths = vec![s.row.path(s.column)];
                paths.extend(s.with.iter().map(|(c, _)| Row::Device.path(c)));
                assert!(
                    validated
                        .errors
                        .iter()
                        .any(|e| paths.contains(&e.path.to_string())),
                    "{case}: no error at {paths:?}: {:?}",
                    validated.errors
                );
                refused += 1;
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 116, "boundary values fed");
    assert_eq!(refused, 62, "refused");
}

#[test]
fn t3_of_100000_s_is_accepted_and_above_48_h_refused_at_its_cell() {
    let mut r = raw();
    set(&mut r, Row::Device, "t3_s", 100_000);
    assert!(validate(&r).errors.is_empty());
    set(&mut r, Row::Device, "t3_s", 172_801);
    let errors: Vec<String> = validate(&r).errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        ["devices[0].t3_s: t3 must be between 1 ms and 172800 s"]
    );
}
