//! Modbus PDUs (function code + data), shared by RTU and TCP: requests are encoded, responses
//! decoded against the request they answer. Sans-IO; nothing here panics on any input.

use std::fmt;

/// The protocol's count limits, written once with the other Modbus rules in
/// [`config::modbus`] (validation checks columns against them).
pub use config::modbus::{MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_BITS, MAX_WRITE_REGISTERS};

/// A request of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ReadCoils { address: u16, count: u16 },
    ReadDiscreteInputs { address: u16, count: u16 },
    ReadHoldingRegisters { address: u16, count: u16 },
    ReadInputRegisters { address: u16, count: u16 },
    WriteSingleCoil { address: u16, value: bool },
    WriteSingleRegister { address: u16, value: u16 },
    WriteMultipleCoils { address: u16, values: Vec<bool> },
    WriteMultipleRegisters { address: u16, values: Vec<u16> },
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Functions 1, 2: exactly the bits asked for.
    Bits(Vec<bool>),
    /// Functions 3, 4: exactly the registers asked for.
    Registers(Vec<u16>),
    /// Functions 5, 6, 15, 16: the device echoed the write.
    Written,
}

/// A Modbus exception code: the device's negative answer (a result, not a link failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionCode(pub u8);

impl ExceptionCode {
    /// A lowercase name (`illegal_data_address`), or `exception_<n>` for other codes.
    pub fn name(self) -> String {
        match self.0 {
            1 => "illegal_function".into(),
            2 => "illegal_data_address".into(),
            3 => "illegal_data_value".into(),
            4 => "server_device_failure".into(),
            5 => "acknowledge".into(),
            6 => "server_device_busy".into(),
            8 => "memory_parity_error".into(),
            10 => "gateway_path_unavailable".into(),
            11 => "gateway_target_failed".into(),
            n => format!("exception_{n}"),
        }
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// The device's answer to a request: a response or an exception.
pub type Answer = Result<Response, ExceptionCode>;

/// Why a request could not be encoded or a response PDU was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("count {0} is out of range for this function")]
    BadCount(usize),
    #[error("empty PDU")]
    Empty,
    #[error("function code {got:#04x} does not answer {expected:#04x}")]
    FunctionMismatch { expected: u8, got: u8 },
    #[error("PDU is {got} bytes, expected {expected}")]
    Length { expected: usize, got: usize },
    #[error("byte count {got}, expected {expected}")]
    ByteCount { expected: usize, got: usize },
    #[error("the write echo does not match the request")]
    EchoMismatch,
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn byte_count_for_bits(count: u16) -> usize {
    usize::from(count).div_ceil(8)
}

impl Request {
    /// The function code.
    pub fn function_code(&self) -> u8 {
        match self {
            Request::ReadCoils { .. } => 1,
            Request::ReadDiscreteInputs { .. } => 2,
            Request::ReadHoldingRegisters { .. } => 3,
            Request::ReadInputRegisters { .. } => 4,
            Request::WriteSingleCoil { .. } => 5,
            Request::WriteSingleRegister { .. } => 6,
            Request::WriteMultipleCoils { .. } => 15,
            Request::WriteMultipleRegisters { .. } => 16,
        }
    }

    /// Appends the PDU (function code and data) to `out`; refuses counts the protocol does not
    /// allow.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        out.push(self.function_code());
        match self {
            Request::ReadCoils { address, count }
            | Request::ReadDiscreteInputs { address, count } => {
                if *count == 0 || *count > MAX_READ_BITS {
                    return Err(PduError::BadCount(usize::from(*count)));
                }
                push_u16(out, *address);
                push_u16(out, *count);
            }
            Request::ReadHoldingRegisters { address, count }
            | Request::ReadInputRegisters { address, count } => {
                if *count == 0 || *count > MAX_READ_REGISTERS {
                    return Err(PduError::BadCount(usize::from(*count)));
                }
                push_u16(out, *address);
                push_u16(out, *count);
            }
            Request::WriteSingleCoil { address, value } => {
                push_u16(out, *address);
                push_u16(out, if *value { 0xFF00 } else { 0x0000 });
            }
            Request::WriteSingleRegister { address, value } => {
                push_u16(out, *address);
                push_u16(out, *value);
            }
            Request::WriteMultipleCoils { address, values } => {
                let count = u16::try_from(values.len())
                    .ok()
                    .filter(|c| *c > 0 && *c <= MAX_WRITE_BITS)
                    .ok_or(PduError::BadCount(values.len()))?;
                push_u16(out, *address);
                push_u16(out, count);
                let bytes = byte_count_for_bits(count);
                out.push(u8::try_from(bytes).map_err(|_| PduError::BadCount(values.len()))?);
                for chunk in values.chunks(8) {
                    let mut byte = 0u8;
                    for (i, bit) in chunk.iter().enumerate() {
                        if *bit {
                            byte |= 1u8.checked_shl(u32::try_from(i).unwrap_or(0)).unwrap_or(0);
                        }
                    }
                    out.push(byte);
                }
            }
            Request::WriteMultipleRegisters { address, values } => {
                let count = u16::try_from(values.len())
                    .ok()
                    .filter(|c| *c > 0 && *c <= MAX_WRITE_REGISTERS)
                    .ok_or(PduError::BadCount(values.len()))?;
                push_u16(out, *address);
                push_u16(out, count);
                out.push(
                    u8::try_from(values.len().saturating_mul(2))
                        .map_err(|_| PduError::BadCount(values.len()))?,
                );
                for v in values {
                    push_u16(out, *v);
                }
            }
        }
        Ok(())
    }

    /// How long the response PDU (function code included) is, judged from its first bytes:
    /// `Ok(None)` while more bytes are needed to tell, `Err` when the first byte cannot start an
    /// answer to this request.
    pub fn response_len(&self, pdu: &[u8]) -> Result<Option<usize>, PduError> {
        let fc = self.function_code();
        let Some(&first) = pdu.first() else {
            return Ok(None);
        };
        if first == fc | 0x80 {
            return Ok(Some(2));
        }
        if first != fc {
            return Err(PduError::FunctionMismatch {
                expected: fc,
                got: first,
            });
        }
        match self {
            Request::ReadCoils { .. }
            | Request::ReadDiscreteInputs { .. }
            | Request::ReadHoldingRegisters { .. }
            | Request::ReadInputRegisters { .. } => {
                Ok(pdu.get(1).map(|bc| usize::from(*bc).saturating_add(2)))
            }
            _ => Ok(Some(5)),
        }
    }

    /// Decodes a complete response PDU to this request.
    pub fn decode_response(&self, pdu: &[u8]) -> Result<Answer, PduError> {
        let fc = self.function_code();
        let (&first, data) = pdu.split_first().ok_or(PduError::Empty)?;
        if first == fc | 0x80 {
            return match data {
                [code] => Ok(Err(ExceptionCode(*code))),
                _ => Err(PduError::Length {
                    expected: 2,
                    got: pdu.len(),
                }),
            };
        }
        if first != fc {
            return Err(PduError::FunctionMismatch {
                expected: fc,
                got: first,
            });
        }
        match self {
            Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
                let expected = byte_count_for_bits(*count);
                let bytes = counted(data, expected)?;
                let bits = (0..usize::from(*count))
                    .map(|i| {
                        let byte = bytes.get(i / 8).copied().unwrap_or(0);
                        (byte >> (i % 8)) & 1 == 1
                    })
                    .collect();
                Ok(Ok(Response::Bits(bits)))
            }
            Request::ReadHoldingRegisters { count, .. }
            | Request::ReadInputRegisters { count, .. } => {
                let expected = usize::from(*count).saturating_mul(2);
                let bytes = counted(data, expected)?;
                let regs = bytes
                    .chunks_exact(2)
                    .map(|c| {
                        u16::from_be_bytes([
                            c.first().copied().unwrap_or(0),
                            c.get(1).copied().unwrap_or(0),
                        ])
                    })
                    .collect();
                Ok(Ok(Response::Registers(regs)))
            }
            Request::WriteSingleCoil { .. }
            | Request::WriteSingleRegister { .. }
            | Request::WriteMultipleCoils { .. }
            | Request::WriteMultipleRegisters { .. } => {
                if data.len() != 4 {
                    return Err(PduError::Length {
                        expected: 5,
                        got: pdu.len(),
                    });
                }
                let mut req = Vec::with_capacity(8);
                self.encode(&mut req).map_err(|_| PduError::EchoMismatch)?;
                // Single writes echo the whole request; multiple writes echo address and count.
                if req.get(1..5) != Some(data) {
                    return Err(PduError::EchoMismatch);
                }
                Ok(Ok(Response::Written))
            }
        }
    }
}

/// The data after a byte count that must be `expected`.
fn counted(data: &[u8], expected: usize) -> Result<&[u8], PduError> {
    let (&bc, rest) = data.split_first().ok_or(PduError::Length {
        expected: expected.saturating_add(2),
        got: 1,
    })?;
    if usize::from(bc) != expected {
        return Err(PduError::ByteCount {
            expected,
            got: usize::from(bc),
        });
    }
    if rest.len() != expected {
        return Err(PduError::Length {
            expected: expected.saturating_add(2),
            got: data.len().saturating_add(1),
        });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Request) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v).unwrap();
        v
    }

    #[test]
    fn encodes_requests() {
        assert_eq!(
            enc(&Request::ReadHoldingRegisters {
                address: 0x006B,
                count: 3
            }),
            [0x03, 0x00, 0x6B, 0x00, 0x03]
        );
        assert_eq!(
            enc(&Request::ReadCoils {
                address: 0x0013,
                count: 19
            }),
            [0x01, 0x00, 0x13, 0x00, 0x13]
        );
        assert_eq!(
            enc(&Request::WriteSingleCoil {
                address: 0x00AC,
                value: true
            }),
            [0x05, 0x00, 0xAC, 0xFF, 0x00]
        );
        assert_eq!(
            enc(&Request::WriteSingleRegister {
                address: 1,
                value: 3
            }),
            [0x06, 0x00, 0x01, 0x00, 0x03]
        );
        // The spec's example: 10 coils from 20: CD 01.
        let coils = [
            true, false, true, true, false, false, true, true, true, false,
        ];
        assert_eq!(
            enc(&Request::WriteMultipleCoils {
                address: 0x0013,
                values: coils.to_vec()
            }),
            [0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]
        );
        assert_eq!(
            enc(&Request::WriteMultipleRegisters {
                address: 1,
                values: vec![0x000A, 0x0102]
            }),
            [0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]
        );
        let mut v = Vec::new();
        assert!(Request::ReadHoldingRegisters {
            address: 0,
            count: 126
        }
        .encode(&mut v)
        .is_err());
        assert!(Request::ReadCoils {
            address: 0,
            count: 0
        }
        .encode(&mut v)
        .is_err());
        assert!(Request::WriteMultipleRegisters {
            address: 0,
            values: vec![]
        }
        .encode(&mut v)
        .is_err());
    }

    #[test]
    fn decodes_responses() {
        let r = Request::ReadHoldingRegisters {
            address: 0x006B,
            count: 3,
        };
        let pdu = [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64];
        assert_eq!(r.response_len(&pdu[..1]), Ok(None));
        assert_eq!(r.response_len(&pdu), Ok(Some(8)));
        assert_eq!(
            r.decode_response(&pdu),
            Ok(Ok(Response::Registers(vec![0x022B, 0, 0x64])))
        );
        // Exception.
        assert_eq!(r.response_len(&[0x83]), Ok(Some(2)));
        assert_eq!(r.decode_response(&[0x83, 0x02]), Ok(Err(ExceptionCode(2))));
        // Wrong byte count, wrong length, wrong function.
        assert!(r.decode_response(&[0x03, 0x04, 0, 0, 0, 0]).is_err());
        assert!(r.decode_response(&[0x03, 0x06, 0, 0]).is_err());
        assert!(r.response_len(&[0x04]).is_err());
        assert!(r.decode_response(&[]).is_err());
        // Coils: the spec's example, 19 coils: CD 6B 05.
        let c = Request::ReadCoils {
            address: 0x13,
            count: 19,
        };
        let Ok(Ok(Response::Bits(bits))) = c.decode_response(&[0x01, 0x03, 0xCD, 0x6B, 0x05])
        else {
            panic!()
        };
        assert_eq!(bits.len(), 19);
        assert_eq!(
            &bits[..8],
            &[true, false, true, true, false, false, true, true]
        );
        assert_eq!(&bits[16..], &[true, false, true]);
        // Write echoes.
        let w = Request::WriteSingleRegister {
            address: 1,
            value: 3,
        };
        assert_eq!(
            w.decode_response(&[0x06, 0x00, 0x01, 0x00, 0x03]),
            Ok(Ok(Response::Written))
        );
        assert_eq!(
            w.decode_response(&[0x06, 0x00, 0x01, 0x00, 0x04]),
            Err(PduError::EchoMismatch)
        );
        let m = Request::WriteMultipleRegisters {
            address: 1,
            values: vec![1, 2],
        };
        assert_eq!(m.response_len(&[0x10]), Ok(Some(5)));
        assert_eq!(
            m.decode_response(&[0x10, 0x00, 0x01, 0x00, 0x02]),
            Ok(Ok(Response::Written))
        );
        assert_eq!(ExceptionCode(2).name(), "illegal_data_address");
    }
}
