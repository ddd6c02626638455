//! Protocol decode logging, in the spirit of dnp3's decode levels.

use crate::apci::{parse_frame, Frame};
use crate::asdu::Asdu;
use crate::types::AsduSizes;

/// How much of each frame is logged (at `info` level, target `iec60870::decode`).
///
/// Levels are cumulative: `Asdu` logs the APCI too, `Hex` logs everything plus the octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub enum DecodeLevel {
    /// Nothing is logged.
    #[default]
    Off,
    /// The APCI: frame format, sequence numbers, U function.
    Apci,
    /// The APCI and the decoded ASDU (header and objects).
    Asdu,
    /// All of the above plus a hex dump of the frame.
    Hex,
}

impl std::str::FromStr for DecodeLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "nothing" | "none" => Ok(Self::Off),
            "apci" => Ok(Self::Apci),
            "asdu" => Ok(Self::Asdu),
            "hex" => Ok(Self::Hex),
            other => Err(format!(
                "unknown decode level {other:?} (off|apci|asdu|hex)"
            )),
        }
    }
}

/// Hex dump with spaces.
pub fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().saturating_mul(3));
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Logs one frame (`tx` true for sent frames) at the given level.
pub fn log_frame(level: DecodeLevel, tx: bool, bytes: &[u8], sizes: &AsduSizes) {
    if level == DecodeLevel::Off {
        return;
    }
    let dir = if tx { "tx" } else { "rx" };
    let frame = match parse_frame(bytes) {
        Ok(Some((f, _))) => f,
        _ => {
            tracing::info!(target: "iec60870::decode", dir, hex = %hex(bytes), "unparsable frame");
            return;
        }
    };
    let apci = frame.summary();
    let asdu = match (&frame, level >= DecodeLevel::Asdu) {
        (Frame::I { asdu, .. }, true) => match Asdu::decode(asdu, sizes) {
            Ok(a) => Some(format!("{a:?}")),
            Err(e) => Some(format!("undecodable ASDU: {e}")),
        },
        _ => None,
    };
    match (asdu, level >= DecodeLevel::Hex) {
        (None, false) => tracing::info!(target: "iec60870::decode", dir, %apci),
        (None, true) => tracing::info!(target: "iec60870::decode", dir, %apci, hex = %hex(bytes)),
        (Some(a), false) => tracing::info!(target: "iec60870::decode", dir, %apci, asdu = %a),
        (Some(a), true) => {
            tracing::info!(target: "iec60870::decode", dir, %apci, asdu = %a, hex = %hex(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("off".parse::<DecodeLevel>().unwrap(), DecodeLevel::Off);
        assert_eq!("APCI".parse::<DecodeLevel>().unwrap(), DecodeLevel::Apci);
        assert_eq!("asdu".parse::<DecodeLevel>().unwrap(), DecodeLevel::Asdu);
        assert_eq!("hex".parse::<DecodeLevel>().unwrap(), DecodeLevel::Hex);
        assert!("loud".parse::<DecodeLevel>().is_err());
        assert!(DecodeLevel::Hex > DecodeLevel::Asdu && DecodeLevel::Asdu > DecodeLevel::Apci);
        assert_eq!(hex(&[0x68, 0x04, 0x0b]), "68 04 0b");
        // logging garbage must not panic
        for level in [DecodeLevel::Apci, DecodeLevel::Asdu, DecodeLevel::Hex] {
            log_frame(
                level,
                false,
                &[0x68, 0x05, 0, 0, 0, 0, 99],
                &AsduSizes::default(),
            );
            log_frame(level, true, &[0x01], &AsduSizes::default());
        }
    }
}
