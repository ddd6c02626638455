//! One task per bus (a serial port, or a TCP server address): it owns the link, polls its
//! devices in turn and executes the queued writes between transactions, so nothing is ever
//! interleaved on the wire.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use config::modbus::{Function, ModbusSignal, ModbusTiming};
use tagbus::results::ResultWriterHandle;
use tagbus::{Alias, Flag, Flags, TagKey, TagValue, TagWriterHandle, Value};
use tagbus::{CommandOutcome, CommandResult};

use crate::data::{self, EncodeError};
use crate::link::{Endpoint, Link, TransactError};
use crate::pdu::{Request, Response};
use crate::plan::{self, Block};

/// An unchanged value is written again after this long (a heartbeat: consumers see the
/// value is alive, and a consumer that missed the change catches up).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Writes waiting for the bus, per bus; one more is refused (`rejected`, `queue_full`).
pub const MAX_PENDING_COMMANDS: usize = 32;
/// The slowest retry of a device that stopped answering.
pub const MAX_DEVICE_BACKOFF: Duration = Duration::from_secs(60);
/// The first retry of a device that stopped answering (or its poll interval, if longer).
pub const MIN_DEVICE_BACKOFF: Duration = Duration::from_secs(1);
/// Reopen/reconnect backoff of the port or connection.
const LINK_BACKOFF_MIN: Duration = Duration::from_millis(500);
const LINK_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A signal of a device and what was last written for it.
#[derive(Debug)]
pub struct SignalState {
    pub alias: Alias,
    pub signal: ModbusSignal,
    in_key: TagKey,
    rin_key: TagKey,
    rout_key: TagKey,
    last: Option<(TagValue, TagValue)>,
    last_write: Option<Instant>,
    /// The signal's `log` column: each value written is logged at info level.
    pub log: bool,
}

impl SignalState {
    /// A signal of `device`.
    pub fn new(device: &Alias, alias: Alias, signal: ModbusSignal) -> Self {
        let in_key = TagKey::new(device.clone(), alias.clone(), tagbus::Direction::In);
        Self {
            rin_key: in_key.with_direction(tagbus::Direction::RawIn),
            rout_key: in_key.with_direction(tagbus::Direction::RawOut),
            in_key,
            alias,
            signal,
            last: None,
            last_write: None,
            log: false,
        }
    }
}

/// A device on a bus, its read plan and its health.
#[derive(Debug)]
pub struct DeviceState {
    pub alias: Alias,
    pub timing: ModbusTiming,
    pub signals: Vec<SignalState>,
    blocks: Vec<Block>,
    /// The exception each block's last read got (logged at warn only when it changes).
    block_exceptions: Vec<Option<crate::pdu::ExceptionCode>>,
    next_due: Instant,
    offline: bool,
    retry_at: Instant,
    backoff: backoff::Backoff,
    /// Completed poll cycles (every block answered, possibly with an exception).
    pub polls: u64,
}

impl DeviceState {
    /// A device with its signals; reads are planned here.
    pub fn new(
        alias: Alias,
        timing: ModbusTiming,
        signals: Vec<SignalState>,
        max_gap: u16,
    ) -> Self {
        let defs: Vec<ModbusSignal> = signals.iter().map(|s| s.signal.clone()).collect();
        let now = Instant::now();
        let blocks = plan::plan(&defs, max_gap);
        Self {
            block_exceptions: vec![None; blocks.len()],
            blocks,
            backoff: backoff::Backoff::new(
                timing.poll_interval.max(MIN_DEVICE_BACKOFF),
                MAX_DEVICE_BACKOFF.max(timing.poll_interval),
            ),
            alias,
            timing,
            signals,
            next_due: now,
            offline: false,
            retry_at: now,
            polls: 0,
        }
    }

    /// The read requests of one poll cycle.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    fn due(&self) -> Option<Instant> {
        if self.blocks.is_empty() {
            None
        } else if self.offline {
            Some(self.retry_at)
        } else {
            Some(self.next_due)
        }
    }
}

/// A write to execute: the `out` value of one signal.
#[derive(Debug, Clone)]
pub struct Command {
    pub device: usize,
    pub signal: usize,
    pub key: TagKey,
    pub value: TagValue,
}

/// A bus: where it is, the silence kept between frames, its devices.
#[derive(Debug)]
pub struct Bus {
    pub endpoint: Endpoint,
    pub inter_frame: Duration,
    pub devices: Vec<DeviceState>,
}

fn gt() -> Flags {
    Flags::empty().with(Flag::GT)
}

fn with_flag(flags: &Flags, code: &str) -> Flags {
    flags.clone().with(code)
}

/// What the bus task writes to.
#[derive(Clone)]
pub struct Outputs {
    pub values: TagWriterHandle,
    pub results: ResultWriterHandle,
}

impl Outputs {
    async fn write(&self, key: &TagKey, value: TagValue) {
        if self.values.write(key.clone(), value).await.is_err() {
            tracing::error!(tag = %key, "the tag writer has stopped");
        }
    }

    async fn report(&self, cmd: &Command, outcome: CommandOutcome, detail: Option<&str>) {
        let mut r = CommandResult::now(outcome, cmd.value.timestamp_ms);
        if let Some(d) = detail {
            r = r.with_detail(d);
        }
        if self.results.report(&cmd.key, r).await.is_err() {
            tracing::error!(tag = %cmd.key, "the result writer has stopped");
        }
    }
}

/// Writes a fresh value (and its raw twin) when it changed or the refresh is due.
async fn publish(s: &mut SignalState, raw: Value, t_ms: u64, now: Instant, out: &Outputs) {
    let value = TagValue {
        value: data::scale(raw, &s.signal),
        timestamp_ms: t_ms,
        flags: gt(),
    };
    let raw = TagValue {
        value: raw,
        timestamp_ms: t_ms,
        flags: gt(),
    };
    let changed = match &s.last {
        Some((last, _)) => last.value != value.value || last.flags != value.flags,
        None => true,
    };
    let refresh = s
        .last_write
        .is_none_or(|t| now.saturating_duration_since(t) >= REFRESH_INTERVAL);
    if changed || refresh {
        if s.log {
            tracing::info!(tag = %s.in_key, value = %value, raw = %raw.value, "value");
        }
        out.write(&s.in_key, value.clone()).await;
        out.write(&s.rin_key, raw.clone()).await;
        s.last_write = Some(now);
    }
    s.last = Some((value, raw));
}

/// Writes every signal's last value (and raw twin) again as it was, time and flags kept:
/// after Redis restarted empty ([`TagWriterHandle::recoveries`]) the tag bus shows what the
/// driver knows again at once, a link-loss mark included, not after [`REFRESH_INTERVAL`].
async fn restore(bus: &mut Bus, out: &Outputs) {
    let mut n = 0usize;
    for s in bus.devices.iter_mut().flat_map(|d| d.signals.iter_mut()) {
        if let Some((value, raw)) = &s.last {
            out.write(&s.in_key, value.clone()).await;
            out.write(&s.rin_key, raw.clone()).await;
            n = n.saturating_add(1);
        }
    }
    if n > 0 {
        tracing::info!(bus = %bus.endpoint, signals = n, "the tag bus is back: current values written again");
    }
}

/// Re-writes the last value with `code` added, unless it already has it. [`Flag::NOLINK`] is
/// the gateway's link-loss mark ([`TagValue::marked_no_link`]: `nt nolink`, the timestamp
/// kept: it is the time the value was read); `iv` after an exception is stamped `t_ms` (the
/// time of the answer). A signal never read gets `nan`.
async fn mark(s: &mut SignalState, code: &str, t_ms: u64, now: Instant, out: &Outputs) {
    if s.last.as_ref().is_some_and(|(v, _)| v.flags.contains(code)) {
        return;
    }
    let add = |v: TagValue| {
        if code == Flag::NOLINK {
            v.marked_no_link()
        } else {
            TagValue {
                timestamp_ms: t_ms,
                flags: with_flag(&v.flags, code),
                ..v
            }
        }
    };
    let (value, raw) = match s.last.take() {
        Some((v, r)) => (add(v), add(r)),
        None => {
            let v = add(TagValue {
                value: Value::Float(f64::NAN),
                timestamp_ms: t_ms,
                flags: gt(),
            });
            (v.clone(), v)
        }
    };
    if s.log {
        tracing::info!(tag = %s.in_key, value = %value, "value");
    }
    out.write(&s.in_key, value.clone()).await;
    out.write(&s.rin_key, raw.clone()).await;
    s.last_write = Some(now);
    s.last = Some((value, raw));
}

async fn mark_device(d: &mut DeviceState, code: &str, out: &Outputs) {
    let (t, now) = (tagbus::now_ms(), Instant::now());
    for s in &mut d.signals {
        if !s.signal.function.is_write() {
            mark(s, code, t, now, out).await;
        }
    }
}

fn go_offline(d: &mut DeviceState) {
    let delay = d.backoff.next_delay();
    let now = Instant::now();
    if !d.offline {
        tracing::warn!(device = %d.alias, retry_in_ms = delay.as_millis() as u64, "device is not answering; its tags are nt, polls backed off");
    } else {
        tracing::debug!(device = %d.alias, retry_in_ms = delay.as_millis() as u64, "device still not answering");
    }
    d.offline = true;
    d.retry_at = now.checked_add(delay).unwrap_or(now);
}

fn go_online(d: &mut DeviceState) {
    if d.offline {
        tracing::info!(device = %d.alias, "device answers again");
        d.offline = false;
        d.next_due = Instant::now();
    }
    d.backoff.reset();
}

/// A transaction with the device's retries on timeout (one try only while it is backed off).
async fn transact_retrying(
    link: &mut Link,
    d: &DeviceState,
    request: &Request,
) -> Result<crate::pdu::Answer, TransactError> {
    let tries = if d.offline {
        1
    } else {
        u32::from(d.timing.retries).saturating_add(1)
    };
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        match link
            .transact(
                d.timing.modbus_id,
                request,
                d.timing.timeout,
                d.alias.as_str(),
            )
            .await
        {
            Err(TransactError::Timeout) if attempt < tries => {
                tracing::debug!(device = %d.alias, attempt, "no answer; retrying");
            }
            other => return other,
        }
    }
}

/// One poll cycle of a device. `Err` only when the link failed.
async fn poll_device(
    d: &mut DeviceState,
    link: &mut Link,
    due: Instant,
    out: &Outputs,
) -> Result<(), TransactError> {
    for bi in 0..d.blocks.len() {
        let Some(block) = d.blocks.get(bi) else { break };
        let request = block.request();
        let result = transact_retrying(link, d, &request).await;
        let (t_ms, now) = (tagbus::now_ms(), Instant::now());
        match result {
            Ok(Ok(response)) => {
                go_online(d);
                if let Some(slot) = d.block_exceptions.get_mut(bi) {
                    if slot.take().is_some() {
                        tracing::info!(device = %d.alias, function = request.function_code(), address = block_address(d, bi), "read answers again");
                    }
                }
                let Some(block) = d.blocks.get(bi) else { break };
                let members = block.members.clone();
                let base = block.address;
                for i in members {
                    let Some(s) = d.signals.get_mut(i) else {
                        continue;
                    };
                    let offset = usize::from(s.signal.address.saturating_sub(base));
                    let raw = match &response {
                        Response::Bits(bits) => bits.get(offset).map(|b| Value::from(*b)),
                        Response::Registers(regs) => regs
                            .get(offset..)
                            .and_then(|r| data::decode_registers(r, &s.signal)),
                        Response::Written => None,
                    };
                    match raw {
                        Some(raw) => publish(s, raw, t_ms, now, out).await,
                        None => mark(s, Flag::IV, t_ms, now, out).await,
                    }
                }
            }
            Ok(Err(exception)) => {
                // An answer: the device is there; the signals of this read are invalid.
                go_online(d);
                let address = block_address(d, bi);
                let previous = d
                    .block_exceptions
                    .get_mut(bi)
                    .and_then(|slot| slot.replace(exception));
                if previous == Some(exception) {
                    tracing::debug!(device = %d.alias, function = request.function_code(), address, %exception, "exception response");
                } else {
                    tracing::warn!(device = %d.alias, function = request.function_code(), address, %exception, "exception response; the signals of this read are iv");
                }
                let members = d
                    .blocks
                    .get(bi)
                    .map(|b| b.members.clone())
                    .unwrap_or_default();
                for i in members {
                    if let Some(s) = d.signals.get_mut(i) {
                        mark(s, Flag::IV, t_ms, now, out).await;
                    }
                }
            }
            Err(TransactError::Timeout) => {
                go_offline(d);
                mark_device(d, Flag::NOLINK, out).await;
                return Ok(());
            }
            Err(TransactError::Encode(e)) => {
                tracing::error!(device = %d.alias, error = %e, "cannot encode a read request");
            }
            Err(e) => return Err(e),
        }
    }
    d.polls = d.polls.saturating_add(1);
    let now = Instant::now();
    let next = due.checked_add(d.timing.poll_interval).unwrap_or(now);
    d.next_due = if next < now { now } else { next };
    Ok(())
}

fn block_address(d: &DeviceState, bi: usize) -> u16 {
    d.blocks.get(bi).map(|b| b.address).unwrap_or(0)
}

/// The write request for a value of a signal, and the raw value it puts on the wire.
pub fn write_request(s: &ModbusSignal, value: Value) -> Result<(Request, Value), EncodeError> {
    let raw = data::unscale(value, s)?;
    let address = s.address;
    Ok(match s.function {
        Function::ReadCoils | Function::WriteSingleCoil => {
            let on = raw.as_f64() != 0.0;
            (
                Request::WriteSingleCoil { address, value: on },
                Value::from(on),
            )
        }
        Function::WriteMultipleCoils => {
            let on = raw.as_f64() != 0.0;
            (
                Request::WriteMultipleCoils {
                    address,
                    values: vec![on],
                },
                Value::from(on),
            )
        }
        _ => {
            let regs = data::encode_registers(raw, s)?;
            let sent = data::decode_registers(&regs, s).unwrap_or(raw);
            let request = match (s.function, regs.as_slice()) {
                (Function::WriteMultipleRegisters, _) => Request::WriteMultipleRegisters {
                    address,
                    values: regs,
                },
                (_, [one]) => Request::WriteSingleRegister {
                    address,
                    value: *one,
                },
                _ => Request::WriteMultipleRegisters {
                    address,
                    values: regs,
                },
            };
            (request, sent)
        }
    })
}

/// Executes one write. `Err` only when the link failed.
async fn execute(
    bus: &mut Bus,
    link: &mut Link,
    cmd: &Command,
    out: &Outputs,
) -> Result<(), TransactError> {
    let Some(d) = bus.devices.get_mut(cmd.device) else {
        return Ok(());
    };
    let Some(s) = d.signals.get(cmd.signal) else {
        return Ok(());
    };
    let age = tagbus::now_ms().saturating_sub(cmd.value.timestamp_ms);
    if u128::from(age) > d.timing.command_max_age.as_millis() {
        tracing::warn!(tag = %cmd.key, age_ms = age, "command refused: older than command_max_age_ms");
        out.report(cmd, CommandOutcome::TooOld, None).await;
        return Ok(());
    }
    if d.offline {
        out.report(cmd, CommandOutcome::LinkDown, Some("device_not_answering"))
            .await;
        return Ok(());
    }
    let (request, sent) = match write_request(&s.signal, cmd.value.value) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(tag = %cmd.key, value = %cmd.value.value, error = %e, "command refused");
            out.report(cmd, CommandOutcome::Rejected, Some(e.code()))
                .await;
            return Ok(());
        }
    };
    let rout_key = s.rout_key.clone();
    match transact_retrying(link, d, &request).await {
        Ok(Ok(_)) => {
            go_online(d);
            out.write(&rout_key, TagValue::new(sent, cmd.value.timestamp_ms))
                .await;
            out.report(cmd, CommandOutcome::Confirmed, None).await;
            // Read the device again soon, so `in` shows what the write did.
            d.next_due = Instant::now();
            Ok(())
        }
        Ok(Err(exception)) => {
            go_online(d);
            tracing::warn!(tag = %cmd.key, %exception, "write refused by the device");
            out.report(cmd, CommandOutcome::Rejected, Some(&exception.name()))
                .await;
            Ok(())
        }
        Err(TransactError::Timeout) => {
            out.report(cmd, CommandOutcome::Timeout, None).await;
            go_offline(d);
            mark_device(d, Flag::NOLINK, out).await;
            Ok(())
        }
        Err(TransactError::Encode(e)) => {
            tracing::warn!(tag = %cmd.key, error = %e, "command not encodable");
            out.report(cmd, CommandOutcome::Rejected, Some("not_encodable"))
                .await;
            Ok(())
        }
        Err(e) => {
            out.report(cmd, CommandOutcome::LinkDown, None).await;
            Err(e)
        }
    }
}

async fn enqueue(pending: &mut VecDeque<Command>, cmd: Command, out: &Outputs) {
    if pending.len() >= MAX_PENDING_COMMANDS {
        tracing::warn!(tag = %cmd.key, "command refused: the bus's write queue is full");
        out.report(&cmd, CommandOutcome::Rejected, Some("queue_full"))
            .await;
    } else {
        pending.push_back(cmd);
    }
}

async fn link_lost(bus: &mut Bus, out: &Outputs) {
    for d in &mut bus.devices {
        mark_device(d, Flag::NOLINK, out).await;
    }
}

/// The next command; never resolves once the channel has closed (a bus without writable
/// signals has no senders at all, and it polls on).
async fn next_command(rx: &mut Option<mpsc::Receiver<Command>>) -> Command {
    if let Some(r) = rx.as_mut() {
        if let Some(cmd) = r.recv().await {
            return cmd;
        }
    }
    *rx = None;
    std::future::pending().await
}

/// Runs a bus for as long as the runtime runs: opens the link (with backoff), polls each device when
/// it is due (a device that stops answering is backed off on its own), and executes queued
/// writes between transactions.
pub async fn run_bus(mut bus: Bus, out: Outputs, commands: mpsc::Receiver<Command>) {
    let mut commands = Some(commands);
    let mut recoveries = out.values.recoveries();
    let mut link: Option<Link> = None;
    let mut link_backoff = backoff::Backoff::new(LINK_BACKOFF_MIN, LINK_BACKOFF_MAX);
    let mut pending: VecDeque<Command> = VecDeque::new();
    let connect_timeout = bus
        .devices
        .iter()
        .map(|d| d.timing.timeout)
        .max()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    loop {
        if recoveries.has_changed().unwrap_or(false) {
            recoveries.borrow_and_update();
            restore(&mut bus, &out).await;
        }
        let Some(l) = link.as_mut() else {
            match Link::open(&bus.endpoint, bus.inter_frame, connect_timeout).await {
                Ok(l) => {
                    tracing::info!(bus = %bus.endpoint, "bus opened");
                    link = Some(l);
                    link_backoff.reset();
                }
                Err(e) => {
                    let delay = link_backoff.next_delay();
                    tracing::warn!(bus = %bus.endpoint, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot open the bus");
                    link_lost(&mut bus, &out).await;
                    while let Some(cmd) = pending.pop_front() {
                        out.report(&cmd, CommandOutcome::LinkDown, None).await;
                    }
                    let until = Instant::now()
                        .checked_add(delay)
                        .unwrap_or_else(Instant::now);
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep_until(until) => break,
                            cmd = next_command(&mut commands) => out.report(&cmd, CommandOutcome::LinkDown, None).await,
                        }
                    }
                }
            }
            continue;
        };
        while let Some(cmd) = commands.as_mut().and_then(|c| c.try_recv().ok()) {
            enqueue(&mut pending, cmd, &out).await;
        }
        if let Some(cmd) = pending.pop_front() {
            if let Err(e) = execute(&mut bus, l, &cmd, &out).await {
                tracing::warn!(bus = %bus.endpoint, error = %e, "bus failed; reopening");
                link = None;
                link_lost(&mut bus, &out).await;
            }
            continue;
        }
        let next = bus
            .devices
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.due().map(|t| (i, t)))
            .min_by_key(|(_, t)| *t);
        let (index, due) = match next {
            Some(n) => n,
            None => (
                usize::MAX,
                Instant::now()
                    .checked_add(Duration::from_secs(3600))
                    .unwrap_or_else(Instant::now),
            ),
        };
        tokio::select! {
            biased;
            cmd = next_command(&mut commands) => enqueue(&mut pending, cmd, &out).await,
            () = tokio::time::sleep_until(due) => {
                let Some(d) = bus.devices.get_mut(index) else { continue };
                if let Err(e) = poll_device(d, l, due, &out).await {
                    tracing::warn!(bus = %bus.endpoint, error = %e, "bus failed; reopening");
                    link = None;
                    link_lost(&mut bus, &out).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::modbus::{DataType, Endian};

    fn sig(function: Function, data_type: DataType) -> ModbusSignal {
        ModbusSignal {
            function,
            address: 7,
            data_type,
            bit: None,
            byte_order: Endian::Big,
            word_order: Endian::Little,
            multiplier: 1.0,
            offset: 0.0,
            writable: true,
        }
    }

    #[test]
    fn write_requests_per_function_and_type() {
        use DataType::*;
        use Function::*;
        let w = |s: &ModbusSignal, v: Value| write_request(s, v).unwrap();
        assert_eq!(
            w(&sig(ReadCoils, Bool), Value::Int(1)),
            (
                Request::WriteSingleCoil {
                    address: 7,
                    value: true
                },
                Value::Int(1)
            )
        );
        assert_eq!(
            w(&sig(WriteMultipleCoils, Bool), Value::Int(0)).0,
            Request::WriteMultipleCoils {
                address: 7,
                values: vec![false]
            }
        );
        assert_eq!(
            w(&sig(ReadHoldingRegisters, U16), Value::Int(42)).0,
            Request::WriteSingleRegister {
                address: 7,
                value: 42
            }
        );
        assert_eq!(
            w(&sig(WriteMultipleRegisters, U16), Value::Int(42)).0,
            Request::WriteMultipleRegisters {
                address: 7,
                values: vec![42]
            }
        );
        // A u32 in low-word-first order takes function 16.
        assert_eq!(
            w(&sig(ReadHoldingRegisters, U32), Value::Int(0x0001_0002)).0,
            Request::WriteMultipleRegisters {
                address: 7,
                values: vec![2, 1]
            }
        );
        // Scaled: 21.5 degrees at 0.1/unit, offset -10 -> raw 315, reported raw as sent.
        let mut scaled = sig(WriteSingleRegister, I16);
        scaled.multiplier = 0.1;
        scaled.offset = -10.0;
        assert_eq!(
            w(&scaled, Value::Float(21.5)),
            (
                Request::WriteSingleRegister {
                    address: 7,
                    value: 315
                },
                Value::Int(315)
            )
        );
        assert_eq!(
            write_request(&sig(ReadHoldingRegisters, U16), Value::Int(-1)),
            Err(EncodeError::OutOfRange)
        );
    }
}
