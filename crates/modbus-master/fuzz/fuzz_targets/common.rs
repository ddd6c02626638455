//! Shared by the targets: a request and a signal from the first input bytes.

use config::modbus::{DataType, Endian, Function, ModbusSignal};
use modbus_master::pdu::{Request, Response};

/// Takes `N` bytes from the front (zeros when short).
pub fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(data.iter()) {
        *o = *b;
    }
    *data = data.get(N..).unwrap_or(&[]);
    out
}

/// A request from 5 bytes: function selector, address, count. The selector's high bit
/// keeps the count as it is (out of the protocol's range); otherwise it is clamped to the
/// function's valid range, as the driver's plan does.
pub fn request(data: &mut &[u8]) -> Request {
    let [sel, a0, a1, c0, c1] = take::<5>(data);
    let address = u16::from_be_bytes([a0, a1]);
    let raw = u16::from_be_bytes([c0, c1]);
    let clamp = |max: u16| if sel & 0x80 != 0 { raw } else { 1 + raw % max };
    match sel % 8 {
        0 => Request::ReadCoils {
            address,
            count: clamp(2000),
        },
        1 => Request::ReadDiscreteInputs {
            address,
            count: clamp(2000),
        },
        2 => Request::ReadHoldingRegisters {
            address,
            count: clamp(125),
        },
        3 => Request::ReadInputRegisters {
            address,
            count: clamp(125),
        },
        4 => Request::WriteSingleCoil {
            address,
            value: raw & 1 == 1,
        },
        5 => Request::WriteSingleRegister {
            address,
            value: raw,
        },
        6 => Request::WriteMultipleCoils {
            address,
            values: (0..clamp(1968)).map(|i| (i ^ raw) & 1 == 1).collect(),
        },
        _ => Request::WriteMultipleRegisters {
            address,
            values: (0..clamp(123)).map(|i| i ^ raw).collect(),
        },
    }
}

/// A correct response PDU to `request`, its payload taken from `data`, and the answer it
/// must decode to. None when the request's count cannot be answered in one frame.
pub fn good_response(request: &Request, data: &[u8]) -> Option<(Vec<u8>, Response)> {
    let fc = request.function_code();
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    match request {
        Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
            let n = usize::from(*count).div_ceil(8);
            let bc = u8::try_from(n).ok()?;
            let mut pdu = vec![fc, bc];
            pdu.extend((0..n).map(byte));
            let bits = (0..usize::from(*count))
                .map(|i| (byte(i / 8) >> (i % 8)) & 1 == 1)
                .collect();
            Some((pdu, Response::Bits(bits)))
        }
        Request::ReadHoldingRegisters { count, .. } | Request::ReadInputRegisters { count, .. } => {
            let n = usize::from(*count) * 2;
            let bc = u8::try_from(n).ok()?;
            let mut pdu = vec![fc, bc];
            pdu.extend((0..n).map(byte));
            let regs = (0..usize::from(*count))
                .map(|i| u16::from_be_bytes([byte(2 * i), byte(2 * i + 1)]))
                .collect();
            Some((pdu, Response::Registers(regs)))
        }
        _ => {
            let mut req = Vec::new();
            request.encode(&mut req).ok()?;
            Some((req.get(..5)?.to_vec(), Response::Written))
        }
    }
}

/// A register signal from 4 bytes (scaling finite, as validation guarantees).
pub fn signal(data: &mut &[u8]) -> ModbusSignal {
    let [t, o, m, b] = take::<4>(data);
    let data_type = [
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::U64,
        DataType::I64,
        DataType::F64,
    ][usize::from(t % 9)];
    let endian = |bit: u8| {
        if o & bit != 0 {
            Endian::Little
        } else {
            Endian::Big
        }
    };
    let (multiplier, offset) = match m % 4 {
        0 => (1.0, 0.0),
        1 => (0.1, 0.0),
        2 => (f64::from(m) - 128.0, f64::from(b) * 0.25),
        _ => (0.0, -1.5),
    };
    ModbusSignal {
        function: Function::ReadHoldingRegisters,
        address: 0,
        data_type,
        bit: (o & 4 != 0).then_some(b % 20),
        byte_order: endian(1),
        word_order: endian(2),
        multiplier,
        offset,
        writable: true,
    }
}

/// Register contents to values and back: no panic; integer types and f64 round-trip.
pub fn check_registers(regs: &[u16], s: &ModbusSignal) {
    use modbus_master::data::{decode_registers, encode_registers, scale, unscale};
    let Some(raw) = decode_registers(regs, s) else {
        assert!(regs.len() < usize::from(s.data_type.registers()));
        return;
    };
    let value = scale(raw, s);
    let _ = unscale(value, s);
    if !matches!(s.data_type, DataType::Bool | DataType::F32 | DataType::U64) {
        let n = usize::from(s.data_type.registers());
        let back = encode_registers(raw, s)
            .unwrap_or_else(|e| panic!("{raw:?} decoded from {regs:?} does not encode: {e}"));
        assert_eq!(back.as_slice(), &regs[..n], "{:?} {raw:?}", s.data_type);
    }
}

/// Writes from the tag bus: any value (nan, inf, huge) to registers, never a panic.
pub fn check_write(data: &mut &[u8], s: &ModbusSignal) {
    use modbus_master::data::{encode_registers, unscale};
    let [k, b0, b1, b2, b3, b4, b5, b6, b7] = take::<9>(data);
    let bits = u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let value = if k & 1 == 0 {
        tagbus::Value::Int(bits as i64)
    } else {
        tagbus::Value::Float(f64::from_bits(bits))
    };
    if let Ok(raw) = unscale(value, s) {
        let _ = encode_registers(raw, s);
    }
}
