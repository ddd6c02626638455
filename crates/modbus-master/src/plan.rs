//! The read plan: which requests poll a device's signals.
//!
//! Signals read with the same function are sorted by address and merged into one request
//! while the request stays within the protocol's limits (125 registers, 2000 bits) and the
//! next signal starts at most `max_gap` registers/bits after the end of the previous one.
//!
//! The gap is the device's `max_gap` column ([`config::modbus::MAX_GAP`]). Its default is 0
//! (only adjacent or overlapping signals are merged): reading across a gap asks for
//! addresses nobody configured, and many meters answer exception 2 (illegal data address)
//! for a whole request that touches one unmapped register: a gap would turn good signals
//! `iv`. A device known to have a contiguous map can use a gap.

use config::modbus::{Function, ModbusSignal};

use crate::pdu::{Request, MAX_READ_BITS, MAX_READ_REGISTERS};

/// One read request and the signals it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The read function (1-4).
    pub function: Function,
    pub address: u16,
    pub count: u16,
    /// Indices (into the slice given to [`plan`]) of the signals in this block.
    pub members: Vec<usize>,
}

impl Block {
    /// The request that reads this block.
    pub fn request(&self) -> Request {
        let (address, count) = (self.address, self.count);
        match self.function {
            Function::ReadCoils => Request::ReadCoils { address, count },
            Function::ReadDiscreteInputs => Request::ReadDiscreteInputs { address, count },
            Function::ReadInputRegisters => Request::ReadInputRegisters { address, count },
            _ => Request::ReadHoldingRegisters { address, count },
        }
    }
}

/// How many registers or bits a signal spans.
pub fn span(s: &ModbusSignal) -> u16 {
    if s.function.is_bit() {
        1
    } else {
        s.data_type.registers()
    }
}

/// The read blocks of a device's signals (write-only signals, functions 5/6/15/16, are not
/// read).
pub fn plan(signals: &[ModbusSignal], max_gap: u16) -> Vec<Block> {
    let mut order: Vec<usize> = (0..signals.len())
        .filter(|i| signals.get(*i).is_some_and(|s| !s.function.is_write()))
        .collect();
    order.sort_by_key(|i| signals.get(*i).map(|s| (s.function.code(), s.address)));
    let mut blocks: Vec<Block> = Vec::new();
    for i in order {
        let Some(s) = signals.get(i) else { continue };
        let limit = if s.function.is_bit() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        };
        let start = u32::from(s.address);
        let end = start.saturating_add(u32::from(span(s))); // exclusive
        if let Some(b) = blocks.last_mut() {
            let b_start = u32::from(b.address);
            let b_end = b_start.saturating_add(u32::from(b.count));
            let new_end = b_end.max(end);
            if b.function == s.function
                && start <= b_end.saturating_add(u32::from(max_gap))
                && new_end.saturating_sub(b_start) <= u32::from(limit)
            {
                b.count = u16::try_from(new_end.saturating_sub(b_start)).unwrap_or(limit);
                b.members.push(i);
                continue;
            }
        }
        blocks.push(Block {
            function: s.function,
            address: s.address,
            count: span(s),
            members: vec![i],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::modbus::{DataType, Endian};

    fn sig(function: Function, address: u16, data_type: DataType) -> ModbusSignal {
        ModbusSignal {
            function,
            address,
            data_type,
            bit: None,
            byte_order: Endian::Big,
            word_order: Endian::Big,
            multiplier: 1.0,
            offset: 0.0,
            writable: false,
        }
    }

    #[test]
    fn merges_adjacent_and_splits_at_gaps_and_limits() {
        use DataType::*;
        use Function::*;
        let s = vec![
            sig(ReadHoldingRegisters, 10, F32), // 10-11
            sig(ReadHoldingRegisters, 0, U16),  // 0
            sig(ReadHoldingRegisters, 1, U32),  // 1-2
            sig(ReadHoldingRegisters, 3, U16),  // 3
            sig(ReadCoils, 0, Bool),
            sig(ReadCoils, 1, Bool),
            sig(ReadInputRegisters, 0, U16),
            sig(WriteSingleRegister, 5, U16),  // never read
            sig(ReadHoldingRegisters, 2, U16), // overlaps 1-2
        ];
        let b = plan(&s, 0);
        let got: Vec<(u8, u16, u16, Vec<usize>)> = b
            .iter()
            .map(|b| (b.function.code(), b.address, b.count, b.members.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 2, vec![4, 5]),
                (3, 0, 4, vec![1, 2, 8, 3]),
                (3, 10, 2, vec![0]),
                (4, 0, 1, vec![6]),
            ]
        );
        // With a gap of 6 the two holding blocks merge.
        assert_eq!(
            plan(&s, 6)
                .iter()
                .filter(|b| b.function == ReadHoldingRegisters)
                .count(),
            1
        );
        // 130 adjacent registers: 125 + 5.
        let many: Vec<ModbusSignal> = (0..130).map(|a| sig(ReadInputRegisters, a, U16)).collect();
        let counts: Vec<u16> = plan(&many, 0).iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![125, 5]);
        let bits: Vec<ModbusSignal> = (0..2001)
            .map(|a| sig(ReadDiscreteInputs, a, Bool))
            .collect();
        let counts: Vec<u16> = plan(&bits, 0).iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![2000, 1]);
        // A signal at the top of the address space does not overflow.
        let top = vec![
            sig(ReadHoldingRegisters, 65534, U16),
            sig(ReadHoldingRegisters, 65535, U16),
        ];
        assert_eq!(plan(&top, 0).len(), 1);
    }
}
