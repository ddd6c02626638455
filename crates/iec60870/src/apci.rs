//! APCI framing: I, S and U frames (sans-IO).

use crate::asdu::{Asdu, AsduError, MAX_ASDU_LEN};
use crate::cursor::Reader;
use crate::types::AsduSizes;
use std::fmt;
use thiserror::Error;

/// Start octet of every APDU.
pub const START: u8 = 0x68;
/// Largest value of the length octet: control field plus ASDU, 253 octets.
pub const MAX_APDU_LEN: usize = 253;

/// A send or receive sequence number, modulo 32768; all arithmetic wraps explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SeqNum(u16);

impl SeqNum {
    /// The modulus of sequence numbers.
    pub const MODULUS: u32 = 32768;

    /// A sequence number from the low 15 bits of `v`.
    pub const fn new(v: u16) -> Self {
        SeqNum(v & 0x7FFF)
    }

    /// The value, 0-32767.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// The next number, wrapping 32767 -> 0.
    #[must_use]
    pub const fn next(self) -> Self {
        SeqNum(self.0.wrapping_add(1) & 0x7FFF)
    }

    /// How many steps forward `later` is from `self`, modulo 32768.
    pub const fn distance_to(self, later: SeqNum) -> u16 {
        later.0.wrapping_sub(self.0) & 0x7FFF
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// U-frame functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UFunction {
    /// STARTDT act.
    StartDtAct,
    /// STARTDT con.
    StartDtCon,
    /// STOPDT act.
    StopDtAct,
    /// STOPDT con.
    StopDtCon,
    /// TESTFR act.
    TestFrAct,
    /// TESTFR con.
    TestFrCon,
}

impl UFunction {
    /// The first control octet.
    pub fn octet(self) -> u8 {
        match self {
            Self::StartDtAct => 0x07,
            Self::StartDtCon => 0x0B,
            Self::StopDtAct => 0x13,
            Self::StopDtCon => 0x23,
            Self::TestFrAct => 0x43,
            Self::TestFrCon => 0x83,
        }
    }

    fn from_octet(v: u8) -> Option<Self> {
        Some(match v {
            0x07 => Self::StartDtAct,
            0x0B => Self::StartDtCon,
            0x13 => Self::StopDtAct,
            0x23 => Self::StopDtCon,
            0x43 => Self::TestFrAct,
            0x83 => Self::TestFrCon,
            _ => return None,
        })
    }
}

/// One APDU at the APCI level; an I-frame's ASDU is kept as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Information transfer.
    I {
        /// Send sequence number N(S).
        ns: SeqNum,
        /// Receive sequence number N(R).
        nr: SeqNum,
        /// The ASDU octets.
        asdu: Vec<u8>,
    },
    /// Supervisory (acknowledgement).
    S {
        /// Receive sequence number N(R).
        nr: SeqNum,
    },
    /// Unnumbered control.
    U(UFunction),
}

/// Errors framing an APDU.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The first octet is not 0x68.
    #[error("bad start octet {0:#04x}")]
    BadStart(u8),
    /// The length octet is below 4 or above 253.
    #[error("bad APDU length {0}")]
    BadLength(u8),
    /// The control field is not a valid I, S or U format.
    #[error("bad control field {0:02x?}")]
    BadControl([u8; 4]),
    /// An S or U frame carries octets after the control field.
    #[error("S or U frame with length {0}")]
    UnexpectedPayload(u8),
    /// An I frame carries no ASDU.
    #[error("I frame without ASDU")]
    EmptyIFrame,
    /// The ASDU to send exceeds 249 octets.
    #[error("ASDU of {0} octets exceeds 249")]
    TooLong(usize),
    /// The buffer ended inside the frame (only from [`decode_apdu`], which wants a whole frame).
    #[error("APDU truncated")]
    Truncated,
    /// Octets follow the frame (only from [`decode_apdu`]).
    #[error("{0} octets after the APDU")]
    TrailingBytes(usize),
}

fn seq_from(lo: u8, hi: u8) -> SeqNum {
    SeqNum::new(u16::from_le_bytes([lo, hi]).wrapping_shr(1))
}

fn seq_octets(n: SeqNum) -> [u8; 2] {
    n.value().wrapping_shl(1).to_le_bytes()
}

impl Frame {
    /// Encodes the frame, start and length octets included.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        match self {
            Frame::I { ns, nr, asdu } => {
                if asdu.is_empty() {
                    return Err(FrameError::EmptyIFrame);
                }
                if asdu.len() > MAX_ASDU_LEN {
                    return Err(FrameError::TooLong(asdu.len()));
                }
                let len = u8::try_from(asdu.len().saturating_add(4))
                    .map_err(|_| FrameError::TooLong(asdu.len()))?;
                let mut v = Vec::with_capacity(asdu.len().saturating_add(6));
                v.extend_from_slice(&[START, len]);
                v.extend_from_slice(&seq_octets(*ns));
                v.extend_from_slice(&seq_octets(*nr));
                v.extend_from_slice(asdu);
                Ok(v)
            }
            Frame::S { nr } => {
                let [a, b] = seq_octets(*nr);
                Ok(vec![START, 4, 0x01, 0x00, a, b])
            }
            Frame::U(f) => Ok(vec![START, 4, f.octet(), 0, 0, 0]),
        }
    }

    /// A short description for logs.
    pub fn summary(&self) -> String {
        match self {
            Frame::I { ns, nr, asdu } => format!("I(ns={ns}, nr={nr}, {} octets)", asdu.len()),
            Frame::S { nr } => format!("S(nr={nr})"),
            Frame::U(f) => format!("U({f:?})"),
        }
    }
}

/// Frames the start of a byte stream.
///
/// Returns `Ok(None)` while more bytes are needed, `Ok(Some((frame, consumed)))` for a complete
/// frame, and an error when the stream cannot be an APDU stream (the link must then close).
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let mut r = Reader::new(buf);
    let Ok(start) = r.read_u8() else {
        return Ok(None);
    };
    if start != START {
        return Err(FrameError::BadStart(start));
    }
    let Ok(len) = r.read_u8() else {
        return Ok(None);
    };
    if !(4..=253).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    let Ok(ctrl) = r.read_array::<4>() else {
        return Ok(None);
    };
    let asdu_len = usize::from(len).saturating_sub(4);
    let Ok(asdu) = r.read_slice(asdu_len) else {
        return Ok(None);
    };
    let consumed = usize::from(len).saturating_add(2);
    let [c1, c2, c3, c4] = ctrl;
    let frame = if c1 & 0x01 == 0 {
        if c3 & 0x01 != 0 {
            return Err(FrameError::BadControl(ctrl));
        }
        if asdu.is_empty() {
            return Err(FrameError::EmptyIFrame);
        }
        Frame::I {
            ns: seq_from(c1, c2),
            nr: seq_from(c3, c4),
            asdu: asdu.to_vec(),
        }
    } else if c1 & 0x03 == 0x01 {
        if c1 != 0x01 || c2 != 0 || c3 & 0x01 != 0 {
            return Err(FrameError::BadControl(ctrl));
        }
        if len != 4 {
            return Err(FrameError::UnexpectedPayload(len));
        }
        Frame::S {
            nr: seq_from(c3, c4),
        }
    } else {
        let f = UFunction::from_octet(c1).ok_or(FrameError::BadControl(ctrl))?;
        if c2 != 0 || c3 != 0 || c4 != 0 {
            return Err(FrameError::BadControl(ctrl));
        }
        if len != 4 {
            return Err(FrameError::UnexpectedPayload(len));
        }
        Frame::U(f)
    };
    Ok(Some((frame, consumed)))
}

/// A fully decoded APDU: the frame and, for I frames, the decoded ASDU.
#[derive(Debug, Clone, PartialEq)]
pub struct Apdu {
    /// The frame (an I frame keeps its raw ASDU octets too).
    pub frame: Frame,
    /// The decoded ASDU of an I frame.
    pub asdu: Option<Asdu>,
}

/// Errors decoding a whole APDU.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApduError {
    /// APCI framing error.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// ASDU error.
    #[error(transparent)]
    Asdu(#[from] AsduError),
}

/// Decodes exactly one APDU from `data` (no more, no less), including its ASDU.
pub fn decode_apdu(data: &[u8], sizes: &AsduSizes) -> Result<Apdu, ApduError> {
    let (frame, used) = parse_frame(data)?.ok_or(FrameError::Truncated)?;
    if used != data.len() {
        return Err(FrameError::TrailingBytes(data.len().saturating_sub(used)).into());
    }
    let asdu = match &frame {
        Frame::I { asdu, .. } => Some(Asdu::decode(asdu, sizes)?),
        _ => None,
    };
    Ok(Apdu { frame, asdu })
}

/// Encodes an I frame carrying `asdu`.
pub fn encode_i_frame(
    ns: SeqNum,
    nr: SeqNum,
    asdu: &Asdu,
    sizes: &AsduSizes,
) -> Result<Vec<u8>, ApduError> {
    let bytes = asdu.encode(sizes)?;
    Ok(Frame::I {
        ns,
        nr,
        asdu: bytes,
    }
    .encode()?)
}
