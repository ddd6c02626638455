//! A simulated RTU (IEC 104 outstation) for demos and manual tests.
//!
//! `cargo run -p iec60870 --example simulated_rtu -- [BIND] [DECODE]`, e.g.
//! `-- 127.0.0.1:2404 asdu`. Common address 1; points: M_SP_NA_1 100 (breaker), M_ME_TF_1 200
//! (a float updated spontaneously every second with a CP56 time tag), M_ME_NB_1 300, M_IT_NA_1
//! 400 (counter); commands to any IOA are logged and accepted (set-points need a select on
//! IOA 500).

use iec60870::*;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Logger;

impl CommandHandler for Logger {
    fn select(&mut self, req: &CommandRequest) -> bool {
        tracing::info!(ioa = %req.ioa, type_id = %req.type_id, element = ?req.element, "select");
        true
    }
    fn execute(&mut self, req: &CommandRequest) -> bool {
        tracing::info!(ioa = %req.ioa, type_id = %req.type_id, element = ?req.element, "execute");
        true
    }
    fn requires_select(&mut self, _type_id: TypeId, ioa: Ioa) -> bool {
        ioa == Ioa(500)
    }
}

fn now_cp56() -> Option<Cp56Time2a> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    Cp56Time2a::from_unix_ms(i64::try_from(ms).ok()?).ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let bind: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:2404").parse()?;
    let decode: DecodeLevel = args.next().as_deref().unwrap_or("apci").parse()?;

    let mut db = PointDb::new();
    db.insert(Point::single(Ioa(100), true, Quality::GOOD));
    let t0 = now_cp56().unwrap_or_default();
    db.insert(Point::float(Ioa(200), 20.0, Quality::GOOD).with_time(t0));
    db.insert(Point::scaled(Ioa(300), 230, Quality::GOOD));
    db.insert(Point::counter(Ioa(400), 0));

    let mut config = OutstationConfig::new(bind, CommonAddress(1));
    config.decode_level = decode;
    let rtu = spawn_outstation(config, db, Logger).await?;
    tracing::info!(addr = %rtu.local_addr(), "simulated RTU running");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        n = n.wrapping_add(1);
        let value = 20.0 + (f64::from(n % 60) / 60.0 * std::f64::consts::TAU).sin() as f32;
        let mut point = Point::float(Ioa(200), value, Quality::GOOD);
        if let Some(t) = now_cp56() {
            point = point.with_time(t);
        }
        rtu.update(point).await?;
        rtu.update(Point::counter(
            Ioa(400),
            i32::try_from(n).unwrap_or(i32::MAX),
        ))
        .await?;
    }
}
