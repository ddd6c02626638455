//! The station core against scripted masters: exact bytes in, exact bytes out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::*;
use iec60870::{parse_frame, Frame, Quality, SeqNum};

const STARTDT_ACT: [u8; 6] = [0x68, 4, 0x07, 0, 0, 0];
const STARTDT_CON: [u8; 6] = [0x68, 4, 0x0B, 0, 0, 0];
const STOPDT_ACT: [u8; 6] = [0x68, 4, 0x13, 0, 0, 0];
const STOPDT_CON: [u8; 6] = [0x68, 4, 0x23, 0, 0, 0];
/// C_IC_NA_1 act, CA 1, QOI 20.
const GI: [u8; 10] = [100, 1, 6, 0, 1, 0, 0, 0, 0, 20];
const WALL: i64 = 1_764_590_400_000; // 2025-12-01 12:00:00 UTC

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 40000))
}

fn i_frame(ns: u16, nr: u16, asdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0x68, (asdu.len() + 4) as u8];
    v.extend_from_slice(&((ns & 0x7FFF) << 1).to_le_bytes());
    v.extend_from_slice(&((nr & 0x7FFF) << 1).to_le_bytes());
    v.extend_from_slice(asdu);
    v
}

fn s_frame(nr: u16) -> Vec<u8> {
    let [a, b] = ((nr & 0x7FFF) << 1).to_le_bytes();
    vec![0x68, 4, 0x01, 0x00, a, b]
}

fn config() -> StationConfig {
    StationConfig::new(CommonAddress(1))
}

fn points() -> PointDb {
    let mut db = PointDb::new();
    db.insert(Point::single(Ioa(1), true, Quality::GOOD));
    db.insert(Point::single(Ioa(2), false, Quality::IV));
    db.insert(Point::float(Ioa(100), 1.5, Quality::GOOD));
    db.insert(Point::counter(Ioa(200), 7));
    db
}

fn commands() -> Vec<CommandPoint> {
    vec![
        CommandPoint {
            ioa: Ioa(5000),
            type_id: TypeId::C_SC_NA_1,
            select_before_operate: false,
        },
        CommandPoint {
            ioa: Ioa(5001),
            type_id: TypeId::C_SC_NA_1,
            select_before_operate: true,
        },
        CommandPoint {
            ioa: Ioa(6000),
            type_id: TypeId::C_SE_NC_1,
            select_before_operate: false,
        },
    ]
}

fn station_with(config: StationConfig) -> (Station, Instant) {
    let t0 = Instant::now();
    let mut st = Station::new(config, points(), commands());
    st.set_wall_clock(WALL);
    (st, t0)
}

fn station() -> (Station, Instant) {
    station_with(config())
}

fn actions(st: &mut Station) -> Vec<Action> {
    std::iter::from_fn(|| st.poll_action()).collect()
}

/// A scripted master on one connection: tracks its own sequence numbers.
struct Master {
    conn: ConnId,
    vs: u16,
    vr: u16,
}

impl Master {
    fn connect(st: &mut Station, peer: SocketAddr, now: Instant) -> Master {
        let conn = st.accept(peer, now).unwrap();
        Master { conn, vs: 0, vr: 0 }
    }

    /// Connects and starts data transfer.
    fn started(st: &mut Station, peer: SocketAddr, now: Instant) -> Master {
        let m = Master::connect(st, peer, now);
        st.on_bytes(m.conn, &STARTDT_ACT, now);
        assert_eq!(st.poll_transmit(m.conn), Some(STARTDT_CON.to_vec()));
        m
    }

    fn send(&mut self, st: &mut Station, asdu: &[u8], now: Instant) {
        let f = i_frame(self.vs, self.vr, asdu);
        self.vs += 1;
        st.on_bytes(self.conn, &f, now);
    }

    fn ack(&self, st: &mut Station, now: Instant) {
        st.on_bytes(self.conn, &s_frame(self.vr), now);
    }

    /// Every frame the station has for us, raw.
    fn raw(&mut self, st: &mut Station) -> Vec<Vec<u8>> {
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| st.poll_transmit(self.conn)).collect();
        for b in &out {
            if b[2] & 1 == 0 {
                self.vr += 1;
            }
        }
        out
    }

    /// The ASDUs of every I frame the station has for us (S frames are skipped, U frames
    /// must not come).
    fn asdus(&mut self, st: &mut Station) -> Vec<Vec<u8>> {
        self.raw(st)
            .into_iter()
            .filter_map(|b| match parse_frame(&b).unwrap().unwrap().0 {
                Frame::I { asdu, .. } => Some(asdu),
                Frame::S { .. } => None,
                other => panic!("expected an I frame, got {other:?}"),
            })
            .collect()
    }

    /// Receives everything, acknowledging every frame at once (until nothing comes).
    fn drain_acking(&mut self, st: &mut Station, now: Instant) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let got = self.asdus(st);
            if got.is_empty() {
                return all;
            }
            all.extend(got);
            self.ack(st, now);
        }
    }
}

/// A single-point event (M_SP_NA_1) ASDU with COT 3.
fn sp_spont(ioas_values: &[(u8, bool)]) -> Vec<u8> {
    let mut v = vec![1, ioas_values.len() as u8, 3, 0, 1, 0];
    for (ioa, val) in ioas_values {
        v.extend_from_slice(&[*ioa, 0, 0, u8::from(*val)]);
    }
    v
}

fn float_bytes(tid: u8, cot: u8, ioa: u8, value: f32) -> Vec<u8> {
    let mut v = vec![tid, 1, cot, 0, 1, 0, ioa, 0, 0];
    v.extend_from_slice(&value.to_le_bytes());
    v.push(0);
    v
}

fn cmd(tid: u8, cot: u8, ca: u8, ioa: u16, sco: u8) -> Vec<u8> {
    let [lo, hi] = ioa.to_le_bytes();
    vec![tid, 1, cot, 0, ca, 0, lo, hi, 0, sco]
}

fn with_cot(asdu: &[u8], cot: u8) -> Vec<u8> {
    let mut v = asdu.to_vec();
    v[2] = cot;
    v
}

#[test]
fn general_interrogation_exact_bytes() {
    let (mut st, t0) = station();
    let conn = st.accept(peer(1), t0).unwrap();
    st.on_bytes(conn, &STARTDT_ACT, t0);
    assert_eq!(st.poll_transmit(conn), Some(STARTDT_CON.to_vec()));
    st.on_bytes(conn, &i_frame(0, 0, &GI), t0);
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| st.poll_transmit(conn)).collect();
    let mut float = vec![13, 1, 20, 0, 1, 0, 100, 0, 0];
    float.extend_from_slice(&1.5f32.to_le_bytes());
    float.push(0);
    assert_eq!(
        out,
        vec![
            i_frame(0, 1, &[100, 1, 7, 0, 1, 0, 0, 0, 0, 20]),
            // both single points in one ASDU (SQ=0), IV kept; the counter is not in a GI
            i_frame(1, 1, &[1, 2, 20, 0, 1, 0, 1, 0, 0, 0x01, 2, 0, 0, 0x80]),
            i_frame(2, 1, &float),
            i_frame(3, 1, &[100, 1, 10, 0, 1, 0, 0, 0, 0, 20]),
        ]
    );
    assert!(st.poll_transmit(conn).is_none());
}

#[test]
fn interrogation_variants() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    // group interrogation: ACT_CON and ACT_TERM, no points
    m.send(&mut st, &[100, 1, 6, 0, 1, 0, 0, 0, 0, 21], t0);
    assert_eq!(
        m.asdus(&mut st),
        vec![
            vec![100, 1, 7, 0, 1, 0, 0, 0, 0, 21],
            vec![100, 1, 10, 0, 1, 0, 0, 0, 0, 21]
        ]
    );
    // broadcast GI is answered with our common address
    m.send(&mut st, &[100, 1, 6, 0, 0xFF, 0xFF, 0, 0, 0, 20], t0);
    let got = m.asdus(&mut st);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], vec![100, 1, 7, 0, 1, 0, 0, 0, 0, 20]);
    // QOI 50 is no interrogation: ACT_CON-
    m.send(&mut st, &[100, 1, 6, 0, 1, 0, 0, 0, 0, 50], t0);
    assert_eq!(
        m.asdus(&mut st),
        vec![vec![100, 1, 0x47, 0, 1, 0, 0, 0, 0, 50]]
    );
    // counter interrogation: the integrated total with COT 37
    m.send(&mut st, &[101, 1, 6, 0, 1, 0, 0, 0, 0, 5], t0);
    assert_eq!(
        m.asdus(&mut st),
        vec![
            vec![101, 1, 7, 0, 1, 0, 0, 0, 0, 5],
            vec![15, 1, 37, 0, 1, 0, 200, 0, 0, 7, 0, 0, 0, 0],
            vec![101, 1, 10, 0, 1, 0, 0, 0, 0, 5],
        ]
    );
    // read: the point with COT 5; unknown IOA: COT 47
    m.send(&mut st, &[102, 1, 5, 0, 1, 0, 1, 0, 0], t0);
    m.send(&mut st, &[102, 1, 5, 0, 1, 0, 9, 0, 0], t0);
    assert_eq!(
        m.asdus(&mut st),
        vec![
            vec![1, 1, 5, 0, 1, 0, 1, 0, 0, 0x01],
            vec![102, 1, 0x40 | 47, 0, 1, 0, 9, 0, 0]
        ]
    );
    // deactivation of an interrogation
    m.send(&mut st, &with_cot(&GI, 8), t0);
    assert_eq!(m.asdus(&mut st), vec![with_cot(&GI, 9)]);
}

#[test]
fn clock_sync_test_reset_delay_are_confirmed() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    let time = Cp56Time2a::from_unix_ms(WALL).unwrap();
    let mut cs = vec![103, 1, 6, 0, 1, 0, 0, 0, 0];
    let mut w = iec60870::cursor::Writer::new();
    time.encode(&mut w);
    cs.extend_from_slice(&w.into_vec());
    m.send(&mut st, &cs, t0);
    m.send(&mut st, &[104, 1, 6, 0, 1, 0, 0, 0, 0, 0xAA, 0x55], t0);
    m.send(&mut st, &[105, 1, 6, 0, 1, 0, 0, 0, 0, 1], t0);
    m.send(&mut st, &[106, 1, 6, 0, 1, 0, 0, 0, 0, 0, 0], t0);
    assert_eq!(
        m.asdus(&mut st),
        vec![
            with_cot(&cs, 7),
            vec![104, 1, 7, 0, 1, 0, 0, 0, 0, 0xAA, 0x55],
            vec![105, 1, 7, 0, 1, 0, 0, 0, 0, 1],
            vec![106, 1, 7, 0, 1, 0, 0, 0, 0, 0, 0],
        ]
    );
    assert_eq!(actions(&mut st), vec![Action::ClockSync { time }]);
}

#[test]
fn nothing_before_startdt_then_spontaneous_and_acknowledged() {
    let (mut st, t0) = station();
    let conn = st.accept(peer(1), t0).unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(10),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(11),
        Point::single(Ioa(2), true, Quality::GOOD),
    )
    .unwrap();
    assert_eq!(st.poll_transmit(conn), None);
    st.on_bytes(conn, &STARTDT_ACT, t0);
    assert_eq!(st.poll_transmit(conn), Some(STARTDT_CON.to_vec()));
    assert_eq!(
        st.poll_transmit(conn),
        Some(i_frame(0, 0, &sp_spont(&[(1, false), (2, true)])))
    );
    assert_eq!(st.poll_transmit(conn), None);
    assert_eq!(st.status().groups[0].unacked, 2);
    assert_eq!(st.queue_space(GroupId(0)), 4096 - 2);
    actions(&mut st);
    st.on_bytes(conn, &s_frame(1), t0);
    assert_eq!(
        actions(&mut st),
        vec![Action::Acknowledged {
            group: GroupId(0),
            up_to: EventToken(11)
        }]
    );
    let g = &st.status().groups[0];
    assert_eq!((g.sent, g.acknowledged, g.unacked, g.queued), (2, 2, 0, 0));
    // the database got the events: a GI shows the new values
    st.on_bytes(conn, &i_frame(0, 1, &GI), t0);
    st.poll_transmit(conn);
    let f = st.poll_transmit(conn).unwrap();
    assert_eq!(
        f,
        i_frame(2, 1, &[1, 2, 20, 0, 1, 0, 1, 0, 0, 0x00, 2, 0, 0, 0x01])
    );
}

#[test]
fn same_ioa_twice_and_other_types_go_in_separate_asdus() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    st.queue_event(
        GroupId(0),
        EventToken(1),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(2),
        Point::single(Ioa(1), true, Quality::GOOD),
    )
    .unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(3),
        Point::float(Ioa(100), 2.0, Quality::GOOD),
    )
    .unwrap();
    assert_eq!(
        m.asdus(&mut st),
        vec![
            sp_spont(&[(1, false)]),
            sp_spont(&[(1, true)]),
            float_bytes(13, 3, 100, 2.0)
        ]
    );
}

#[test]
fn link_drop_requeues_unacknowledged_events_in_order() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    for (t, ioa) in [(1, 1), (2, 2)] {
        st.queue_event(
            GroupId(0),
            EventToken(t),
            Point::single(Ioa(ioa), true, Quality::GOOD),
        )
        .unwrap();
    }
    assert_eq!(m.asdus(&mut st).len(), 1);
    m.ack(&mut st, t0);
    st.queue_event(
        GroupId(0),
        EventToken(3),
        Point::float(Ioa(100), 3.0, Quality::GOOD),
    )
    .unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(4),
        Point::single(Ioa(2), false, Quality::GOOD),
    )
    .unwrap();
    assert_eq!(m.asdus(&mut st).len(), 2); // sent, never acknowledged
    st.on_closed(m.conn, t0);
    let acts = actions(&mut st);
    assert!(acts.contains(&Action::Acknowledged {
        group: GroupId(0),
        up_to: EventToken(2)
    }));
    assert!(acts.contains(&Action::Stopped {
        group: GroupId(0),
        conn: m.conn
    }));
    let g = &st.status().groups[0];
    assert_eq!((g.queued, g.unacked), (2, 0));
    // an event while no master is connected queues behind the requeued ones
    st.queue_event(
        GroupId(0),
        EventToken(5),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    let mut m2 = Master::connect(&mut st, peer(1), t0);
    assert!(m2.raw(&mut st).is_empty());
    st.on_bytes(m2.conn, &STARTDT_ACT, t0);
    assert_eq!(
        m2.raw(&mut st),
        vec![
            STARTDT_CON.to_vec(),
            i_frame(0, 0, &float_bytes(13, 3, 100, 3.0)),
            i_frame(1, 0, &sp_spont(&[(2, false), (1, false)])),
        ]
    );
    m2.ack(&mut st, t0);
    assert_eq!(
        actions(&mut st).last(),
        Some(&Action::Acknowledged {
            group: GroupId(0),
            up_to: EventToken(5)
        })
    );
}

#[test]
fn stopdt_waits_for_acknowledgement_and_standby_takes_over() {
    let mut cfg = config();
    cfg.groups = vec![GroupConfig {
        masters: vec![peer(1).ip(), peer(2).ip()],
    }];
    let (mut st, t0) = station_with(cfg);
    let mut a = Master::started(&mut st, peer(1), t0);
    let mut b = Master::connect(&mut st, peer(2), t0);
    st.queue_event(
        GroupId(0),
        EventToken(1),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    assert_eq!(a.asdus(&mut st).len(), 1);
    assert!(
        b.raw(&mut st).is_empty(),
        "data goes to the started one only"
    );
    st.on_bytes(a.conn, &STOPDT_ACT, t0);
    assert!(a.raw(&mut st).is_empty(), "STOPDT con waits for the ack");
    st.queue_event(
        GroupId(0),
        EventToken(2),
        Point::single(Ioa(2), false, Quality::GOOD),
    )
    .unwrap();
    assert!(a.raw(&mut st).is_empty(), "nothing new while stopping");
    actions(&mut st);
    a.ack(&mut st, t0);
    assert_eq!(a.raw(&mut st), vec![STOPDT_CON.to_vec()]);
    assert_eq!(
        actions(&mut st),
        vec![
            Action::Acknowledged {
                group: GroupId(0),
                up_to: EventToken(1)
            },
            Action::Stopped {
                group: GroupId(0),
                conn: a.conn
            }
        ]
    );
    assert_eq!(st.status().groups[0].started, None);
    st.on_bytes(b.conn, &STARTDT_ACT, t0);
    assert_eq!(
        b.raw(&mut st),
        vec![
            STARTDT_CON.to_vec(),
            i_frame(0, 0, &sp_spont(&[(2, false)]))
        ]
    );
    let s = st.status();
    assert_eq!(s.connections.len(), 2);
    assert!(!s.connections[0].started && s.connections[1].started);
    assert_eq!(
        actions(&mut st),
        vec![Action::Started {
            group: GroupId(0),
            conn: b.conn
        }]
    );
}

#[test]
fn startdt_on_standby_closes_the_started_one_and_resends() {
    let (mut st, t0) = station();
    let mut a = Master::started(&mut st, peer(1), t0);
    let mut b = Master::connect(&mut st, peer(2), t0);
    for t in 1..=3u8 {
        st.queue_event(
            GroupId(0),
            EventToken(u64::from(t)),
            Point::float(Ioa(100), f32::from(t), Quality::GOOD),
        )
        .unwrap();
        // one float per frame: IOA 100 does not repeat in one ASDU
    }
    assert_eq!(a.asdus(&mut st).len(), 3);
    st.on_bytes(a.conn, &s_frame(1), t0); // the first is acknowledged
    actions(&mut st);
    st.on_bytes(b.conn, &STARTDT_ACT, t0);
    assert_eq!(
        actions(&mut st),
        vec![
            Action::Close {
                conn: a.conn,
                reason: CloseReason::Replaced(b.conn)
            },
            Action::Stopped {
                group: GroupId(0),
                conn: a.conn
            },
            Action::Disconnected {
                conn: a.conn,
                peer: peer(1),
                group: GroupId(0)
            },
            Action::Started {
                group: GroupId(0),
                conn: b.conn
            },
        ]
    );
    assert_eq!(
        b.raw(&mut st),
        vec![
            STARTDT_CON.to_vec(),
            i_frame(0, 0, &float_bytes(13, 3, 100, 2.0)),
            i_frame(1, 0, &float_bytes(13, 3, 100, 3.0)),
        ]
    );
    assert!(a.raw(&mut st).is_empty());
}

#[test]
fn groups_are_separate() {
    let mut cfg = config();
    cfg.groups = vec![
        GroupConfig { masters: vec![] },
        GroupConfig {
            masters: vec![peer(1).ip()],
        },
    ];
    let (mut st, t0) = station_with(cfg);
    // the group listing the master takes it before the one taking any master
    let mut b = Master::started(&mut st, peer(1), t0);
    let mut a = Master::started(&mut st, peer(2), t0);
    assert_eq!(st.status().connections[0].group, GroupId(1));
    assert_eq!(st.status().connections[1].group, GroupId(0));
    st.queue_event(
        GroupId(1),
        EventToken(1),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    assert!(a.raw(&mut st).is_empty());
    assert_eq!(b.asdus(&mut st), vec![sp_spont(&[(1, false)])]);
    // group 0's database still has the initial value
    a.send(&mut st, &[102, 1, 5, 0, 1, 0, 1, 0, 0], t0);
    assert_eq!(
        a.asdus(&mut st),
        vec![vec![1, 1, 5, 0, 1, 0, 1, 0, 0, 0x01]]
    );
    assert_eq!(
        st.queue_event(
            GroupId(2),
            EventToken(1),
            Point::single(Ioa(1), false, Quality::GOOD)
        ),
        Err(QueueError::UnknownGroup(GroupId(2)))
    );
}

#[test]
fn interrogation_follows_the_events_queued_before_it() {
    let mut cfg = config();
    cfg.link.k = 1;
    cfg.link.w = 1;
    let (mut st, t0) = station_with(cfg);
    let mut m = Master::started(&mut st, peer(1), t0);
    st.queue_event(
        GroupId(0),
        EventToken(1),
        Point::single(Ioa(1), false, Quality::GOOD),
    )
    .unwrap();
    st.queue_event(
        GroupId(0),
        EventToken(2),
        Point::float(Ioa(100), 9.0, Quality::GOOD),
    )
    .unwrap();
    assert_eq!(m.asdus(&mut st), vec![sp_spont(&[(1, false)])]); // k = 1
    m.send(&mut st, &GI, t0); // acknowledges the first event too
    st.queue_event(
        GroupId(0),
        EventToken(3),
        Point::single(Ioa(2), true, Quality::GOOD),
    )
    .unwrap();
    let mut float = vec![13, 1, 20, 0, 1, 0, 100, 0, 0];
    float.extend_from_slice(&9.0f32.to_le_bytes());
    float.push(0);
    assert_eq!(
        m.drain_acking(&mut st, t0),
        vec![
            vec![100, 1, 7, 0, 1, 0, 0, 0, 0, 20],
            float_bytes(13, 3, 100, 9.0), // queued before the GI: before its answer
            // the answer reads the database as it is sent: it has event 3 already
            vec![1, 2, 20, 0, 1, 0, 1, 0, 0, 0x00, 2, 0, 0, 0x01],
            float,
            vec![100, 1, 10, 0, 1, 0, 0, 0, 0, 20],
            sp_spont(&[(2, true)]), // queued after the GI: after its answer
        ]
    );
}

#[test]
fn negative_causes_keep_the_link() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        // unknown IOA
        (cmd(45, 6, 1, 4999, 1), cmd(45, 0x40 | 47, 1, 4999, 1)),
        // another common address
        (cmd(45, 6, 2, 5000, 1), cmd(45, 0x40 | 46, 2, 5000, 1)),
        // double command on a single command point
        (cmd(46, 6, 1, 5000, 1), cmd(46, 0x40 | 44, 1, 5000, 1)),
        // a monitor type from the master
        (
            vec![1, 1, 3, 0, 1, 0, 1, 0, 0, 1],
            vec![1, 1, 0x40 | 44, 0, 1, 0, 1, 0, 0, 1],
        ),
        // a type identification the stack does not know (raw echo)
        (
            vec![99, 1, 6, 0, 1, 0, 1, 0, 0, 1],
            vec![99, 1, 0x40 | 44, 0, 1, 0, 1, 0, 0, 1],
        ),
        // spontaneous is no cause for a command
        (cmd(45, 3, 1, 5000, 1), cmd(45, 0x40 | 45, 1, 5000, 1)),
        // nor request for an interrogation
        (with_cot(&GI, 5), with_cot(&GI, 0x40 | 45)),
    ];
    for (req, answer) in cases {
        m.send(&mut st, &req, t0);
        assert_eq!(m.asdus(&mut st), vec![answer], "request {req:?}");
    }
    let acts = actions(&mut st);
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(st.status().connections.len(), 1);
}

#[test]
fn command_result_gives_act_con_and_act_term() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    m.send(&mut st, &cmd(45, 6, 1, 5000, 1), t0);
    assert!(m.raw(&mut st).is_empty(), "ACT_CON waits for the result");
    let acts = actions(&mut st);
    let [Action::Command { token, request }] = acts.as_slice() else {
        panic!("{acts:?}");
    };
    assert_eq!(request.ioa, Ioa(5000));
    assert_eq!(request.type_id, TypeId::C_SC_NA_1);
    assert_eq!(
        request.element,
        InformationElement::SingleCommand {
            value: true,
            qu: 0,
            select: false
        }
    );
    st.command_result(*token, true);
    assert_eq!(
        m.asdus(&mut st),
        vec![cmd(45, 7, 1, 5000, 1), cmd(45, 10, 1, 5000, 1)]
    );
    // a negative result
    m.send(&mut st, &cmd(45, 6, 1, 5000, 0), t0);
    let Some(Action::Command { token, .. }) = st.poll_action() else {
        panic!()
    };
    st.command_result(token, false);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 0x40 | 7, 1, 5000, 0)]);
    // unknown token: nothing
    st.command_result(token, true);
    assert!(m.raw(&mut st).is_empty());
    // deactivation
    m.send(&mut st, &cmd(45, 8, 1, 5000, 1), t0);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 9, 1, 5000, 1)]);
    // a result after the connection has gone is dropped
    m.send(&mut st, &cmd(45, 6, 1, 5000, 1), t0);
    let Some(Action::Command { token, .. }) = st.poll_action() else {
        panic!()
    };
    st.on_closed(m.conn, t0);
    st.command_result(token, true);
    assert!(st.poll_transmit(m.conn).is_none());
}

#[test]
fn select_before_operate() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    // execute without select on an SBO point
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x01), t0);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 0x40 | 7, 1, 5001, 0x01)]);
    // select: confirmed at once, no action
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x81), t0);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 7, 1, 5001, 0x81)]);
    assert!(actions(&mut st).is_empty());
    // execute of another value than selected: refused, and the selection is used up
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x00), t0);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 0x40 | 7, 1, 5001, 0x00)]);
    // select, execute: the command
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x81), t0);
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x01), t0);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 7, 1, 5001, 0x81)]);
    let Some(Action::Command { token, .. }) = st.poll_action() else {
        panic!()
    };
    st.command_result(token, true);
    assert_eq!(
        m.asdus(&mut st),
        vec![cmd(45, 7, 1, 5001, 0x01), cmd(45, 10, 1, 5001, 0x01)]
    );
    // a selection expires after select_timeout
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x81), t0);
    m.asdus(&mut st);
    let later = t0 + Duration::from_secs(11);
    m.send(&mut st, &cmd(45, 6, 1, 5001, 0x01), later);
    assert_eq!(m.asdus(&mut st), vec![cmd(45, 0x40 | 7, 1, 5001, 0x01)]);
    // another connection's selection does not count
    let mut other = Master::started(&mut st, peer(2), later);
    let mut m3 = Master::connect(&mut st, peer(3), later);
    let _ = &mut m3;
    other.send(&mut st, &cmd(45, 6, 1, 5001, 0x81), later);
    other.asdus(&mut st);
    // select on a point without SBO: confirmed; its execute works either way
    other.send(&mut st, &cmd(45, 6, 1, 5000, 0x81), later);
    assert_eq!(other.asdus(&mut st), vec![cmd(45, 7, 1, 5000, 0x81)]);
    actions(&mut st);
    other.send(&mut st, &cmd(45, 6, 1, 5000, 0x01), later);
    assert!(matches!(st.poll_action(), Some(Action::Command { .. })));
}

fn cp56(ms: i64) -> Vec<u8> {
    let mut w = iec60870::cursor::Writer::new();
    Cp56Time2a::from_unix_ms(ms).unwrap().encode(&mut w);
    w.into_vec()
}

#[test]
fn time_tagged_commands_are_checked_against_the_wall_clock() {
    let (mut st, t0) = station();
    let mut m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    let tagged = |ms: i64| {
        let mut v = cmd(58, 6, 1, 5000, 1);
        v.extend_from_slice(&cp56(ms));
        v
    };
    let old = tagged(WALL - 31_000);
    m.send(&mut st, &old, t0);
    assert_eq!(m.asdus(&mut st), vec![with_cot(&old, 0x40 | 7)]);
    assert!(actions(&mut st).is_empty());
    m.send(&mut st, &tagged(WALL - 1_000), t0);
    let acts = actions(&mut st);
    let [Action::Command { request, .. }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(request.type_id, TypeId::C_SC_TA_1);
    assert!(request.time.is_some());
    // a float set-point with time: C_SE_TC_1 on a C_SE_NC_1 point
    let mut se = vec![63, 1, 6, 0, 1, 0, 0x70, 0x17, 0];
    se.extend_from_slice(&2.5f32.to_le_bytes());
    se.push(0);
    se.extend_from_slice(&cp56(WALL));
    m.send(&mut st, &se, t0);
    assert!(matches!(st.poll_action(), Some(Action::Command { .. })));
    // without a wall clock a time-tagged command cannot be judged: refused
    let mut st2 = Station::new(config(), points(), commands());
    let mut m2 = Master::started(&mut st2, peer(1), t0);
    let fresh = tagged(WALL);
    m2.send(&mut st2, &fresh, t0);
    assert_eq!(m2.asdus(&mut st2), vec![with_cot(&fresh, 0x40 | 7)]);
}

#[test]
fn refused_peers() {
    let mut cfg = config();
    cfg.groups = vec![GroupConfig {
        masters: vec![peer(1).ip()],
    }];
    cfg.max_connections = 2;
    let (mut st, t0) = station_with(cfg);
    assert_eq!(
        st.accept(peer(9), t0),
        Err(Refused::NotAllowed(peer(9).ip()))
    );
    // an IPv4-mapped IPv6 address is the IPv4 master
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:2000".parse().unwrap();
    st.accept(mapped, t0).unwrap();
    st.accept(peer(1), t0).unwrap();
    assert_eq!(st.accept(peer(1), t0), Err(Refused::TooManyConnections(2)));
    assert!(actions(&mut st)
        .iter()
        .all(|a| matches!(a, Action::Connected { .. })));
}

#[test]
fn protocol_errors_close_and_requeue() {
    let (mut st, t0) = station();
    let m = Master::connect(&mut st, peer(1), t0);
    // an I frame before STARTDT: the stack's rule closes
    st.on_bytes(m.conn, &i_frame(0, 0, &GI), t0);
    assert!(matches!(
        actions(&mut st).as_slice(),
        [
            Action::Connected { .. },
            Action::Close {
                reason: CloseReason::Link(LinkError::NotStarted("I")),
                ..
            },
            Action::Disconnected { .. }
        ]
    ));
    // garbage
    let m = Master::started(&mut st, peer(1), t0);
    actions(&mut st);
    st.on_bytes(m.conn, &[0x00, 0x01], t0);
    assert!(matches!(
        st.poll_action(),
        Some(Action::Close {
            reason: CloseReason::Frame(_),
            ..
        })
    ));
    // split frames are put together
    let mut m = Master::connect(&mut st, peer(1), t0);
    for b in STARTDT_ACT {
        st.on_bytes(m.conn, &[b], t0);
    }
    let gi = i_frame(0, 0, &GI);
    let (x, y) = gi.split_at(3);
    st.on_bytes(m.conn, x, t0);
    st.on_bytes(m.conn, y, t0);
    assert_eq!(m.raw(&mut st).len(), 5);
    // t1 closes a master that never acknowledges
    let later = t0 + Duration::from_secs(16);
    assert!(st.next_deadline().unwrap() <= later);
    st.on_timeout(later);
    assert!(actions(&mut st).iter().any(|a| matches!(
        a,
        Action::Close {
            reason: CloseReason::Link(LinkError::T1Expired(_)),
            ..
        }
    )));
}

#[test]
fn queue_full_and_sequence_numbers_wrap() {
    let mut cfg = config();
    cfg.max_buffered = 3;
    let (mut st, t0) = station_with(cfg);
    assert!(matches!(
        st.queue_event(
            GroupId(0),
            EventToken(3),
            Point::float(Ioa(0x0100_0000), 1.0, Quality::GOOD)
        ),
        Err(QueueError::BadPoint(_))
    ));
    for t in 0..3 {
        st.queue_event(
            GroupId(0),
            EventToken(t),
            Point::float(Ioa(100), 1.0, Quality::GOOD),
        )
        .unwrap();
    }
    assert_eq!(st.queue_space(GroupId(0)), 0);
    assert_eq!(
        st.queue_event(
            GroupId(0),
            EventToken(3),
            Point::float(Ioa(100), 1.0, Quality::GOOD)
        ),
        Err(QueueError::Full)
    );
    let mut m = Master::started(&mut st, peer(1), t0);
    assert_eq!(m.drain_acking(&mut st, t0).len(), 3);
    actions(&mut st);
    // past 32767 frames each way: N(S)/N(R) wrap
    let mut token = 3;
    for _ in 0..11_000 {
        for _ in 0..3 {
            st.queue_event(
                GroupId(0),
                EventToken(token),
                Point::float(Ioa(100), 2.0, Quality::GOOD),
            )
            .unwrap();
            token += 1;
        }
        assert_eq!(m.drain_acking(&mut st, t0).len(), 3);
        m.send(&mut st, &[102, 1, 5, 0, 1, 0, 1, 0, 0], t0);
        assert_eq!(m.asdus(&mut st).len(), 1);
    }
    m.ack(&mut st, t0);
    assert!(m.vr > 32768 && SeqNum::new(m.vr).value() < 32768, "wrapped");
    let last = actions(&mut st)
        .into_iter()
        .filter_map(|a| match a {
            Action::Acknowledged { up_to, .. } => Some(up_to),
            _ => None,
        })
        .next_back();
    assert_eq!(last, Some(EventToken(token - 1)));
    assert_eq!(st.status().connections.len(), 1);
}
