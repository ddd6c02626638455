//! `fieldbridge demo`: the whole gateway on this machine, with simulated devices, until Ctrl-C.
//!
//! It starts, each on a free loopback port and in one temporary directory:
//! 1. `redis-server` (the tag bus) and `mosquitto` (the "cloud" broker), from the OS packages;
//! 2. a simulated feeder RTU (an IEC 104 outstation: a breaker, a voltage, a power, an energy
//!    counter) and a simulated energy meter (a Modbus TCP server), inside this process;
//! 3. `fieldbridge supervise` on `config/demo.json` (ports rewritten to the ones above), which
//!    starts iec104-master, modbus-master, mqtt-client and iec104-slave (the gateway as an
//!    IEC 104 controlled station on a free loopback port; the demo prints how to reach it);
//! 4. `mosquitto_sub` on `demo/#`, whose messages (`topic value,timestamp,quality`) it prints.
//!
//! Ctrl-C (or `--duration`) stops the supervisor with SIGTERM (it stops its applets), then
//! everything else; the temporary directory is removed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::CommonArgs;
use crate::exit::Exit;

/// Options of `fieldbridge demo`.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("config", |a| a
        .default_value("config/demo.json")
        .help("The demo configuration (its ports and redis_url are replaced by the demo's own)")),
    mut_arg("debug", |a| a
        .help("Log level of the gateway's processes (their logs go to DIR/gateway.log)"))
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

/// A child process stopped when dropped: SIGTERM, a grace period, then SIGKILL.
struct Guard {
    child: Child,
    name: &'static str,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(process = self.name, "did not stop in time; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    crate::logging::init("warn");
    let dir = tempfile_dir()?;
    let result = run_in(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("fieldbridge-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{what} did not start on port {port}")
}

fn run_in(args: &Args, dir: &Path) -> anyhow::Result<Exit> {
    let template = std::fs::read_to_string(&args.common.config).with_context(|| {
        format!(
            "reading {} (run the demo from the repository's top directory)",
            args.common.config.display()
        )
    })?;

    // 1. The tag bus and the broker.
    let redis_port = free_port()?;
    let redis = Command::new(find("redis-server")?)
        .args([
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server")?;
    let _redis = Guard {
        child: redis,
        name: "redis-server",
    };
    let mqtt_port = free_port()?;
    let mosquitto_conf = dir.join("mosquitto.conf");
    std::fs::write(
        &mosquitto_conf,
        format!("listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )?;
    let mosquitto = Command::new(find("mosquitto")?)
        .arg("-c")
        .arg(&mosquitto_conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto")?;
    let _mosquitto = Guard {
        child: mosquitto,
        name: "mosquitto",
    };
    wait_for_port(redis_port, "redis-server")?;
    wait_for_port(mqtt_port, "mosquitto")?;

    // 2. The simulated devices, on a thread of their own (a current-thread runtime).
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let Ok(rt) = super::runtime() else { return };
            rt.block_on(async move {
                let started = async {
                    let (rtu, _) =
                        simulator::rtu::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
                    let bank = Arc::new(Mutex::new(simulator::modbus::Bank::default()));
                    simulator::modbus::simulate_meter(bank.clone(), Duration::from_millis(500));
                    let meter =
                        simulator::modbus::serve(SocketAddr::from(([127, 0, 0, 1], 0)), bank)
                            .await?;
                    std::io::Result::Ok((rtu, meter))
                }
                .await;
                let rtu = match started {
                    Ok((rtu, meter)) => {
                        let _ = addr_tx.send(Ok((rtu.local_addr(), meter)));
                        rtu
                    }
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let _ = tokio::signal::ctrl_c().await;
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(rtu);
            });
        });
    }
    let (rtu_addr, meter_addr) = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the simulated devices did not start")??;

    // 3. The gateway, on the demo config with our ports.
    let slave_port = free_port()?;
    let config_path = dir.join("config.json");
    std::fs::write(
        &config_path,
        demo_config(
            &template,
            redis_port,
            mqtt_port,
            rtu_addr.port(),
            meter_addr.port(),
            slave_port,
        )?,
    )?;
    let log = std::fs::File::create(dir.join("gateway.log"))?;
    let supervisor = Command::new(std::env::current_exe()?)
        .arg("supervise")
        .arg("-c")
        .arg(&config_path)
        .arg("-d")
        .arg(&args.common.debug)
        .arg("--status-file")
        .arg(dir.join("status.json"))
        .env("FIELDBRIDGE_LOG", "stderr")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting fieldbridge supervise")?;
    let _supervisor = Guard {
        child: supervisor,
        name: "fieldbridge supervise",
    };

    // 4. A subscriber, printed live.
    let mut sub = Command::new(find("mosquitto_sub")?)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt_port.to_string(),
            "-v",
            "-t",
            "demo/#",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto_sub (package mosquitto-clients)")?;
    let sub_out = sub.stdout.take().context("mosquitto_sub stdout")?;
    let _sub = Guard {
        child: sub,
        name: "mosquitto_sub",
    };

    say(&format!(
        "fieldbridge demo: redis 127.0.0.1:{redis_port}, mosquitto 127.0.0.1:{mqtt_port}, \
         simulated RTU (IEC 104) {rtu_addr}, simulated meter (Modbus TCP) {meter_addr}"
    ));
    say(&format!(
        "SCADA: the gateway is an IEC 60870-5-104 slave on 127.0.0.1:{slave_port} (common \
         address {}): connect any IEC 104 master to it for a GI, spontaneous values and commands",
        slave_common_address(&template).unwrap_or(1)
    ));
    say(&format!(
        "gateway log: {}; MQTT messages on demo/# follow (Ctrl-C stops):",
        dir.join("gateway.log").display()
    ));

    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(sub_out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let limit = args.duration.map(Duration::from_secs);
    while !stop.load(std::sync::atomic::Ordering::SeqCst)
        && limit.is_none_or(|l| start.elapsed() < l)
    {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => say(&line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    say("fieldbridge demo: stopping");
    Ok(Exit::Ok)
}

/// The demo config with the demo's ports: redis_url, and the port of each device by protocol.
fn demo_config(
    template: &str,
    redis: u16,
    mqtt: u16,
    iec104: u16,
    modbus: u16,
    slave: u16,
) -> anyhow::Result<String> {
    let mut raw = config::RawConfig::parse(template)?;
    raw.redis_url = Some(format!("redis://127.0.0.1:{redis}"));
    for row in &mut raw.devices {
        let protocol = row
            .get("protocol")
            .and_then(config::cell_text)
            .unwrap_or_default();
        let port = match protocol.as_str() {
            "mqtt" => mqtt,
            "iec104-master" => iec104,
            "modbus-tcp" => modbus,
            "iec104-slave" => slave,
            _ => continue,
        };
        row.insert("port".into(), serde_json::Value::from(port));
        row.insert("ip".into(), serde_json::Value::from("127.0.0.1"));
    }
    Ok(raw.to_json_pretty())
}

/// The `asdu_address` of the demo config's iec104-slave device.
fn slave_common_address(template: &str) -> Option<i64> {
    let raw = config::RawConfig::parse(template).ok()?;
    raw.devices
        .iter()
        .find(|row| {
            row.get("protocol").and_then(config::cell_text).as_deref() == Some("iec104-slave")
        })
        .and_then(|row| row.get("asdu_address"))
        .and_then(config::cell_int)
}

fn find(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} not found: install it (tests/setup does)"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
