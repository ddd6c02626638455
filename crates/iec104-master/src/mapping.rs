//! The sans-IO mapping core: received information objects -> tag values, and the `nt`
//! bookkeeping of a device's signals. No I/O, no clock: every call takes the time.

use std::collections::{HashMap, HashSet};

use iec60870::{Asdu, Cause, CommonAddress, InformationElement, Quality, TimeTag, TypeId};
use tagbus::{Alias, Direction, Flag, Flags, TagKey, TagValue, Value};

/// At most this many distinct (IOA, type) pairs are remembered for "log once"; beyond it
/// unmapped objects are still counted, and logged once more as "too many".
pub const MAX_REMEMBERED_UNMAPPED: usize = 4096;

/// Extra flag of a step position in transient state (the VTI's T bit).
pub const FLAG_TRANSIENT: &str = Flag::TR;

/// How a signal's received values are mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSpec {
    /// The signal's alias.
    pub signal: Alias,
    /// Information object address.
    pub ioa: u32,
    /// The configured monitor type; its time-tagged and untagged variants are accepted too.
    pub type_id: TypeId,
    /// Engineering value = raw * multiplier + offset (analog types and integrated totals).
    pub multiplier: f64,
    /// See `multiplier`.
    pub offset: f64,
    /// The config's `log` column: each value is logged at info level as it passes.
    pub log: bool,
}

/// The family of a monitor type: the type without time tag, with the protection events'
/// CP24 and CP56 forms and the normalised value without quality put together.
pub fn family(t: TypeId) -> TypeId {
    use TypeId::*;
    match t {
        M_EP_TD_1 => M_EP_TA_1,
        M_EP_TE_1 => M_EP_TB_1,
        M_EP_TF_1 => M_EP_TC_1,
        M_ME_ND_1 => M_ME_NA_1,
        other => other.without_time(),
    }
}

/// Counters of one device's mapper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapperStats {
    /// Monitor-direction information objects received.
    pub objects: u64,
    /// Of those, written to tags.
    pub mapped: u64,
    /// No signal has this IOA.
    pub unmapped: u64,
    /// A signal has this IOA but a type of another family.
    pub type_mismatch: u64,
    /// Objects of ASDUs with another common address.
    pub foreign_ca: u64,
    /// Objects of ASDUs with the test bit set (never written to tags).
    pub test: u64,
}

#[derive(Debug, Clone)]
struct Mapped {
    spec: MonitorSpec,
    family: TypeId,
    in_key: TagKey,
    rin_key: TagKey,
    /// The last values written (in, rin).
    last_in: Option<TagValue>,
    last_rin: Option<TagValue>,
    /// Marked `nt` by the gateway (link down, or read at startup) and not refreshed since.
    stale: bool,
}

/// Something worth logging that the mapper saw for the first time.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// First object of this (IOA, type) that no signal maps.
    Unmapped { ioa: u32, type_id: TypeId },
    /// First object of this (IOA, type) whose signal has another type.
    TypeMismatch {
        ioa: u32,
        type_id: TypeId,
        configured: TypeId,
    },
    /// First ASDU with this other common address.
    ForeignCommonAddress { common_address: u16 },
    /// First ASDU with the test bit.
    Test,
    /// More distinct unmapped pairs than [`MAX_REMEMBERED_UNMAPPED`]: no more notices.
    TooManyUnmapped,
    /// A general interrogation ended (ACT_TERM); `still_stale` signals got no fresh value
    /// since the link came back.
    InterrogationComplete { still_stale: usize },
}

/// One device's mapping: IOA -> signals, last values, `nt` state, counters.
#[derive(Debug, Clone)]
pub struct Mapper {
    common_address: u16,
    signals: Vec<Mapped>,
    by_ioa: HashMap<u32, Vec<usize>>,
    by_in_key: HashMap<TagKey, usize>,
    logged: HashSet<TagKey>,
    seen: HashSet<(u32, u8)>,
    seen_ca: HashSet<u16>,
    too_many_logged: bool,
    test_logged: bool,
    stats: MapperStats,
}

impl Mapper {
    /// A mapper for the device `device` with common address `common_address`.
    pub fn new(device: &Alias, common_address: u16, specs: Vec<MonitorSpec>) -> Self {
        let mut by_ioa: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut by_in_key = HashMap::new();
        let mut logged = HashSet::new();
        let mut signals = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            by_ioa.entry(spec.ioa).or_default().push(i);
            let in_key = TagKey::new(device.clone(), spec.signal.clone(), Direction::In);
            by_in_key.insert(in_key.clone(), i);
            if spec.log {
                logged.insert(in_key.clone());
            }
            signals.push(Mapped {
                family: family(spec.type_id),
                rin_key: in_key.with_direction(Direction::RawIn),
                in_key,
                spec,
                last_in: None,
                last_rin: None,
                stale: false,
            });
        }
        Self {
            common_address,
            signals,
            by_ioa,
            by_in_key,
            logged,
            seen: HashSet::new(),
            seen_ca: HashSet::new(),
            too_many_logged: false,
            test_logged: false,
            stats: MapperStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> MapperStats {
        self.stats
    }

    /// Whether the signal of this `in` key has the `log` column set.
    pub fn is_logged(&self, key: &TagKey) -> bool {
        !self.logged.is_empty() && self.logged.contains(key)
    }

    /// The `in` keys and `rin` keys of every mapped signal (to read them at startup).
    pub fn keys(&self) -> impl Iterator<Item = &TagKey> + '_ {
        self.signals.iter().flat_map(|s| [&s.in_key, &s.rin_key])
    }

    /// Remembers a value read from the bus at startup as the signal's last value (an `in`
    /// or `rin` key of a mapped signal; others are ignored). Call [`Mapper::mark_not_topical`]
    /// afterwards to mark them `nt` until fresh values come.
    pub fn seed(&mut self, key: &TagKey, value: TagValue) {
        let in_key = key.with_direction(Direction::In);
        let Some(&i) = self.by_in_key.get(&in_key) else {
            return;
        };
        let Some(s) = self.signals.get_mut(i) else {
            return;
        };
        match key.direction {
            Direction::In => s.last_in = Some(value),
            Direction::RawIn => s.last_rin = Some(value),
            _ => {}
        }
    }

    /// The link is down (or the process just started): every signal that has a last value
    /// and is not already marked is re-written with the gateway's link-loss mark
    /// ([`TagValue::marked_no_link`]: value and timestamp kept, `nt nolink` added).
    pub fn mark_not_topical(&mut self, out: &mut Vec<(TagKey, TagValue)>) {
        for s in &mut self.signals {
            if s.stale {
                continue;
            }
            let mut any = false;
            for (key, last) in [(&s.in_key, &mut s.last_in), (&s.rin_key, &mut s.last_rin)] {
                if let Some(v) = last {
                    any = true;
                    if v.flags.is_no_link() {
                        // already marked by us (e.g. read back at startup): keep as is
                        continue;
                    }
                    *v = v.marked_no_link();
                    out.push((key.clone(), v.clone()));
                }
            }
            s.stale = any;
        }
    }

    /// Every last value (and raw twin) as it is, marks included: what the tag bus showed
    /// before Redis restarted empty.
    pub fn current(&self, out: &mut Vec<(TagKey, TagValue)>) {
        for s in &self.signals {
            for (key, last) in [(&s.in_key, &s.last_in), (&s.rin_key, &s.last_rin)] {
                if let Some(v) = last {
                    out.push((key.clone(), v.clone()));
                }
            }
        }
    }

    /// How many signals are marked `nt` by the gateway and not refreshed yet.
    pub fn stale_count(&self) -> usize {
        self.signals.iter().filter(|s| s.stale).count()
    }

    /// Maps one received ASDU; appends the tag writes to `out` and returns what is worth
    /// logging (each notice once per device lifetime).
    pub fn on_asdu(
        &mut self,
        asdu: &Asdu,
        now_ms: u64,
        out: &mut Vec<(TagKey, TagValue)>,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        if asdu.type_id == TypeId::C_IC_NA_1
            && asdu.cot.cause == Cause::ACTIVATION_TERMINATION
            && !asdu.cot.negative
        {
            notices.push(Notice::InterrogationComplete {
                still_stale: self.stale_count(),
            });
            return notices;
        }
        if !asdu.type_id.is_monitor() {
            return notices;
        }
        let n = u64::try_from(asdu.objects.len()).unwrap_or(u64::MAX);
        self.stats.objects = self.stats.objects.saturating_add(n);
        if asdu.cot.test {
            self.stats.test = self.stats.test.saturating_add(n);
            if !self.test_logged {
                self.test_logged = true;
                notices.push(Notice::Test);
            }
            return notices;
        }
        let ca = asdu.common_address;
        if ca != CommonAddress(self.common_address) {
            self.stats.foreign_ca = self.stats.foreign_ca.saturating_add(n);
            if self.seen_ca.len() < 64 && self.seen_ca.insert(ca.0) {
                notices.push(Notice::ForeignCommonAddress {
                    common_address: ca.0,
                });
            }
            return notices;
        }
        let fam = family(asdu.type_id);
        for obj in &asdu.objects {
            let ioa = obj.ioa.0;
            let candidates = self.by_ioa.get(&ioa);
            let matched = candidates.and_then(|c| {
                c.iter()
                    .copied()
                    .find(|&i| self.signals.get(i).is_some_and(|s| s.family == fam))
            });
            let Some(i) = matched else {
                let configured = candidates
                    .and_then(|c| c.first())
                    .and_then(|&i| self.signals.get(i))
                    .map(|s| s.spec.type_id);
                if configured.is_some() {
                    self.stats.type_mismatch = self.stats.type_mismatch.saturating_add(1);
                } else {
                    self.stats.unmapped = self.stats.unmapped.saturating_add(1);
                }
                self.note_unmapped(ioa, asdu.type_id, configured, &mut notices);
                continue;
            };
            // several signals may map the same IOA and family (e.g. two scalings)
            let all: Vec<usize> = candidates
                .map(|c| {
                    c.iter()
                        .copied()
                        .filter(|&j| self.signals.get(j).is_some_and(|s| s.family == fam))
                        .collect()
                })
                .unwrap_or_else(|| vec![i]);
            for j in all {
                let Some(s) = self.signals.get_mut(j) else {
                    continue;
                };
                let Some((vin, vrin)) = convert(&obj.element, obj.time.as_ref(), now_ms, &s.spec)
                else {
                    continue;
                };
                self.stats.mapped = self.stats.mapped.saturating_add(1);
                s.stale = false;
                s.last_in = Some(vin.clone());
                s.last_rin = Some(vrin.clone());
                out.push((s.in_key.clone(), vin));
                out.push((s.rin_key.clone(), vrin));
            }
        }
        notices
    }

    fn note_unmapped(
        &mut self,
        ioa: u32,
        type_id: TypeId,
        configured: Option<TypeId>,
        notices: &mut Vec<Notice>,
    ) {
        if self.seen.len() >= MAX_REMEMBERED_UNMAPPED {
            if !self.seen.contains(&(ioa, type_id as u8)) && !self.too_many_logged {
                self.too_many_logged = true;
                notices.push(Notice::TooManyUnmapped);
            }
            return;
        }
        if self.seen.insert((ioa, type_id as u8)) {
            notices.push(match configured {
                Some(configured) => Notice::TypeMismatch {
                    ioa,
                    type_id,
                    configured,
                },
                None => Notice::Unmapped { ioa, type_id },
            });
        }
    }
}

/// The Unix time (ms) of a time tag, or `None` when there is none, it is marked invalid
/// (IV) or it does not convert. CP24 (minutes and milliseconds only) is placed in the hour
/// nearest to `now_ms`.
pub fn time_tag_ms(time: Option<&TimeTag>, now_ms: u64) -> Option<u64> {
    match time? {
        TimeTag::Cp56(t) if !t.invalid => t.to_unix_ms().ok().and_then(|ms| u64::try_from(ms).ok()),
        TimeTag::Cp24(t) if !t.invalid && t.minute < 60 && t.millis < 60_000 => {
            const HOUR: u64 = 3_600_000;
            let offset = u64::from(t.minute)
                .checked_mul(60_000)?
                .checked_add(u64::from(t.millis))?;
            let hour_start = now_ms.checked_sub(now_ms.checked_rem(HOUR)?)?;
            [
                hour_start.checked_sub(HOUR),
                Some(hour_start),
                hour_start.checked_add(HOUR),
            ]
            .into_iter()
            .flatten()
            .filter_map(|h| h.checked_add(offset))
            .min_by_key(|c| c.abs_diff(now_ms))
        }
        _ => None,
    }
}

fn quality_flags(q: Quality) -> Flags {
    let mut flags = Flags::empty();
    for code in q.codes() {
        let _ = flags.insert(code);
    }
    flags
}

fn is_identity(spec: &MonitorSpec) -> bool {
    spec.multiplier == 1.0 && spec.offset == 0.0
}

/// raw * multiplier + offset; an integer stays an integer when the scaling is the identity.
fn scale_int(raw: i64, spec: &MonitorSpec) -> Value {
    if is_identity(spec) {
        Value::Int(raw)
    } else {
        #[allow(clippy::cast_precision_loss)]
        Value::Float(tagbus::scale(raw as f64, spec.multiplier, spec.offset))
    }
}

fn scale_float(raw: f64, spec: &MonitorSpec) -> Value {
    Value::Float(tagbus::scale(raw, spec.multiplier, spec.offset))
}

/// Converts one element to its `in` (engineering) and `rin` (raw) values, with the time
/// (device time tag, else `now_ms` plus `gt`) and flags. `None` for non-monitor elements.
///
/// Numeric forms (see the crate docs): single point 0/1; double point DPI 0-3; step position
/// -64..=63 (scaled, `tr` when transient); bitstring 0..=2^32-1; normalised `rin` = the raw
/// integer, `in` = raw/32768 scaled; scaled value (scaled); float (scaled); integrated total
/// `rin` = counter, `in` = counter scaled; protection event: DPI 0-3; packed start events:
/// the six SPE bits; output circuits: the four OCI bits; packed single points: `in` = the 16
/// status bits, `rin` = status | change-detection bits << 16.
pub fn convert(
    element: &InformationElement,
    time: Option<&TimeTag>,
    now_ms: u64,
    spec: &MonitorSpec,
) -> Option<(TagValue, TagValue)> {
    use InformationElement as E;
    let (raw, value, mut flags): (Value, Value, Flags) = match *element {
        E::SinglePoint { value, quality } => (
            Value::from(value),
            Value::from(value),
            quality_flags(quality),
        ),
        E::DoublePoint { value, quality } => {
            let v = Value::Int(i64::from(value.bits()));
            (v, v, quality_flags(quality))
        }
        E::StepPosition {
            value,
            transient,
            quality,
        } => {
            let mut f = quality_flags(quality);
            if transient {
                let _ = f.insert(FLAG_TRANSIENT);
            }
            let raw = i64::from(value);
            (Value::Int(raw), scale_int(raw, spec), f)
        }
        E::Bitstring32 { value, quality } => {
            let v = Value::Int(i64::from(value));
            (v, v, quality_flags(quality))
        }
        E::Normalized { value, quality } => (
            Value::Int(i64::from(value)),
            scale_float(f64::from(value) / 32768.0, spec),
            quality_flags(quality),
        ),
        E::NormalizedNoQuality { value } => (
            Value::Int(i64::from(value)),
            scale_float(f64::from(value) / 32768.0, spec),
            Flags::empty(),
        ),
        E::Scaled { value, quality } => {
            let raw = i64::from(value);
            (
                Value::Int(raw),
                scale_int(raw, spec),
                quality_flags(quality),
            )
        }
        E::Float { value, quality } => {
            let raw = tagbus::widen_f32(value);
            (
                Value::Float(raw),
                scale_float(raw, spec),
                quality_flags(quality),
            )
        }
        E::IntegratedTotal {
            counter,
            cy,
            ca,
            iv,
            ..
        } => {
            let mut f = Flags::empty();
            for (set, code) in [(iv, Flag::IV), (cy, Flag::CY), (ca, Flag::CA)] {
                if set {
                    let _ = f.insert(code);
                }
            }
            let raw = i64::from(counter);
            (Value::Int(raw), scale_int(raw, spec), f)
        }
        E::ProtectionEvent { event, quality, .. } => {
            let v = Value::Int(i64::from(event.bits()));
            (v, v, quality_flags(quality))
        }
        E::ProtectionStartEvents {
            events, quality, ..
        } => {
            let v = Value::Int(i64::from(events & 0x3F));
            (v, v, quality_flags(quality))
        }
        E::ProtectionOutputCircuits {
            circuits, quality, ..
        } => {
            let v = Value::Int(i64::from(circuits & 0x0F));
            (v, v, quality_flags(quality))
        }
        E::PackedSinglePoints {
            status,
            changed,
            quality,
        } => {
            let raw = i64::from(status) | (i64::from(changed) << 16);
            (
                Value::Int(raw),
                Value::Int(i64::from(status)),
                quality_flags(quality),
            )
        }
        _ => return None,
    };
    let ts = match time_tag_ms(time, now_ms) {
        Some(ms) => ms,
        None => {
            let _ = flags.insert(Flag::GT);
            now_ms
        }
    };
    Some((
        TagValue {
            value,
            timestamp_ms: ts,
            flags: flags.clone(),
        },
        TagValue {
            value: raw,
            timestamp_ms: ts,
            flags,
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
    use super::*;
    use iec60870::{Cot, Cp24Time2a, Cp56Time2a, DoublePointValue, InformationObject, Ioa};

    const NOW: u64 = 1_763_800_000_123; // 2025-11-22T08:26:40.123Z

    fn alias(s: &str) -> Alias {
        Alias::new(s).unwrap()
    }

    fn spec(sig: &str, ioa: u32, t: TypeId, m: f64, o: f64) -> MonitorSpec {
        MonitorSpec {
            signal: alias(sig),
            ioa,
            type_id: t,
            multiplier: m,
            offset: o,
            log: false,
        }
    }

    fn mapper() -> Mapper {
        Mapper::new(
            &alias("rtu1"),
            1,
            vec![
                spec("sp", 100, TypeId::M_SP_NA_1, 1.0, 0.0),
                spec("dp", 101, TypeId::M_DP_TB_1, 1.0, 0.0),
                spec("me", 200, TypeId::M_ME_NB_1, 0.1, -5.0),
                spec("f", 201, TypeId::M_ME_NC_1, 2.0, 1.0),
                spec("n", 202, TypeId::M_ME_NA_1, 100.0, 0.0),
                spec("it", 300, TypeId::M_IT_NA_1, 1.0, 0.0),
                spec("st", 400, TypeId::M_ST_NA_1, 1.0, 0.0),
                spec("bo", 500, TypeId::M_BO_NA_1, 1.0, 0.0),
            ],
        )
    }

    fn asdu(t: TypeId, cause: Cause, ca: u16, objs: Vec<InformationObject>) -> Asdu {
        Asdu {
            type_id: t,
            sq: false,
            cot: Cot::new(cause),
            common_address: CommonAddress(ca),
            objects: objs,
        }
    }

    fn text(out: &[(TagKey, TagValue)]) -> Vec<String> {
        out.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn single_point_without_time_gets_gateway_time() {
        let mut m = mapper();
        let mut out = Vec::new();
        let a = asdu(
            TypeId::M_SP_NA_1,
            Cause::INTERROGATED_BY_STATION,
            1,
            vec![InformationObject::new(
                Ioa(100),
                InformationElement::SinglePoint {
                    value: true,
                    quality: Quality::BL | Quality::SB,
                },
            )],
        );
        assert!(m.on_asdu(&a, NOW, &mut out).is_empty());
        assert_eq!(
            text(&out),
            [
                format!("tag/rtu1/sp/in=1,{NOW},sb bl gt"),
                format!("tag/rtu1/sp/rin=1,{NOW},sb bl gt"),
            ]
        );
    }

    #[test]
    fn time_tagged_variant_is_accepted_with_device_time() {
        let mut m = mapper();
        let mut out = Vec::new();
        let t = Cp56Time2a::from_unix_ms(1_700_000_000_250).unwrap();
        // configured M_DP_TB_1, received M_DP_TB_1 with time, and M_DP_NA_1 in a GI
        let a = asdu(
            TypeId::M_DP_TB_1,
            Cause::SPONTANEOUS,
            1,
            vec![InformationObject::with_cp56(
                Ioa(101),
                InformationElement::DoublePoint {
                    value: DoublePointValue::On,
                    quality: Quality::IV,
                },
                t,
            )],
        );
        m.on_asdu(&a, NOW, &mut out);
        assert_eq!(out[0].1.to_string(), "2,1700000000250,iv");
        out.clear();
        let a = asdu(
            TypeId::M_DP_NA_1,
            Cause::INTERROGATED_BY_STATION,
            1,
            vec![InformationObject::new(
                Ioa(101),
                InformationElement::DoublePoint {
                    value: DoublePointValue::Indeterminate,
                    quality: Quality::GOOD,
                },
            )],
        );
        m.on_asdu(&a, NOW, &mut out);
        assert_eq!(out[0].1.to_string(), format!("3,{NOW},gt"));
    }

    #[test]
    fn invalid_time_tag_falls_back_to_gateway_time() {
        let mut t = Cp56Time2a::from_unix_ms(1_700_000_000_000).unwrap();
        t.invalid = true;
        assert_eq!(time_tag_ms(Some(&TimeTag::Cp56(t)), NOW), None);
        let mut out = Vec::new();
        let mut m = mapper();
        let a = asdu(
            TypeId::M_ME_TF_1,
            Cause::SPONTANEOUS,
            1,
            vec![InformationObject::with_cp56(
                Ioa(201),
                InformationElement::Float {
                    value: 1.5,
                    quality: Quality::OV,
                },
                t,
            )],
        );
        m.on_asdu(&a, NOW, &mut out);
        assert_eq!(
            text(&out),
            [
                format!("tag/rtu1/f/in=4.0,{NOW},ov gt"),
                format!("tag/rtu1/f/rin=1.5,{NOW},ov gt"),
            ]
        );
    }

    #[test]
    fn cp24_is_placed_in_the_nearest_hour() {
        // NOW is 08:26:40.123; 26:40.000 -> same hour
        let t = Cp24Time2a {
            millis: 40_000,
            minute: 26,
            invalid: false,
        };
        assert_eq!(time_tag_ms(Some(&TimeTag::Cp24(t)), NOW), Some(NOW - 123));
        // 59:59.000 is in the previous hour (closer to now than 09:59:59)
        let t = Cp24Time2a {
            millis: 59_000,
            minute: 59,
            invalid: false,
        };
        let hour = NOW - NOW % 3_600_000;
        assert_eq!(time_tag_ms(Some(&TimeTag::Cp24(t)), NOW), Some(hour - 1000));
        assert_eq!(time_tag_ms(None, NOW), None);
        assert_eq!(time_tag_ms(Some(&TimeTag::Cp24(t)), 0), Some(3_599_000));
    }

    #[test]
    fn analog_scaling_and_raw() {
        let mut m = mapper();
        let mut out = Vec::new();
        let objs = |e| vec![InformationObject::new(Ioa(200), e)];
        m.on_asdu(
            &asdu(
                TypeId::M_ME_NB_1,
                Cause::PERIODIC,
                1,
                objs(InformationElement::Scaled {
                    value: -300,
                    quality: Quality::GOOD,
                }),
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[0].1.value, Value::Float(-35.0));
        assert_eq!(out[1].1.value, Value::Int(-300));
        out.clear();
        m.on_asdu(
            &asdu(
                TypeId::M_ME_NA_1,
                Cause::PERIODIC,
                1,
                vec![InformationObject::new(
                    Ioa(202),
                    InformationElement::Normalized {
                        value: -16384,
                        quality: Quality::GOOD,
                    },
                )],
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[0].1.value, Value::Float(-50.0));
        assert_eq!(out[1].1.value, Value::Int(-16384));
        out.clear();
        // M_ME_ND_1 (no quality) belongs to the normalised family
        m.on_asdu(
            &asdu(
                TypeId::M_ME_ND_1,
                Cause::PERIODIC,
                1,
                vec![InformationObject::new(
                    Ioa(202),
                    InformationElement::NormalizedNoQuality { value: 32767 },
                )],
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[1].1.to_string(), format!("32767,{NOW},gt"));
    }

    #[test]
    fn counters_steps_and_bitstrings() {
        let mut m = mapper();
        let mut out = Vec::new();
        let t = Cp56Time2a::from_unix_ms(1_700_000_000_000).unwrap();
        m.on_asdu(
            &asdu(
                TypeId::M_IT_TB_1,
                Cause::REQUESTED_BY_GENERAL_COUNTER,
                1,
                vec![InformationObject::with_cp56(
                    Ioa(300),
                    InformationElement::IntegratedTotal {
                        counter: -2,
                        seq: 3,
                        cy: true,
                        ca: true,
                        iv: false,
                    },
                    t,
                )],
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[0].1.to_string(), "-2,1700000000000,cy ca");
        out.clear();
        m.on_asdu(
            &asdu(
                TypeId::M_ST_NA_1,
                Cause::SPONTANEOUS,
                1,
                vec![InformationObject::new(
                    Ioa(400),
                    InformationElement::StepPosition {
                        value: -64,
                        transient: true,
                        quality: Quality::GOOD,
                    },
                )],
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[0].1.to_string(), format!("-64,{NOW},tr gt"));
        out.clear();
        m.on_asdu(
            &asdu(
                TypeId::M_BO_NA_1,
                Cause::SPONTANEOUS,
                1,
                vec![InformationObject::new(
                    Ioa(500),
                    InformationElement::Bitstring32 {
                        value: 0xFFFF_FFFF,
                        quality: Quality::GOOD,
                    },
                )],
            ),
            NOW,
            &mut out,
        );
        assert_eq!(out[0].1.value, Value::Int(4_294_967_295));
    }

    #[test]
    fn unmapped_mismatched_foreign_and_test_are_noticed_once() {
        let mut m = mapper();
        let mut out = Vec::new();
        let sp = |ioa| {
            InformationObject::new(
                Ioa(ioa),
                InformationElement::SinglePoint {
                    value: true,
                    quality: Quality::GOOD,
                },
            )
        };
        let a = asdu(
            TypeId::M_SP_NA_1,
            Cause::SPONTANEOUS,
            1,
            vec![sp(999), sp(200)],
        );
        let n = m.on_asdu(&a, NOW, &mut out);
        assert_eq!(
            n,
            [
                Notice::Unmapped {
                    ioa: 999,
                    type_id: TypeId::M_SP_NA_1
                },
                Notice::TypeMismatch {
                    ioa: 200,
                    type_id: TypeId::M_SP_NA_1,
                    configured: TypeId::M_ME_NB_1
                }
            ]
        );
        assert!(m.on_asdu(&a, NOW, &mut out).is_empty());
        assert!(out.is_empty());
        let other = asdu(TypeId::M_SP_NA_1, Cause::SPONTANEOUS, 7, vec![sp(100)]);
        assert_eq!(
            m.on_asdu(&other, NOW, &mut out),
            [Notice::ForeignCommonAddress { common_address: 7 }]
        );
        assert!(m.on_asdu(&other, NOW, &mut out).is_empty());
        let mut test = asdu(TypeId::M_SP_NA_1, Cause::SPONTANEOUS, 1, vec![sp(100)]);
        test.cot.test = true;
        assert_eq!(m.on_asdu(&test, NOW, &mut out), [Notice::Test]);
        assert!(out.is_empty());
        let s = m.stats();
        assert_eq!(
            (
                s.objects,
                s.unmapped,
                s.type_mismatch,
                s.foreign_ca,
                s.test,
                s.mapped
            ),
            (7, 2, 2, 2, 1, 0)
        );
    }

    #[test]
    fn unmapped_memory_is_bounded() {
        let mut m = mapper();
        let mut out = Vec::new();
        let mut notices = 0;
        for ioa in 10_000..(10_000 + MAX_REMEMBERED_UNMAPPED as u32 + 10) {
            let a = asdu(
                TypeId::M_SP_NA_1,
                Cause::SPONTANEOUS,
                1,
                vec![InformationObject::new(
                    Ioa(ioa),
                    InformationElement::SinglePoint {
                        value: false,
                        quality: Quality::GOOD,
                    },
                )],
            );
            notices += m.on_asdu(&a, NOW, &mut out).len();
        }
        assert_eq!(notices, MAX_REMEMBERED_UNMAPPED + 1);
    }

    #[test]
    fn link_down_marks_nt_once_and_fresh_values_clear_it() {
        let mut m = mapper();
        let mut out = Vec::new();
        let sp = asdu(
            TypeId::M_SP_NA_1,
            Cause::SPONTANEOUS,
            1,
            vec![InformationObject::new(
                Ioa(100),
                InformationElement::SinglePoint {
                    value: true,
                    quality: Quality::GOOD,
                },
            )],
        );
        m.on_asdu(&sp, NOW, &mut out);
        out.clear();
        m.mark_not_topical(&mut out);
        assert_eq!(
            text(&out),
            [
                format!("tag/rtu1/sp/in=1,{NOW},gt nt nolink"),
                format!("tag/rtu1/sp/rin=1,{NOW},gt nt nolink"),
            ]
        );
        assert_eq!(m.stale_count(), 1);
        out.clear();
        m.mark_not_topical(&mut out);
        assert!(out.is_empty(), "marked only once per outage");
        let gi_term = asdu(
            TypeId::C_IC_NA_1,
            Cause::ACTIVATION_TERMINATION,
            1,
            vec![InformationObject::new(
                Ioa(0),
                InformationElement::Interrogation { qoi: 20 },
            )],
        );
        assert_eq!(
            m.on_asdu(&gi_term, NOW, &mut out),
            [Notice::InterrogationComplete { still_stale: 1 }]
        );
        m.on_asdu(&sp, NOW + 7, &mut out);
        assert_eq!(out[0].1.to_string(), format!("1,{},gt", NOW + 7));
        assert_eq!(m.stale_count(), 0);
    }

    #[test]
    fn seeded_values_are_marked_nt() {
        let mut m = mapper();
        let k: TagKey = "tag/rtu1/me/in".parse().unwrap();
        m.seed(&k, "12.5,1000,sb".parse().unwrap());
        m.seed(
            &k.with_direction(Direction::RawIn),
            "175,1000,sb".parse().unwrap(),
        );
        m.seed(
            &"tag/rtu1/nope/in".parse().unwrap(),
            "1,1,".parse().unwrap(),
        );
        // a value already marked by us stays as it is; a device's own nt gets the mark
        m.seed(
            &"tag/rtu1/sp/in".parse().unwrap(),
            "0,5,nt gt nolink".parse().unwrap(),
        );
        m.seed(
            &"tag/rtu1/dp/in".parse().unwrap(),
            "1,6,nt gt".parse().unwrap(),
        );
        let mut out = Vec::new();
        m.mark_not_topical(&mut out);
        assert_eq!(
            text(&out),
            [
                "tag/rtu1/dp/in=1,6,nt gt nolink".to_owned(),
                "tag/rtu1/me/in=12.5,1000,sb nt nolink".to_owned(),
                "tag/rtu1/me/rin=175,1000,sb nt nolink".to_owned(),
            ]
        );
        assert_eq!(m.stale_count(), 3);
        assert_eq!(m.keys().count(), 16);
    }

    #[test]
    fn protection_and_packed() {
        let s = spec("x", 1, TypeId::M_EP_TD_1, 1.0, 0.0);
        assert_eq!(family(TypeId::M_EP_TD_1), family(TypeId::M_EP_TA_1));
        let (vin, _) = convert(
            &InformationElement::ProtectionEvent {
                event: DoublePointValue::On,
                quality: Quality::EI,
                elapsed: iec60870::Cp16Time2a(10),
            },
            None,
            NOW,
            &s,
        )
        .unwrap();
        assert_eq!(vin.to_string(), format!("2,{NOW},ei gt"));
        let (vin, vrin) = convert(
            &InformationElement::PackedSinglePoints {
                status: 0x8001,
                changed: 0x0001,
                quality: Quality::GOOD,
            },
            None,
            NOW,
            &s,
        )
        .unwrap();
        assert_eq!(vin.value, Value::Int(0x8001));
        assert_eq!(vrin.value, Value::Int(0x1_8001));
        assert!(convert(&InformationElement::Read, None, NOW, &s).is_none());
    }
}
