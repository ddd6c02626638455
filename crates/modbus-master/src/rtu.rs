//! Modbus RTU framing (sans-IO): `slave id | PDU | CRC-16 (low byte first)`.
//!
//! The master knows which answer it waits for (one request at a time on the bus), so the
//! response is found by scanning the received bytes for the first complete frame that comes
//! from the addressed slave, answers the request's function and has a good CRC. Everything
//! before it (line noise, a late answer of another slave, a frame with a bad CRC, a short
//! frame) is handed back as dropped bytes for the caller to log; see [`describe_dropped`].

use crate::pdu::{Answer, PduError, Request};

/// The longest RTU frame (spec: 256 bytes).
pub const MAX_FRAME_LEN: usize = 256;

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The request frame for `slave`.
pub fn encode_request(slave: u8, request: &Request) -> Result<Vec<u8>, PduError> {
    let mut frame = Vec::with_capacity(16);
    frame.push(slave);
    request.encode(&mut frame)?;
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// What a scan of the receive buffer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// No complete answer yet: read more (or give up at the timeout and drop all).
    NeedMore,
    /// The answer, at `buf[start..start + len]`; `buf[..start]` is dropped garbage.
    Frame {
        start: usize,
        len: usize,
        answer: Answer,
    },
}

/// Looks for the answer of `slave` to `request` in `buf`.
pub fn scan(buf: &[u8], slave: u8, request: &Request) -> Scan {
    for start in 0..buf.len() {
        let Some(rest) = buf.get(start..) else { break };
        if let Some((len, answer)) = frame_at(rest, slave, request) {
            return Scan::Frame { start, len, answer };
        }
    }
    Scan::NeedMore
}

/// A complete, good-CRC answer of `slave` to `request` at the start of `bytes`.
fn frame_at(bytes: &[u8], slave: u8, request: &Request) -> Option<(usize, Answer)> {
    let (&id, pdu_and_more) = bytes.split_first()?;
    if id != slave {
        return None;
    }
    let pdu_len = request.response_len(pdu_and_more).ok()??;
    let total = pdu_len.checked_add(3)?;
    if total > MAX_FRAME_LEN {
        return None;
    }
    let frame = bytes.get(..total)?;
    let (body, crc) = frame.split_at(total.checked_sub(2)?);
    if crc != crc16(body).to_le_bytes() {
        return None;
    }
    let answer = request.decode_response(body.get(1..)?).ok()?;
    Some((total, answer))
}

/// Why bytes were dropped, for the log line: the most specific of `wrong slave id` (a
/// good-CRC frame from another slave), `bad CRC` (a frame of the right shape whose CRC does
/// not match), `short frame` (fewer than 4 bytes: no frame is that short) and `garbage`.
pub fn describe_dropped(bytes: &[u8], slave: u8, request: &Request) -> &'static str {
    if bytes.len() < 4 {
        return "short frame";
    }
    if let (Some(&id), Some(rest)) = (bytes.first(), bytes.get(1..)) {
        if let Ok(Some(pdu_len)) = request.response_len(rest) {
            if let Some(frame) = pdu_len.checked_add(3).and_then(|t| bytes.get(..t)) {
                let split = frame.len().saturating_sub(2);
                let (body, crc) = frame.split_at(split);
                if crc == crc16(body).to_le_bytes() {
                    return if id == slave {
                        "malformed answer"
                    } else {
                        "wrong slave id"
                    };
                }
                return "bad CRC";
            }
            return "short frame";
        }
    }
    "garbage"
}

/// Up to 64 bytes as hex, for log lines.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().min(64).saturating_mul(3));
    for (i, b) in bytes.iter().take(64).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02X}"));
    }
    if bytes.len() > 64 {
        s.push_str(" ...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{ExceptionCode, Response};

    fn with_crc(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&crc16(body).to_le_bytes());
        v
    }

    #[test]
    fn crc_known_vectors() {
        // Read holding registers 0..1 of slave 1: 01 03 00 00 00 01 84 0A.
        assert_eq!(
            crc16(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x01]).to_le_bytes(),
            [0x84, 0x0A]
        );
        // 11 03 00 6B 00 03 76 87 (the spec's example).
        assert_eq!(
            crc16(&[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]).to_le_bytes(),
            [0x76, 0x87]
        );
        let frame = encode_request(
            0x11,
            &Request::ReadHoldingRegisters {
                address: 0x6B,
                count: 3,
            },
        )
        .unwrap();
        assert_eq!(frame, [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
    }

    const REQ: Request = Request::ReadHoldingRegisters {
        address: 0,
        count: 2,
    };

    fn good() -> Vec<u8> {
        with_crc(&[0x01, 0x03, 0x04, 0x12, 0x34, 0xAB, 0xCD])
    }

    #[test]
    fn finds_a_clean_answer_byte_by_byte() {
        let f = good();
        for n in 0..f.len() {
            assert_eq!(scan(&f[..n], 1, &REQ), Scan::NeedMore, "at {n}");
        }
        assert_eq!(
            scan(&f, 1, &REQ),
            Scan::Frame {
                start: 0,
                len: 9,
                answer: Ok(Response::Registers(vec![0x1234, 0xABCD]))
            }
        );
    }

    #[test]
    fn skips_garbage_bad_crc_wrong_slave_and_short_frames() {
        let mut bad_crc = good();
        bad_crc[8] ^= 0xFF;
        let wrong_slave = with_crc(&[0x02, 0x03, 0x04, 0, 0, 0, 0]);
        let short = vec![0x01, 0x03];
        let garbage = vec![0xFF, 0x00, 0x55, 0xAA, 0x01];
        for prefix in [
            bad_crc.clone(),
            wrong_slave.clone(),
            short.clone(),
            garbage.clone(),
        ] {
            let mut buf = prefix.clone();
            buf.extend_from_slice(&good());
            match scan(&buf, 1, &REQ) {
                Scan::Frame { start, len, answer } => {
                    assert_eq!(start, prefix.len(), "{}", hex(&prefix));
                    assert_eq!(len, 9);
                    assert_eq!(answer, Ok(Response::Registers(vec![0x1234, 0xABCD])));
                }
                Scan::NeedMore => panic!("no frame after {}", hex(&prefix)),
            }
            // Alone, the prefix is never taken for an answer.
            assert_eq!(scan(&prefix, 1, &REQ), Scan::NeedMore);
        }
        assert_eq!(describe_dropped(&bad_crc, 1, &REQ), "bad CRC");
        assert_eq!(describe_dropped(&wrong_slave, 1, &REQ), "wrong slave id");
        assert_eq!(describe_dropped(&short, 1, &REQ), "short frame");
        assert_eq!(describe_dropped(&garbage, 1, &REQ), "garbage");
    }

    #[test]
    fn exception_and_malformed_answers() {
        let exc = with_crc(&[0x01, 0x83, 0x02]);
        assert_eq!(exc, [0x01, 0x83, 0x02, 0xC0, 0xF1]);
        assert_eq!(
            scan(&exc, 1, &REQ),
            Scan::Frame {
                start: 0,
                len: 5,
                answer: Err(ExceptionCode(2))
            }
        );
        // A good CRC but the wrong register count is not an answer.
        let wrong_count = with_crc(&[0x01, 0x03, 0x02, 0x00, 0x01]);
        assert_eq!(scan(&wrong_count, 1, &REQ), Scan::NeedMore);
        assert_eq!(describe_dropped(&wrong_count, 1, &REQ), "malformed answer");
        // A write echo.
        let w = Request::WriteSingleRegister {
            address: 1,
            value: 3,
        };
        let echo = encode_request(1, &w).unwrap();
        assert_eq!(
            scan(&echo, 1, &w),
            Scan::Frame {
                start: 0,
                len: 8,
                answer: Ok(Response::Written)
            }
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u32 = 0x1234_5678;
        let mut buf = Vec::new();
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push((x & 0xFF) as u8);
            if buf.len() > 300 {
                buf.clear();
            }
            let _ = scan(&buf, 1, &REQ);
            let _ = describe_dropped(&buf, 1, &REQ);
        }
    }
}
