//! The Modbus master part: RTU devices on serial ports (`protocol: modbus-rtu`), TCP servers
//! (`protocol: modbus-tcp`), and their registers. Times are in milliseconds.
//!
//! The Modbus rules (address space, the per-request count limits, unit ids, serial framing)
//! and the accepted range of every setting are written once here, as [`IntColumn`]s and
//! constants: the readers below check cells against them, and the driver (`modbus-master`:
//! its codec, read plan and link settings) uses the same ones for its typed values.

use std::str::FromStr;
use std::time::Duration;

use crate::cell::{IntColumn, RowReader};

/// Most registers one read may ask for (functions 3, 4; Modbus application protocol 6.3).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for (functions 1, 2).
pub const MAX_READ_BITS: u16 = 2000;
/// Most registers one write may carry (function 16).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Most coils one write may carry (function 15).
pub const MAX_WRITE_BITS: u16 = 1968;
/// Registers (or bits) in each of a device's four tables: addresses 0..=65535.
pub const ADDRESS_SPACE: u32 = 65_536;

/// `baudrate` of a serial line.
pub const BAUDRATE: IntColumn = int("baudrate", 300, 4_000_000, Some(9600));
/// `data_bits` per character.
pub const DATA_BITS: IntColumn = int("data_bits", 5, 8, Some(8));
/// `stop_bits` per character.
pub const STOP_BITS: IntColumn = int("stop_bits", 1, 2, Some(1));
/// `modbus_id` of a serial slave: 0 is broadcast (never answered), 248-255 are reserved.
pub const RTU_UNIT_ID: IntColumn = int("modbus_id", 1, 247, None);
/// `modbus_id` (unit identifier) of a TCP server: any byte (gateways route by it).
pub const TCP_UNIT_ID: IntColumn = int("modbus_id", 0, 255, Some(1));
/// `port` of a Modbus TCP server.
pub const TCP_PORT: IntColumn = int("port", 1, 65_535, Some(502));
/// `timeout_ms`: how long to wait for an answer.
pub const TIMEOUT_MS: IntColumn = int("timeout_ms", 10, 60_000, Some(1000));
/// `poll_interval_ms`: a device is read this often.
pub const POLL_INTERVAL_MS: IntColumn = int("poll_interval_ms", 10, 86_400_000, Some(1000));
/// `inter_frame_delay_ms` (absent: computed, see [`ModbusTiming::inter_frame_delay`]).
pub const INTER_FRAME_DELAY_MS: IntColumn = int("inter_frame_delay_ms", 0, 10_000, None);
/// `retries` of a request that timed out.
pub const RETRIES: IntColumn = int("retries", 0, 10, Some(2));
/// `command_max_age_ms`: a write older than this is refused (the same column of every
/// protocol).
pub const COMMAND_MAX_AGE_MS: IntColumn = crate::columns::COMMAND_MAX_AGE_MS;
/// `max_gap`: registers or bits read and thrown away between two merged signals.
pub const MAX_GAP: IntColumn = int("max_gap", 0, 100, Some(0));
/// `address`: the 0-based protocol address of a signal.
pub const ADDRESS: IntColumn = int("address", 0, 65_535, None);
/// `bit`: a bit of a register, 0 = least significant.
pub const BIT: IntColumn = int("bit", 0, 15, None);

/// The integer line settings of a Modbus RTU device (its timing: [`TIMING_SETTINGS`]).
pub const RTU_LINE_SETTINGS: &[IntColumn] = &[BAUDRATE, DATA_BITS, STOP_BITS, RTU_UNIT_ID];

/// The integer connection settings of a Modbus TCP device (its timing: [`TIMING_SETTINGS`]).
pub const TCP_LINK_SETTINGS: &[IntColumn] = &[TCP_PORT, TCP_UNIT_ID];

/// The integer timing settings of every Modbus device.
pub const TIMING_SETTINGS: &[IntColumn] = &[
    TIMEOUT_MS,
    POLL_INTERVAL_MS,
    INTER_FRAME_DELAY_MS,
    RETRIES,
    COMMAND_MAX_AGE_MS,
    MAX_GAP,
];

/// Every integer signal setting of Modbus (`function` is checked against [`Function`]).
pub const SIGNAL_SETTINGS: &[IntColumn] = &[ADDRESS, BIT];

const fn int(name: &'static str, min: i64, max: i64, default: Option<i64>) -> IntColumn {
    IntColumn {
        name,
        min,
        max,
        default,
    }
}

/// Device columns of Modbus RTU.
pub const RTU_DEVICE_COLUMNS: &[&str] = &[
    "serial_port",
    "baudrate",
    "parity",
    "data_bits",
    "stop_bits",
    "modbus_id",
    "timeout_ms",
    "poll_interval_ms",
    "inter_frame_delay_ms",
    "retries",
    "command_max_age_ms",
    "max_gap",
];

/// Device columns of Modbus TCP.
pub const TCP_DEVICE_COLUMNS: &[&str] = &[
    "ip",
    "port",
    "modbus_id",
    "timeout_ms",
    "poll_interval_ms",
    "inter_frame_delay_ms",
    "retries",
    "command_max_age_ms",
    "max_gap",
];

/// Signal columns of Modbus.
pub const SIGNAL_COLUMNS: &[&str] = &[
    "function",
    "address",
    "data_type",
    "bit",
    "byte_order",
    "word_order",
    "multiplier",
    "offset",
    "writable",
];

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl FromStr for Parity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "n" | "none" => Ok(Parity::None),
            "e" | "even" => Ok(Parity::Even),
            "o" | "odd" => Ok(Parity::Odd),
            _ => Err(()),
        }
    }
}

/// Timing shared by RTU and TCP devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModbusTiming {
    pub modbus_id: u8,
    /// How long to wait for an answer.
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// Silence kept between frames on the bus (None: on a serial line 3.5 character times at
    /// its baud rate and framing, at least 2 ms; on TCP none). Devices sharing a serial port
    /// share one bus; the largest delay among them is kept.
    pub inter_frame_delay: Option<Duration>,
    /// Retries of a request that timed out before the device counts as not answering.
    pub retries: u8,
    /// A write whose `out` value is older than this is refused.
    pub command_max_age: Duration,
    /// `max_gap`: registers (or bits) that may be read and thrown away between two signals
    /// merged into one read (default 0: only adjacent signals are merged, since many devices
    /// answer "illegal data address" for a read touching an unmapped register).
    pub max_gap: u16,
}

/// A slave on a serial port.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusRtuDevice {
    pub serial_port: String,
    pub baudrate: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    pub timing: ModbusTiming,
}

/// A Modbus TCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusTcpDevice {
    pub host: String,
    pub port: u16,
    pub timing: ModbusTiming,
}

/// The `function` column: the read (1-4) or write (5, 6, 15, 16) function of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    ReadCoils = 1,
    ReadDiscreteInputs = 2,
    ReadHoldingRegisters = 3,
    ReadInputRegisters = 4,
    WriteSingleCoil = 5,
    WriteSingleRegister = 6,
    WriteMultipleCoils = 15,
    WriteMultipleRegisters = 16,
}

impl Function {
    /// From the function code.
    pub fn from_code(n: i64) -> Option<Self> {
        Some(match n {
            1 => Function::ReadCoils,
            2 => Function::ReadDiscreteInputs,
            3 => Function::ReadHoldingRegisters,
            4 => Function::ReadInputRegisters,
            5 => Function::WriteSingleCoil,
            6 => Function::WriteSingleRegister,
            15 => Function::WriteMultipleCoils,
            16 => Function::WriteMultipleRegisters,
            _ => return None,
        })
    }
    /// The function code.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// Whether it reads bits (coils, discrete inputs) or writes coils.
    pub fn is_bit(self) -> bool {
        matches!(
            self,
            Function::ReadCoils
                | Function::ReadDiscreteInputs
                | Function::WriteSingleCoil
                | Function::WriteMultipleCoils
        )
    }
    /// Whether it is a write function (the signal is write-only).
    pub fn is_write(self) -> bool {
        self.code() >= 5
    }
}

/// The `data_type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
}

impl DataType {
    /// How many 16-bit registers it takes (1 for a bool).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

impl FromStr for DataType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bool" | "bit" | "boolean" => DataType::Bool,
            "u16" | "uint16" => DataType::U16,
            "i16" | "int16" => DataType::I16,
            "u32" | "uint32" => DataType::U32,
            "i32" | "int32" => DataType::I32,
            "f32" | "float" | "float32" => DataType::F32,
            "u64" | "uint64" => DataType::U64,
            "i64" | "int64" => DataType::I64,
            "f64" | "double" | "float64" => DataType::F64,
            _ => return Err(()),
        })
    }
}

/// Byte order inside a register, or word order across registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Big,
    Little,
}

impl FromStr for Endian {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "big" | "be" | "msb" | "high_first" | "abcd" => Ok(Endian::Big),
            "little" | "le" | "lsb" | "low_first" | "swapped" | "cdab" => Ok(Endian::Little),
            _ => Err(()),
        }
    }
}

/// A register or bit of a Modbus device.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusSignal {
    pub function: Function,
    /// The 0-based protocol address.
    pub address: u16,
    pub data_type: DataType,
    /// For a bool in a register (functions 3/4): the bit, 0 = least significant.
    pub bit: Option<u8>,
    pub byte_order: Endian,
    pub word_order: Endian,
    pub multiplier: f64,
    pub offset: f64,
    /// Values from `tag/<dev>/<sig>/out` are written (always true for functions 5/6/15/16;
    /// for 1 and 3 with `writable: 1` the matching write function is used).
    pub writable: bool,
}

fn timing(r: &mut RowReader<'_>, unit_id: &IntColumn) -> Option<ModbusTiming> {
    let modbus_id = r.int(unit_id);
    let timeout = r.int(&TIMEOUT_MS);
    let poll = r.int(&POLL_INTERVAL_MS);
    let ifd = r.opt(&INTER_FRAME_DELAY_MS);
    r.computed_default(
        INTER_FRAME_DELAY_MS.name,
        "serial: 3.5 characters, at least 2; TCP: 0",
    );
    let retries = r.int(&RETRIES);
    let max_age = r.int(&COMMAND_MAX_AGE_MS);
    let max_gap = r.int(&MAX_GAP);
    let ms = |v: i64| u64::try_from(v).ok().map(Duration::from_millis);
    Some(ModbusTiming {
        modbus_id: u8::try_from(modbus_id?).ok()?,
        timeout: ms(timeout?)?,
        poll_interval: ms(poll?)?,
        inter_frame_delay: match ifd {
            Ok(Some(v)) => Some(ms(v)?),
            Ok(None) => None,
            Err(()) => return None,
        },
        retries: u8::try_from(retries?).ok()?,
        command_max_age: ms(max_age?)?,
        max_gap: u16::try_from(max_gap?).ok()?,
    })
}

pub(crate) fn read_rtu_device(r: &mut RowReader<'_>) -> Option<ModbusRtuDevice> {
    let serial_port = r.req_string("serial_port").map(|s| s.trim().to_owned());
    let baudrate = r.int(&BAUDRATE);
    let parity = r.parse_or("parity", Parity::None, "N, E or O");
    let data_bits = r.int(&DATA_BITS);
    let stop_bits = r.int(&STOP_BITS);
    let timing = timing(r, &RTU_UNIT_ID);
    Some(ModbusRtuDevice {
        serial_port: serial_port?,
        baudrate: u32::try_from(baudrate?).ok()?,
        parity: parity?,
        data_bits: u8::try_from(data_bits?).ok()?,
        stop_bits: u8::try_from(stop_bits?).ok()?,
        timing: timing?,
    })
}

pub(crate) fn read_tcp_device(r: &mut RowReader<'_>) -> Option<ModbusTcpDevice> {
    let host = r.req_string("ip").map(|s| s.trim().to_owned());
    let port = r.int(&TCP_PORT);
    let timing = timing(r, &TCP_UNIT_ID);
    Some(ModbusTcpDevice {
        host: host?,
        port: u16::try_from(port?).ok()?,
        timing: timing?,
    })
}

pub(crate) fn read_signal(r: &mut RowReader<'_>) -> Option<ModbusSignal> {
    let function = match r.req_int("function", 1, 16) {
        Some(n) => match Function::from_code(n) {
            Some(f) => Some(f),
            None => {
                r.error(
                    Some("function"),
                    format!("{n} is not one of 1, 2, 3, 4, 5, 6, 15, 16"),
                );
                None
            }
        },
        None => None,
    };
    let address = r.int(&ADDRESS);
    let default_type = if function.is_some_and(Function::is_bit) {
        DataType::Bool
    } else {
        DataType::U16
    };
    let data_type = r.parse_or(
        "data_type",
        default_type,
        "bool, u16, i16, u32, i32, f32, u64, i64 or f64",
    );
    let bit = r.opt(&BIT);
    let byte_order = r.parse_or("byte_order", Endian::Big, "big or little");
    let word_order = r.parse_or("word_order", Endian::Big, "big or little");
    let multiplier = r.float_or("multiplier", 1.0);
    let offset = r.float_or("offset", 0.0);
    let writable = r.bool_or("writable", false);

    let (function, data_type, address) = (function?, data_type?, address?);
    if function.is_bit() && data_type != DataType::Bool {
        r.error(
            Some("data_type"),
            format!(
                "function {} reads bits: data_type must be bool",
                function.code()
            ),
        );
        return None;
    }
    let bit = match bit {
        Ok(b) => b.and_then(|b| u8::try_from(b).ok()),
        Err(()) => return None,
    };
    if bit.is_some() && (function.is_bit() || data_type != DataType::Bool) {
        r.error(
            Some("bit"),
            "bit applies only to a bool in a register (functions 3, 4, 6, 16)",
        );
        return None;
    }
    if address.saturating_add(i64::from(data_type.registers())) > i64::from(ADDRESS_SPACE) {
        r.error(Some("address"), "the value runs past register 65535");
        return None;
    }
    if function == Function::WriteSingleRegister && data_type.registers() > 1 {
        r.error(
            Some("function"),
            "function 6 writes one register; use 16 for multi-register types",
        );
        return None;
    }
    let writable = writable? || function.is_write();
    if writable
        && matches!(
            function,
            Function::ReadDiscreteInputs | Function::ReadInputRegisters
        )
    {
        r.error(
            Some("writable"),
            format!("function {} is read-only", function.code()),
        );
        return None;
    }
    Some(ModbusSignal {
        function,
        address: u16::try_from(address).ok()?,
        data_type,
        bit,
        byte_order: byte_order?,
        word_order: word_order?,
        multiplier: multiplier?,
        offset: offset?,
        writable,
    })
}

#[cfg(test)]
mod tests {
    use crate::{validate, DeviceKind, RawConfig};

    #[test]
    fn timing_columns_and_defaults() {
        let raw = RawConfig::parse(
            r#"{"devices": [
                {"name": "a", "device_alias": "a", "protocol": "modbus-tcp", "ip": "127.0.0.1", "max_gap": 5},
                {"name": "b", "device_alias": "b", "protocol": "modbus-rtu", "serial_port": "/dev/ttyS1",
                 "modbus_id": 3, "inter_frame_delay_ms": 4, "max_gap": 101}
            ], "signals": []}"#,
        )
        .unwrap();
        let v = validate(&raw);
        let DeviceKind::ModbusTcp(t) = &v.config.devices[0].kind else {
            panic!()
        };
        assert_eq!(t.timing.max_gap, 5);
        assert_eq!(t.timing.inter_frame_delay, None);
        assert_eq!(t.timing.modbus_id, 1);
        assert_eq!(t.port, 502);
        // max_gap above 100 is an error naming the column.
        assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
        assert!(
            v.errors[0].to_string().contains("max_gap"),
            "{}",
            v.errors[0]
        );
    }
}
