//! Scenario 5 of issue 10: a lossy, slow network. The test creates a network namespace, puts
//! `tc netem` (1 % loss, 50 ms +- 20 ms delay) on its loopback, and runs itself again inside
//! it (`ip netns exec`), so redis-server, mosquitto, the publisher and the subscriber all talk
//! over the impaired link; then 2,000 values/s for 60 s at QoS 1 must all arrive. Needs root,
//! `ip netns` and the `sch_netem` kernel module: where any is missing it says so and skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::process::Command;
use std::time::Duration;

use faults::{Rig, Row, SeqWriter};
use testrig::RedisServer;

const INNER: &str = "FAULTS_NETEM_INNER";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespace on drop.
struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn setup(name: &str) -> Result<Netns, String> {
    ip(&["netns", "add", name])?;
    let ns = Netns(name.to_owned());
    ip(&["netns", "exec", name, "ip", "link", "set", "lo", "up"])?;
    // FAULTS_NETEM=none runs the plumbing without the impairment (where netem is missing).
    if std::env::var("FAULTS_NETEM").as_deref() != Ok("none") {
        ip(&[
            "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss",
            "1%", "delay", "50ms", "20ms",
        ])?;
    }
    Ok(ns)
}

#[test]
#[ignore = "60 s fault run under tc netem: tests/reliability netem"]
fn lossy_slow_network_loses_nothing_at_qos1() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    let name = format!("fbfaults{}", std::process::id());
    let ns = match setup(&name) {
        Ok(ns) => ns,
        Err(e) => {
            println!(
                "SKIPPED: tc netem in a network namespace is not available here (needs root, `ip netns` and the sch_netem kernel module): {e}"
            );
            Row {
                scenario: "network with 1 % loss, 50 +- 20 ms delay (tc netem)".into(),
                sent: 0,
                received: 0,
                missing: 0,
                duplicates: 0,
                max_rss_kb: Default::default(),
                redis_used_max: 0,
                note: format!("SKIPPED on this host: {e}"),
            }
            .report();
            return;
        }
    };
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([
            "--exact",
            "lossy_slow_network_loses_nothing_at_qos1",
            "--ignored",
            "--nocapture",
        ])
        .env(INNER, "1")
        .status()
        .unwrap();
    assert!(status.success(), "the run inside the namespace failed");
}

fn inner() {
    let rig = Rig::start(RedisServer::start(), "faults-sub", Duration::from_secs(30));
    let sampler = rig.sampler();
    let sent = SeqWriter::start(&rig.redis.url(), 2_000, Duration::from_secs(60), 250_000).join();
    rig.sub.wait_complete(0..sent, Duration::from_secs(300));
    let (missing, first) = rig.sub.missing(0..sent);
    let row = Row::measured(
        if std::env::var("FAULTS_NETEM").as_deref() == Ok("none") {
            "network namespace WITHOUT netem (FAULTS_NETEM=none: plumbing only), 60 s, 2,000/s, QoS 1"
        } else {
            "network with 1 % loss, 50 +- 20 ms delay (tc netem), 60 s, 2,000/s, QoS 1"
        },
        sent,
        missing,
        &rig.sub,
        &sampler,
        "every process inside the impaired namespace",
    );
    row.report();
    assert_eq!(missing, 0, "first missing {first:?}\n{}", rig.p.log());
}
