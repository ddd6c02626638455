#![no_main]
//! The Modbus TCP answer search on a hostile stream: `tcp::scan` consumed frame after frame
//! the way the link does (skip, answer or corrupt), plus the register decoders.
//!
//! Input: transaction id (2), unit id, 5 request bytes, 4 signal bytes, 9 write-value
//! bytes, then the received stream. Invariants: every consumed length is a whole frame
//! inside the buffer, the loop always progresses, an answer has exactly the count asked
//! for, and a correct ADU built from the same bytes is the answer.

mod common;

use libfuzzer_sys::fuzz_target;
use modbus_master::pdu::Response;
use modbus_master::tcp::{encode_request, scan, Scan, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [t0, t1, unit] = common::take::<3>(&mut data);
    let transaction = u16::from_be_bytes([t0, t1]);
    let request = common::request(&mut data);
    let signal = common::signal(&mut data);
    common::check_write(&mut data, &signal);
    let rx = data;
    let _ = encode_request(transaction, unit, &request);

    let mut buf = rx;
    let mut frames = 0usize;
    loop {
        match scan(buf, transaction, unit, &request) {
            Scan::NeedMore | Scan::Corrupt(_) => break,
            Scan::Skip { len, .. } => {
                assert!(
                    len > HEADER_LEN && len <= buf.len(),
                    "{len} of {}",
                    buf.len()
                );
                buf = &buf[len..];
            }
            Scan::Frame { len, answer } => {
                assert!(
                    len > HEADER_LEN && len <= buf.len(),
                    "{len} of {}",
                    buf.len()
                );
                if let Ok(Response::Registers(regs)) = &answer {
                    common::check_registers(regs, &signal);
                }
                buf = &buf[len..];
            }
        }
        frames += 1;
        assert!(frames <= rx.len() / 8 + 1);
    }

    if let Some((pdu, expected)) = common::good_response(&request, rx) {
        let Ok(length) = u16::try_from(pdu.len() + 1) else {
            return;
        };
        if length > 254 {
            return;
        }
        let mut adu = Vec::new();
        adu.extend_from_slice(&transaction.to_be_bytes());
        adu.extend_from_slice(&[0, 0]);
        adu.extend_from_slice(&length.to_be_bytes());
        adu.push(unit);
        adu.extend_from_slice(&pdu);
        let len = adu.len();
        adu.extend_from_slice(rx); // what follows does not matter
        assert_eq!(
            scan(&adu, transaction, unit, &request),
            Scan::Frame {
                len,
                answer: Ok(expected)
            }
        );
    }
});
