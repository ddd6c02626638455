//! What each enabled slave device of a configuration runs with ([`SlaveSettings`]).

use std::net::SocketAddr;

use config::iec104_slave::{Iec104SlaveDevice, Iec104SlaveSignal};
use config::{Config, DeviceKind, Protocol, SignalKind};

use crate::bridge::{CommandRoute, MonitorRoute, SlaveSettings};
use crate::map::{CommandSpec, PointSpec};
use crate::station::{GroupConfig, StationConfig};

/// The station configuration of a slave device row.
pub fn station_config(d: &Iec104SlaveDevice) -> StationConfig {
    let mut s = StationConfig::new(d.common_address);
    s.sizes = d.sizes;
    s.link = d.link;
    s.groups = d
        .groups()
        .into_iter()
        .map(|masters| GroupConfig { masters })
        .collect();
    s.select_timeout = d.select_timeout;
    s.command_max_age = d.command_max_age;
    s
}

fn monitor(p: &Iec104SlaveSignal) -> MonitorRoute {
    MonitorRoute {
        source: p.source_tag(),
        spec: PointSpec {
            ioa: p.ioa,
            type_id: p.type_id,
            multiplier: p.multiplier,
            offset: p.offset,
        },
    }
}

fn command(p: &Iec104SlaveSignal) -> CommandRoute {
    CommandRoute {
        out: p.source_tag(),
        spec: CommandSpec {
            ioa: p.ioa,
            type_id: p.type_id.without_time(),
            multiplier: p.multiplier,
            offset: p.offset,
        },
        select_before_operate: p.select_before_operate,
    }
}

/// The settings of every enabled slave device, with its enabled points and commands.
pub fn slave_settings(config: &Config, redis_url: &str) -> Vec<SlaveSettings> {
    config
        .enabled_devices(Protocol::Iec104Slave)
        .filter_map(|dev| {
            let DeviceKind::Iec104Slave(d) = &dev.kind else {
                return None;
            };
            let rows = config
                .signals_of(&dev.alias)
                .filter(|s| s.enabled)
                .filter_map(|s| match &s.kind {
                    SignalKind::Iec104Slave(p) => Some(p),
                    _ => None,
                });
            let (mut monitors, mut commands) = (Vec::new(), Vec::new());
            for p in rows {
                if p.is_command() {
                    commands.push(command(p));
                } else {
                    monitors.push(monitor(p));
                }
            }
            Some(SlaveSettings {
                device: dev.alias.clone(),
                bind: SocketAddr::new(d.bind, d.port.get()),
                station: station_config(d),
                monitors,
                commands,
                accept_clock_sync: d.accept_clock_sync,
                command_timeout: d.command_timeout,
                redis_url: redis_url.to_owned(),
                tls: d.tls.clone(),
            })
        })
        .collect()
}
