//! Tag values: the CSV text `value,timestamp_ms,flags`.

use std::fmt;
use std::str::FromStr;

/// The longest CSV text accepted; anything longer is malformed, not parsed.
pub const MAX_CSV_LEN: usize = 512;
/// The longest flag code accepted.
pub const MAX_FLAG_LEN: usize = 16;
/// The most flags one value may carry.
pub const MAX_FLAGS: usize = 16;

/// Why a CSV value or a flag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("value text is empty")]
    Empty,
    #[error("value text is {0} bytes, over the {MAX_CSV_LEN} byte limit")]
    TooLong(usize),
    #[error("expected value,timestamp_ms,flags (3 fields), got {0}")]
    FieldCount(usize),
    #[error("value {0:?} is not an integer, a float or nan")]
    BadNumber(String),
    #[error("timestamp {0:?} is not a Unix time in milliseconds")]
    BadTimestamp(String),
    #[error("flag {0:?} is not a lowercase code of at most {MAX_FLAG_LEN} characters [a-z0-9_]")]
    BadFlag(String),
    #[error("more than {MAX_FLAGS} flags")]
    TooManyFlags,
}

/// A tag's value: an integer or a float (`NaN` included, written `nan`).
#[derive(Debug, Clone, Copy)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    /// The value as a float (integers beyond 2^53 lose precision).
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

impl PartialEq for Value {
    /// Same variant and same number; `nan` equals `nan` (a repeated `nan` is a repeat).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => {
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
            }
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    /// Integers as digits; floats in the shortest text that reads back to the same float,
    /// always with a `.` or an exponent (`23.5`, `50.0`, `1e21`), and `nan`, `inf`, `-inf`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_nan() => f.write_str("nan"),
            Value::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "inf" } else { "-inf" })
            }
            Value::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl FromStr for Value {
    type Err = ValueError;
    /// An optional sign and digits is an integer; anything else Rust reads as a float
    /// (`23.5`, `1e3`, `nan`, `inf`) is a float.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| ValueError::BadNumber(truncated(s)));
        }
        let is_float_text = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
        if !is_float_text {
            return Err(ValueError::BadNumber(truncated(s)));
        }
        s.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| ValueError::BadNumber(truncated(s)))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

/// One quality or gateway flag: a lowercase code (`iv`, `nt`, `gt`, or any code a newer
/// version may add: unknown codes are kept and passed on).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flag(String);

impl Flag {
    /// Invalid (IEC 60870-5 IV).
    pub const IV: &'static str = "iv";
    /// Not topical (IEC NT, as the device sent it; the gateway's own mark adds [`Flag::NOLINK`]).
    pub const NT: &'static str = "nt";
    /// Substituted (IEC SB).
    pub const SB: &'static str = "sb";
    /// Blocked (IEC BL).
    pub const BL: &'static str = "bl";
    /// Overflow (IEC OV).
    pub const OV: &'static str = "ov";
    /// The timestamp is the gateway's receive time, not the device's.
    pub const GT: &'static str = "gt";
    /// Transient: a step position in motion (IEC T bit of VTI).
    pub const TR: &'static str = "tr";
    /// Counter carry (IEC CY).
    pub const CY: &'static str = "cy";
    /// Counter adjusted (IEC CA).
    pub const CA: &'static str = "ca";
    /// Elapsed time invalid (IEC EI).
    pub const EI: &'static str = "ei";
    /// The gateway has no link to the device: the link is down, the device does not answer,
    /// or the applet reading it stopped. Set with `nt` by [`TagValue::marked_no_link`]; a
    /// device's own `nt` never carries it. Quality 0.
    pub const NOLINK: &'static str = "nolink";

    /// Validates a flag code: 1 to [`MAX_FLAG_LEN`] characters of `[a-z0-9_]`.
    pub fn new(code: &str) -> Result<Self, ValueError> {
        let ok = !code.is_empty()
            && code.len() <= MAX_FLAG_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(code.to_owned()))
        } else {
            Err(ValueError::BadFlag(truncated(code)))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value's flags: a set of codes, kept in the order first seen, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags(Vec<Flag>);

impl Flags {
    /// No flags: a good value.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the code is set.
    pub fn contains(&self, code: &str) -> bool {
        self.0.iter().any(|f| f.as_str() == code)
    }

    /// Adds a code (a repeat is ignored). Fails past [`MAX_FLAGS`] or on a bad code.
    pub fn insert(&mut self, code: &str) -> Result<(), ValueError> {
        if self.contains(code) {
            return Ok(());
        }
        if self.0.len() >= MAX_FLAGS {
            return Err(ValueError::TooManyFlags);
        }
        self.0.push(Flag::new(code)?);
        Ok(())
    }

    /// Adds a known-good constant code such as [`Flag::NT`] (never fails for them).
    pub fn with(mut self, code: &str) -> Self {
        // Constant codes are valid; a full set keeps what it has.
        let _ = self.insert(code);
        self
    }

    /// Removes a code.
    pub fn remove(&mut self, code: &str) {
        self.0.retain(|f| f.as_str() != code);
    }

    /// The codes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }

    /// The codes that make a value bad for the WCC Lite quality column.
    pub const BAD_QUALITY: [&'static str; 4] = [Flag::IV, Flag::NT, Flag::OV, Flag::NOLINK];

    /// Whether the value is good for the WCC Lite quality column: none of
    /// [`Flags::BAD_QUALITY`] (iv, nt, ov, nolink).
    pub fn is_good_quality(&self) -> bool {
        !Self::BAD_QUALITY.iter().any(|code| self.contains(code))
    }

    /// Whether this is the gateway's link-loss mark ([`Flag::NOLINK`]), not a device's `nt`.
    pub fn is_no_link(&self) -> bool {
        self.contains(Flag::NOLINK)
    }
}

impl fmt::Display for Flags {
    /// The codes separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, flag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(flag.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Flags {
    type Err = ValueError;
    /// Codes separated by whitespace; empty text is no flags.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut flags = Flags::empty();
        for code in s.split_whitespace() {
            flags.insert(code)?;
        }
        Ok(flags)
    }
}

/// A value on the tag bus with its time and flags; its text form is `value,timestamp_ms,flags`.
#[derive(Debug, Clone, PartialEq)]
pub struct TagValue {
    pub value: Value,
    /// Unix time in milliseconds, UTC: the device's time tag, or the gateway's receive time
    /// (then `flags` holds `gt`).
    pub timestamp_ms: u64,
    pub flags: Flags,
}

impl TagValue {
    /// A value with no flags.
    pub fn new(value: impl Into<Value>, timestamp_ms: u64) -> Self {
        Self {
            value: value.into(),
            timestamp_ms,
            flags: Flags::empty(),
        }
    }

    /// The same value with these flags.
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// The WCC Lite quality: 1, or 0 when the flags hold iv, nt, ov or nolink.
    pub fn quality(&self) -> u8 {
        u8::from(self.flags.is_good_quality())
    }

    /// The gateway's mark of a value whose source it lost: the same value and timestamp,
    /// its flags plus `nt nolink`. A consumer tells it from a device's own `nt` by `nolink`.
    /// Marking a marked value changes nothing.
    pub fn marked_no_link(&self) -> Self {
        let mut marked = self.clone();
        marked.flags = marked.flags.with(Flag::NT).with(Flag::NOLINK);
        marked
    }

    /// Parses the CSV text (also from raw Redis bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValueError> {
        if bytes.len() > MAX_CSV_LEN {
            return Err(ValueError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            ValueError::BadNumber(
                String::from_utf8_lossy(bytes.get(..32).unwrap_or(bytes)).into_owned(),
            )
        })?;
        text.parse()
    }

    /// The WCC Lite MQTT payload: `value,timestamp_ms,quality`.
    pub fn to_wcc_payload(&self) -> String {
        self.wcc_payload().to_string()
    }

    /// The WCC Lite MQTT payload as a [`fmt::Display`], to write it straight into a buffer
    /// (a batch of many) without a `String` per value.
    pub fn wcc_payload(&self) -> WccPayload<'_> {
        WccPayload(self)
    }
}

/// A value's WCC Lite MQTT payload, `value,timestamp_ms,quality` ([`TagValue::wcc_payload`]).
pub struct WccPayload<'a>(&'a TagValue);

impl fmt::Display for WccPayload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(f, "{},{},{}", v.value, v.timestamp_ms, v.quality())
    }
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.value, self.timestamp_ms, self.flags)
    }
}

impl FromStr for TagValue {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ValueError::Empty);
        }
        if s.len() > MAX_CSV_LEN {
            return Err(ValueError::TooLong(s.len()));
        }
        let mut fields = s.split(',');
        let (Some(value), Some(ts), Some(flags), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(ValueError::FieldCount(s.split(',').count()));
        };
        let value = value.trim().parse()?;
        let ts = ts.trim();
        let timestamp_ms = if !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) {
            ts.parse::<u64>()
                .map_err(|_| ValueError::BadTimestamp(truncated(ts)))?
        } else {
            return Err(ValueError::BadTimestamp(truncated(ts)));
        };
        Ok(Self {
            value,
            timestamp_ms,
            flags: flags.parse()?,
        })
    }
}

/// An f32 as the f64 of its shortest decimal form: `123.456f32` becomes `123.456`, not
/// `123.45600128173828`. What a device sends is the f32; its decimal text is what the
/// device's documentation and display show, so that is the value the tag carries.
pub fn widen_f32(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// Significant digits kept of a scaled value: far beyond any instrument's accuracy, and
/// enough to turn `0.30000000000000004` (binary floating point noise of the scaling) into `0.3`.
pub const SCALED_DIGITS: usize = 12;

/// The engineering value of a raw value, `raw * multiplier + offset`, rounded to
/// [`SCALED_DIGITS`] significant digits (non-finite values as they are). Every driver scales
/// with this, so equal raw values give equal tag text whichever protocol carried them.
pub fn scale(raw: f64, multiplier: f64, offset: f64) -> f64 {
    let v = raw * multiplier + offset;
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    format!("{v:.prec$e}", prec = SCALED_DIGITS.saturating_sub(1))
        .parse()
        .unwrap_or(v)
}

/// At most 32 characters of untrusted text, for error messages.
fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Milliseconds since the Unix epoch now, from the wall clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples_from_the_design() {
        let v: TagValue = "23.5,1732280000000,".parse().unwrap();
        assert_eq!(v.value, Value::Float(23.5));
        assert_eq!(v.timestamp_ms, 1_732_280_000_000);
        assert!(v.flags.is_empty());
        assert_eq!(v.quality(), 1);
        assert_eq!(v.to_string(), "23.5,1732280000000,");
        assert_eq!(v.to_wcc_payload(), "23.5,1732280000000,1");

        let v: TagValue = "1,1732280000000,iv nt".parse().unwrap();
        assert_eq!(v.value, Value::Int(1));
        assert!(v.flags.contains("iv") && v.flags.contains("nt"));
        assert_eq!(v.quality(), 0);
        assert_eq!(v.to_string(), "1,1732280000000,iv nt");

        let v: TagValue = "nan,5,".parse().unwrap();
        assert!(matches!(v.value, Value::Float(x) if x.is_nan()));
        assert_eq!(v.to_string(), "nan,5,");
    }

    #[test]
    fn quality_zero_for_iv_nt_ov_only() {
        for (flags, q) in [
            ("", 1),
            ("iv", 0),
            ("nt", 0),
            ("ov", 0),
            ("sb bl gt cy", 1),
            ("xq", 1),
            ("nolink", 0),
            ("nt gt nolink", 0),
        ] {
            let v: TagValue = format!("1,1,{flags}").parse().unwrap();
            assert_eq!(v.quality(), q, "{flags}");
        }
    }

    #[test]
    fn the_gateway_mark_differs_from_a_device_nt() {
        let device_nt: TagValue = "7,1732280000000,nt gt".parse().unwrap();
        assert!(!device_nt.flags.is_no_link());
        assert_eq!(device_nt.quality(), 0);

        let good: TagValue = "7,1732280000000,gt".parse().unwrap();
        let marked = good.marked_no_link();
        assert_eq!(marked.to_string(), "7,1732280000000,gt nt nolink");
        assert!(marked.flags.is_no_link() && marked.flags.contains(Flag::NT));
        assert_eq!(
            (marked.value, marked.timestamp_ms),
            (good.value, good.timestamp_ms)
        );
        assert_eq!(marked.quality(), 0);
        assert_eq!(marked.to_wcc_payload(), "7,1732280000000,0");
        assert_ne!(marked.flags, device_nt.flags);

        // marking twice is marking once; a device nt gains only nolink
        assert_eq!(marked.marked_no_link(), marked);
        assert_eq!(
            device_nt.marked_no_link().to_string(),
            "7,1732280000000,nt gt nolink"
        );
        // the CSV form reads back
        let back: TagValue = "7,1732280000000,gt nt nolink".parse().unwrap();
        assert_eq!(back, marked);
    }

    #[test]
    fn unknown_flags_are_kept() {
        let v: TagValue = "1,2,zz9 iv  future_flag".parse().unwrap();
        assert_eq!(v.to_string(), "1,2,zz9 iv future_flag");
    }

    #[test]
    fn scaling_and_widening_give_clean_decimals() {
        assert_eq!(scale(3.0, 0.1, 0.0), 0.3);
        assert_eq!(scale(100_003.0, 0.1, 0.0).to_string(), "10000.3");
        assert_eq!(scale(500.0, 0.1, -10.0), 40.0);
        assert!(scale(f64::NAN, 2.0, 0.0).is_nan());
        assert_eq!(widen_f32(230.209_06), 230.209_06);
        assert_eq!(Value::Float(widen_f32(123.456)).to_string(), "123.456");
    }

    #[test]
    fn floats_keep_their_type() {
        assert_eq!(Value::Float(50.0).to_string(), "50.0");
        assert_eq!(Value::Float(-0.25).to_string(), "-0.25");
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "inf");
        assert_eq!("50.0".parse::<Value>().unwrap(), Value::Float(50.0));
        assert_eq!("-7".parse::<Value>().unwrap(), Value::Int(-7));
        assert_eq!("1e3".parse::<Value>().unwrap(), Value::Float(1000.0));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let garbage: String = (0..10_240u32)
            .map(|i| char::from(b"a,;\x00\xff 9"[(i % 7) as usize]))
            .collect();
        let cases: Vec<String> = vec![
            "".into(),
            "abc,1,".into(),
            "1,abc,".into(),
            "1".into(),
            "1,2".into(),
            ",,".into(),
            "1,,".into(),
            ",1,".into(),
            "1,2,3,4".into(),
            "1,-5,".into(),
            "1,2,IV".into(),
            "1,2,i/v".into(),
            "99999999999999999999,1,".into(),
            "1,99999999999999999999999,".into(),
            "0x10,1,".into(),
            "1;2;3".into(),
            "1 2,3,".into(),
            garbage.clone(),
            format!(
                "1,2,{}",
                (0..20)
                    .map(|i| format!("f{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ];
        for c in &cases {
            assert!(c.parse::<TagValue>().is_err(), "{c:?} accepted");
        }
        assert!(TagValue::from_bytes(garbage.as_bytes()).is_err());
        assert!(TagValue::from_bytes(&[0xff, b',', b'1', b',']).is_err());
        assert!(TagValue::from_bytes(&vec![b'7'; 10_240]).is_err());
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
        ]
    }

    fn flags_strategy() -> impl Strategy<Value = Flags> {
        proptest::collection::vec("[a-z0-9_]{1,16}", 0..6).prop_map(|codes| {
            let mut flags = Flags::empty();
            for c in codes {
                flags.insert(&c).unwrap();
            }
            flags
        })
    }

    proptest! {
        #[test]
        fn csv_round_trips(value in value_strategy(), ts in any::<u64>(), flags in flags_strategy()) {
            let v = TagValue { value, timestamp_ms: ts, flags };
            let text = v.to_string();
            let back: TagValue = text.parse().unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<TagValue>();
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = TagValue::from_bytes(&b);
        }
    }
}
