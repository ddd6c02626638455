//! MQTT payloads of a tag value.

use config::mqtt::{PayloadFormat, Topic};
use tagbus::{TagValue, Value};

/// The payload of a value published on `topic`: `value,timestamp_ms,quality` (CSV, the WCC
/// Lite format) or `{"value":..,"ts":..,"quality":..,"flags":[..]}` (JSON; `nan` and
/// infinities are `null`); with a batch format, a batch of this one value (the publisher
/// gathers batches of many: `crate::batch`). The formats: docs/payloads.md.
pub fn format_payload(format: PayloadFormat, topic: &Topic, value: &TagValue) -> Vec<u8> {
    match format {
        // a Sparkplug device publishes protobuf payloads of its own (sparkplug_node.rs)
        PayloadFormat::Csv | PayloadFormat::Sparkplug => value.to_wcc_payload().into_bytes(),
        PayloadFormat::Json => {
            // Written by hand to keep the documented key order.
            let mut out = Vec::with_capacity(64);
            out.extend_from_slice(b"{\"value\":");
            write_json_number(&mut out, value.value);
            out.extend_from_slice(b",\"ts\":");
            write_integer(&mut out, value.timestamp_ms);
            out.extend_from_slice(b",\"quality\":");
            write_integer(&mut out, value.quality());
            out.extend_from_slice(b",\"flags\":[");
            for (i, flag) in value.flags.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Flag codes are [a-z0-9_] (checked when the value is parsed): nothing to escape.
                out.push(b'"');
                out.extend_from_slice(flag.as_str().as_bytes());
                out.push(b'"');
            }
            out.extend_from_slice(b"]}");
            out
        }
        // One value alone in a batch (the publisher gathers batches with `crate::batch`).
        PayloadFormat::JsonBatch | PayloadFormat::CsvBatch => {
            let mut b = crate::batch::BatchPayload::new(format);
            b.push(topic, value);
            b.finish()
        }
    }
}

/// Appends a value as a JSON number (`nan` and the infinities are `null`) to `out`, with no
/// text in between: serde_json writes integers as `Display` does and finite floats in their
/// shortest form (what `serde_json::Number` prints), non-finite ones as `null`.
pub(crate) fn write_json_number(out: &mut Vec<u8>, value: Value) {
    let _ = match value {
        Value::Int(i) => serde_json::to_writer(out, &i),
        Value::Float(f) => serde_json::to_writer(out, &f),
    };
}

/// Appends the decimal digits of an integer (what `Display` writes) to `out`, without the
/// formatting machinery.
pub(crate) fn write_integer(out: &mut Vec<u8>, n: impl Into<u64>) {
    let _ = serde_json::to_writer(out, &n.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number writers give the text the formats were defined with (`Display`,
    /// `serde_json::Number`), for integers, floats and the non-finite values.
    #[test]
    fn number_writers_match_display_and_serde_json() {
        let floats = [
            0.0,
            -0.0,
            1.0,
            50.0,
            23.5,
            231.123,
            -1.5e-7,
            1e15,
            1e16,
            1e21,
            1e-5,
            0.1 + 0.2,
            f64::MAX,
            f64::MIN_POSITIVE,
            123_456_789.125,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let ints = [0, 1, -1, 42, i64::MAX, i64::MIN, 1_796_118_651_026];
        let values = floats
            .iter()
            .map(|f| Value::Float(*f))
            .chain(ints.iter().map(|i| Value::Int(*i)));
        for v in values {
            let mut json = Vec::new();
            write_json_number(&mut json, v);
            let expected = match v {
                Value::Int(i) => i.to_string(),
                Value::Float(f) => serde_json::Number::from_f64(f)
                    .map_or_else(|| "null".to_owned(), |n| n.to_string()),
            };
            assert_eq!(String::from_utf8(json).unwrap(), expected, "{v:?}");
        }
        // A csv_batch line is the topic and the WCC Lite payload of the csv format.
        let t = Topic::new("tag/r/a/in").unwrap();
        for text in [
            "23.5,1732280000000,iv gt",
            "7,1,",
            "nan,1,nt",
            "1e21,2,",
            "-0.0,3,ov",
        ] {
            let v: TagValue = text.parse().unwrap();
            let mut b = crate::batch::BatchPayload::new(PayloadFormat::CsvBatch);
            b.push(&t, &v);
            assert_eq!(
                b.finish(),
                format!("tag/r/a/in,{}\n", v.to_wcc_payload()).into_bytes()
            );
        }
        for n in [0u64, 7, u64::MAX, 1_796_118_651_026] {
            let mut out = Vec::new();
            write_integer(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn csv_and_json() {
        let t = Topic::new("tag/r/a/in").unwrap();
        let v: TagValue = "23.5,1732280000000,iv gt".parse().unwrap();
        assert_eq!(
            format_payload(PayloadFormat::Csv, &t, &v),
            b"23.5,1732280000000,0"
        );
        assert_eq!(
            String::from_utf8(format_payload(PayloadFormat::Json, &t, &v)).unwrap(),
            r#"{"value":23.5,"ts":1732280000000,"quality":0,"flags":["iv","gt"]}"#
        );
        let v: TagValue = "7,1,".parse().unwrap();
        assert_eq!(format_payload(PayloadFormat::Csv, &t, &v), b"7,1,1");
        assert_eq!(
            String::from_utf8(format_payload(PayloadFormat::Json, &t, &v)).unwrap(),
            r#"{"value":7,"ts":1,"quality":1,"flags":[]}"#
        );
        let v: TagValue = "nan,1,nt".parse().unwrap();
        assert_eq!(
            String::from_utf8(format_payload(PayloadFormat::Json, &t, &v)).unwrap(),
            r#"{"value":null,"ts":1,"quality":0,"flags":["nt"]}"#
        );
        // the gateway's link-loss mark: quality 0, and `nolink` tells it from a device's nt
        let v: TagValue = "4,1,gt nt nolink".parse().unwrap();
        assert_eq!(format_payload(PayloadFormat::Csv, &t, &v), b"4,1,0");
        assert_eq!(
            String::from_utf8(format_payload(PayloadFormat::Json, &t, &v)).unwrap(),
            r#"{"value":4,"ts":1,"quality":0,"flags":["gt","nt","nolink"]}"#
        );
    }
}
