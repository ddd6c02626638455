#![no_main]
//! Link state machine: a script of received frames (as raw octets through the framer),
//! sends, starts/stops and clock steps, on both roles. Must never panic; checks invariants.

use iec60870::{parse_frame, Frame, Link, LinkConfig, Role, SeqNum, UFunction};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let role = if first & 1 == 0 {
        Role::Controlling
    } else {
        Role::Controlled
    };
    let config = LinkConfig {
        k: u16::from(first >> 4).max(1),
        w: u16::from((first >> 1) & 0x07)
            .max(1)
            .min(u16::from(first >> 4).max(1)),
        ..LinkConfig::default()
    };
    let mut now = Instant::now();
    let mut link = Link::new(role, config, now);
    let mut rx = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let arg = |rest: &mut &[u8]| -> u16 {
            let v = match rest {
                [a, b, ..] => u16::from_le_bytes([*a, *b]),
                _ => 0,
            };
            *rest = rest.get(2..).unwrap_or(&[]);
            v
        };
        let result = match op % 8 {
            0 => {
                // a structured frame
                let n = arg(&mut rest);
                let f = match n % 9 {
                    0 => Frame::I {
                        ns: SeqNum::new(n >> 1),
                        nr: SeqNum::new(arg(&mut rest)),
                        asdu: vec![1],
                    },
                    1 => Frame::I {
                        ns: link.vr(),
                        nr: SeqNum::new(arg(&mut rest)),
                        asdu: vec![1],
                    },
                    2 => Frame::S {
                        nr: SeqNum::new(arg(&mut rest)),
                    },
                    3 => Frame::U(UFunction::StartDtAct),
                    4 => Frame::U(UFunction::StartDtCon),
                    5 => Frame::U(UFunction::StopDtAct),
                    6 => Frame::U(UFunction::StopDtCon),
                    7 => Frame::U(UFunction::TestFrAct),
                    _ => Frame::U(UFunction::TestFrCon),
                };
                link.handle_frame(f, now)
            }
            1 => {
                // raw octets through the framer
                let n = usize::from(arg(&mut rest) % 64);
                let take = n.min(rest.len());
                rx.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                let mut r = Ok(());
                loop {
                    match parse_frame(&rx) {
                        Ok(Some((f, used))) => {
                            rx.drain(..used);
                            r = link.handle_frame(f, now);
                            if r.is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
                r
            }
            2 => {
                let _ = link.send_asdu(vec![1, 2, 3], now);
                Ok(())
            }
            3 => {
                now += Duration::from_millis(u64::from(arg(&mut rest)) * 10);
                link.handle_timeout(now)
            }
            4 => {
                link.start(now);
                Ok(())
            }
            5 => {
                link.stop(now);
                Ok(())
            }
            6 => {
                while link.poll_transmit().is_some() {}
                while link.poll_event().is_some() {}
                Ok(())
            }
            _ => {
                if let Some(d) = link.next_deadline() {
                    if d > now {
                        now = d;
                    }
                }
                link.handle_timeout(now)
            }
        };
        assert!(link.unacked() <= usize::from(config.k));
        if result.is_err() {
            // the transport closes the connection; a new one starts from scratch
            link = Link::new(role, config, now);
            rx.clear();
        }
    }
});
