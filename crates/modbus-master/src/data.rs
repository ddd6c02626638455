//! Register contents <-> values: data types, byte and word order, scaling.
//!
//! - `byte_order` is the order of the two bytes inside each register (`big`: the Modbus
//!   standard, high byte first; `little`: swapped).
//! - `word_order` is the order of the registers of a 32/64-bit value (`big`: the first
//!   register holds the most significant word, "ABCD"; `little`: the least significant word
//!   comes first, "CDAB").
//! - The raw value (`rin`) is the number as the registers carry it: an integer for integer
//!   types and bools, a float for f32/f64. The scaled value (`in`) is
//!   `raw * multiplier + offset`; with the identity scaling (1, 0) an integer stays an
//!   integer, otherwise it is a float rounded to 12 significant digits (so that `3 * 0.1` is
//!   `0.3`, not `0.30000000000000004`). Bools are never scaled.

use config::modbus::{DataType, Endian, ModbusSignal};
use tagbus::Value;

/// Why a value cannot be written to a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("value is not a finite number")]
    NotFinite,
    #[error("value is out of the range of the signal's data type")]
    OutOfRange,
    #[error("a bit inside a register cannot be written without a read-modify-write")]
    BitInRegister,
}

impl EncodeError {
    /// A detail code for the command result.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::NotFinite => "not_finite",
            EncodeError::OutOfRange => "out_of_range",
            EncodeError::BitInRegister => "bit_in_register",
        }
    }
}

/// The registers as big-endian bytes in significance order, after byte and word order.
fn ordered_bytes(regs: &[u16], byte_order: Endian, word_order: Endian) -> Vec<u8> {
    let fix = |r: &u16| match byte_order {
        Endian::Big => r.to_be_bytes(),
        Endian::Little => r.to_le_bytes(),
    };
    match word_order {
        Endian::Big => regs.iter().flat_map(fix).collect(),
        Endian::Little => regs.iter().rev().flat_map(fix).collect(),
    }
}

/// The inverse of [`ordered_bytes`].
fn registers_of(bytes: &[u8], byte_order: Endian, word_order: Endian) -> Vec<u16> {
    let mut regs: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            let pair = [
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ];
            match byte_order {
                Endian::Big => u16::from_be_bytes(pair),
                Endian::Little => u16::from_le_bytes(pair),
            }
        })
        .collect();
    if word_order == Endian::Little {
        regs.reverse();
    }
    regs
}

fn array<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// The raw value of a register signal from its registers (exactly `data_type.registers()`
/// of them); `None` if too few were given.
pub fn decode_registers(regs: &[u16], s: &ModbusSignal) -> Option<Value> {
    let regs = regs.get(..usize::from(s.data_type.registers()))?;
    let b = ordered_bytes(regs, s.byte_order, s.word_order);
    Some(match s.data_type {
        DataType::Bool => {
            let word = u16::from_be_bytes(array(&b)?);
            let bit = u32::from(s.bit.unwrap_or(0));
            Value::Int(i64::from(word.checked_shr(bit).unwrap_or(0) & 1))
        }
        DataType::U16 => Value::Int(i64::from(u16::from_be_bytes(array(&b)?))),
        DataType::I16 => Value::Int(i64::from(i16::from_be_bytes(array(&b)?))),
        DataType::U32 => Value::Int(i64::from(u32::from_be_bytes(array(&b)?))),
        DataType::I32 => Value::Int(i64::from(i32::from_be_bytes(array(&b)?))),
        DataType::F32 => Value::Float(tagbus::widen_f32(f32::from_be_bytes(array(&b)?))),
        DataType::U64 => {
            let v = u64::from_be_bytes(array(&b)?);
            match i64::try_from(v) {
                Ok(i) => Value::Int(i),
                #[allow(clippy::cast_precision_loss)]
                Err(_) => Value::Float(v as f64),
            }
        }
        DataType::I64 => Value::Int(i64::from_be_bytes(array(&b)?)),
        DataType::F64 => Value::Float(f64::from_be_bytes(array(&b)?)),
    })
}

/// Whether the scaling is the identity (values keep their integer type).
fn identity(s: &ModbusSignal) -> bool {
    s.multiplier == 1.0 && s.offset == 0.0
}

/// The engineering value of a raw value: `raw * multiplier + offset` (bools as they are).
pub fn scale(raw: Value, s: &ModbusSignal) -> Value {
    if s.data_type == DataType::Bool || identity(s) {
        return raw;
    }
    Value::Float(tagbus::scale(raw.as_f64(), s.multiplier, s.offset))
}

/// The raw value to send for an engineering value: `(value - offset) / multiplier`, rounded
/// to the nearest integer for integer types; bools are `value != 0`; `nan` and infinities are
/// refused.
pub fn unscale(value: Value, s: &ModbusSignal) -> Result<Value, EncodeError> {
    // A `nan` or infinite command is never sent (for a coil, `nan != 0` would switch it on).
    if !value.as_f64().is_finite() {
        return Err(EncodeError::NotFinite);
    }
    if s.data_type == DataType::Bool {
        return Ok(Value::Int(i64::from(value.as_f64() != 0.0)));
    }
    if identity(s) {
        return Ok(value);
    }
    if s.multiplier == 0.0 {
        return Err(EncodeError::OutOfRange);
    }
    Ok(Value::Float((value.as_f64() - s.offset) / s.multiplier))
}

/// An integer in `[min, max]` from a raw value (floats rounded to nearest).
fn int_in(raw: Value, min: i128, max: i128) -> Result<i128, EncodeError> {
    let i = match raw {
        Value::Int(i) => i128::from(i),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(EncodeError::NotFinite);
            }
            let r = f.round();
            if !(-1.0e20..=1.0e20).contains(&r) {
                return Err(EncodeError::OutOfRange);
            }
            #[allow(clippy::cast_possible_truncation)]
            let i = r as i128;
            i
        }
    };
    if i < min || i > max {
        return Err(EncodeError::OutOfRange);
    }
    Ok(i)
}

/// The registers holding a raw value in the signal's type and order.
pub fn encode_registers(raw: Value, s: &ModbusSignal) -> Result<Vec<u16>, EncodeError> {
    let be: Vec<u8> = match s.data_type {
        DataType::Bool => {
            if s.bit.is_some() {
                return Err(EncodeError::BitInRegister);
            }
            let v = u16::from(raw.as_f64() != 0.0);
            v.to_be_bytes().to_vec()
        }
        DataType::U16 => u16::try_from(int_in(raw, 0, i128::from(u16::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::I16 => i16::try_from(int_in(raw, i128::from(i16::MIN), i128::from(i16::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::U32 => u32::try_from(int_in(raw, 0, i128::from(u32::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::I32 => i32::try_from(int_in(raw, i128::from(i32::MIN), i128::from(i32::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => u64::try_from(int_in(raw, 0, i128::from(u64::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::I64 => i64::try_from(int_in(raw, i128::from(i64::MIN), i128::from(i64::MAX))?)
            .map_err(|_| EncodeError::OutOfRange)?
            .to_be_bytes()
            .to_vec(),
        DataType::F32 => {
            let f = raw.as_f64();
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(EncodeError::OutOfRange);
            }
            #[allow(clippy::cast_possible_truncation)]
            let v = f as f32;
            v.to_be_bytes().to_vec()
        }
        DataType::F64 => raw.as_f64().to_be_bytes().to_vec(),
    };
    Ok(registers_of(&be, s.byte_order, s.word_order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::modbus::Function;

    fn sig(dt: DataType, bo: Endian, wo: Endian) -> ModbusSignal {
        ModbusSignal {
            function: Function::ReadHoldingRegisters,
            address: 0,
            data_type: dt,
            bit: None,
            byte_order: bo,
            word_order: wo,
            multiplier: 1.0,
            offset: 0.0,
            writable: true,
        }
    }

    #[test]
    fn decodes_types_and_orders() {
        use DataType::*;
        use Endian::*;
        let d = |regs: &[u16], s: &ModbusSignal| decode_registers(regs, s).unwrap();
        assert_eq!(d(&[0xFFFE], &sig(U16, Big, Big)), Value::Int(65534));
        assert_eq!(d(&[0xFFFE], &sig(I16, Big, Big)), Value::Int(-2));
        assert_eq!(d(&[0x3412], &sig(U16, Little, Big)), Value::Int(0x1234));
        assert_eq!(
            d(&[0x0001, 0x0002], &sig(U32, Big, Big)),
            Value::Int(0x0001_0002)
        );
        assert_eq!(
            d(&[0x0002, 0x0001], &sig(U32, Big, Little)),
            Value::Int(0x0001_0002)
        );
        assert_eq!(d(&[0xFFFF, 0xFFFE], &sig(I32, Big, Big)), Value::Int(-2));
        // 123.456f32 = 0x42F6E979.
        assert_eq!(
            d(&[0x42F6, 0xE979], &sig(F32, Big, Big)),
            Value::Float(123.456)
        );
        assert_eq!(
            d(&[0xE979, 0x42F6], &sig(F32, Big, Little)),
            Value::Float(123.456)
        );
        assert_eq!(
            d(&[0xF642, 0x79E9], &sig(F32, Little, Big)),
            Value::Float(123.456)
        );
        assert_eq!(d(&[0, 0, 0, 5], &sig(U64, Big, Big)), Value::Int(5));
        assert_eq!(d(&[5, 0, 0, 0], &sig(U64, Big, Little)), Value::Int(5));
        assert_eq!(d(&[0xFFFF; 4], &sig(I64, Big, Big)), Value::Int(-1));
        assert_eq!(
            d(&[0x4000, 0, 0, 0], &sig(F64, Big, Big)),
            Value::Float(2.0)
        );
        let mut b = sig(Bool, Big, Big);
        b.bit = Some(15);
        assert_eq!(d(&[0x8000], &b), Value::Int(1));
        b.bit = Some(14);
        assert_eq!(d(&[0x8000], &b), Value::Int(0));
        assert_eq!(decode_registers(&[1], &sig(U32, Big, Big)), None);
    }

    #[test]
    fn scales_and_round_trips() {
        let mut s = sig(DataType::I16, Endian::Big, Endian::Big);
        s.multiplier = 0.1;
        s.offset = -5.0;
        assert_eq!(scale(Value::Int(250), &s), Value::Float(20.0));
        s.offset = 0.0;
        assert_eq!(scale(Value::Int(3), &s), Value::Float(0.3));
        assert_eq!(scale(Value::Int(-12_345), &s), Value::Float(-1234.5));
        s.offset = -5.0;
        let raw = unscale(Value::Float(20.0), &s).unwrap();
        assert_eq!(encode_registers(raw, &s).unwrap(), vec![250]);
        assert_eq!(
            encode_registers(Value::Int(70000), &s),
            Err(EncodeError::OutOfRange)
        );
        assert_eq!(
            encode_registers(Value::Float(f64::NAN), &s),
            Err(EncodeError::NotFinite)
        );
        for (dt, wo, v) in [
            (DataType::U32, Endian::Little, Value::Int(0x0102_0304)),
            (
                DataType::F32,
                Endian::Little,
                Value::Float(f64::from(-1.5f32)),
            ),
            (DataType::I64, Endian::Big, Value::Int(-123_456_789_012)),
            (DataType::F64, Endian::Little, Value::Float(6.02e23)),
        ] {
            let s = sig(dt, Endian::Little, wo);
            let regs = encode_registers(v, &s).unwrap();
            assert_eq!(decode_registers(&regs, &s), Some(v), "{dt:?}");
        }
        let id = sig(DataType::U16, Endian::Big, Endian::Big);
        assert_eq!(scale(Value::Int(7), &id), Value::Int(7));
        let mut bit = sig(DataType::Bool, Endian::Big, Endian::Big);
        bit.bit = Some(3);
        assert_eq!(
            encode_registers(Value::Int(1), &bit),
            Err(EncodeError::BitInRegister)
        );
    }
}
