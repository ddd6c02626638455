#![no_main]
//! The Modbus RTU answer search on hostile serial bytes: `rtu::scan` (find the addressed
//! slave's good-CRC answer to the request in the receive buffer), `describe_dropped`,
//! `Request::response_len`/`decode_response`, and the register decoders behind them.
//!
//! Input: slave id, 5 request bytes, 4 signal bytes, 9 write-value bytes, then the received
//! bytes. Invariants: a found frame lies in the buffer, comes from the slave, has a good CRC
//! and answers with exactly the count asked for; a correct answer built from the same bytes
//! is found at once, also behind the received bytes as line noise.

mod common;

use libfuzzer_sys::fuzz_target;
use modbus_master::pdu::Response;
use modbus_master::rtu::{crc16, describe_dropped, encode_request, hex, scan, Scan};

fn frame(slave: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = vec![slave];
    f.extend_from_slice(pdu);
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

fn count_ok(request: &modbus_master::pdu::Request, answer: &Response) -> bool {
    use modbus_master::pdu::Request as R;
    match (request, answer) {
        (R::ReadCoils { count, .. } | R::ReadDiscreteInputs { count, .. }, Response::Bits(b)) => {
            b.len() == usize::from(*count)
        }
        (
            R::ReadHoldingRegisters { count, .. } | R::ReadInputRegisters { count, .. },
            Response::Registers(r),
        ) => r.len() == usize::from(*count),
        (
            R::WriteSingleCoil { .. }
            | R::WriteSingleRegister { .. }
            | R::WriteMultipleCoils { .. }
            | R::WriteMultipleRegisters { .. },
            Response::Written,
        ) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [slave] = common::take::<1>(&mut data);
    let request = common::request(&mut data);
    let signal = common::signal(&mut data);
    common::check_write(&mut data, &signal);
    let rx = data;

    let _ = encode_request(slave, &request);
    let _ = hex(rx);
    let _ = describe_dropped(rx, slave, &request);
    let _ = request.response_len(rx);
    if let Ok(Ok(Response::Registers(regs))) = request.decode_response(rx) {
        common::check_registers(&regs, &signal);
    }

    // The search over what was received, and over every prefix of it that arrived first.
    for end in [rx.len() / 3, rx.len() / 2, rx.len()] {
        let buf = &rx[..end];
        match scan(buf, slave, &request) {
            Scan::NeedMore => {}
            Scan::Frame { start, len, answer } => {
                let f = buf
                    .get(start..start.checked_add(len).expect("no overflow"))
                    .expect("the frame lies in the buffer");
                assert!(len >= 4 && len <= 256, "{len}");
                assert_eq!(f[0], slave);
                let (body, crc) = f.split_at(len - 2);
                assert_eq!(crc, crc16(body).to_le_bytes());
                let _ = describe_dropped(&buf[..start], slave, &request);
                if let Ok(r) = &answer {
                    assert!(count_ok(&request, r), "{request:?} answered {r:?}");
                    if let Response::Registers(regs) = r {
                        common::check_registers(regs, &signal);
                    }
                }
            }
        }
    }

    // A correct answer (and an exception) is found: alone at once, behind noise somewhere.
    if let Some((pdu, expected)) = common::good_response(&request, rx) {
        let good = frame(slave, &pdu);
        if good.len() <= 256 {
            assert_eq!(
                scan(&good, slave, &request),
                Scan::Frame {
                    start: 0,
                    len: good.len(),
                    answer: Ok(expected)
                }
            );
            let mut noisy = rx.to_vec();
            noisy.extend_from_slice(&good);
            assert!(
                matches!(scan(&noisy, slave, &request), Scan::Frame { .. }),
                "an answer behind {} noise bytes was not found",
                rx.len()
            );
        }
    }
    let code = rx.first().copied().unwrap_or(2);
    let exception = frame(slave, &[request.function_code() | 0x80, code]);
    assert_eq!(
        scan(&exception, slave, &request),
        Scan::Frame {
            start: 0,
            len: 5,
            answer: Err(modbus_master::pdu::ExceptionCode(code))
        }
    );
});
