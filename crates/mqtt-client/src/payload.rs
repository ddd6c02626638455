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
            let v = json_number(value.value);
            let mut out = format!(
                "{{\"value\":{v},\"ts\":{},\"quality\":{},\"flags\":[",
                value.timestamp_ms,
                value.quality()
            );
            for (i, flag) in value.flags.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Flag codes are [a-z0-9_] (checked when the value is parsed): nothing to escape.
                out.push('"');
                out.push_str(flag.as_str());
                out.push('"');
            }
            out.push_str("]}");
            out.into_bytes()
        }
        // One value alone in a batch (the publisher gathers batches with `crate::batch`).
        PayloadFormat::JsonBatch | PayloadFormat::CsvBatch => {
            let mut b = crate::batch::BatchPayload::new(format);
            b.push(topic, value);
            b.finish()
        }
    }
}

/// A value as a JSON number (`nan` and the infinities are `null`).
pub(crate) fn json_number(value: Value) -> String {
    match value {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => {
            serde_json::Number::from_f64(f).map_or_else(|| "null".to_owned(), |n| n.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
