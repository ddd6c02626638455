//! The thin I/O layer: a serial port or a TCP connection, and one request/answer
//! transaction at a time on it, using the sans-IO framing of [`crate::rtu`] and
//! [`crate::tcp`].

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

use config::modbus::{ModbusRtuDevice, Parity, BAUDRATE, DATA_BITS, STOP_BITS};

use crate::pdu::{Answer, PduError, Request};
use crate::{rtu, tcp};

/// Where a bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An RS-485 (or any serial) port.
    Serial(SerialSettings),
    /// A Modbus TCP server (or a TCP-to-RTU gateway).
    Tcp { host: String, port: u16 },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Serial(s) => f.write_str(&s.path),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Serial line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: String,
    pub baudrate: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

/// A device setting the driver cannot run with: its column and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{column}: {message}")]
pub struct SettingError {
    pub column: &'static str,
    pub message: String,
}

impl SettingError {
    pub(crate) fn out_of_range(c: &config::IntColumn, value: impl std::fmt::Display) -> Self {
        Self {
            column: c.name,
            message: format!("{value} is out of range {}..={}", c.min, c.max),
        }
    }
}

impl SerialSettings {
    /// The line settings of an RTU device, checked against the Modbus rules and what the
    /// serial driver can open.
    pub fn of(d: &ModbusRtuDevice) -> Result<Self, SettingError> {
        let s = Self {
            path: d.serial_port.clone(),
            baudrate: d.baudrate,
            parity: d.parity,
            data_bits: d.data_bits,
            stop_bits: d.stop_bits,
        };
        if !BAUDRATE.accepts(s.baudrate) {
            return Err(SettingError::out_of_range(&BAUDRATE, s.baudrate));
        }
        if s.serial_data_bits().is_none() {
            return Err(SettingError::out_of_range(&DATA_BITS, s.data_bits));
        }
        if s.serial_stop_bits().is_none() {
            return Err(SettingError::out_of_range(&STOP_BITS, s.stop_bits));
        }
        Ok(s)
    }

    /// The serial driver's data bits (None: not one it has, or outside the Modbus rules).
    fn serial_data_bits(&self) -> Option<tokio_serial::DataBits> {
        if !DATA_BITS.accepts(self.data_bits) {
            return None;
        }
        match self.data_bits {
            5 => Some(tokio_serial::DataBits::Five),
            6 => Some(tokio_serial::DataBits::Six),
            7 => Some(tokio_serial::DataBits::Seven),
            8 => Some(tokio_serial::DataBits::Eight),
            _ => None,
        }
    }

    /// The serial driver's stop bits (None: not one it has, or outside the Modbus rules).
    fn serial_stop_bits(&self) -> Option<tokio_serial::StopBits> {
        if !STOP_BITS.accepts(self.stop_bits) {
            return None;
        }
        match self.stop_bits {
            1 => Some(tokio_serial::StopBits::One),
            2 => Some(tokio_serial::StopBits::Two),
            _ => None,
        }
    }

    /// Bits on the wire per character: start + data + parity + stop.
    pub fn bits_per_char(&self) -> u32 {
        1u32.saturating_add(u32::from(self.data_bits))
            .saturating_add(u32::from(self.parity != Parity::None))
            .saturating_add(u32::from(self.stop_bits))
    }

    /// The default inter-frame silence: 3.5 character times, at least 2 ms (the spec fixes
    /// 1.75 ms above 19200 baud; 2 ms leaves room for USB adapters and OS latency).
    pub fn default_inter_frame_delay(&self) -> Duration {
        let micros = u64::from(self.bits_per_char())
            .saturating_mul(3_500_000)
            .checked_div(u64::from(self.baudrate))
            .unwrap_or(0);
        Duration::from_micros(micros).max(Duration::from_millis(2))
    }
}

/// Why a transaction did not bring an answer.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    /// No (valid) answer within the timeout: the device is not answering.
    #[error("no answer within the timeout")]
    Timeout,
    /// The request could not be encoded (a bug or an impossible config).
    #[error("request not encodable: {0}")]
    Encode(#[from] PduError),
    /// The port or connection failed: reopen it.
    #[error("link failed: {0}")]
    Io(#[from] io::Error),
    /// The TCP stream is corrupt: reconnect.
    #[error("stream corrupt: {0}")]
    Corrupt(&'static str),
}

impl TransactError {
    /// Whether the link must be closed and reopened (never for an answer or a timeout).
    pub fn is_link_failure(&self) -> bool {
        matches!(self, TransactError::Io(_) | TransactError::Corrupt(_))
    }
}

enum Io {
    Serial(tokio_serial::SerialStream),
    Tcp(TcpStream),
}

/// Warn-level "dropped" lines per bus per [`DROP_LOG_WINDOW`]; past that they go to debug
/// and a count is logged when the window ends (a noisy line must not flood the log).
pub const DROP_LOG_BURST: u32 = 10;
/// See [`DROP_LOG_BURST`].
pub const DROP_LOG_WINDOW: Duration = Duration::from_secs(60);

struct DropLog {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl DropLog {
    /// Whether this event may be logged at warn level.
    fn allow(&mut self, bus: &str) -> bool {
        let now = Instant::now();
        if now.saturating_duration_since(self.window_start) >= DROP_LOG_WINDOW {
            if self.suppressed > 0 {
                tracing::warn!(
                    bus,
                    suppressed = self.suppressed,
                    "more dropped-bytes events were logged at debug level only"
                );
            }
            self.window_start = now;
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < DROP_LOG_BURST {
            self.logged = self.logged.saturating_add(1);
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }
}

/// Logs a dropped-bytes event at warn, or at debug past the burst allowance.
macro_rules! dropped {
    ($link:ident, $($arg:tt)+) => {
        if $link.drop_log.allow(&$link.name) {
            tracing::warn!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

/// An open serial port or TCP connection, owned by exactly one bus task.
pub struct Link {
    drop_log: DropLog,
    io: Io,
    rx: Vec<u8>,
    last_activity: Instant,
    inter_frame: Duration,
    next_tid: u16,
    name: String,
}

/// The most bytes kept while looking for an RTU answer: an answer is at most 256 bytes, so
/// anything older than this in the buffer cannot start one.
const RTU_BUFFER_CAP: usize = 2 * rtu::MAX_FRAME_LEN;
/// The most stale reads drained before a request (a babbling line cannot hold the bus).
const MAX_DRAIN_READS: usize = 16;

impl Link {
    /// Opens the port or connects, within `timeout`.
    pub async fn open(
        endpoint: &Endpoint,
        inter_frame: Duration,
        timeout: Duration,
    ) -> io::Result<Link> {
        let io = match endpoint {
            Endpoint::Serial(s) => {
                let invalid = |what: &str| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("unsupported {what}"))
                };
                let builder = tokio_serial::new(s.path.as_str(), s.baudrate)
                    .data_bits(s.serial_data_bits().ok_or_else(|| invalid("data_bits"))?)
                    .parity(match s.parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .stop_bits(s.serial_stop_bits().ok_or_else(|| invalid("stop_bits"))?);
                Io::Serial(builder.open_native_async().map_err(io::Error::from)?)
            }
            Endpoint::Tcp { host, port } => {
                let stream =
                    tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port)))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
                        })??;
                stream.set_nodelay(true)?;
                Io::Tcp(stream)
            }
        };
        Ok(Link {
            drop_log: DropLog {
                window_start: Instant::now(),
                logged: 0,
                suppressed: 0,
            },
            io,
            rx: Vec::with_capacity(RTU_BUFFER_CAP),
            last_activity: Instant::now(),
            inter_frame,
            next_tid: 1,
            name: endpoint.to_string(),
        })
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Serial(s) => s.read(buf).await,
            Io::Tcp(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.io {
            Io::Serial(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Io::Tcp(s) => s.write_all(buf).await,
        }
    }

    fn is_serial(&self) -> bool {
        matches!(self.io, Io::Serial(_))
    }

    /// Reads whatever is already waiting (a late answer, line noise) without waiting.
    async fn drain_stale(&mut self) -> io::Result<Vec<u8>> {
        let mut stale = Vec::new();
        let mut chunk = [0u8; 256];
        for _ in 0..MAX_DRAIN_READS {
            match tokio::time::timeout(Duration::ZERO, self.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                Ok(Ok(n)) => stale.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        Ok(stale)
    }

    /// Sends `request` to `unit` and waits up to `timeout` for its answer. Bytes that are not
    /// the answer are dropped with a log line; a Modbus exception is an answer
    /// (`Ok(Err(code))`). `device` names the device in log lines.
    pub async fn transact(
        &mut self,
        unit: u8,
        request: &Request,
        timeout: Duration,
        device: &str,
    ) -> Result<Answer, TransactError> {
        // Keep the bus silent for the inter-frame delay since the last frame.
        if let Some(t) = self.last_activity.checked_add(self.inter_frame) {
            tokio::time::sleep_until(t).await;
        }
        let serial = self.is_serial();
        let (frame, tid) = if serial {
            let stale = self.drain_stale().await?;
            let mut dropped = std::mem::take(&mut self.rx);
            dropped.extend_from_slice(&stale);
            if !dropped.is_empty() {
                dropped!(self, bus = %self.name, device, bytes = dropped.len(), data = %rtu::hex(&dropped), "dropped stale bytes before a request");
            }
            (rtu::encode_request(unit, request)?, 0)
        } else {
            let tid = self.next_tid;
            self.next_tid = tid.wrapping_add(1);
            (tcp::encode_request(tid, unit, request)?, tid)
        };
        tracing::trace!(bus = %self.name, device, tx = %rtu::hex(&frame), "request");
        let start = Instant::now();
        let deadline = start.checked_add(timeout).unwrap_or(start);
        match tokio::time::timeout_at(deadline, self.write_all(&frame)).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out").into()),
        }
        self.last_activity = Instant::now();
        let mut chunk = [0u8; 260];
        loop {
            if serial {
                if let rtu::Scan::Frame { start, len, answer } = rtu::scan(&self.rx, unit, request)
                {
                    let end = start.saturating_add(len);
                    if start > 0 {
                        let before = self.rx.get(..start).unwrap_or_default();
                        dropped!(self, bus = %self.name, device, reason = rtu::describe_dropped(before, unit, request), bytes = start, data = %rtu::hex(before), "dropped bytes before the answer");
                    }
                    if let Some(after) = self.rx.get(end..).filter(|a| !a.is_empty()) {
                        dropped!(self, bus = %self.name, device, bytes = after.len(), data = %rtu::hex(after), "dropped bytes after the answer");
                    }
                    self.rx.clear();
                    self.last_activity = Instant::now();
                    return Ok(answer);
                }
                if self.rx.len() > RTU_BUFFER_CAP {
                    let cut = self.rx.len().saturating_sub(rtu::MAX_FRAME_LEN);
                    let dropped: Vec<u8> = self.rx.drain(..cut).collect();
                    dropped!(self, bus = %self.name, device, reason = "garbage", bytes = dropped.len(), data = %rtu::hex(&dropped), "dropped bytes");
                }
            } else {
                loop {
                    match tcp::scan(&self.rx, tid, unit, request) {
                        tcp::Scan::NeedMore => break,
                        tcp::Scan::Frame { len, answer } => {
                            self.rx.drain(..len.min(self.rx.len()));
                            self.last_activity = Instant::now();
                            return Ok(answer);
                        }
                        tcp::Scan::Skip { len, reason } => {
                            let dropped: Vec<u8> =
                                self.rx.drain(..len.min(self.rx.len())).collect();
                            dropped!(self, bus = %self.name, device, reason, data = %rtu::hex(&dropped), "dropped a frame");
                        }
                        tcp::Scan::Corrupt(reason) => {
                            tracing::warn!(bus = %self.name, device, reason, data = %rtu::hex(&self.rx), "TCP stream corrupt");
                            return Err(TransactError::Corrupt(reason));
                        }
                    }
                }
            }
            match tokio::time::timeout_at(deadline, self.read(&mut chunk)).await {
                Err(_) => {
                    if serial && !self.rx.is_empty() {
                        let reason = rtu::describe_dropped(&self.rx, unit, request);
                        dropped!(self, bus = %self.name, device, reason, bytes = self.rx.len(), data = %rtu::hex(&self.rx), "dropped bytes: no valid answer");
                        self.rx.clear();
                    }
                    self.last_activity = Instant::now();
                    return Err(TransactError::Timeout);
                }
                Ok(Ok(0)) => {
                    return Err(
                        io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed").into(),
                    )
                }
                Ok(Ok(n)) => {
                    let got = chunk.get(..n).unwrap_or_default();
                    tracing::trace!(bus = %self.name, device, rx = %rtu::hex(got), "received");
                    self.rx.extend_from_slice(got);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(baudrate: u32, parity: Parity, stop_bits: u8) -> SerialSettings {
        SerialSettings {
            path: "/dev/null".into(),
            baudrate,
            parity,
            data_bits: 8,
            stop_bits,
        }
    }

    #[test]
    fn default_inter_frame_delay() {
        // 9600 8E1: 11 bits a character, 3.5 characters = 4.010 ms.
        assert_eq!(
            line(9600, Parity::Even, 1).default_inter_frame_delay(),
            Duration::from_micros(4010)
        );
        // 9600 8N1: 10 bits = 3.645 ms.
        assert_eq!(
            line(9600, Parity::None, 1).default_inter_frame_delay(),
            Duration::from_micros(3645)
        );
        // Fast lines are held at the 2 ms floor.
        assert_eq!(
            line(115_200, Parity::None, 1).default_inter_frame_delay(),
            Duration::from_millis(2)
        );
        assert_eq!(line(300, Parity::Odd, 2).bits_per_char(), 12);
    }
}
