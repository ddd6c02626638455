//! The tokio master against a scripted TCP peer, and the master against our outstation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use iec60870::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);
const CA: CommonAddress = CommonAddress(1);

/// A scripted peer connection: reads and writes whole frames.
struct Script {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Script {
    async fn accept(l: &TcpListener) -> Script {
        let (s, _) = timeout(T, l.accept()).await.unwrap().unwrap();
        Script { s, buf: Vec::new() }
    }

    /// The next frame, or None on EOF/reset; bounded by `T`.
    async fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(f);
            }
            let mut tmp = [0u8; 512];
            match timeout(T, self.s.read(&mut tmp))
                .await
                .expect("peer read timed out")
            {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// Asserts nothing arrives within `d`.
    async fn silent(&mut self, d: Duration) {
        let mut tmp = [0u8; 64];
        if let Ok(r) = timeout(d, self.s.read(&mut tmp)).await {
            panic!("unexpected read {r:?} {:?}", &tmp[..]);
        }
    }

    async fn write(&mut self, f: Frame) {
        self.s.write_all(&f.encode().unwrap()).await.unwrap();
    }
}

fn fast_link() -> LinkConfig {
    LinkConfig {
        t1: Duration::from_millis(600),
        t2: Duration::from_millis(300),
        t3: Duration::from_secs(5),
        ..LinkConfig::default()
    }
}

async fn master_for(
    l: &TcpListener,
    link: LinkConfig,
) -> (MasterHandle, mpsc::Receiver<MasterEvent>) {
    let mut cfg = MasterConfig::new(vec![l.local_addr().unwrap()]);
    cfg.link = link;
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.reconnect_min = Duration::from_millis(100);
    cfg.reconnect_max = Duration::from_millis(400);
    cfg.command_timeout = Duration::from_secs(2);
    cfg.decode_level = DecodeLevel::Hex;
    spawn_master(cfg)
}

async fn next_event(rx: &mut mpsc::Receiver<MasterEvent>) -> MasterEvent {
    timeout(T, rx.recv()).await.unwrap().unwrap()
}

async fn wait_for(
    rx: &mut mpsc::Receiver<MasterEvent>,
    pred: impl Fn(&MasterEvent) -> bool,
) -> MasterEvent {
    for _ in 0..1000 {
        let e = next_event(rx).await;
        if pred(&e) {
            return e;
        }
    }
    panic!("event not seen");
}

fn gi_asdu() -> Vec<u8> {
    Asdu::single(
        TypeId::M_SP_NA_1,
        Cot::new(Cause::SPONTANEOUS),
        CA,
        InformationObject::new(
            Ioa(1),
            InformationElement::SinglePoint {
                value: true,
                quality: Quality::GOOD,
            },
        ),
    )
    .encode(&AsduSizes::default())
    .unwrap()
}

#[tokio::test]
async fn master_sends_nothing_before_startdt_con_and_t1_closes() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (master, mut rx) = master_for(&l, fast_link()).await;
    let mut peer = Script::accept(&l).await;
    assert!(matches!(
        next_event(&mut rx).await,
        MasterEvent::Connected(_)
    ));
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::StartDtAct)));
    // requests before STARTDT con fail at once and send nothing
    assert_eq!(
        master.general_interrogation(CA).await.unwrap(),
        CommandResult::LinkDown
    );
    // no STARTDT con: t1 closes the connection
    assert_eq!(peer.read().await, None);
    assert!(matches!(
        next_event(&mut rx).await,
        MasterEvent::Disconnected { reason } if reason.contains("t1")
    ));
    // and the master reconnects (with backoff)
    let mut peer = Script::accept(&l).await;
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::StartDtAct)));
    peer.write(Frame::U(UFunction::StartDtCon)).await;
    wait_for(&mut rx, |e| *e == MasterEvent::Active).await;
    master.shutdown().await;
}

#[tokio::test]
async fn master_closes_on_wrong_ns() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_master, mut rx) = master_for(&l, fast_link()).await;
    let mut peer = Script::accept(&l).await;
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::StartDtAct)));
    peer.write(Frame::U(UFunction::StartDtCon)).await;
    wait_for(&mut rx, |e| *e == MasterEvent::Active).await;
    let nr = SeqNum::new(0);
    peer.write(Frame::I {
        ns: SeqNum::new(0),
        nr,
        asdu: gi_asdu(),
    })
    .await;
    wait_for(&mut rx, |e| matches!(e, MasterEvent::Asdu(_))).await;
    peer.write(Frame::I {
        ns: SeqNum::new(5),
        nr,
        asdu: gi_asdu(),
    })
    .await;
    let e = wait_for(&mut rx, |e| matches!(e, MasterEvent::Disconnected { .. })).await;
    assert!(matches!(e, MasterEvent::Disconnected { reason } if reason.contains("sequence")));
}

#[tokio::test]
async fn master_k_window_blocks_until_acknowledged_and_t3_sends_testfr() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = LinkConfig {
        k: 2,
        w: 1,
        t1: Duration::from_secs(2),
        t2: Duration::from_millis(500),
        t3: Duration::from_millis(800),
        ..LinkConfig::default()
    };
    let (master, mut rx) = master_for(&l, link).await;
    let mut peer = Script::accept(&l).await;
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::StartDtAct)));
    peer.write(Frame::U(UFunction::StartDtCon)).await;
    wait_for(&mut rx, |e| *e == MasterEvent::Active).await;
    let asdu = Asdu::decode(&gi_asdu(), &AsduSizes::default()).unwrap();
    for _ in 0..3 {
        master.send_asdu(asdu.clone()).await.unwrap();
    }
    for n in 0..2 {
        assert!(matches!(peer.read().await, Some(Frame::I { ns, .. }) if ns == SeqNum::new(n)));
    }
    // the third waits for an acknowledgement
    peer.silent(Duration::from_millis(300)).await;
    peer.write(Frame::S { nr: SeqNum::new(2) }).await;
    assert!(matches!(peer.read().await, Some(Frame::I { ns, .. }) if ns == SeqNum::new(2)));
    peer.write(Frame::S { nr: SeqNum::new(3) }).await;
    // idle for t3: TESTFR act
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::TestFrAct)));
    peer.write(Frame::U(UFunction::TestFrCon)).await;
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::TestFrAct)));
    master.shutdown().await;
}

#[tokio::test]
async fn master_acknowledges_after_w_and_t2() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = LinkConfig {
        w: 2,
        ..fast_link()
    };
    let (_master, mut rx) = master_for(&l, link).await;
    let mut peer = Script::accept(&l).await;
    assert_eq!(peer.read().await, Some(Frame::U(UFunction::StartDtAct)));
    peer.write(Frame::U(UFunction::StartDtCon)).await;
    wait_for(&mut rx, |e| *e == MasterEvent::Active).await;
    let nr = SeqNum::new(0);
    peer.write(Frame::I {
        ns: SeqNum::new(0),
        nr,
        asdu: gi_asdu(),
    })
    .await;
    peer.write(Frame::I {
        ns: SeqNum::new(1),
        nr,
        asdu: gi_asdu(),
    })
    .await;
    assert_eq!(peer.read().await, Some(Frame::S { nr: SeqNum::new(2) }));
    peer.write(Frame::I {
        ns: SeqNum::new(2),
        nr,
        asdu: gi_asdu(),
    })
    .await;
    // t2 (300 ms)
    assert_eq!(peer.read().await, Some(Frame::S { nr: SeqNum::new(3) }));
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<CommandRequest>>>);

impl CommandHandler for Recorder {
    fn execute(&mut self, req: &CommandRequest) -> bool {
        self.0.lock().unwrap().push(*req);
        !matches!(
            req.element,
            InformationElement::SingleCommand { value: false, .. }
        )
    }
    fn requires_select(&mut self, _t: TypeId, ioa: Ioa) -> bool {
        ioa == Ioa(500)
    }
}

fn point(tid: TypeId, ioa: u32, element: InformationElement, time: Option<TimeTag>) -> Point {
    Point::new(tid, Ioa(ioa), element, time).unwrap()
}

#[tokio::test]
async fn master_against_our_outstation() {
    let mut db = PointDb::new();
    let t = Cp56Time2a::from_unix_ms(1_700_000_000_000).unwrap();
    db.insert(point(
        TypeId::M_SP_TB_1,
        100,
        InformationElement::SinglePoint {
            value: true,
            quality: Quality::GOOD,
        },
        Some(TimeTag::Cp56(t)),
    ));
    for i in 0..100 {
        db.insert(point(
            TypeId::M_ME_NC_1,
            1000 + i,
            InformationElement::Float {
                value: i as f32,
                quality: Quality::GOOD,
            },
            None,
        ));
    }
    db.insert(point(
        TypeId::M_IT_NA_1,
        300,
        InformationElement::IntegratedTotal {
            counter: 7,
            seq: 1,
            cy: false,
            ca: false,
            iv: false,
        },
        None,
    ));
    let mut cfg = OutstationConfig::new(([127, 0, 0, 1], 0).into(), CA);
    cfg.decode_level = DecodeLevel::Apci;
    let rec = Recorder::default();
    let out = spawn_outstation(cfg, db, rec.clone()).await.unwrap();

    let mut mcfg = MasterConfig::new(vec![out.local_addr()]);
    mcfg.command_timeout = Duration::from_secs(3);
    mcfg.act_term_timeout = Duration::from_secs(1);
    let (master, mut rx) = spawn_master(mcfg);
    wait_for(&mut rx, |e| *e == MasterEvent::Active).await;

    // GI: ACT_CON, 101 points (the time-tagged one without time), no counters, ACT_TERM
    assert!(master
        .general_interrogation(CA)
        .await
        .unwrap()
        .is_confirmed());
    let mut points = Vec::new();
    loop {
        match next_event(&mut rx).await {
            MasterEvent::Asdu(a) if a.cot.cause == Cause::INTERROGATED_BY_STATION => {
                assert!(a.encode(&AsduSizes::default()).unwrap().len() <= 249);
                points.extend(a.objects.iter().map(|o| (a.type_id, o.ioa)));
            }
            MasterEvent::Asdu(a) if a.cot.cause == Cause::ACTIVATION_TERMINATION => break,
            _ => {}
        }
    }
    assert_eq!(points.len(), 101);
    assert!(points.contains(&(TypeId::M_SP_NA_1, Ioa(100))));
    assert!(!points.iter().any(|(_, ioa)| *ioa == Ioa(300)));

    // counter interrogation
    assert!(master
        .counter_interrogation(CA)
        .await
        .unwrap()
        .is_confirmed());
    let e = wait_for(
        &mut rx,
        |e| matches!(e, MasterEvent::Asdu(a) if a.cot.cause == Cause::REQUESTED_BY_GENERAL_COUNTER),
    )
    .await;
    assert!(
        matches!(e, MasterEvent::Asdu(a) if a.type_id == TypeId::M_IT_NA_1 && a.objects[0].ioa == Ioa(300))
    );

    // clock sync, direct commands (one rejected by the handler), unknown CA
    assert!(master.clock_sync(CA, t).await.unwrap().is_confirmed());
    let on = InformationElement::SingleCommand {
        value: true,
        qu: 0,
        select: false,
    };
    let off = InformationElement::SingleCommand {
        value: false,
        qu: 0,
        select: false,
    };
    assert!(master
        .command(CA, Ioa(400), on)
        .await
        .unwrap()
        .is_confirmed());
    assert_eq!(
        master.command(CA, Ioa(400), off).await.unwrap(),
        CommandResult::Rejected {
            cause: Cause::ACTIVATION_CON,
            negative: true
        }
    );
    assert_eq!(
        master
            .command(CommonAddress(9), Ioa(400), on)
            .await
            .unwrap(),
        CommandResult::Rejected {
            cause: Cause::UNKNOWN_COMMON_ADDRESS,
            negative: true
        }
    );

    // select-before-operate set-point, and a direct execute that needs a select
    let sp = InformationElement::SetpointScaled {
        value: 5,
        ql: 0,
        select: false,
    };
    assert_eq!(
        master.command(CA, Ioa(500), sp).await.unwrap(),
        CommandResult::Rejected {
            cause: Cause::ACTIVATION_CON,
            negative: true
        }
    );
    assert_eq!(
        master
            .select_before_operate(CA, Ioa(500), sp)
            .await
            .unwrap(),
        CommandResult::Confirmed { terminated: true }
    );
    let cmds: Vec<_> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| (c.type_id, c.ioa.0))
        .collect();
    assert_eq!(
        cmds,
        vec![
            (TypeId::C_SC_NA_1, 400),
            (TypeId::C_SC_NA_1, 400),
            (TypeId::C_SE_NB_1, 500)
        ]
    );

    // spontaneous update with its own (time-tagged) type
    out.update(point(
        TypeId::M_SP_TB_1,
        100,
        InformationElement::SinglePoint {
            value: false,
            quality: Quality::IV,
        },
        Some(TimeTag::Cp56(t)),
    ))
    .await
    .unwrap();
    let e = wait_for(
        &mut rx,
        |e| matches!(e, MasterEvent::Asdu(a) if a.cot.cause == Cause::SPONTANEOUS),
    )
    .await;
    let MasterEvent::Asdu(a) = e else {
        unreachable!()
    };
    assert_eq!(a.type_id, TypeId::M_SP_TB_1);
    assert_eq!(a.objects[0].time, Some(TimeTag::Cp56(t)));

    // the outstation going away: the master reports the disconnection
    out.shutdown().await;
    wait_for(&mut rx, |e| matches!(e, MasterEvent::Disconnected { .. })).await;
    assert_eq!(
        master.command(CA, Ioa(400), on).await.unwrap(),
        CommandResult::LinkDown
    );
    master.shutdown().await;
}

#[tokio::test]
async fn outstation_against_scripted_master() {
    let mut db = PointDb::new();
    db.insert(point(
        TypeId::M_SP_NA_1,
        7,
        InformationElement::SinglePoint {
            value: true,
            quality: Quality::GOOD,
        },
        None,
    ));
    let mut cfg = OutstationConfig::new(([127, 0, 0, 1], 0).into(), CA);
    cfg.link.w = 2;
    let out = spawn_outstation(cfg, db, AcceptAll).await.unwrap();
    let sizes = AsduSizes::default();

    // an I frame before STARTDT act closes the connection
    let s = TcpStream::connect(out.local_addr()).await.unwrap();
    let mut m = Script { s, buf: Vec::new() };
    m.write(Frame::I {
        ns: SeqNum::new(0),
        nr: SeqNum::new(0),
        asdu: gi_asdu(),
    })
    .await;
    assert_eq!(m.read().await, None);

    let s = TcpStream::connect(out.local_addr()).await.unwrap();
    let mut m = Script { s, buf: Vec::new() };
    // TESTFR works while stopped; nothing else is sent before STARTDT
    m.write(Frame::U(UFunction::TestFrAct)).await;
    assert_eq!(m.read().await, Some(Frame::U(UFunction::TestFrCon)));
    m.write(Frame::U(UFunction::StartDtAct)).await;
    assert_eq!(m.read().await, Some(Frame::U(UFunction::StartDtCon)));

    // unknown type id 22: echoed with COT 44, P/N set
    let unknown = vec![22, 1, 6, 0, 1, 0, 1, 0, 0, 0];
    m.write(Frame::I {
        ns: SeqNum::new(0),
        nr: SeqNum::new(0),
        asdu: unknown,
    })
    .await;
    let Some(Frame::I { ns, nr, asdu }) = m.read().await else {
        panic!("expected I frame")
    };
    assert_eq!((ns, nr), (SeqNum::new(0), SeqNum::new(1)));
    assert_eq!(asdu, vec![22, 1, 0x40 | 44, 0, 1, 0, 1, 0, 0, 0]);

    // read: COT 5 for a known IOA, COT 47 negative for an unknown one
    let read = |ioa| {
        Asdu::single(
            TypeId::C_RD_NA_1,
            Cot::new(Cause::REQUEST),
            CA,
            InformationObject::new(Ioa(ioa), InformationElement::Read),
        )
        .encode(&sizes)
        .unwrap()
    };
    m.write(Frame::I {
        ns: SeqNum::new(1),
        nr: SeqNum::new(1),
        asdu: read(7),
    })
    .await;
    let Some(Frame::I { asdu, .. }) = m.read().await else {
        panic!("expected I frame")
    };
    let a = Asdu::decode(&asdu, &sizes).unwrap();
    assert_eq!(
        (a.type_id, a.cot.cause, a.objects[0].ioa),
        (TypeId::M_SP_NA_1, Cause::REQUEST, Ioa(7))
    );
    m.write(Frame::I {
        ns: SeqNum::new(2),
        nr: SeqNum::new(2),
        asdu: read(8),
    })
    .await;
    let Some(Frame::I { asdu, .. }) = m.read().await else {
        panic!("expected I frame")
    };
    let a = Asdu::decode(&asdu, &sizes).unwrap();
    assert_eq!((a.cot.cause, a.cot.negative), (Cause::UNKNOWN_IOA, true));

    // STOPDT: the outstation waits for its I frames to be acknowledged first
    m.write(Frame::U(UFunction::StopDtAct)).await;
    m.silent(Duration::from_millis(200)).await;
    m.write(Frame::S { nr: SeqNum::new(3) }).await;
    assert_eq!(m.read().await, Some(Frame::U(UFunction::StopDtCon)));
    // a new connection replaces this one
    let s = TcpStream::connect(out.local_addr()).await.unwrap();
    let mut m2 = Script { s, buf: Vec::new() };
    assert_eq!(m.read().await, None);
    m2.write(Frame::U(UFunction::StartDtAct)).await;
    assert_eq!(m2.read().await, Some(Frame::U(UFunction::StartDtCon)));
    out.shutdown().await;
    assert_eq!(m2.read().await, None);
}

#[tokio::test]
async fn invalid_master_config_is_reported() {
    let mut cfg = MasterConfig::new(vec![]);
    cfg.reconnect_min = Duration::ZERO;
    let (master, mut rx) = spawn_master(cfg);
    assert!(matches!(
        next_event(&mut rx).await,
        MasterEvent::Disconnected { reason } if reason.contains("invalid configuration")
    ));
    assert_eq!(
        master.general_interrogation(CA).await,
        Err(MasterError::Shutdown)
    );
    let mut cfg = MasterConfig::new(vec![]);
    cfg.link.k = 0;
    assert!(cfg.validate().is_err());
    // no address at all: reported, retried with backoff, never a tight loop
    let mut cfg = MasterConfig::new(vec![]);
    cfg.reconnect_min = Duration::from_millis(50);
    cfg.reconnect_max = Duration::from_millis(100);
    let (_master, mut rx) = spawn_master(cfg);
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        assert!(matches!(
            next_event(&mut rx).await,
            MasterEvent::Disconnected { .. }
        ));
    }
    assert!(start.elapsed() >= Duration::from_millis(75));
}
