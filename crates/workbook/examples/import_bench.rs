//! Benchmark: import (read + validate) a generated workbook of 5,000 signals and print the
//! time of each step. Not a test: numbers depend on the machine.
//!
//! `cargo run --release -p fieldbridge-workbook --example import_bench [SIGNALS [SAVE_AS.xlsx]]`
//! (with SAVE_AS the generated workbook is kept, e.g. to time `fieldbridge config import`).

#![allow(clippy::print_stdout, clippy::arithmetic_side_effects)]

use std::time::Instant;

use config::{RawConfig, Row};
use serde_json::{json, Value};

fn row(v: Value) -> Row {
    serde_json::from_value(v).unwrap_or_default()
}

/// One broker, ten IEC 104 outstations, one Modbus RTU meter; `n` signals: 40 % IEC 104
/// points, 20 % Modbus registers, 40 % of them forwarded to the broker.
fn generate(n: usize) -> RawConfig {
    let mut raw = RawConfig {
        redis_url: Some("redis://127.0.0.1:6379".into()),
        ..RawConfig::default()
    };
    raw.devices.push(row(json!({"name": "Cloud", "device_alias": "cloud", "protocol": "mqtt",
        "ip": "127.0.0.1", "port": 1883, "mqtt_qos": 1, "auth": "password", "username": "gw", "password": "pw"})));
    for d in 0..10 {
        raw.devices.push(row(json!({"name": format!("RTU {d}"), "device_alias": format!("rtu{d}"),
            "protocol": "iec104-master", "ip": format!("127.0.0.{}", d + 1), "port": 2404, "asdu_address": d + 1,
            "gi_interval": 900})));
    }
    raw.devices.push(row(
        json!({"name": "Meter", "device_alias": "meter1", "protocol": "modbus-rtu",
        "serial_port": "/dev/ttyS1", "baudrate": 9600, "parity": "E", "modbus_id": 1}),
    ));
    let iec = n * 2 / 5;
    let modbus = n / 5;
    for i in 0..iec {
        raw.signals.push(row(json!({"signal_name": format!("Point {i}"), "device_alias": format!("rtu{}", i % 10),
            "signal_alias": format!("p{i}"), "info_address": 1000 + i, "type_id": if i % 2 == 0 { "M_ME_NC_1" } else { "M_DP_TB_1" },
            "multiplier": 0.1, "enable": 1, "log": 0})));
    }
    for i in 0..modbus {
        raw.signals.push(row(
            json!({"signal_name": format!("Register {i}"), "device_alias": "meter1",
            "signal_alias": format!("r{i}"), "function": 3, "address": i * 2, "data_type": "f32"}),
        ));
    }
    for i in 0..n.saturating_sub(iec + modbus) {
        let p = i % iec.max(1);
        raw.signals.push(row(
            json!({"signal_name": format!("Point {p} up"), "device_alias": "cloud",
            "signal_alias": format!("u{i}"), "source_device_alias": format!("rtu{}", p % 10),
            "source_signal_alias": format!("p{p}"), "topic": format!("site1/p{i}")}),
        ));
    }
    raw
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5000);
    let raw = generate(n);

    let t = Instant::now();
    let bytes = workbook::export(&raw)?;
    let export_time = t.elapsed();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.xlsx");
    std::fs::write(&path, &bytes)?;

    let t = Instant::now();
    let imported = workbook::read_workbook(&path)?;
    let read_time = t.elapsed();
    let report = imported.check();
    let total = t.elapsed();
    if !report.is_valid() {
        return Err(format!("the generated workbook is invalid: {}", report.errors.len()).into());
    }
    println!(
        "{} devices, {} signals, workbook {} bytes",
        report.validated.config.devices.len(),
        report.validated.config.signals.len(),
        bytes.len()
    );
    println!(
        "export:                  {:>8.1} ms",
        export_time.as_secs_f64() * 1e3
    );
    println!(
        "import: read workbook    {:>8.1} ms",
        read_time.as_secs_f64() * 1e3
    );
    println!(
        "import: validate + cells {:>8.1} ms",
        (total - read_time).as_secs_f64() * 1e3
    );
    println!(
        "import total             {:>8.1} ms",
        total.as_secs_f64() * 1e3
    );
    if let Some(keep) = std::env::args().nth(2) {
        std::fs::write(&keep, &bytes)?;
        println!("workbook saved as {keep}");
    }
    Ok(())
}
