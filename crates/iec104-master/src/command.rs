//! The sans-IO command core: an `out` value -> the command element, and the outcome mapping.
//! The procedure (direct or select-before-operate, the age check before each step) is the
//! stack's [`iec60870::CommandSequence`].

use iec60870::{DoublePointValue, InformationElement, Ioa, StepCommand, TypeId};
use tagbus::{CommandOutcome, Value};

/// How a signal's commands are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandSpec {
    /// Information object address.
    pub ioa: Ioa,
    /// The command type (45-64).
    pub type_id: TypeId,
    /// Select, wait for ACT_CON, then execute.
    pub select_before_operate: bool,
    /// QU (single, double, step) or QL (set-points).
    pub qualifier: u8,
    /// Set-points: raw = (out - offset) / multiplier.
    pub multiplier: f64,
    /// See `multiplier`.
    pub offset: f64,
}

/// Why an `out` value cannot be sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidCommand {
    /// The value does not fit the command type.
    #[error("{value} is not a valid value for {type_id}: {why}")]
    Value {
        value: String,
        type_id: TypeId,
        why: &'static str,
    },
    /// The type is not a process command this driver sends.
    #[error("{0} is not a command type this driver sends")]
    Type(TypeId),
}

fn integer(v: Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(i),
        Value::Float(f) => config::exact_integer(f),
    }
}

/// The element (with S/E clear) and the raw value (for `rout`) of a command value.
///
/// Value forms: single command 0 = off, 1 = on; double command 1 = off, 2 = on (the DPI
/// numbers of the monitor direction; 0 and 3 are refused); regulating step 1 = lower,
/// 2 = higher; set-points take the engineering value, raw = (value - offset) / multiplier,
/// then normalised needs -1.0..=1.0 (sent as round(raw * 32768), 1.0 as 32767), scaled an
/// integer in -32768..=32767 (rounded), float any finite f32; bitstring 0..=2^32-1.
pub fn command_element(
    spec: &CommandSpec,
    value: Value,
) -> Result<(InformationElement, Value), InvalidCommand> {
    use InformationElement as E;
    let tid = spec.type_id;
    let bad = |why| InvalidCommand::Value {
        value: value.to_string(),
        type_id: tid,
        why,
    };
    let qu = spec.qualifier & 0x1F;
    let ql = spec.qualifier & 0x7F;
    let setpoint_raw = || -> Result<f64, InvalidCommand> {
        if spec.multiplier == 0.0 || !spec.multiplier.is_finite() {
            return Err(bad("the signal's multiplier is 0"));
        }
        let raw = (value.as_f64() - spec.offset) / spec.multiplier;
        if raw.is_finite() {
            Ok(raw)
        } else {
            Err(bad("not a finite number"))
        }
    };
    match tid.without_time() {
        TypeId::C_SC_NA_1 => match integer(value) {
            Some(v @ (0 | 1)) => Ok((
                E::SingleCommand {
                    value: v == 1,
                    qu,
                    select: false,
                },
                Value::Int(v),
            )),
            _ => Err(bad("a single command takes 0 (off) or 1 (on)")),
        },
        TypeId::C_DC_NA_1 => match integer(value) {
            Some(v @ (1 | 2)) => Ok((
                E::DoubleCommand {
                    value: if v == 1 {
                        DoublePointValue::Off
                    } else {
                        DoublePointValue::On
                    },
                    qu,
                    select: false,
                },
                Value::Int(v),
            )),
            _ => Err(bad("a double command takes 1 (off) or 2 (on)")),
        },
        TypeId::C_RC_NA_1 => match integer(value) {
            Some(v @ (1 | 2)) => Ok((
                E::RegulatingStep {
                    value: if v == 1 {
                        StepCommand::Lower
                    } else {
                        StepCommand::Higher
                    },
                    qu,
                    select: false,
                },
                Value::Int(v),
            )),
            _ => Err(bad(
                "a regulating step command takes 1 (lower) or 2 (higher)",
            )),
        },
        TypeId::C_SE_NA_1 => {
            let raw = setpoint_raw()?;
            if !(-1.0..=1.0).contains(&raw) {
                return Err(bad("a normalised set-point must be within -1.0..=1.0"));
            }
            #[allow(clippy::cast_possible_truncation)]
            let n = (raw * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            Ok((
                E::SetpointNormalized {
                    value: n,
                    ql,
                    select: false,
                },
                Value::Int(i64::from(n)),
            ))
        }
        TypeId::C_SE_NB_1 => {
            let raw = setpoint_raw()?.round();
            if !(-32768.0..=32767.0).contains(&raw) {
                return Err(bad("a scaled set-point must be within -32768..=32767"));
            }
            #[allow(clippy::cast_possible_truncation)]
            let n = raw as i16;
            Ok((
                E::SetpointScaled {
                    value: n,
                    ql,
                    select: false,
                },
                Value::Int(i64::from(n)),
            ))
        }
        TypeId::C_SE_NC_1 => {
            let raw = setpoint_raw()?;
            #[allow(clippy::cast_possible_truncation)]
            let f = raw as f32;
            if !f.is_finite() {
                return Err(bad("out of the float range"));
            }
            Ok((
                E::SetpointFloat {
                    value: f,
                    ql,
                    select: false,
                },
                Value::Float(f64::from(f)),
            ))
        }
        TypeId::C_BO_NA_1 => match integer(value).and_then(|v| u32::try_from(v).ok()) {
            Some(v) => Ok((E::Bitstring32Command { value: v }, Value::Int(i64::from(v)))),
            None => Err(bad("a bitstring command takes an integer 0..=4294967295")),
        },
        _ => Err(InvalidCommand::Type(tid)),
    }
}

/// The command outcome of the stack's result.
pub fn outcome(r: &iec60870::CommandResult) -> CommandOutcome {
    match r {
        iec60870::CommandResult::Confirmed { .. } => CommandOutcome::Confirmed,
        iec60870::CommandResult::Rejected { .. } => CommandOutcome::Rejected,
        iec60870::CommandResult::Timeout => CommandOutcome::Timeout,
        iec60870::CommandResult::LinkDown => CommandOutcome::LinkDown,
        iec60870::CommandResult::Expired => CommandOutcome::TooOld,
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;

    fn spec(t: TypeId, m: f64, o: f64) -> CommandSpec {
        CommandSpec {
            ioa: Ioa(400),
            type_id: t,
            select_before_operate: false,
            qualifier: 0,
            multiplier: m,
            offset: o,
        }
    }

    #[test]
    fn single_and_double_and_step() {
        let s = spec(TypeId::C_SC_NA_1, 1.0, 0.0);
        let (e, raw) = command_element(&s, Value::Int(1)).unwrap();
        assert_eq!(
            e,
            InformationElement::SingleCommand {
                value: true,
                qu: 0,
                select: false
            }
        );
        assert_eq!(raw, Value::Int(1));
        assert!(command_element(&s, Value::Float(0.0)).is_ok());
        assert!(command_element(&s, Value::Int(2)).is_err());
        assert!(command_element(&s, Value::Float(0.5)).is_err());
        assert!(command_element(&s, Value::Float(f64::NAN)).is_err());

        let d = spec(TypeId::C_DC_TA_1, 1.0, 0.0);
        let (e, _) = command_element(&d, Value::Int(2)).unwrap();
        assert!(matches!(
            e,
            InformationElement::DoubleCommand {
                value: DoublePointValue::On,
                ..
            }
        ));
        assert!(command_element(&d, Value::Int(0)).is_err());
        assert!(command_element(&d, Value::Int(3)).is_err());

        let r = spec(TypeId::C_RC_NA_1, 1.0, 0.0);
        assert!(matches!(
            command_element(&r, Value::Int(1)).unwrap().0,
            InformationElement::RegulatingStep {
                value: StepCommand::Lower,
                ..
            }
        ));
        assert!(command_element(&r, Value::Int(0)).is_err());
    }

    #[test]
    fn setpoints_inverse_scaling_and_ranges() {
        let n = spec(TypeId::C_SE_NA_1, 1.0, 0.0);
        assert_eq!(
            command_element(&n, Value::Float(-0.5)).unwrap().1,
            Value::Int(-16384)
        );
        assert_eq!(
            command_element(&n, Value::Float(1.0)).unwrap().1,
            Value::Int(32767)
        );
        assert!(command_element(&n, Value::Float(1.01)).is_err());

        let s = spec(TypeId::C_SE_NB_1, 0.1, 0.0);
        assert_eq!(
            command_element(&s, Value::Float(23.5)).unwrap().1,
            Value::Int(235)
        );
        assert!(command_element(&s, Value::Int(4000)).is_err());
        let zero = spec(TypeId::C_SE_NB_1, 0.0, 0.0);
        assert!(command_element(&zero, Value::Int(1)).is_err());

        let f = spec(TypeId::C_SE_NC_1, 2.0, 1.0);
        assert_eq!(
            command_element(&f, Value::Float(5.0)).unwrap().1,
            Value::Float(2.0)
        );
        assert!(command_element(&f, Value::Float(1e300)).is_err());
        assert!(command_element(&f, Value::Float(f64::INFINITY)).is_err());

        let b = spec(TypeId::C_BO_NA_1, 1.0, 0.0);
        assert!(command_element(&b, Value::Int(4_294_967_295)).is_ok());
        assert!(command_element(&b, Value::Int(-1)).is_err());
        assert!(command_element(&spec(TypeId::M_SP_NA_1, 1.0, 0.0), Value::Int(1)).is_err());
    }
}
