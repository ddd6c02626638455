//! Binary time formats: CP56Time2a, CP24Time2a and CP16Time2a.
//!
//! The protocol carries no time zone; this crate treats every time tag as UTC. The SU
//! (summer time) bit is carried through unchanged but never applied to conversions.
//! CP56Time2a carries a two-digit year which this crate maps to 2000-2099.

use crate::cursor::{EndOfInput, Reader, Writer};
use thiserror::Error;

/// A CP56Time2a value cannot be converted to or from Unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TimeError {
    /// A field is outside its calendar range (e.g. month 13, minute 60).
    #[error("time tag field out of range: {0}")]
    FieldOutOfRange(&'static str),
    /// The instant is outside 2000-01-01..2100-01-01 UTC, which a two-digit year cannot carry.
    #[error("time outside the years 2000-2099")]
    YearOutOfRange,
}

/// Seven-octet binary time (IEC 60870-5-4 CP56Time2a).
///
/// Fields hold the raw values as decoded (masked to their bit widths, not range-checked), so a
/// peer's odd time tag still decodes; [`Cp56Time2a::to_unix_ms`] validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cp56Time2a {
    /// Milliseconds within the minute, 0-59999.
    pub millis: u16,
    /// Minute, 0-59.
    pub minute: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Day of month, 1-31.
    pub day: u8,
    /// Day of week, 1 = Monday .. 7 = Sunday, 0 = not used.
    pub weekday: u8,
    /// Month, 1-12.
    pub month: u8,
    /// Two-digit year, 0-99, meaning 2000-2099.
    pub year: u8,
    /// IV bit: the time tag is invalid.
    pub invalid: bool,
    /// SU bit: summer time (carried, never applied).
    pub summer_time: bool,
}

const MS_2000: i64 = 946_684_800_000;
const MS_2100: i64 = 4_102_444_800_000;
const MS_PER_DAY: u64 = 86_400_000;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT: u64 = 719_468;

fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y.checked_div(400)?;
    let yoe = y.checked_sub(era.checked_mul(400)?)?;
    let mp = if month > 2 {
        month.checked_sub(3)?
    } else {
        month.checked_add(9)?
    };
    let doy = mp
        .checked_mul(153)?
        .checked_add(2)?
        .checked_div(5)?
        .checked_add(day)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe.checked_div(4)?)?
        .checked_sub(yoe.checked_div(100)?)?
        .checked_add(doy)?;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(EPOCH_SHIFT)
}

/// Returns (year, month, day) for days since 1970-01-01 (non-negative).
fn civil_from_days(days: u64) -> Option<(u64, u64, u64)> {
    let z = days.checked_add(EPOCH_SHIFT)?;
    let era = z.checked_div(146_097)?;
    let doe = z.checked_sub(era.checked_mul(146_097)?)?;
    let yoe = doe
        .checked_sub(doe.checked_div(1460)?)?
        .checked_add(doe.checked_div(36_524)?)?
        .checked_sub(doe.checked_div(146_096)?)?
        .checked_div(365)?;
    let doy = doe.checked_sub(
        yoe.checked_mul(365)?
            .checked_add(yoe.checked_div(4)?)?
            .checked_sub(yoe.checked_div(100)?)?,
    )?;
    let mp = doy.checked_mul(5)?.checked_add(2)?.checked_div(153)?;
    let day = doy
        .checked_sub(mp.checked_mul(153)?.checked_add(2)?.checked_div(5)?)?
        .checked_add(1)?;
    let month = if mp < 10 {
        mp.checked_add(3)?
    } else {
        mp.checked_sub(9)?
    };
    let mut year = yoe.checked_add(era.checked_mul(400)?)?;
    if month <= 2 {
        year = year.checked_add(1)?;
    }
    Some((year, month, day))
}

fn days_in_month(year: u64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = year.checked_rem(4) == Some(0)
                && (year.checked_rem(100) != Some(0) || year.checked_rem(400) == Some(0));
            if leap {
                29
            } else {
                28
            }
        }
    }
}

impl Cp56Time2a {
    /// Encoded size in octets.
    pub const SIZE: usize = 7;

    /// Converts a Unix time in milliseconds (UTC) to CP56Time2a; IV and SU are clear and the
    /// day of week is set. Errors outside 2000-01-01T00:00:00Z..2100-01-01T00:00:00Z.
    pub fn from_unix_ms(ms: i64) -> Result<Self, TimeError> {
        if !(MS_2000..MS_2100).contains(&ms) {
            return Err(TimeError::YearOutOfRange);
        }
        let ms = u64::try_from(ms).map_err(|_| TimeError::YearOutOfRange)?;
        let calc = || -> Option<Self> {
            let days = ms.checked_div(MS_PER_DAY)?;
            let in_day = ms.checked_rem(MS_PER_DAY)?;
            let (year, month, day) = civil_from_days(days)?;
            let weekday = days.checked_add(3)?.checked_rem(7)?.checked_add(1)?;
            let hour = in_day.checked_div(3_600_000)?;
            let minute = in_day.checked_rem(3_600_000)?.checked_div(60_000)?;
            let millis = in_day.checked_rem(60_000)?;
            Some(Self {
                millis: u16::try_from(millis).ok()?,
                minute: u8::try_from(minute).ok()?,
                hour: u8::try_from(hour).ok()?,
                day: u8::try_from(day).ok()?,
                weekday: u8::try_from(weekday).ok()?,
                month: u8::try_from(month).ok()?,
                year: u8::try_from(year.checked_sub(2000)?).ok()?,
                invalid: false,
                summer_time: false,
            })
        };
        calc().ok_or(TimeError::YearOutOfRange)
    }

    /// Converts to Unix time in milliseconds, reading the time as UTC with year `2000 + year`.
    /// The IV, SU and day-of-week fields are ignored; the caller decides what IV means.
    pub fn to_unix_ms(&self) -> Result<i64, TimeError> {
        if self.year > 99 {
            return Err(TimeError::FieldOutOfRange("year"));
        }
        if !(1..=12).contains(&self.month) {
            return Err(TimeError::FieldOutOfRange("month"));
        }
        let year = u64::from(self.year).saturating_add(2000);
        if self.day < 1 || self.day > days_in_month(year, self.month) {
            return Err(TimeError::FieldOutOfRange("day"));
        }
        if self.hour > 23 {
            return Err(TimeError::FieldOutOfRange("hour"));
        }
        if self.minute > 59 {
            return Err(TimeError::FieldOutOfRange("minute"));
        }
        if self.millis > 59_999 {
            return Err(TimeError::FieldOutOfRange("milliseconds"));
        }
        let calc = || -> Option<i64> {
            let days = days_from_civil(year, u64::from(self.month), u64::from(self.day))?;
            let ms = days
                .checked_mul(MS_PER_DAY)?
                .checked_add(u64::from(self.hour).checked_mul(3_600_000)?)?
                .checked_add(u64::from(self.minute).checked_mul(60_000)?)?
                .checked_add(u64::from(self.millis))?;
            i64::try_from(ms).ok()
        };
        calc().ok_or(TimeError::YearOutOfRange)
    }

    /// Decodes seven octets.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, EndOfInput> {
        let millis = r.read_u16_le()?;
        let [min, hour, day, month, year] = r.read_array::<5>()?;
        Ok(Self {
            millis,
            minute: min & 0x3F,
            invalid: min & 0x80 != 0,
            hour: hour & 0x1F,
            summer_time: hour & 0x80 != 0,
            day: day & 0x1F,
            weekday: (day >> 5) & 0x07,
            month: month & 0x0F,
            year: year & 0x7F,
        })
    }

    /// Encodes seven octets (fields are masked to their bit widths).
    pub fn encode(&self, w: &mut Writer) {
        w.u16_le(self.millis);
        w.u8((self.minute & 0x3F) | if self.invalid { 0x80 } else { 0 });
        w.u8((self.hour & 0x1F) | if self.summer_time { 0x80 } else { 0 });
        w.u8((self.day & 0x1F) | ((self.weekday & 0x07) << 5));
        w.u8(self.month & 0x0F);
        w.u8(self.year & 0x7F);
    }
}

/// Three-octet binary time (CP24Time2a): milliseconds and minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cp24Time2a {
    /// Milliseconds within the minute, 0-59999.
    pub millis: u16,
    /// Minute, 0-59.
    pub minute: u8,
    /// IV bit: the time tag is invalid.
    pub invalid: bool,
}

impl Cp24Time2a {
    /// Encoded size in octets.
    pub const SIZE: usize = 3;

    /// Decodes three octets.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, EndOfInput> {
        let millis = r.read_u16_le()?;
        let min = r.read_u8()?;
        Ok(Self {
            millis,
            minute: min & 0x3F,
            invalid: min & 0x80 != 0,
        })
    }

    /// Encodes three octets.
    pub fn encode(&self, w: &mut Writer) {
        w.u16_le(self.millis);
        w.u8((self.minute & 0x3F) | if self.invalid { 0x80 } else { 0 });
    }
}

impl From<Cp56Time2a> for Cp24Time2a {
    fn from(t: Cp56Time2a) -> Self {
        Self {
            millis: t.millis,
            minute: t.minute,
            invalid: t.invalid,
        }
    }
}

/// Two-octet binary time (CP16Time2a): milliseconds, 0-59999 (elapsed times and delays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cp16Time2a(pub u16);

impl Cp16Time2a {
    /// Decodes two octets.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, EndOfInput> {
        r.read_u16_le().map(Self)
    }

    /// Encodes two octets.
    pub fn encode(&self, w: &mut Writer) {
        w.u16_le(self.0);
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
    use proptest::prelude::*;

    #[test]
    fn known_instant() {
        // 2024-02-29T13:45:12.345Z, a Thursday
        let ms = 1_709_214_312_345;
        let t = Cp56Time2a::from_unix_ms(ms).unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.millis, t.weekday),
            (24, 2, 29, 13, 45, 12_345, 4)
        );
        let mut w = Writer::new();
        t.encode(&mut w);
        assert_eq!(w.into_vec(), vec![0x39, 0x30, 45, 13, 29 | (4 << 5), 2, 24]);
        assert_eq!(t.to_unix_ms().unwrap(), ms);
    }

    #[test]
    fn bits_and_ranges() {
        let mut r = Reader::new(&[0x00, 0x00, 0x80 | 59, 0x80 | 23, 31, 12, 99]);
        let t = Cp56Time2a::decode(&mut r).unwrap();
        assert!(t.invalid && t.summer_time);
        assert_eq!(t.to_unix_ms().unwrap(), MS_2100 - 60_000);
        assert_eq!(
            Cp56Time2a::from_unix_ms(MS_2000 - 1),
            Err(TimeError::YearOutOfRange)
        );
        assert_eq!(
            Cp56Time2a::from_unix_ms(MS_2100),
            Err(TimeError::YearOutOfRange)
        );
        assert_eq!(Cp56Time2a::from_unix_ms(MS_2000).unwrap().year, 0);
        let bad = Cp56Time2a {
            month: 2,
            day: 30,
            year: 23,
            ..Default::default()
        };
        assert_eq!(bad.to_unix_ms(), Err(TimeError::FieldOutOfRange("day")));
        let bad = Cp56Time2a {
            month: 0,
            day: 1,
            ..Default::default()
        };
        assert!(bad.to_unix_ms().is_err());
        assert!(Cp56Time2a::decode(&mut Reader::new(&[1, 2, 3])).is_err());
    }

    proptest! {
        #[test]
        fn unix_round_trip(ms in MS_2000..MS_2100) {
            let t = Cp56Time2a::from_unix_ms(ms).unwrap();
            prop_assert_eq!(t.to_unix_ms().unwrap(), ms);
            let mut w = Writer::new();
            t.encode(&mut w);
            let v = w.into_vec();
            let back = Cp56Time2a::decode(&mut Reader::new(&v)).unwrap();
            prop_assert_eq!(back, t);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
            if let Ok(t) = Cp56Time2a::decode(&mut Reader::new(&bytes)) {
                let _ = t.to_unix_ms();
            }
        }
    }
}
