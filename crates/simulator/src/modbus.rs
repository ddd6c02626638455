//! A small Modbus TCP server over a shared register bank (holding and input registers share
//! one bank, coils and discrete inputs another), and a simulated three-phase energy meter
//! that keeps its registers moving.
//!
//! Functions 1, 2, 3, 4, 5, 6, 15 and 16; anything else answers exception 01 (illegal
//! function), an address outside the bank exception 02.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Registers (and bits) the bank holds.
pub const BANK_SIZE: usize = 1024;

/// The server's memory.
#[derive(Debug)]
pub struct Bank {
    pub registers: Vec<u16>,
    pub bits: Vec<bool>,
}

impl Default for Bank {
    fn default() -> Self {
        Self {
            registers: vec![0; BANK_SIZE],
            bits: vec![false; BANK_SIZE],
        }
    }
}

impl Bank {
    /// Stores an f32 in two registers, high word first.
    pub fn set_f32(&mut self, address: usize, value: f32) {
        let bits = value.to_bits();
        self.set_u32(address, bits);
    }

    /// Stores a u32 in two registers, high word first.
    pub fn set_u32(&mut self, address: usize, value: u32) {
        let [a, b, c, d] = value.to_be_bytes();
        if let Some(slot) = self.registers.get_mut(address..address.saturating_add(2)) {
            slot.copy_from_slice(&[u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])]);
        }
    }

    /// Stores a u16.
    pub fn set_u16(&mut self, address: usize, value: u16) {
        if let Some(r) = self.registers.get_mut(address) {
            *r = value;
        }
    }
}

/// A shared bank.
pub type SharedBank = Arc<Mutex<Bank>>;

/// Starts a server on `bind` (port 0 picks a free port); returns the address it listens on.
pub async fn serve(bind: SocketAddr, bank: SharedBank) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tracing::debug!(%peer, "modbus client connected");
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream, bank.clone()));
        }
    });
    Ok(local)
}

async fn connection(mut stream: TcpStream, bank: SharedBank) {
    let mut header = [0u8; 7];
    let mut pdu = vec![0u8; 256];
    loop {
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let [t0, t1, _, _, l0, l1, unit] = header;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(pdu_len) = len.checked_sub(1).filter(|n| (1..=253).contains(n)) else {
            return; // not Modbus: drop the connection
        };
        let Some(buf) = pdu.get_mut(..pdu_len) else {
            return;
        };
        if stream.read_exact(buf).await.is_err() {
            return;
        }
        let answer = match bank.lock() {
            Ok(mut bank) => handle(buf, &mut bank),
            Err(_) => return,
        };
        let Ok(answer_len) = u16::try_from(answer.len().saturating_add(1)) else {
            return;
        };
        let mut frame = Vec::with_capacity(answer.len().saturating_add(7));
        frame.extend_from_slice(&[t0, t1, 0, 0]);
        frame.extend_from_slice(&answer_len.to_be_bytes());
        frame.push(unit);
        frame.extend_from_slice(&answer);
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

fn exception(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

fn be16(pdu: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *pdu.get(at)?,
        *pdu.get(at.checked_add(1)?)?,
    ]))
}

/// Answers one request PDU.
pub fn handle(pdu: &[u8], bank: &mut Bank) -> Vec<u8> {
    let Some(&function) = pdu.first() else {
        return exception(0, 1);
    };
    let (Some(addr), Some(arg)) = (be16(pdu, 1), be16(pdu, 3)) else {
        return exception(function, 3);
    };
    let addr = usize::from(addr);
    match function {
        1 | 2 => {
            let count = usize::from(arg);
            let Some(bits) = bank
                .bits
                .get(addr..addr.saturating_add(count))
                .filter(|_| (1..=2000).contains(&count))
            else {
                return exception(function, 2);
            };
            let mut bytes = vec![0u8; count.div_ceil(8)];
            for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
                if let Some(byte) = bytes.get_mut(i / 8) {
                    *byte |= 1 << (i % 8);
                }
            }
            let mut out = vec![function, u8::try_from(bytes.len()).unwrap_or(0)];
            out.extend(bytes);
            out
        }
        3 | 4 => {
            let count = usize::from(arg);
            let Some(regs) = bank
                .registers
                .get(addr..addr.saturating_add(count))
                .filter(|_| (1..=125).contains(&count))
            else {
                return exception(function, 2);
            };
            let mut out = vec![function, u8::try_from(count.saturating_mul(2)).unwrap_or(0)];
            for r in regs {
                out.extend_from_slice(&r.to_be_bytes());
            }
            out
        }
        5 => match (bank.bits.get_mut(addr), arg) {
            (Some(bit), 0xFF00 | 0x0000) => {
                *bit = arg == 0xFF00;
                pdu.get(..5).map(<[u8]>::to_vec).unwrap_or_default()
            }
            (None, _) => exception(function, 2),
            _ => exception(function, 3),
        },
        6 => match bank.registers.get_mut(addr) {
            Some(r) => {
                *r = arg;
                pdu.get(..5).map(<[u8]>::to_vec).unwrap_or_default()
            }
            None => exception(function, 2),
        },
        15 | 16 => {
            let count = usize::from(arg);
            let data = pdu.get(6..).unwrap_or_default();
            let ok = if function == 16 {
                match bank.registers.get_mut(addr..addr.saturating_add(count)) {
                    Some(regs) if data.len() >= count.saturating_mul(2) => {
                        for (i, r) in regs.iter_mut().enumerate() {
                            *r = be16(data, i.saturating_mul(2)).unwrap_or(0);
                        }
                        true
                    }
                    _ => false,
                }
            } else {
                match bank.bits.get_mut(addr..addr.saturating_add(count)) {
                    Some(bits) if data.len().saturating_mul(8) >= count => {
                        for (i, b) in bits.iter_mut().enumerate() {
                            *b = data
                                .get(i / 8)
                                .is_some_and(|byte| byte & (1 << (i % 8)) != 0);
                        }
                        true
                    }
                    _ => false,
                }
            };
            if ok {
                pdu.get(..5).map(<[u8]>::to_vec).unwrap_or_default()
            } else {
                exception(function, 2)
            }
        }
        _ => exception(function, 1),
    }
}

/// Register map of the simulated meter (input registers, f32 and u32 high word first):
/// 0/2/4 voltages L1-L3 (V), 6 current L1 (A), 52 total active power (W), 70 frequency
/// (u16, 0.01 Hz), 72 imported energy (u32, 0.1 kWh).
pub fn simulate_meter(bank: SharedBank, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick: u32 = 0;
        let mut energy: u32 = 123_400;
        loop {
            let wobble = f32::from(u16::try_from(tick % 20).unwrap_or(0)) * 0.1;
            if let Ok(mut b) = bank.lock() {
                b.set_f32(0, 230.1 + wobble);
                b.set_f32(2, 229.8 - wobble);
                b.set_f32(4, 230.4 + wobble / 2.0);
                b.set_f32(6, 12.5 + wobble);
                b.set_f32(52, 8_650.0 + wobble * 100.0);
                b.set_u16(
                    70,
                    5000u16.saturating_add(u16::try_from(tick % 5).unwrap_or(0)),
                );
                b.set_u32(72, energy);
            }
            energy = energy.wrapping_add(3);
            tick = tick.wrapping_add(1);
            tokio::time::sleep(period).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_reads_writes_and_exceptions() {
        let mut bank = Bank::default();
        bank.set_f32(0, 230.5);
        assert_eq!(
            handle(&[4, 0, 0, 0, 2], &mut bank),
            vec![4, 4, 0x43, 0x66, 0x80, 0x00]
        );
        assert_eq!(
            handle(&[6, 0, 10, 0x12, 0x34], &mut bank),
            vec![6, 0, 10, 0x12, 0x34]
        );
        assert_eq!(bank.registers[10], 0x1234);
        assert_eq!(
            handle(&[5, 0, 3, 0xFF, 0], &mut bank),
            vec![5, 0, 3, 0xFF, 0]
        );
        assert_eq!(handle(&[1, 0, 0, 0, 8], &mut bank), vec![1, 1, 0b1000]);
        assert_eq!(handle(&[3, 0x0F, 0xFF, 0, 2], &mut bank), vec![0x83, 2]);
        assert_eq!(handle(&[43, 0, 0, 0, 1], &mut bank), vec![43 | 0x80, 1]);
        assert_eq!(handle(&[3], &mut bank), vec![0x83, 3]);
        assert_eq!(
            handle(&[16, 0, 20, 0, 2, 4, 0, 1, 0, 2], &mut bank),
            vec![16, 0, 20, 0, 2]
        );
        assert_eq!(&bank.registers[20..22], &[1, 2]);
    }
}
