//! The validated, typed configuration.

use std::fmt;
use std::str::FromStr;

use contract::{Alias, Direction, TagKey};

use crate::iec104::{Iec104Device, Iec104Signal};
use crate::iec104_slave::{Iec104SlaveDevice, Iec104SlaveSignal};
use crate::modbus::{ModbusRtuDevice, ModbusSignal, ModbusTcpDevice};
use crate::mqtt::{MqttDevice, MqttSignal};

/// A device's protocol (the `protocol` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `mqtt`: an MQTT broker the publisher forwards to.
    Mqtt,
    /// `iec104-master`: an IEC 60870-5-104 outstation we poll as controlling station.
    Iec104Master,
    /// `modbus-rtu`: a Modbus slave on a serial (RS-485) port.
    ModbusRtu,
    /// `modbus-tcp`: a Modbus TCP server.
    ModbusTcp,
    /// `iec104-slave`: the gateway as an IEC 60870-5-104 controlled station for SCADA.
    Iec104Slave,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Mqtt,
        Protocol::Iec104Master,
        Protocol::ModbusRtu,
        Protocol::ModbusTcp,
        Protocol::Iec104Slave,
    ];

    /// The `protocol` column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Iec104Master => "iec104-master",
            Protocol::ModbusRtu => "modbus-rtu",
            Protocol::ModbusTcp => "modbus-tcp",
            Protocol::Iec104Slave => "iec104-slave",
        }
    }

    /// The applet (process) that serves this protocol.
    pub fn applet(self) -> Applet {
        match self {
            Protocol::Mqtt => Applet::MqttClient,
            Protocol::Iec104Master => Applet::Iec104Master,
            Protocol::ModbusRtu | Protocol::ModbusTcp => Applet::ModbusMaster,
            Protocol::Iec104Slave => Applet::Iec104Slave,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mqtt" => Ok(Protocol::Mqtt),
            "iec104-master" | "iec104" | "iec-104-master" => Ok(Protocol::Iec104Master),
            "modbus-rtu" | "modbus_rtu" => Ok(Protocol::ModbusRtu),
            "modbus-tcp" | "modbus_tcp" => Ok(Protocol::ModbusTcp),
            "iec104-slave" | "iec104_slave" | "iec-104-slave" => Ok(Protocol::Iec104Slave),
            _ => Err(()),
        }
    }
}

/// A protocol process the supervisor runs: one applet of the `fieldbridge` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Applet {
    MqttClient,
    Iec104Master,
    ModbusMaster,
    Iec104Slave,
}

impl Applet {
    /// Every protocol applet.
    pub const ALL: [Applet; 4] = [
        Applet::MqttClient,
        Applet::Iec104Master,
        Applet::ModbusMaster,
        Applet::Iec104Slave,
    ];

    /// The applet's name (`fieldbridge <name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Applet::MqttClient => "mqtt-client",
            Applet::Iec104Master => "iec104-master",
            Applet::ModbusMaster => "modbus-master",
            Applet::Iec104Slave => "iec104-slave",
        }
    }

    /// The protocols it serves.
    pub fn protocols(self) -> &'static [Protocol] {
        match self {
            Applet::MqttClient => &[Protocol::Mqtt],
            Applet::Iec104Master => &[Protocol::Iec104Master],
            Applet::ModbusMaster => &[Protocol::ModbusRtu, Protocol::ModbusTcp],
            Applet::Iec104Slave => &[Protocol::Iec104Slave],
        }
    }
}

impl fmt::Display for Applet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A password or key: its Debug and Display never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A validated device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its 0-based row in `devices`.
    pub index: usize,
    pub name: String,
    pub alias: Alias,
    pub enabled: bool,
    pub kind: DeviceKind,
}

/// The protocol-specific part of a device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceKind {
    Mqtt(MqttDevice),
    Iec104Master(Iec104Device),
    ModbusRtu(ModbusRtuDevice),
    ModbusTcp(ModbusTcpDevice),
    Iec104Slave(Iec104SlaveDevice),
}

impl Device {
    /// The device's protocol.
    pub fn protocol(&self) -> Protocol {
        match self.kind {
            DeviceKind::Mqtt(_) => Protocol::Mqtt,
            DeviceKind::Iec104Master(_) => Protocol::Iec104Master,
            DeviceKind::ModbusRtu(_) => Protocol::ModbusRtu,
            DeviceKind::ModbusTcp(_) => Protocol::ModbusTcp,
            DeviceKind::Iec104Slave(_) => Protocol::Iec104Slave,
        }
    }
}

/// A validated signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Its 0-based row in `signals`.
    pub index: usize,
    pub name: String,
    /// The alias of the device it belongs to.
    pub device: Alias,
    pub alias: Alias,
    pub enabled: bool,
    /// `log`: the signal's values are logged (at info level) as they pass.
    pub log: bool,
    pub kind: SignalKind,
}

impl Signal {
    /// This signal's tag on the bus in a direction (`tag/<device>/<signal>/<dir>`).
    pub fn tag(&self, direction: Direction) -> TagKey {
        TagKey::new(self.device.clone(), self.alias.clone(), direction)
    }
}

/// The protocol-specific part of a signal.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalKind {
    /// Boxed: an MQTT signal is the largest kind, and a config holds tens of thousands of
    /// signals (each `Signal` is as large as its largest kind).
    Mqtt(Box<MqttSignal>),
    Iec104(Iec104Signal),
    Modbus(ModbusSignal),
    /// Boxed like MQTT: its source's two aliases would double every `Signal`.
    Iec104Slave(Box<Iec104SlaveSignal>),
}

/// The validated configuration. Devices and signals whose rows had errors are left out;
/// see [`crate::Validated`] for the errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub redis_url: String,
    pub stream_max_len: u64,
    pub devices: Vec<Device>,
    pub signals: Vec<Signal>,
}

impl Config {
    /// The device with this alias.
    pub fn device(&self, alias: &Alias) -> Option<&Device> {
        self.devices.iter().find(|d| &d.alias == alias)
    }

    /// The signals of a device, in row order.
    pub fn signals_of<'a>(&'a self, device: &'a Alias) -> impl Iterator<Item = &'a Signal> + 'a {
        self.signals.iter().filter(move |s| &s.device == device)
    }

    /// The enabled devices of a protocol.
    pub fn enabled_devices(&self, protocol: Protocol) -> impl Iterator<Item = &Device> + '_ {
        self.devices
            .iter()
            .filter(move |d| d.enabled && d.protocol() == protocol)
    }

    /// Whether an applet has anything to do: an enabled device of one of its protocols.
    pub fn applet_has_work(&self, applet: Applet) -> bool {
        applet
            .protocols()
            .iter()
            .any(|p| self.enabled_devices(*p).next().is_some())
    }
}
