#![no_main]
//! The tag bus text codecs on arbitrary bytes (what Redis or a `tag set` caller hands us):
//! `TagValue::from_bytes`, and on the same bytes as text `TagKey`, a command result key
//! (`TagKey::from_result_key`), `CommandResult`, `Flags`, `Value` and `Alias`. Nothing may
//! panic, and whatever parses must print to text that parses back to the same thing and
//! prints the same again.

use std::fmt::Display;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use tagbus::{Alias, CommandResult, Direction, Flags, TagKey, TagValue, Value};

/// Parse, print, parse again: same value, same text.
fn round_trip<T>(s: &str)
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    if let Ok(v) = s.parse::<T>() {
        let text = v.to_string();
        let back = match text.parse::<T>() {
            Ok(b) => b,
            Err(e) => panic!("{s:?} parsed to {v:?}, printed {text:?}, which fails: {e:?}"),
        };
        assert_eq!(back, v, "{s:?} -> {text:?}");
        assert_eq!(back.to_string(), text, "{s:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = TagValue::from_bytes(data) {
        let text = v.to_string();
        let back = TagValue::from_bytes(text.as_bytes())
            .unwrap_or_else(|e| panic!("{v:?} printed {text:?}, which fails: {e:?}"));
        assert_eq!(back, v);
        assert_eq!(back.to_string(), text);
        // The MQTT payload never panics and has three fields.
        assert_eq!(v.to_wcc_payload().split(',').count(), 3);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<TagValue>(s);
    round_trip::<TagKey>(s);
    if let Ok(k) = TagKey::from_result_key(s) {
        assert_eq!(k.direction, Direction::Out);
        let text = k.result_key();
        assert_eq!(TagKey::from_result_key(&text), Ok(k.clone()), "{s:?}");
        assert_eq!(k.with_direction(Direction::In).result_key(), text);
    }
    round_trip::<CommandResult>(s);
    round_trip::<Flags>(s);
    round_trip::<Value>(s);
    round_trip::<Alias>(s);
});
