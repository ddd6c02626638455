//! A small, bounds-checked DER reader for the two things the security log shows of a
//! certificate: its subject and its validity. Hostile input yields `None`, never a panic.

/// What the log shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject as `CN=..., O=...` (RDNs in certificate order).
    pub subject: String,
    /// `notBefore`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads subject and validity out of a certificate's DER.
pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    let (cert, _) = Tlv::read(der, TAG_SEQUENCE)?;
    let (tbs, _) = Tlv::read(cert, TAG_SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if rest.first() == Some(&0xa0) {
        rest = Tlv::any(rest)?.2;
    }
    let (_serial, r) = Tlv::read(rest, TAG_INTEGER)?;
    let (_sig_alg, r) = Tlv::read(r, TAG_SEQUENCE)?;
    let (_issuer, r) = Tlv::read(r, TAG_SEQUENCE)?;
    let (validity, r) = Tlv::read(r, TAG_SEQUENCE)?;
    let (subject, _) = Tlv::read(r, TAG_SEQUENCE)?;
    let (tag, nb, v) = Tlv::any(validity)?;
    let not_before = time(tag, nb)?;
    let (tag, na, _) = Tlv::any(v)?;
    let not_after = time(tag, na)?;
    Some(CertSummary {
        subject: name(subject)?,
        not_before,
        not_after,
    })
}

const TAG_INTEGER: u8 = 0x02;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;

/// Longest subject text shown (a hostile certificate cannot flood the log).
const MAX_SUBJECT: usize = 256;

struct Tlv;

impl Tlv {
    /// One TLV: (tag, contents, what follows). Short and long lengths up to 4 octets.
    fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (octets, rest) = (rest.get(..n)?, rest.get(n..)?);
            let len = octets.iter().try_fold(0usize, |acc, &b| {
                acc.checked_mul(256)?.checked_add(usize::from(b))
            })?;
            (len, rest)
        };
        Some((tag, rest.get(..len)?, rest.get(len..)?))
    }

    /// One TLV of the expected tag: (contents, what follows).
    fn read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, contents, rest) = Self::any(input)?;
        (t == tag).then_some((contents, rest))
    }
}

/// A Name: SEQUENCE OF SET OF SEQUENCE { OID, value }.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut out = String::new();
    while !rdns.is_empty() {
        let (set, rest) = Tlv::read(rdns, TAG_SET)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = Tlv::read(atvs, TAG_SEQUENCE)?;
            atvs = rest;
            let (oid, value) = Tlv::read(atv, TAG_OID)?;
            let (tag, text, _) = Tlv::any(value)?;
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&attribute_name(oid));
            out.push('=');
            out.push_str(&string_value(tag, text));
            if out.len() > MAX_SUBJECT {
                let mut cut = MAX_SUBJECT;
                while !out.is_char_boundary(cut) {
                    cut = cut.saturating_sub(1);
                }
                out.truncate(cut);
                out.push('…');
                return Some(out);
            }
        }
    }
    Some(out)
}

fn attribute_name(oid: &[u8]) -> String {
    // 2.5.4.x
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        _ => dotted(oid).unwrap_or_else(|| "?".into()),
    }
}

/// An OID in dotted form (`None` when malformed).
fn dotted(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = acc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first.checked_sub(40)?),
        _ => (2, first.checked_sub(80)?),
    };
    let mut s = format!("{a}.{b}");
    for arc in rest {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// A directory string for the log: control characters replaced, other types in hex.
fn string_value(tag: u8, bytes: &[u8]) -> String {
    let text: String = match tag {
        // UTF8String, PrintableString, IA5String, VisibleString
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(bytes).into_owned(),
        // TeletexString: treated as Latin-1
        0x14 => bytes.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE
        0x1e => {
            let units = bytes.chunks_exact(2).map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => return format!("#{}", crate::hex(bytes)),
    };
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` to Unix seconds.
fn time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| {
                acc.checked_mul(10)?
                    .checked_add(i64::from(b.checked_sub(b'0')?))
            })?
        })
    };
    let (year, rest) = match tag {
        TAG_UTC_TIME => {
            let yy = digits(bytes.get(..2)?)?;
            // RFC 5280: 50-99 are 19xx, 00-49 are 20xx
            (
                yy.checked_add(if yy >= 50 { 1900 } else { 2000 })?,
                bytes.get(2..)?,
            )
        }
        TAG_GENERALIZED_TIME => (digits(bytes.get(..4)?)?, bytes.get(4..)?),
        _ => return None,
    };
    if rest.len() != 11 || rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(rest.get(i..i.checked_add(2)?)?);
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    days.checked_mul(86_400)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(min.checked_mul(60)?)?
        .checked_add(sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.checked_sub(era.checked_mul(400)?)?;
    let mp = if m > 2 {
        m.checked_sub(3)?
    } else {
        m.checked_add(9)?
    };
    let doy = (153i64.checked_mul(mp)?.checked_add(2)? / 5)
        .checked_add(d)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe / 4)?
        .checked_sub(yoe / 100)?
        .checked_add(doy)?;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2026, 12, 1), Some(20_788));
    }

    #[test]
    fn times() {
        assert_eq!(time(TAG_UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(TAG_UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(TAG_GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(time(TAG_UTC_TIME, b"701301000000Z"), None);
        assert_eq!(time(TAG_UTC_TIME, b"7001010000Z"), None);
        assert_eq!(time(TAG_UTC_TIME, b"70010100000+Z"), None);
        assert_eq!(time(TAG_GENERALIZED_TIME, b""), None);
    }

    #[test]
    fn oids() {
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]).as_deref(),
            Some("1.2.840.113549")
        );
        assert_eq!(dotted(&[0x86]), None);
        assert_eq!(dotted(&[0xff; 20]), None);
    }

    #[test]
    fn long_lengths_and_truncation() {
        assert_eq!(
            Tlv::any(&[0x30, 0x81, 0x01, 0xaa]),
            Some((0x30, &[0xaa][..], &[][..]))
        );
        assert_eq!(Tlv::any(&[0x30, 0x80]), None);
        assert_eq!(Tlv::any(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(Tlv::any(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(Tlv::any(&[0x30, 0x02, 0x00]), None);
        assert_eq!(Tlv::any(&[0x30]), None);
    }

    #[test]
    fn subject_strings() {
        // SET { SEQ { OID CN, UTF8 "a\nb" } }, SET { SEQ { OID O, BMP "é" } }
        let name_der = [
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'a', //
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x1e, 0x02, 0x00, 0xe9,
        ];
        assert_eq!(name(&name_der[..12]).as_deref(), Some("CN=a"));
        assert_eq!(name(&name_der).as_deref(), Some("CN=a, O=é"));
        assert_eq!(string_value(0x0c, b"a\nb"), "a?b");
        assert_eq!(string_value(0x04, &[1, 2]), "#0102");
    }
}
