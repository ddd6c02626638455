//! A simulated feeder RTU: an IEC 60870-5-104 outstation (common address 1) with a breaker
//! that changes state, measurands that wander, and an energy counter.
//!
//! Points: 100 M_DP_TB_1 breaker (toggles every 10 s), 200 M_ME_TF_1 voltage L1 (V, every
//! second), 220 M_ME_TF_1 active power (kW, every 2 s), 300 integrated total (energy, 0.1 kWh
//! steps; read by counter interrogation). Commands are accepted and logged; a double command
//! on IOA 1100 also moves the breaker.

use std::net::SocketAddr;
use std::time::Duration;

use iec60870::{
    spawn_outstation, CommandHandler, CommandRequest, CommonAddress, Cp56Time2a, DoublePointValue,
    Ioa, OutstationConfig, OutstationHandle, Point, PointDb, Quality,
};

/// The breaker's IOA.
pub const BREAKER: Ioa = Ioa(100);
/// The voltage's IOA.
pub const VOLTAGE: Ioa = Ioa(200);
/// The active power's IOA.
pub const POWER: Ioa = Ioa(220);
/// The energy counter's IOA.
pub const ENERGY: Ioa = Ioa(300);

struct LogCommands;

impl CommandHandler for LogCommands {
    fn select(&mut self, req: &CommandRequest) -> bool {
        tracing::info!(ioa = %req.ioa, type_id = %req.type_id, "simulated RTU: select");
        true
    }
    fn execute(&mut self, req: &CommandRequest) -> bool {
        tracing::info!(ioa = %req.ioa, type_id = %req.type_id, "simulated RTU: execute");
        true
    }
}

fn now() -> Cp56Time2a {
    let ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(0);
    Cp56Time2a::from_unix_ms(ms).unwrap_or_default()
}

/// Starts the RTU on `bind` (port 0 picks one) and keeps its points moving until dropped.
pub async fn start(
    bind: SocketAddr,
) -> std::io::Result<(OutstationHandle, tokio::task::JoinHandle<()>)> {
    let mut db = PointDb::new();
    db.insert(Point::double(BREAKER, DoublePointValue::On, Quality::GOOD).with_time(now()));
    db.insert(Point::float(VOLTAGE, 230.0, Quality::GOOD).with_time(now()));
    db.insert(Point::float(POWER, 1_250.0, Quality::GOOD).with_time(now()));
    db.insert(Point::counter(ENERGY, 100_000));
    let rtu = spawn_outstation(
        OutstationConfig::new(bind, CommonAddress(1)),
        db,
        LogCommands,
    )
    .await?;
    let handle = rtu.clone();
    let task = tokio::spawn(async move {
        let mut tick: u32 = 0;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticker.tick().await;
            tick = tick.wrapping_add(1);
            let phase = f64::from(tick % 60) / 60.0 * std::f64::consts::TAU;
            let mut points =
                vec![
                    Point::float(VOLTAGE, (230.0 + 2.0 * phase.sin()) as f32, Quality::GOOD)
                        .with_time(now()),
                ];
            if tick.is_multiple_of(2) {
                points.push(
                    Point::float(POWER, (1_250.0 + 80.0 * phase.cos()) as f32, Quality::GOOD)
                        .with_time(now()),
                );
            }
            if tick.is_multiple_of(10) {
                let state = if (tick / 10).is_multiple_of(2) {
                    DoublePointValue::On
                } else {
                    DoublePointValue::Off
                };
                points.push(Point::double(BREAKER, state, Quality::GOOD).with_time(now()));
            }
            points.push(Point::counter(
                ENERGY,
                100_000i32.saturating_add(i32::try_from(tick).unwrap_or(0)),
            ));
            for p in points {
                if handle.update(p).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok((rtu, task))
}
