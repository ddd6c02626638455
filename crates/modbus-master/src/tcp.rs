//! Modbus TCP framing (sans-IO): the MBAP header `transaction id | protocol 0 | length |
//! unit id` and the PDU.
//!
//! A TCP stream has no resync point: a header with a protocol id other than 0 or an
//! impossible length means the stream is corrupt, and only then is the connection closed
//! ([`Scan::Corrupt`]). A well-formed frame with another transaction id (the late answer to a
//! request that timed out) or another unit id is skipped ([`Scan::Skip`]); a device's
//! exception is an answer like any other.

use crate::pdu::{Answer, PduError, Request};

/// MBAP header length (including the unit id).
pub const HEADER_LEN: usize = 7;
/// The longest PDU (253) plus the unit id.
pub const MAX_LENGTH_FIELD: u16 = 254;

/// The request ADU.
pub fn encode_request(transaction: u16, unit: u8, request: &Request) -> Result<Vec<u8>, PduError> {
    let mut pdu = Vec::with_capacity(16);
    request.encode(&mut pdu)?;
    let length =
        u16::try_from(pdu.len().saturating_add(1)).map_err(|_| PduError::BadCount(pdu.len()))?;
    let mut adu = Vec::with_capacity(pdu.len().saturating_add(HEADER_LEN));
    adu.extend_from_slice(&transaction.to_be_bytes());
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&length.to_be_bytes());
    adu.push(unit);
    adu.extend_from_slice(&pdu);
    Ok(adu)
}

/// What the front of the receive buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Not a whole frame yet.
    NeedMore,
    /// The answer; consume `len` bytes.
    Frame { len: usize, answer: Answer },
    /// A whole frame that is not the answer (`reason` says why); consume `len` bytes and go on.
    Skip { len: usize, reason: &'static str },
    /// The stream is corrupt (bad protocol id or length): close the connection.
    Corrupt(&'static str),
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *buf.get(at)?,
        *buf.get(at.checked_add(1)?)?,
    ]))
}

/// Looks at the frame at the front of `buf`.
pub fn scan(buf: &[u8], transaction: u16, unit: u8, request: &Request) -> Scan {
    let (Some(tid), Some(protocol), Some(length), Some(&uid)) =
        (be16(buf, 0), be16(buf, 2), be16(buf, 4), buf.get(6))
    else {
        return Scan::NeedMore;
    };
    if protocol != 0 {
        return Scan::Corrupt("protocol id is not 0");
    }
    if !(2..=MAX_LENGTH_FIELD).contains(&length) {
        return Scan::Corrupt("impossible MBAP length");
    }
    let len = usize::from(length).saturating_add(6);
    let Some(pdu) = buf.get(HEADER_LEN..len) else {
        return Scan::NeedMore;
    };
    if tid != transaction {
        return Scan::Skip {
            len,
            reason: "another transaction id (a late answer)",
        };
    }
    if uid != unit {
        return Scan::Skip {
            len,
            reason: "another unit id",
        };
    }
    match request.decode_response(pdu) {
        Ok(answer) => Scan::Frame { len, answer },
        Err(_) => Scan::Skip {
            len,
            reason: "malformed answer",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{ExceptionCode, Response};

    const REQ: Request = Request::ReadInputRegisters {
        address: 8,
        count: 1,
    };

    #[test]
    fn encodes_the_mbap_header() {
        assert_eq!(
            encode_request(0x0102, 0x11, &REQ).unwrap(),
            [0x01, 0x02, 0x00, 0x00, 0x00, 0x06, 0x11, 0x04, 0x00, 0x08, 0x00, 0x01]
        );
    }

    #[test]
    fn scans_frames() {
        let ok = [0x01, 0x02, 0, 0, 0, 5, 0x11, 0x04, 0x02, 0x00, 0x0A];
        for n in 0..ok.len() {
            assert_eq!(scan(&ok[..n], 0x0102, 0x11, &REQ), Scan::NeedMore);
        }
        assert_eq!(
            scan(&ok, 0x0102, 0x11, &REQ),
            Scan::Frame {
                len: 11,
                answer: Ok(Response::Registers(vec![10]))
            }
        );
        let exc = [0x01, 0x02, 0, 0, 0, 3, 0x11, 0x84, 0x02];
        assert_eq!(
            scan(&exc, 0x0102, 0x11, &REQ),
            Scan::Frame {
                len: 9,
                answer: Err(ExceptionCode(2))
            }
        );
        assert!(matches!(
            scan(&ok, 0x0101, 0x11, &REQ),
            Scan::Skip { len: 11, .. }
        ));
        assert!(matches!(
            scan(&ok, 0x0102, 0x12, &REQ),
            Scan::Skip { len: 11, .. }
        ));
        let malformed = [0x01, 0x02, 0, 0, 0, 4, 0x11, 0x04, 0x02, 0x00];
        assert!(matches!(
            scan(&malformed, 0x0102, 0x11, &REQ),
            Scan::Skip { len: 10, .. }
        ));
        assert!(matches!(
            scan(&[0, 1, 0, 1, 0, 5, 1], 1, 1, &REQ),
            Scan::Corrupt(_)
        ));
        assert!(matches!(
            scan(&[0, 1, 0, 0, 0xFF, 0xFF, 1], 1, 1, &REQ),
            Scan::Corrupt(_)
        ));
        assert!(matches!(
            scan(&[0, 1, 0, 0, 0, 1, 1], 1, 1, &REQ),
            Scan::Corrupt(_)
        ));
    }
}
