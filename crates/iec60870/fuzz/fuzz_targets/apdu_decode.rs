#![no_main]
//! APDU decoder: arbitrary octets through the stream framer and the APDU/ASDU decoders.
//! Whatever decodes must re-encode and decode to the same value.

use iec60870::{decode_apdu, parse_frame, Asdu, AsduSizes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let sizes = AsduSizes::from_octets(1 + (sel & 1), 1 + ((sel >> 1) & 1), 1 + ((sel >> 2) % 3))
        .unwrap_or_default();

    // whole-APDU decoding
    if let Ok(apdu) = decode_apdu(rest, &sizes) {
        let again = apdu.frame.encode().expect("decoded frame re-encodes");
        assert_eq!(again, rest);
        if let Some(asdu) = apdu.asdu {
            let bytes = asdu.encode(&sizes).expect("decoded ASDU re-encodes");
            let back = Asdu::decode(&bytes, &sizes).expect("re-encoded ASDU decodes");
            assert_eq!(format!("{back:?}"), format!("{asdu:?}"));
        }
    }

    // stream framing: consume frame after frame
    let mut buf = rest;
    let mut guard = 0;
    while let Ok(Some((frame, used))) = parse_frame(buf) {
        assert!(used >= 6 && used <= buf.len() && used <= 255);
        if let iec60870::Frame::I { asdu, .. } = &frame {
            let _ = Asdu::decode(asdu, &sizes);
        }
        buf = &buf[used..];
        guard += 1;
        assert!(guard <= rest.len());
    }

    // raw ASDU decoding
    let _ = Asdu::decode(rest, &sizes);
});
