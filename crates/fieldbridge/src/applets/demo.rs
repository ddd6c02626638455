//! `fieldbridge demo`: runs the tag bus on this machine with a simulated device and prints
//! the values as a consumer sees them, until Ctrl-C; everything it started is stopped.
//!
//! It starts its own `redis-server` on a free loopback port in a temporary directory (the
//! gateway's Redis is never touched), writes a feeder's values (a breaker, a voltage, an
//! energy counter) through the drivers' tag writer, and watches `tag/*/*/in`.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use tagbus::{FeedEvent, Flags, ReaderConfig, TagKey, TagValue, WriterConfig};

/// Options of `fieldbridge demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init("warn");
    let dir = std::env::temp_dir().join(format!("fieldbridge-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let redis = Command::new(find("redis-server")?)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server")?;
    let _redis = Guard(redis);
    let url = format!("redis://127.0.0.1:{port}");
    say(&format!(
        "demo: redis-server on {url}; watching tag/*/*/in (Ctrl-C stops)"
    ));

    let result = super::runtime()?.block_on(async {
        wait_for_redis(&url).await?;
        let writer = tagbus::spawn_writer(WriterConfig::new(url.clone()), 256)?;
        let mut feed = tagbus::spawn_reader(
            ReaderConfig {
                redis_url: url.clone(),
                pattern: TagKey::pattern(Some(tagbus::Direction::In)),
            },
            256,
        )?;
        tokio::spawn(simulate(writer));
        let stop = async {
            match args.duration {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                event = feed.recv() => match event {
                    Some(FeedEvent::Value { key, value, .. }) => say(&format!("{key} {value}")),
                    Some(_) => {}
                    None => break,
                },
                () = &mut stop => break,
            }
        }
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| ExitCode::SUCCESS)
}

async fn wait_for_redis(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    for _ in 0..100 {
        if client.get_multiplexed_async_connection().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("redis-server did not start")
}

/// A feeder: breaker toggling, voltage wandering, energy counting.
async fn simulate(writer: tagbus::TagWriterHandle) {
    let key = |s: &str| -> Option<TagKey> { format!("tag/rtu1/{s}/in").parse().ok() };
    let (Some(cb), Some(u), Some(e)) = (key("cb1"), key("ua"), key("energy")) else {
        return;
    };
    let mut tick: u32 = 0;
    loop {
        let now = tagbus::now_ms();
        let gt = Flags::empty().with(tagbus::Flag::GT);
        let volts = 230.0 + f64::from(tick % 20) * 0.1;
        let mut values = vec![
            (u.clone(), TagValue::new(volts, now).with_flags(gt.clone())),
            (
                e.clone(),
                TagValue::new(i64::from(tick).saturating_mul(7), now).with_flags(gt.clone()),
            ),
        ];
        if tick.is_multiple_of(5) {
            values.push((
                cb.clone(),
                TagValue::new(
                    i64::from((tick / 5).is_multiple_of(2)).saturating_add(1),
                    now,
                )
                .with_flags(gt),
            ));
        }
        for (k, v) in values {
            if writer.write(k, v).await.is_err() {
                return;
            }
        }
        tick = tick.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

fn find(program: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin"].map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} not found: install it (tests/setup does)"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
