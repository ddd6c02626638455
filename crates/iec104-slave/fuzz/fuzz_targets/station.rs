#![no_main]
//! The station core driven by masters sending anything: raw bytes in arbitrary splits, and
//! well-sequenced I frames (N(S)/N(R) tracked from the station's output, so the ASDUs reach
//! the request handling) carrying arbitrary or template-based ASDUs, interleaved with
//! STARTDT/STOPDT, acknowledgements, time, connection churn, events and command results.
//!
//! Nothing may panic, and per group no event is lost: every queued token is acknowledged,
//! queued or in flight (`acknowledged + queued + unacked == events queued`), and the
//! acknowledged tokens only grow.

use arbitrary::{Result, Unstructured};
use iec104_slave::station::{
    Action, CommandPoint, CommandToken, ConnId, EventToken, GroupConfig, GroupId, Station,
    StationConfig,
};
use iec60870::{CommonAddress, Ioa, LinkConfig, Point, PointDb, Quality, TypeId};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// ASDU templates a master sends (CA 1, IOA bytes patched): GI, counter interrogation,
/// read, clock sync, commands with and without time, select.
const TEMPLATES: &[&[u8]] = &[
    &[100, 1, 6, 0, 1, 0, 0, 0, 0, 20],
    &[100, 1, 6, 0, 1, 0, 0, 0, 0, 21],
    &[101, 1, 6, 0, 1, 0, 0, 0, 0, 5],
    &[102, 1, 5, 0, 1, 0, 1, 0, 0],
    &[103, 1, 6, 0, 1, 0, 0, 0, 0, 0, 0, 0, 12, 1, 12, 25],
    &[45, 1, 6, 0, 1, 0, 0x88, 0x13, 0, 0x81],
    &[45, 1, 6, 0, 1, 0, 0x88, 0x13, 0, 0x01],
    &[45, 1, 8, 0, 1, 0, 0x89, 0x13, 0, 0x01],
    &[58, 1, 6, 0, 1, 0, 0x88, 0x13, 0, 0x01, 0, 0, 0, 12, 1, 12, 25],
    &[50, 1, 6, 0, 1, 0, 0x70, 0x17, 0, 0, 0, 0x20, 0x40, 0],
    &[1, 1, 3, 0, 1, 0, 1, 0, 0, 1],
];

struct Master {
    conn: ConnId,
    vs: u16,
    vr: u16,
}

fn i_frame(ns: u16, nr: u16, asdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0x68, u8::try_from(asdu.len() + 4).unwrap_or(253)];
    v.extend_from_slice(&((ns & 0x7FFF) << 1).to_le_bytes());
    v.extend_from_slice(&((nr & 0x7FFF) << 1).to_le_bytes());
    v.extend_from_slice(asdu);
    v
}

fn point(u: &mut Unstructured<'_>) -> Result<Point> {
    let ioa = Ioa(u32::from(u.int_in_range(1u8..=8)?));
    let q = Quality(u.arbitrary::<u8>()? & 0xF1);
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Point::single(ioa, u.arbitrary()?, q),
        1 => Point::float(Ioa(ioa.0 + 100), u.arbitrary()?, q),
        2 => Point::scaled(Ioa(ioa.0 + 200), u.arbitrary()?, q),
        _ => Point::counter(Ioa(ioa.0 + 300), u.arbitrary()?),
    })
}

struct Harness {
    st: Station,
    masters: Vec<Master>,
    now: Instant,
    tokens: Vec<CommandToken>,
    next_event: [u64; 2],
    queued: [u64; 2],
    last_ack: HashMap<GroupId, EventToken>,
}

impl Harness {
    fn drain(&mut self) {
        for m in &mut self.masters {
            while let Some(b) = self.st.poll_transmit(m.conn) {
                if b.get(2).is_some_and(|c| c & 1 == 0) {
                    m.vr = m.vr.wrapping_add(1);
                }
            }
        }
        while let Some(a) = self.st.poll_action() {
            match a {
                Action::Command { token, .. } => self.tokens.push(token),
                Action::Acknowledged { group, up_to } => {
                    if let Some(prev) = self.last_ack.insert(group, up_to) {
                        assert!(up_to > prev, "acknowledged tokens go back: {prev:?} -> {up_to:?}");
                    }
                }
                Action::Close { conn, .. } | Action::Disconnected { conn, .. } => {
                    self.masters.retain(|m| m.conn != conn);
                }
                _ => {}
            }
        }
        let status = self.st.status();
        for g in &status.groups {
            let queued = self.queued.get(g.group.0).copied().unwrap_or(0);
            let held = g.acknowledged + g.queued as u64 + g.unacked as u64;
            assert_eq!(held, queued, "events lost or duplicated in {:?}: {g:?}", g.group);
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let pick = |u: &mut Unstructured<'_>, n: usize| -> Result<usize> {
            if n == 0 {
                return Ok(0);
            }
            u.choose_index(n)
        };
        match u.int_in_range(0u8..=11)? {
            0 => {
                let last = u.int_in_range(1u8..=3)?;
                let peer = SocketAddr::from(([10, 0, 0, last], 2404));
                if let Ok(conn) = self.st.accept(peer, self.now) {
                    self.masters.push(Master { conn, vs: 0, vr: 0 });
                }
            }
            1 | 2 => {
                let i = pick(u, self.masters.len())?;
                let f = *u.choose(&[0x07u8, 0x13, 0x43, 0x83, 0x07])?;
                if let Some(m) = self.masters.get(i) {
                    self.st.on_bytes(m.conn, &[0x68, 4, f, 0, 0, 0], self.now);
                }
            }
            3 => {
                // raw bytes, in arbitrary pieces
                let i = pick(u, self.masters.len())?;
                let data: Vec<u8> = u.arbitrary()?;
                let cut = u.int_in_range(0..=data.len())?;
                if let Some(m) = self.masters.get(i) {
                    let (a, b) = data.split_at(cut);
                    self.st.on_bytes(m.conn, a, self.now);
                    self.st.on_bytes(m.conn, b, self.now);
                }
            }
            4 | 5 => {
                // a well-sequenced I frame: an arbitrary ASDU or a patched template
                let i = pick(u, self.masters.len())?;
                let asdu: Vec<u8> = if u.arbitrary()? {
                    let mut a = u.choose(TEMPLATES)?.to_vec();
                    let n = u.int_in_range(0..=3usize)?;
                    for _ in 0..n {
                        let at = u.choose_index(a.len())?;
                        if let Some(b) = a.get_mut(at) {
                            *b = u.arbitrary()?;
                        }
                    }
                    a
                } else {
                    let mut a: Vec<u8> = u.arbitrary()?;
                    a.truncate(249);
                    if a.is_empty() {
                        a.push(100);
                    }
                    a
                };
                if let Some(m) = self.masters.get_mut(i) {
                    let f = i_frame(m.vs, m.vr, &asdu);
                    m.vs = m.vs.wrapping_add(1);
                    let conn = m.conn;
                    self.st.on_bytes(conn, &f, self.now);
                }
            }
            6 => {
                let i = pick(u, self.masters.len())?;
                if let Some(m) = self.masters.get(i) {
                    let [a, b] = ((m.vr & 0x7FFF) << 1).to_le_bytes();
                    self.st.on_bytes(m.conn, &[0x68, 4, 1, 0, a, b], self.now);
                }
            }
            7 => {
                let ms = u.int_in_range(0u64..=20_000)?;
                self.now += Duration::from_millis(ms);
                if u.arbitrary()? {
                    if let Some(d) = self.st.next_deadline() {
                        self.now = self.now.max(d);
                    }
                }
                self.st.on_timeout(self.now);
            }
            8 => {
                if !self.tokens.is_empty() {
                    let i = u.choose_index(self.tokens.len())?;
                    let t = self.tokens.swap_remove(i);
                    self.st.command_result(t, u.arbitrary()?);
                }
            }
            9 | 10 => {
                let g = u.int_in_range(0usize..=1)?;
                let p = point(u)?;
                let token = EventToken(self.next_event[g]);
                if self.st.queue_event(GroupId(g), token, p).is_ok() {
                    self.next_event[g] += 1;
                    self.queued[g] += 1;
                }
            }
            _ => {
                let i = pick(u, self.masters.len())?;
                if let Some(m) = self.masters.get(i) {
                    let conn = m.conn;
                    self.st.on_closed(conn, self.now);
                }
            }
        }
        self.drain();
        Ok(())
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut config = StationConfig::new(CommonAddress(1));
    config.link = LinkConfig {
        k: u.int_in_range(1u16..=12)?,
        w: 1,
        ..LinkConfig::default()
    };
    config.max_buffered = u.int_in_range(1usize..=64)?;
    config.groups = vec![
        GroupConfig {
            masters: vec!["10.0.0.1".parse().unwrap_or([10, 0, 0, 1].into())],
        },
        GroupConfig::default(),
    ];
    let mut db = PointDb::new();
    db.insert(Point::single(Ioa(1), true, Quality::GOOD));
    db.insert(Point::float(Ioa(101), 1.0, Quality::GOOD));
    db.insert(Point::counter(Ioa(301), 5));
    let commands = vec![
        CommandPoint {
            ioa: Ioa(5000),
            type_id: TypeId::C_SC_NA_1,
            select_before_operate: true,
        },
        CommandPoint {
            ioa: Ioa(5001),
            type_id: TypeId::C_SC_NA_1,
            select_before_operate: false,
        },
        CommandPoint {
            ioa: Ioa(6000),
            type_id: TypeId::C_SE_NC_1,
            select_before_operate: false,
        },
    ];
    let now = Instant::now();
    let mut st = Station::new(config, db, commands);
    st.set_wall_clock(1_764_590_400_000);
    let mut h = Harness {
        st,
        masters: Vec::new(),
        now,
        tokens: Vec::new(),
        next_event: [0; 2],
        queued: [0; 2],
        last_ack: HashMap::new(),
    };
    // most runs start with a started master
    if u.arbitrary::<bool>()? {
        let peer = SocketAddr::from(([10, 0, 0, 1], 2404));
        if let Ok(conn) = h.st.accept(peer, now) {
            h.st.on_bytes(conn, &[0x68, 4, 0x07, 0, 0, 0], now);
            h.masters.push(Master { conn, vs: 0, vr: 0 });
            h.drain();
        }
    }
    while !u.is_empty() {
        h.step(&mut u)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
