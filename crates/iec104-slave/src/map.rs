//! Tag bus values to IEC points, IEC commands to `out` values.
//!
//! The numeric forms on the tag bus are the IEC 104 master's (see the `iec104-master` crate
//! docs): single point 0/1, double point DPI 0-3, step position -64..=63, bitstring
//! 0..=2^32-1, normalised value the fraction in [-1, 1), scaled value and float the number,
//! integrated total the counter. Commands: single 0/1, double 1 (off) / 2 (on), regulating
//! step 1 (lower) / 2 (higher), set-points the number.
//!
//! A row's `multiplier`/`offset` map the wire value to the engineering (tag) value, as on
//! the master side: engineering = wire * multiplier + offset. A monitor point sends
//! wire = (tag value - offset) / multiplier; a command writes wire * multiplier + offset to
//! the `out` tag. So a Modbus register holding 0/1 served as a double point takes
//! `offset: -1` (wire = value + 1: OFF = 1, ON = 2).
//!
//! Quality: the tag's flags `iv nt sb bl ov` become the IEC bits of the same name; the
//! gateway's link-loss mark `nolink` sets NT (it comes with `nt`); a value the conversion
//! cannot represent sets OV (out of range, clamped) or IV (not a number). A gateway-stamped
//! value (`gt`) is sent as any other, with the gateway's time. The time tag (CP56Time2a,
//! UTC) is the tag's timestamp; one outside 2000-2099 sets the time tag's IV bit.

use iec60870::{
    Cp56Time2a, DoublePointValue, InformationElement, Ioa, Point, Quality, StepCommand, TimeTag,
    TimeTagKind, TypeId,
};
use tagbus::{Flag, TagValue, Value};
use thiserror::Error;

/// How one monitor point is served: address, type, scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointSpec {
    pub ioa: Ioa,
    /// The monitor type sent spontaneously (a time-tagged type carries the tag's time;
    /// interrogation answers use the untagged twin).
    pub type_id: TypeId,
    pub multiplier: f64,
    pub offset: f64,
}

/// How one command point is executed: address, type, scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandSpec {
    pub ioa: Ioa,
    /// The command type without time tag (its time-tagged twin is accepted too).
    pub type_id: TypeId,
    pub multiplier: f64,
    pub offset: f64,
}

/// Why a received command element cannot become an `out` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CommandValueError {
    /// The element is not of the point's command type.
    #[error("the command element does not fit the point's type {0}")]
    WrongElement(TypeId),
    /// The value is a reserved code (e.g. double command 0 or 3).
    #[error("reserved command value")]
    Reserved,
    /// Scaling gave no finite number.
    #[error("the scaled value is not a finite number")]
    NotFinite,
}

/// The time tag of a value whose timestamp CP56Time2a cannot carry: 2000-01-01, IV set.
const INVALID_TIME: Cp56Time2a = Cp56Time2a {
    millis: 0,
    minute: 0,
    hour: 0,
    day: 1,
    weekday: 6,
    month: 1,
    year: 0,
    invalid: true,
    summer_time: false,
};

fn quality_of(value: &TagValue) -> Quality {
    let mut q = Quality::GOOD;
    for flag in value.flags.iter() {
        if let Some(bit) = Quality::from_code(flag.as_str()) {
            q = q | bit;
        }
    }
    if value.flags.is_no_link() {
        q = q | Quality::NT;
    }
    q
}

/// `(value - offset) / multiplier`, or `None` when that is not a finite number.
fn wire(value: Value, spec: &PointSpec) -> Option<f64> {
    let w = (value.as_f64() - spec.offset) / spec.multiplier;
    w.is_finite().then_some(w)
}

/// Rounds into `lo..=hi`; `true` when it had to clamp.
#[allow(clippy::cast_possible_truncation)]
fn clamp_round(w: f64, lo: f64, hi: f64) -> (i64, bool) {
    let r = w.round();
    let c = r.clamp(lo, hi);
    (c as i64, c != r)
}

impl PointSpec {
    /// The point for a tag value, with its quality and (for time-tagged types) time.
    pub fn point(&self, value: &TagValue) -> Point {
        let mut q = quality_of(value);
        let w = wire(value.value, self);
        if w.is_none() {
            q = q | Quality::IV;
        }
        let w = w.unwrap_or(0.0);
        let mut over = |clamped: bool| {
            if clamped {
                q = q | Quality::OV;
            }
        };
        use InformationElement as E;
        let element = match self.type_id.without_time() {
            TypeId::M_SP_NA_1 => E::SinglePoint {
                value: w != 0.0,
                quality: q,
            },
            TypeId::M_DP_NA_1 => {
                let (v, clamped) = clamp_round(w, 0.0, 3.0);
                if clamped {
                    q = q | Quality::IV;
                }
                E::DoublePoint {
                    value: DoublePointValue::from_bits(u8::try_from(v).unwrap_or(0)),
                    quality: q,
                }
            }
            TypeId::M_ST_NA_1 => {
                let (v, clamped) = clamp_round(w, -64.0, 63.0);
                over(clamped);
                E::StepPosition {
                    value: i8::try_from(v).unwrap_or(0),
                    transient: value.flags.contains(Flag::TR),
                    quality: q,
                }
            }
            TypeId::M_BO_NA_1 => {
                let (v, clamped) = clamp_round(w, 0.0, f64::from(u32::MAX));
                over(clamped);
                E::Bitstring32 {
                    value: u32::try_from(v).unwrap_or(0),
                    quality: q,
                }
            }
            TypeId::M_ME_NA_1 => {
                let (v, clamped) = clamp_round(w * 32768.0, -32768.0, 32767.0);
                over(clamped);
                E::Normalized {
                    value: i16::try_from(v).unwrap_or(0),
                    quality: q,
                }
            }
            TypeId::M_ME_NB_1 => {
                let (v, clamped) = clamp_round(w, -32768.0, 32767.0);
                over(clamped);
                E::Scaled {
                    value: i16::try_from(v).unwrap_or(0),
                    quality: q,
                }
            }
            TypeId::M_IT_NA_1 => {
                let (v, clamped) = clamp_round(w, f64::from(i32::MIN), f64::from(i32::MAX));
                E::IntegratedTotal {
                    counter: i32::try_from(v).unwrap_or(0),
                    seq: 0,
                    cy: value.flags.contains(Flag::CY),
                    ca: value.flags.contains(Flag::CA),
                    iv: q.invalid() || clamped,
                }
            }
            // M_ME_NC_1 and anything else the configuration let through: a float
            _ => {
                let max = f64::from(f32::MAX);
                over(w.abs() > max);
                #[allow(clippy::cast_possible_truncation)]
                let f = w.clamp(-max, max) as f32;
                E::Float {
                    value: f,
                    quality: q,
                }
            }
        };
        let time = (self.type_id.time_tag() == TimeTagKind::Cp56).then(|| {
            let t = i64::try_from(value.timestamp_ms)
                .ok()
                .and_then(|ms| Cp56Time2a::from_unix_ms(ms).ok());
            TimeTag::Cp56(t.unwrap_or(INVALID_TIME))
        });
        Point {
            type_id: self.type_id,
            ioa: self.ioa,
            element,
            time,
        }
    }

    /// The point of a tag that has no value yet: 0, invalid.
    pub fn placeholder(&self) -> Point {
        let invalid = TagValue::new(0, 0).with_flags(tagbus::Flags::empty().with(Flag::IV));
        self.point(&invalid)
    }
}

/// The same point not topical (NT set), as sent when the gateway lost the tag bus; the value
/// and time are kept. Integrated totals have no NT bit and are returned unchanged.
pub fn not_topical(point: &Point) -> Point {
    let mut nt = *point;
    if let Some(q) = nt.element.quality_mut() {
        *q = *q | Quality::NT;
    }
    nt
}

impl CommandSpec {
    /// The `out` (engineering) value of a received command element.
    pub fn out_value(&self, element: &InformationElement) -> Result<Value, CommandValueError> {
        use InformationElement as E;
        let wrong = CommandValueError::WrongElement(self.type_id);
        let w: f64 = match (self.type_id.without_time(), *element) {
            (TypeId::C_SC_NA_1, E::SingleCommand { value, .. }) => f64::from(u8::from(value)),
            (TypeId::C_DC_NA_1, E::DoubleCommand { value, .. }) => match value {
                DoublePointValue::Off | DoublePointValue::On => f64::from(value.bits()),
                _ => return Err(CommandValueError::Reserved),
            },
            (TypeId::C_RC_NA_1, E::RegulatingStep { value, .. }) => match value {
                StepCommand::Lower => 1.0,
                StepCommand::Higher => 2.0,
                _ => return Err(CommandValueError::Reserved),
            },
            (TypeId::C_SE_NA_1, E::SetpointNormalized { value, .. }) => f64::from(value) / 32768.0,
            (TypeId::C_SE_NB_1, E::SetpointScaled { value, .. }) => f64::from(value),
            (TypeId::C_SE_NC_1, E::SetpointFloat { value, .. }) => f64::from(value),
            _ => return Err(wrong),
        };
        let eng = w * self.multiplier + self.offset;
        if !eng.is_finite() {
            return Err(CommandValueError::NotFinite);
        }
        let integral = matches!(
            self.type_id.without_time(),
            TypeId::C_SC_NA_1 | TypeId::C_DC_NA_1 | TypeId::C_RC_NA_1 | TypeId::C_SE_NB_1
        );
        // an integer stays an integer when the scaling keeps it one
        let integer_scaling = self.multiplier.fract() == 0.0 && self.offset.fract() == 0.0;
        #[allow(clippy::cast_possible_truncation)]
        if integral && integer_scaling && eng.fract() == 0.0 && eng.abs() < 9.0e15 {
            return Ok(Value::Int(eng as i64));
        }
        Ok(Value::Float(eng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagbus::Flags;

    fn spec(type_id: TypeId) -> PointSpec {
        PointSpec {
            ioa: Ioa(100),
            type_id,
            multiplier: 1.0,
            offset: 0.0,
        }
    }

    fn tv(v: impl Into<Value>, flags: &str) -> TagValue {
        TagValue::new(v, 1_796_118_651_026).with_flags(flags.parse().unwrap_or(Flags::empty()))
    }

    #[test]
    fn flags_become_quality_bits() {
        let p = spec(TypeId::M_ME_NC_1).point(&tv(1.5, "iv sb bl gt"));
        assert_eq!(
            p.element,
            InformationElement::Float {
                value: 1.5,
                quality: Quality::IV | Quality::SB | Quality::BL
            }
        );
        let p = spec(TypeId::M_SP_NA_1).point(&tv(1, "nt nolink"));
        assert_eq!(
            p.element,
            InformationElement::SinglePoint {
                value: true,
                quality: Quality::NT
            }
        );
    }

    #[test]
    fn time_tagged_types_carry_the_tag_time_in_utc() {
        let p = spec(TypeId::M_ME_TF_1).point(&tv(2.0, ""));
        let Some(TimeTag::Cp56(t)) = p.time else {
            panic!("no time tag: {p:?}");
        };
        assert_eq!(t.to_unix_ms(), Ok(1_796_118_651_026));
        assert_eq!(spec(TypeId::M_ME_NC_1).point(&tv(2.0, "")).time, None);
    }

    #[test]
    fn scaling_and_ranges() {
        let mut s = spec(TypeId::M_ME_NB_1);
        s.multiplier = 0.1;
        assert_eq!(
            s.point(&tv(231.2, "")).element,
            InformationElement::Scaled {
                value: 2312,
                quality: Quality::GOOD
            }
        );
        assert_eq!(
            s.point(&tv(1.0e6, "")).element,
            InformationElement::Scaled {
                value: 32767,
                quality: Quality::OV
            }
        );
        let n = spec(TypeId::M_ME_NA_1).point(&tv(0.5, ""));
        assert_eq!(
            n.element,
            InformationElement::Normalized {
                value: 16384,
                quality: Quality::GOOD
            }
        );
        let nan = spec(TypeId::M_ME_NC_1).point(&tv(f64::NAN, ""));
        assert_eq!(
            nan.element,
            InformationElement::Float {
                value: 0.0,
                quality: Quality::IV
            }
        );
    }

    #[test]
    fn a_0_1_register_as_a_double_point_with_offset() {
        let mut s = spec(TypeId::M_DP_NA_1);
        s.offset = -1.0;
        assert_eq!(
            s.point(&tv(1, "")).element,
            InformationElement::DoublePoint {
                value: DoublePointValue::On,
                quality: Quality::GOOD
            }
        );
        assert_eq!(
            s.point(&tv(0, "")).element,
            InformationElement::DoublePoint {
                value: DoublePointValue::Off,
                quality: Quality::GOOD
            }
        );
    }

    #[test]
    fn counters_and_placeholders() {
        let p = spec(TypeId::M_IT_NA_1).point(&tv(123_456, "cy"));
        assert_eq!(
            p.element,
            InformationElement::IntegratedTotal {
                counter: 123_456,
                seq: 0,
                cy: true,
                ca: false,
                iv: false
            }
        );
        assert_eq!(
            spec(TypeId::M_SP_TB_1).placeholder().element,
            InformationElement::SinglePoint {
                value: false,
                quality: Quality::IV
            }
        );
    }

    #[test]
    fn not_topical_keeps_value_and_time() {
        let p = spec(TypeId::M_ME_TF_1).point(&tv(2.5, "sb"));
        let nt = not_topical(&p);
        assert_eq!(
            nt.element,
            InformationElement::Float {
                value: 2.5,
                quality: Quality::SB | Quality::NT
            }
        );
        assert_eq!(nt.time, p.time);
        let it = spec(TypeId::M_IT_NA_1).point(&tv(7, ""));
        assert_eq!(not_topical(&it), it);
    }

    #[test]
    fn commands_become_out_values() {
        let c = |type_id, multiplier, offset| CommandSpec {
            ioa: Ioa(1),
            type_id,
            multiplier,
            offset,
        };
        let sc = InformationElement::SingleCommand {
            value: true,
            qu: 0,
            select: false,
        };
        assert_eq!(
            c(TypeId::C_SC_NA_1, 1.0, 0.0).out_value(&sc),
            Ok(Value::Int(1))
        );
        let dc = InformationElement::DoubleCommand {
            value: DoublePointValue::On,
            qu: 0,
            select: false,
        };
        assert_eq!(
            c(TypeId::C_DC_NA_1, 1.0, -1.0).out_value(&dc),
            Ok(Value::Int(1))
        );
        let bad = InformationElement::DoubleCommand {
            value: DoublePointValue::Indeterminate,
            qu: 0,
            select: false,
        };
        assert_eq!(
            c(TypeId::C_DC_NA_1, 1.0, 0.0).out_value(&bad),
            Err(CommandValueError::Reserved)
        );
        let se = InformationElement::SetpointScaled {
            value: 150,
            ql: 0,
            select: false,
        };
        assert_eq!(
            c(TypeId::C_SE_NB_1, 0.1, 0.0).out_value(&se),
            Ok(Value::Float(15.0))
        );
        assert_eq!(
            c(TypeId::C_SE_NB_1, 1.0, 0.0).out_value(&se),
            Ok(Value::Int(150))
        );
        assert_eq!(
            c(TypeId::C_SC_NA_1, 1.0, 0.0).out_value(&se),
            Err(CommandValueError::WrongElement(TypeId::C_SC_NA_1))
        );
    }
}
