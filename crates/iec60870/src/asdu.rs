//! ASDU model and codec (sans-IO).

use crate::cursor::{EndOfInput, Reader, Writer};
use crate::time::{Cp16Time2a, Cp24Time2a, Cp56Time2a};
use crate::types::{
    AsduSizes, CaSize, Cause, CommonAddress, Cot, CotSize, DoublePointValue, Ioa, IoaSize, Quality,
    TimeTagKind, TypeId,
};
use thiserror::Error;

/// Largest ASDU in octets (APDU 253 minus the 4-octet control field).
pub const MAX_ASDU_LEN: usize = 249;
/// Most objects the VSQ's seven bits can count.
pub const MAX_OBJECTS: usize = 127;

/// Errors decoding or encoding an ASDU.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsduError {
    /// The ASDU ended inside a field.
    #[error("ASDU truncated")]
    Truncated,
    /// The type identification is not one this crate knows.
    #[error("unknown type identification {0}")]
    UnknownTypeId(u8),
    /// The VSQ counts zero objects.
    #[error("ASDU without information objects")]
    NoObjects,
    /// Octets remain after the last object.
    #[error("{0} octets after the last information object")]
    TrailingBytes(usize),
    /// More than 127 objects.
    #[error("{0} objects: at most 127 fit in one ASDU")]
    TooManyObjects(usize),
    /// The encoded ASDU is longer than 249 octets.
    #[error("ASDU of {0} octets exceeds 249")]
    TooLong(usize),
    /// An SQ=1 sequence runs past the largest IOA.
    #[error("SQ=1 sequence runs past the largest information object address")]
    IoaOverflow,
    /// The objects of an SQ=1 ASDU do not have consecutive addresses.
    #[error("SQ=1 objects must have consecutive addresses")]
    NotSequential,
    /// The element does not belong to the ASDU's type.
    #[error("element does not match type {0}")]
    ElementMismatch(TypeId),
    /// The object's time tag does not match the ASDU's type.
    #[error("time tag does not match type {0}")]
    TimeTagMismatch(TypeId),
    /// A value does not fit its field (e.g. a step position outside -64..=63).
    #[error("value out of range: {0}")]
    ValueOutOfRange(&'static str),
    /// An address does not fit the configured size.
    #[error("{0} does not fit the configured size")]
    AddressTooLarge(&'static str),
}

impl From<EndOfInput> for AsduError {
    fn from(_: EndOfInput) -> Self {
        AsduError::Truncated
    }
}

/// A time tag carried after an information element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeTag {
    /// Three-octet time.
    Cp24(Cp24Time2a),
    /// Seven-octet time.
    Cp56(Cp56Time2a),
}

/// Regulating step command state (RCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepCommand {
    /// 0: not permitted.
    Invalid0,
    /// 1: next step lower.
    Lower,
    /// 2: next step higher.
    Higher,
    /// 3: not permitted.
    Invalid3,
}

impl StepCommand {
    fn from_bits(v: u8) -> Self {
        match v & 0x03 {
            0 => Self::Invalid0,
            1 => Self::Lower,
            2 => Self::Higher,
            _ => Self::Invalid3,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::Invalid0 => 0,
            Self::Lower => 1,
            Self::Higher => 2,
            Self::Invalid3 => 3,
        }
    }
}

/// One information element (the value part of an information object).
///
/// `qu` is the command qualifier (0-31), `ql` the set-point qualifier (0-127), `select` the
/// S/E bit (true = select). Quality bits an element cannot carry are dropped when encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InformationElement {
    /// SIQ: types 1, 2, 30.
    SinglePoint { value: bool, quality: Quality },
    /// DIQ: types 3, 4, 31.
    DoublePoint {
        value: DoublePointValue,
        quality: Quality,
    },
    /// VTI + QDS: types 5, 6, 32. `value` is -64..=63.
    StepPosition {
        value: i8,
        transient: bool,
        quality: Quality,
    },
    /// BSI + QDS: types 7, 8, 33.
    Bitstring32 { value: u32, quality: Quality },
    /// NVA + QDS: types 9, 10, 34. The raw value; the normalised value is `value / 32768`.
    Normalized { value: i16, quality: Quality },
    /// SVA + QDS: types 11, 12, 35.
    Scaled { value: i16, quality: Quality },
    /// IEEE STD 754 + QDS: types 13, 14, 36.
    Float { value: f32, quality: Quality },
    /// BCR: types 15, 16, 37. `seq` is 0-31.
    IntegratedTotal {
        counter: i32,
        seq: u8,
        cy: bool,
        ca: bool,
        iv: bool,
    },
    /// SEP + CP16 elapsed time: types 17, 38. `event` is the two-bit ES.
    ProtectionEvent {
        event: DoublePointValue,
        quality: Quality,
        elapsed: Cp16Time2a,
    },
    /// SPE + QDP + CP16 relay duration: types 18, 39. `events` is the six-bit SPE.
    ProtectionStartEvents {
        events: u8,
        quality: Quality,
        duration: Cp16Time2a,
    },
    /// OCI + QDP + CP16 relay operating time: types 19, 40. `circuits` is the four-bit OCI.
    ProtectionOutputCircuits {
        circuits: u8,
        quality: Quality,
        operating_time: Cp16Time2a,
    },
    /// SCD + QDS: type 20. `status` is ST, `changed` is CD.
    PackedSinglePoints {
        status: u16,
        changed: u16,
        quality: Quality,
    },
    /// NVA without quality: type 21.
    NormalizedNoQuality { value: i16 },
    /// COI: type 70. `cause` is 0-127, `local_change` the BS bit.
    EndOfInit { cause: u8, local_change: bool },
    /// SCO: types 45, 58.
    SingleCommand { value: bool, qu: u8, select: bool },
    /// DCO: types 46, 59.
    DoubleCommand {
        value: DoublePointValue,
        qu: u8,
        select: bool,
    },
    /// RCO: types 47, 60.
    RegulatingStep {
        value: StepCommand,
        qu: u8,
        select: bool,
    },
    /// NVA + QOS: types 48, 61.
    SetpointNormalized { value: i16, ql: u8, select: bool },
    /// SVA + QOS: types 49, 62.
    SetpointScaled { value: i16, ql: u8, select: bool },
    /// IEEE STD 754 + QOS: types 50, 63.
    SetpointFloat { value: f32, ql: u8, select: bool },
    /// BSI: types 51, 64.
    Bitstring32Command { value: u32 },
    /// QOI: type 100 (20 = station interrogation, 21-36 = group 1-16).
    Interrogation { qoi: u8 },
    /// QCC: type 101. `rqt` is 0-63 (5 = general), `frz` is 0-3.
    CounterInterrogation { rqt: u8, frz: u8 },
    /// Type 102 (no element).
    Read,
    /// CP56Time2a: type 103.
    ClockSync { time: Cp56Time2a },
    /// FBP (fixed test pattern, normally 0x55AA): type 104.
    Test { pattern: u16 },
    /// QRP: type 105.
    ResetProcess { qrp: u8 },
    /// CP16Time2a: type 106.
    DelayAcquisition { delay: Cp16Time2a },
    /// TSC (test sequence counter): type 107; the CP56 time is the object's time tag.
    TestWithTime { counter: u16 },
    /// NVA + QPM: type 110.
    ParameterNormalized { value: i16, qpm: u8 },
    /// SVA + QPM: type 111.
    ParameterScaled { value: i16, qpm: u8 },
    /// IEEE STD 754 + QPM: type 112.
    ParameterFloat { value: f32, qpm: u8 },
    /// QPA: type 113.
    ParameterActivation { qpa: u8 },
}

impl InformationElement {
    /// The value as a number, for the tag bus: points 0/1, double points and step commands
    /// their two-bit code, normalised values `raw / 32768`, counters the count, bitstrings
    /// and packed single points their status bits; `None` for system commands and
    /// protection events.
    pub fn numeric_value(&self) -> Option<f64> {
        use InformationElement as E;
        Some(match *self {
            E::SinglePoint { value, .. } | E::SingleCommand { value, .. } => {
                f64::from(u8::from(value))
            }
            E::DoublePoint { value, .. } | E::DoubleCommand { value, .. } => {
                f64::from(value.bits())
            }
            E::StepPosition { value, .. } => f64::from(value),
            E::Bitstring32 { value, .. } | E::Bitstring32Command { value } => f64::from(value),
            E::Normalized { value, .. }
            | E::NormalizedNoQuality { value }
            | E::SetpointNormalized { value, .. }
            | E::ParameterNormalized { value, .. } => f64::from(value) / 32768.0,
            E::Scaled { value, .. }
            | E::SetpointScaled { value, .. }
            | E::ParameterScaled { value, .. } => f64::from(value),
            E::Float { value, .. }
            | E::SetpointFloat { value, .. }
            | E::ParameterFloat { value, .. } => f64::from(value),
            E::IntegratedTotal { counter, .. } => f64::from(counter),
            E::PackedSinglePoints { status, .. } => f64::from(status),
            E::RegulatingStep { value, .. } => f64::from(value.bits()),
            _ => return None,
        })
    }

    /// The quality bits (IV of integrated totals maps to [`Quality::IV`]); good for elements
    /// without quality.
    pub fn quality(&self) -> Quality {
        use InformationElement as E;
        match *self {
            E::SinglePoint { quality, .. }
            | E::DoublePoint { quality, .. }
            | E::StepPosition { quality, .. }
            | E::Bitstring32 { quality, .. }
            | E::Normalized { quality, .. }
            | E::Scaled { quality, .. }
            | E::Float { quality, .. }
            | E::ProtectionEvent { quality, .. }
            | E::ProtectionStartEvents { quality, .. }
            | E::ProtectionOutputCircuits { quality, .. }
            | E::PackedSinglePoints { quality, .. } => quality,
            E::IntegratedTotal { iv, .. } => {
                if iv {
                    Quality::IV
                } else {
                    Quality::GOOD
                }
            }
            _ => Quality::GOOD,
        }
    }

    /// The quality descriptor of an element that carries one, to change it; `None` for
    /// integrated totals (their IV is a bit of the counter reading) and elements without.
    pub fn quality_mut(&mut self) -> Option<&mut Quality> {
        use InformationElement as E;
        match self {
            E::SinglePoint { quality, .. }
            | E::DoublePoint { quality, .. }
            | E::StepPosition { quality, .. }
            | E::Bitstring32 { quality, .. }
            | E::Normalized { quality, .. }
            | E::Scaled { quality, .. }
            | E::Float { quality, .. }
            | E::ProtectionEvent { quality, .. }
            | E::ProtectionStartEvents { quality, .. }
            | E::ProtectionOutputCircuits { quality, .. }
            | E::PackedSinglePoints { quality, .. } => Some(quality),
            _ => None,
        }
    }
}

/// An information object: address, element and (for time-tagged types) the time tag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InformationObject {
    /// Information object address.
    pub ioa: Ioa,
    /// The element.
    pub element: InformationElement,
    /// The time tag; required exactly for time-tagged types.
    pub time: Option<TimeTag>,
}

impl InformationObject {
    /// The CP56 time tag as Unix ms UTC; `None` without a CP56 tag, when its IV bit is set or
    /// when it is not a valid 2000-2099 date. (A CP24 tag needs a reference time.)
    pub fn timestamp_ms(&self) -> Option<i64> {
        match self.time {
            Some(TimeTag::Cp56(t)) if !t.invalid => t.to_unix_ms().ok(),
            _ => None,
        }
    }

    /// An object without time tag.
    pub fn new(ioa: Ioa, element: InformationElement) -> Self {
        Self {
            ioa,
            element,
            time: None,
        }
    }

    /// An object with a CP56 time tag.
    pub fn with_cp56(ioa: Ioa, element: InformationElement, time: Cp56Time2a) -> Self {
        Self {
            ioa,
            element,
            time: Some(TimeTag::Cp56(time)),
        }
    }
}

/// Application service data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Asdu {
    /// Type identification.
    pub type_id: TypeId,
    /// SQ bit: objects form a sequence from the first object's IOA (only it is encoded).
    pub sq: bool,
    /// Cause of transmission.
    pub cot: Cot,
    /// Common address of ASDU.
    pub common_address: CommonAddress,
    /// Information objects (1-127).
    pub objects: Vec<InformationObject>,
}

fn qual(q: Quality, mask: u8) -> u8 {
    q.0 & mask
}

const SIQ_MASK: u8 = 0xF0;
const QDS_MASK: u8 = 0xF1;
const QDP_MASK: u8 = 0xF8;

fn se(select: bool) -> u8 {
    if select {
        0x80
    } else {
        0
    }
}

fn bit(v: bool, b: u8) -> u8 {
    if v {
        b
    } else {
        0
    }
}

fn check_max(v: u8, max: u8, what: &'static str) -> Result<u8, AsduError> {
    if v > max {
        Err(AsduError::ValueOutOfRange(what))
    } else {
        Ok(v)
    }
}

fn decode_element(tid: TypeId, r: &mut Reader<'_>) -> Result<InformationElement, AsduError> {
    use InformationElement as E;
    use TypeId::*;
    let el = match tid {
        M_SP_NA_1 | M_SP_TA_1 | M_SP_TB_1 => {
            let b = r.read_u8()?;
            E::SinglePoint {
                value: b & 0x01 != 0,
                quality: Quality(b & SIQ_MASK),
            }
        }
        M_DP_NA_1 | M_DP_TA_1 | M_DP_TB_1 => {
            let b = r.read_u8()?;
            E::DoublePoint {
                value: DoublePointValue::from_bits(b),
                quality: Quality(b & SIQ_MASK),
            }
        }
        M_ST_NA_1 | M_ST_TA_1 | M_ST_TB_1 => {
            let vti = r.read_u8()?;
            let q = r.read_u8()?;
            // seven-bit two's complement: move bit 6 into the sign bit, shift back arithmetically
            let value = i8::from_le_bytes([vti.wrapping_shl(1)]).wrapping_shr(1);
            E::StepPosition {
                value,
                transient: vti & 0x80 != 0,
                quality: Quality(q & QDS_MASK),
            }
        }
        M_BO_NA_1 | M_BO_TA_1 | M_BO_TB_1 => E::Bitstring32 {
            value: r.read_u32_le()?,
            quality: Quality(r.read_u8()? & QDS_MASK),
        },
        M_ME_NA_1 | M_ME_TA_1 | M_ME_TD_1 => E::Normalized {
            value: r.read_i16_le()?,
            quality: Quality(r.read_u8()? & QDS_MASK),
        },
        M_ME_NB_1 | M_ME_TB_1 | M_ME_TE_1 => E::Scaled {
            value: r.read_i16_le()?,
            quality: Quality(r.read_u8()? & QDS_MASK),
        },
        M_ME_NC_1 | M_ME_TC_1 | M_ME_TF_1 => E::Float {
            value: r.read_f32_le()?,
            quality: Quality(r.read_u8()? & QDS_MASK),
        },
        M_IT_NA_1 | M_IT_TA_1 | M_IT_TB_1 => {
            let counter = r.read_i32_le()?;
            let b = r.read_u8()?;
            E::IntegratedTotal {
                counter,
                seq: b & 0x1F,
                cy: b & 0x20 != 0,
                ca: b & 0x40 != 0,
                iv: b & 0x80 != 0,
            }
        }
        M_EP_TA_1 | M_EP_TD_1 => {
            let b = r.read_u8()?;
            E::ProtectionEvent {
                event: DoublePointValue::from_bits(b),
                quality: Quality(b & QDP_MASK),
                elapsed: Cp16Time2a::decode(r)?,
            }
        }
        M_EP_TB_1 | M_EP_TE_1 => E::ProtectionStartEvents {
            events: r.read_u8()? & 0x3F,
            quality: Quality(r.read_u8()? & QDP_MASK),
            duration: Cp16Time2a::decode(r)?,
        },
        M_EP_TC_1 | M_EP_TF_1 => E::ProtectionOutputCircuits {
            circuits: r.read_u8()? & 0x0F,
            quality: Quality(r.read_u8()? & QDP_MASK),
            operating_time: Cp16Time2a::decode(r)?,
        },
        M_PS_NA_1 => E::PackedSinglePoints {
            status: r.read_u16_le()?,
            changed: r.read_u16_le()?,
            quality: Quality(r.read_u8()? & QDS_MASK),
        },
        M_ME_ND_1 => E::NormalizedNoQuality {
            value: r.read_i16_le()?,
        },
        M_EI_NA_1 => {
            let b = r.read_u8()?;
            E::EndOfInit {
                cause: b & 0x7F,
                local_change: b & 0x80 != 0,
            }
        }
        C_SC_NA_1 | C_SC_TA_1 => {
            let b = r.read_u8()?;
            E::SingleCommand {
                value: b & 0x01 != 0,
                qu: (b >> 2) & 0x1F,
                select: b & 0x80 != 0,
            }
        }
        C_DC_NA_1 | C_DC_TA_1 => {
            let b = r.read_u8()?;
            E::DoubleCommand {
                value: DoublePointValue::from_bits(b),
                qu: (b >> 2) & 0x1F,
                select: b & 0x80 != 0,
            }
        }
        C_RC_NA_1 | C_RC_TA_1 => {
            let b = r.read_u8()?;
            E::RegulatingStep {
                value: StepCommand::from_bits(b),
                qu: (b >> 2) & 0x1F,
                select: b & 0x80 != 0,
            }
        }
        C_SE_NA_1 | C_SE_TA_1 => {
            let value = r.read_i16_le()?;
            let q = r.read_u8()?;
            E::SetpointNormalized {
                value,
                ql: q & 0x7F,
                select: q & 0x80 != 0,
            }
        }
        C_SE_NB_1 | C_SE_TB_1 => {
            let value = r.read_i16_le()?;
            let q = r.read_u8()?;
            E::SetpointScaled {
                value,
                ql: q & 0x7F,
                select: q & 0x80 != 0,
            }
        }
        C_SE_NC_1 | C_SE_TC_1 => {
            let value = r.read_f32_le()?;
            let q = r.read_u8()?;
            E::SetpointFloat {
                value,
                ql: q & 0x7F,
                select: q & 0x80 != 0,
            }
        }
        C_BO_NA_1 | C_BO_TA_1 => E::Bitstring32Command {
            value: r.read_u32_le()?,
        },
        C_IC_NA_1 => E::Interrogation { qoi: r.read_u8()? },
        C_CI_NA_1 => {
            let b = r.read_u8()?;
            E::CounterInterrogation {
                rqt: b & 0x3F,
                frz: (b >> 6) & 0x03,
            }
        }
        C_RD_NA_1 => E::Read,
        C_CS_NA_1 => E::ClockSync {
            time: Cp56Time2a::decode(r)?,
        },
        C_TS_NA_1 => E::Test {
            pattern: r.read_u16_le()?,
        },
        C_RP_NA_1 => E::ResetProcess { qrp: r.read_u8()? },
        C_CD_NA_1 => E::DelayAcquisition {
            delay: Cp16Time2a::decode(r)?,
        },
        C_TS_TA_1 => E::TestWithTime {
            counter: r.read_u16_le()?,
        },
        P_ME_NA_1 => E::ParameterNormalized {
            value: r.read_i16_le()?,
            qpm: r.read_u8()?,
        },
        P_ME_NB_1 => E::ParameterScaled {
            value: r.read_i16_le()?,
            qpm: r.read_u8()?,
        },
        P_ME_NC_1 => E::ParameterFloat {
            value: r.read_f32_le()?,
            qpm: r.read_u8()?,
        },
        P_AC_NA_1 => E::ParameterActivation { qpa: r.read_u8()? },
    };
    Ok(el)
}

fn encode_element(tid: TypeId, el: &InformationElement, w: &mut Writer) -> Result<(), AsduError> {
    use InformationElement as E;
    use TypeId::*;
    match (tid, *el) {
        (M_SP_NA_1 | M_SP_TA_1 | M_SP_TB_1, E::SinglePoint { value, quality }) => {
            w.u8(bit(value, 0x01) | qual(quality, SIQ_MASK));
        }
        (M_DP_NA_1 | M_DP_TA_1 | M_DP_TB_1, E::DoublePoint { value, quality }) => {
            w.u8(value.bits() | qual(quality, SIQ_MASK));
        }
        (
            M_ST_NA_1 | M_ST_TA_1 | M_ST_TB_1,
            E::StepPosition {
                value,
                transient,
                quality,
            },
        ) => {
            if !(-64..=63).contains(&value) {
                return Err(AsduError::ValueOutOfRange("step position"));
            }
            let [raw] = value.to_le_bytes();
            w.u8((raw & 0x7F) | bit(transient, 0x80));
            w.u8(qual(quality, QDS_MASK));
        }
        (M_BO_NA_1 | M_BO_TA_1 | M_BO_TB_1, E::Bitstring32 { value, quality }) => {
            w.u32_le(value);
            w.u8(qual(quality, QDS_MASK));
        }
        (M_ME_NA_1 | M_ME_TA_1 | M_ME_TD_1, E::Normalized { value, quality })
        | (M_ME_NB_1 | M_ME_TB_1 | M_ME_TE_1, E::Scaled { value, quality }) => {
            w.i16_le(value);
            w.u8(qual(quality, QDS_MASK));
        }
        (M_ME_NC_1 | M_ME_TC_1 | M_ME_TF_1, E::Float { value, quality }) => {
            w.f32_le(value);
            w.u8(qual(quality, QDS_MASK));
        }
        (
            M_IT_NA_1 | M_IT_TA_1 | M_IT_TB_1,
            E::IntegratedTotal {
                counter,
                seq,
                cy,
                ca,
                iv,
            },
        ) => {
            w.i32_le(counter);
            let seq = check_max(seq, 31, "counter sequence number")?;
            w.u8(seq | bit(cy, 0x20) | bit(ca, 0x40) | bit(iv, 0x80));
        }
        (
            M_EP_TA_1 | M_EP_TD_1,
            E::ProtectionEvent {
                event,
                quality,
                elapsed,
            },
        ) => {
            w.u8(event.bits() | qual(quality, QDP_MASK));
            elapsed.encode(w);
        }
        (
            M_EP_TB_1 | M_EP_TE_1,
            E::ProtectionStartEvents {
                events,
                quality,
                duration,
            },
        ) => {
            w.u8(check_max(events, 0x3F, "start events")?);
            w.u8(qual(quality, QDP_MASK));
            duration.encode(w);
        }
        (
            M_EP_TC_1 | M_EP_TF_1,
            E::ProtectionOutputCircuits {
                circuits,
                quality,
                operating_time,
            },
        ) => {
            w.u8(check_max(circuits, 0x0F, "output circuits")?);
            w.u8(qual(quality, QDP_MASK));
            operating_time.encode(w);
        }
        (
            M_PS_NA_1,
            E::PackedSinglePoints {
                status,
                changed,
                quality,
            },
        ) => {
            w.u16_le(status);
            w.u16_le(changed);
            w.u8(qual(quality, QDS_MASK));
        }
        (M_ME_ND_1, E::NormalizedNoQuality { value }) => w.i16_le(value),
        (
            M_EI_NA_1,
            E::EndOfInit {
                cause,
                local_change,
            },
        ) => {
            w.u8(check_max(cause, 0x7F, "COI cause")? | bit(local_change, 0x80));
        }
        (C_SC_NA_1 | C_SC_TA_1, E::SingleCommand { value, qu, select }) => {
            let qu = check_max(qu, 31, "command qualifier")?;
            w.u8(bit(value, 0x01) | qu.wrapping_shl(2) | se(select));
        }
        (C_DC_NA_1 | C_DC_TA_1, E::DoubleCommand { value, qu, select }) => {
            let qu = check_max(qu, 31, "command qualifier")?;
            w.u8(value.bits() | qu.wrapping_shl(2) | se(select));
        }
        (C_RC_NA_1 | C_RC_TA_1, E::RegulatingStep { value, qu, select }) => {
            let qu = check_max(qu, 31, "command qualifier")?;
            w.u8(value.bits() | qu.wrapping_shl(2) | se(select));
        }
        (C_SE_NA_1 | C_SE_TA_1, E::SetpointNormalized { value, ql, select })
        | (C_SE_NB_1 | C_SE_TB_1, E::SetpointScaled { value, ql, select }) => {
            w.i16_le(value);
            w.u8(check_max(ql, 0x7F, "set-point qualifier")? | se(select));
        }
        (C_SE_NC_1 | C_SE_TC_1, E::SetpointFloat { value, ql, select }) => {
            w.f32_le(value);
            w.u8(check_max(ql, 0x7F, "set-point qualifier")? | se(select));
        }
        (C_BO_NA_1 | C_BO_TA_1, E::Bitstring32Command { value }) => w.u32_le(value),
        (C_IC_NA_1, E::Interrogation { qoi }) => w.u8(qoi),
        (C_CI_NA_1, E::CounterInterrogation { rqt, frz }) => {
            let rqt = check_max(rqt, 0x3F, "RQT")?;
            let frz = check_max(frz, 0x03, "FRZ")?;
            w.u8(rqt | frz.wrapping_shl(6));
        }
        (C_RD_NA_1, E::Read) => {}
        (C_CS_NA_1, E::ClockSync { time }) => time.encode(w),
        (C_TS_NA_1, E::Test { pattern }) => w.u16_le(pattern),
        (C_RP_NA_1, E::ResetProcess { qrp }) => w.u8(qrp),
        (C_CD_NA_1, E::DelayAcquisition { delay }) => delay.encode(w),
        (C_TS_TA_1, E::TestWithTime { counter }) => w.u16_le(counter),
        (P_ME_NA_1, E::ParameterNormalized { value, qpm })
        | (P_ME_NB_1, E::ParameterScaled { value, qpm }) => {
            w.i16_le(value);
            w.u8(qpm);
        }
        (P_ME_NC_1, E::ParameterFloat { value, qpm }) => {
            w.f32_le(value);
            w.u8(qpm);
        }
        (P_AC_NA_1, E::ParameterActivation { qpa }) => w.u8(qpa),
        _ => return Err(AsduError::ElementMismatch(tid)),
    }
    Ok(())
}

fn decode_time(tid: TypeId, r: &mut Reader<'_>) -> Result<Option<TimeTag>, AsduError> {
    Ok(match tid.time_tag() {
        TimeTagKind::None => None,
        TimeTagKind::Cp24 => Some(TimeTag::Cp24(Cp24Time2a::decode(r)?)),
        TimeTagKind::Cp56 => Some(TimeTag::Cp56(Cp56Time2a::decode(r)?)),
    })
}

fn encode_time(tid: TypeId, time: &Option<TimeTag>, w: &mut Writer) -> Result<(), AsduError> {
    match (tid.time_tag(), time) {
        (TimeTagKind::None, None) => Ok(()),
        (TimeTagKind::Cp24, Some(TimeTag::Cp24(t))) => {
            t.encode(w);
            Ok(())
        }
        (TimeTagKind::Cp56, Some(TimeTag::Cp56(t))) => {
            t.encode(w);
            Ok(())
        }
        _ => Err(AsduError::TimeTagMismatch(tid)),
    }
}

fn decode_ioa(r: &mut Reader<'_>, sizes: &AsduSizes) -> Result<Ioa, AsduError> {
    Ok(Ioa(match sizes.ioa {
        IoaSize::One => u32::from(r.read_u8()?),
        IoaSize::Two => u32::from(r.read_u16_le()?),
        IoaSize::Three => r.read_u24_le()?,
    }))
}

impl AsduSizes {
    /// Fails when the originator address cannot be sent: any but 0 with a one-octet COT.
    pub fn check_originator(&self, originator: u8) -> Result<(), AsduError> {
        if self.cot == CotSize::One && originator != 0 {
            return Err(AsduError::AddressTooLarge("originator address"));
        }
        Ok(())
    }

    /// Fails when the common address does not fit the CA size.
    pub fn check_common_address(&self, ca: CommonAddress) -> Result<(), AsduError> {
        if ca.0 > self.max_common_address() {
            return Err(AsduError::AddressTooLarge("common address"));
        }
        Ok(())
    }

    /// Fails when the information object address does not fit the IOA size.
    pub fn check_ioa(&self, ioa: Ioa) -> Result<(), AsduError> {
        if ioa.0 > self.max_ioa() {
            return Err(AsduError::AddressTooLarge("information object address"));
        }
        Ok(())
    }
}

fn encode_ioa(ioa: Ioa, sizes: &AsduSizes, w: &mut Writer) -> Result<(), AsduError> {
    sizes.check_ioa(ioa)?;
    let [a, b, c, _] = ioa.0.to_le_bytes();
    match sizes.ioa {
        IoaSize::One => w.u8(a),
        IoaSize::Two => w.bytes(&[a, b]),
        IoaSize::Three => w.bytes(&[a, b, c]),
    }
    Ok(())
}

impl Asdu {
    /// An ASDU with SQ=0 and no objects yet.
    pub fn new(type_id: TypeId, cot: Cot, common_address: CommonAddress) -> Self {
        Self {
            type_id,
            sq: false,
            cot,
            common_address,
            objects: Vec::new(),
        }
    }

    /// An ASDU carrying one object (SQ=0).
    pub fn single(
        type_id: TypeId,
        cot: Cot,
        common_address: CommonAddress,
        object: InformationObject,
    ) -> Self {
        Self {
            type_id,
            sq: false,
            cot,
            common_address,
            objects: vec![object],
        }
    }

    /// Decodes an ASDU occupying all of `data`.
    pub fn decode(data: &[u8], sizes: &AsduSizes) -> Result<Self, AsduError> {
        if data.len() > MAX_ASDU_LEN {
            return Err(AsduError::TooLong(data.len()));
        }
        let mut r = Reader::new(data);
        let tid_raw = r.read_u8()?;
        let type_id = TypeId::from_u8(tid_raw).ok_or(AsduError::UnknownTypeId(tid_raw))?;
        let vsq = r.read_u8()?;
        let sq = vsq & 0x80 != 0;
        let count = usize::from(vsq & 0x7F);
        if count == 0 {
            return Err(AsduError::NoObjects);
        }
        let cot_first = r.read_u8()?;
        let originator = match sizes.cot {
            CotSize::One => 0,
            CotSize::Two => r.read_u8()?,
        };
        let cot = Cot::from_octets(cot_first, originator);
        let common_address = CommonAddress(match sizes.ca {
            CaSize::One => u16::from(r.read_u8()?),
            CaSize::Two => r.read_u16_le()?,
        });
        let mut objects = Vec::with_capacity(count);
        if sq {
            let mut ioa = decode_ioa(&mut r, sizes)?;
            for i in 0..count {
                if i > 0 {
                    ioa = ioa
                        .0
                        .checked_add(1)
                        .filter(|v| *v <= sizes.max_ioa())
                        .map(Ioa)
                        .ok_or(AsduError::IoaOverflow)?;
                }
                let element = decode_element(type_id, &mut r)?;
                let time = decode_time(type_id, &mut r)?;
                objects.push(InformationObject { ioa, element, time });
            }
        } else {
            for _ in 0..count {
                let ioa = decode_ioa(&mut r, sizes)?;
                let element = decode_element(type_id, &mut r)?;
                let time = decode_time(type_id, &mut r)?;
                objects.push(InformationObject { ioa, element, time });
            }
        }
        if !r.is_empty() {
            return Err(AsduError::TrailingBytes(r.remaining()));
        }
        Ok(Self {
            type_id,
            sq,
            cot,
            common_address,
            objects,
        })
    }

    /// Encodes the ASDU; errors when an element or time tag does not match the type, an
    /// address does not fit, SQ=1 objects are not consecutive, or it exceeds 249 octets.
    pub fn encode(&self, sizes: &AsduSizes) -> Result<Vec<u8>, AsduError> {
        let count = self.objects.len();
        if count == 0 {
            return Err(AsduError::NoObjects);
        }
        let count_u8 = u8::try_from(count)
            .ok()
            .filter(|c| usize::from(*c) <= MAX_OBJECTS)
            .ok_or(AsduError::TooManyObjects(count))?;
        let mut w = Writer::new();
        w.u8(self.type_id as u8);
        w.u8(count_u8 | bit(self.sq, 0x80));
        w.u8(self.cot.octet());
        sizes.check_originator(self.cot.originator)?;
        sizes.check_common_address(self.common_address)?;
        if sizes.cot == CotSize::Two {
            w.u8(self.cot.originator);
        }
        let [ca_low, ca_high] = self.common_address.0.to_le_bytes();
        match sizes.ca {
            CaSize::One => w.u8(ca_low),
            CaSize::Two => w.bytes(&[ca_low, ca_high]),
        }
        let mut expected: Option<u32> = None;
        for (i, obj) in self.objects.iter().enumerate() {
            if !self.sq || i == 0 {
                encode_ioa(obj.ioa, sizes, &mut w)?;
            } else if expected != Some(obj.ioa.0) {
                return Err(AsduError::NotSequential);
            }
            if self.sq {
                expected = obj.ioa.0.checked_add(1).filter(|v| *v <= sizes.max_ioa());
            }
            encode_element(self.type_id, &obj.element, &mut w)?;
            encode_time(self.type_id, &obj.time, &mut w)?;
        }
        if w.len() > MAX_ASDU_LEN {
            return Err(AsduError::TooLong(w.len()));
        }
        Ok(w.into_vec())
    }

    /// The answer to a request: the same ASDU with another cause and P/N bit (a negative
    /// mirror for COT 44-47, ACT_CON, ACT_TERM, DEACT_CON).
    #[must_use]
    pub fn mirror(&self, cause: Cause, negative: bool) -> Asdu {
        let mut a = self.clone();
        a.cot.cause = cause;
        a.cot.negative = negative;
        a
    }

    /// Appends `object` when the ASDU still encodes with it (at most 127 objects and 249
    /// octets, SQ=1 objects consecutive); otherwise leaves the ASDU unchanged and returns
    /// false. Packs points into as few ASDUs as fit.
    pub fn try_push(&mut self, object: InformationObject, sizes: &AsduSizes) -> bool {
        if self.objects.len() >= MAX_OBJECTS {
            return false;
        }
        self.objects.push(object);
        if self.encode(sizes).is_ok() {
            return true;
        }
        self.objects.pop();
        false
    }

    /// The cause of transmission's cause.
    pub fn cause(&self) -> Cause {
        self.cot.cause
    }

    /// The first object's address, if any.
    pub fn first_ioa(&self) -> Option<Ioa> {
        self.objects.first().map(|o| o.ioa)
    }
}
