//! `spawn_station` on loopback against the stack's own master and raw TCP peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use iec104_slave::station::{
    spawn_station, Action, CommandPoint, EventToken, GroupConfig, GroupId, StationConfig,
};
use iec60870::{
    spawn_master, Cause, CommandResult, CommonAddress, InformationElement, Ioa, MasterConfig,
    MasterEvent, Point, PointDb, Quality, TypeId,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);
const CA: CommonAddress = CommonAddress(7);

async fn next_asdu(rx: &mut mpsc::Receiver<MasterEvent>) -> iec60870::Asdu {
    loop {
        match timeout(T, rx.recv()).await.unwrap().unwrap() {
            MasterEvent::Asdu(a) => return a,
            _ => continue,
        }
    }
}

async fn next_action(rx: &mut mpsc::Receiver<Action>, want: impl Fn(&Action) -> bool) -> Action {
    loop {
        let a = timeout(T, rx.recv()).await.unwrap().unwrap();
        if want(&a) {
            return a;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_master_against_spawned_station() {
    let mut points = PointDb::new();
    points.insert(Point::single(Ioa(1), true, Quality::GOOD));
    points.insert(Point::float(Ioa(100), 1.5, Quality::GOOD));
    let commands = vec![CommandPoint {
        ioa: Ioa(5000),
        type_id: TypeId::C_SC_NA_1,
        select_before_operate: true,
    }];
    let (station, mut actions) = spawn_station(
        "127.0.0.1:0".parse().unwrap(),
        StationConfig::new(CA),
        points,
        commands,
    )
    .await
    .unwrap();
    // buffered while no master is connected
    station
        .queue_event(
            GroupId(0),
            EventToken(1),
            Point::float(Ioa(100), 2.5, Quality::GOOD),
        )
        .await
        .unwrap();

    let mut mcfg = MasterConfig::new(vec![station.local_addr()]);
    mcfg.link.t2 = Duration::from_millis(100);
    let (master, mut events) = spawn_master(mcfg);
    loop {
        if let MasterEvent::Active = timeout(T, events.recv()).await.unwrap().unwrap() {
            break;
        }
    }
    let spont = next_asdu(&mut events).await;
    assert_eq!(spont.type_id, TypeId::M_ME_NC_1);
    assert_eq!(spont.cot.cause, Cause::SPONTANEOUS);
    assert_eq!(spont.objects[0].ioa, Ioa(100));
    // the master acknowledges after t2: the token is acknowledged
    assert_eq!(
        next_action(&mut actions, |a| matches!(a, Action::Acknowledged { .. })).await,
        Action::Acknowledged {
            group: GroupId(0),
            up_to: EventToken(1)
        }
    );

    // general interrogation: the database has the event's value
    assert_eq!(
        master.general_interrogation(CA).await.unwrap(),
        CommandResult::Confirmed { terminated: false }
    );
    let mut seen = Vec::new();
    loop {
        let a = next_asdu(&mut events).await;
        if a.cot.cause == Cause::ACTIVATION_TERMINATION {
            break;
        }
        if a.cot.cause == Cause::ACTIVATION_CON {
            continue;
        }
        assert_eq!(a.cot.cause, Cause::INTERROGATED_BY_STATION);
        seen.extend(a.objects.iter().map(|o| (o.ioa, o.element)));
    }
    assert_eq!(
        seen,
        vec![
            (
                Ioa(1),
                InformationElement::SinglePoint {
                    value: true,
                    quality: Quality::GOOD
                }
            ),
            (
                Ioa(100),
                InformationElement::Float {
                    value: 2.5,
                    quality: Quality::GOOD
                }
            ),
        ]
    );

    // a spontaneous event while connected
    station
        .queue_event(
            GroupId(0),
            EventToken(2),
            Point::single(Ioa(1), false, Quality::IV),
        )
        .await
        .unwrap();
    let spont = next_asdu(&mut events).await;
    assert_eq!(spont.cot.cause, Cause::SPONTANEOUS);
    assert_eq!(
        spont.objects[0].element,
        InformationElement::SinglePoint {
            value: false,
            quality: Quality::IV
        }
    );

    // select-before-operate; the applet answers the execute
    let element = InformationElement::SingleCommand {
        value: true,
        qu: 0,
        select: false,
    };
    let m2 = master.clone();
    let cmd = tokio::spawn(async move { m2.select_before_operate(CA, Ioa(5000), element).await });
    let Action::Command { token, request, .. } =
        next_action(&mut actions, |a| matches!(a, Action::Command { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(request.ioa, Ioa(5000));
    station.command_result(token, true).await.unwrap();
    assert_eq!(
        timeout(T, cmd).await.unwrap().unwrap().unwrap(),
        CommandResult::Confirmed { terminated: true }
    );
    // an unknown IOA: COT 47, the link stays
    let r = master.command(CA, Ioa(4), element).await.unwrap();
    assert_eq!(
        r,
        CommandResult::Rejected {
            cause: Cause::UNKNOWN_IOA,
            negative: true
        }
    );

    let status = station.status().await.unwrap();
    assert_eq!(status.connections.len(), 1);
    assert!(status.connections[0].started);
    assert!(status.connections[0].since_unix_ms.is_some());
    assert_eq!(status.groups[0].sent, 2);

    master.shutdown().await;
    next_action(&mut actions, |a| matches!(a, Action::Disconnected { .. })).await;
    station.shutdown().await;
}

#[tokio::test]
async fn refused_master_is_closed_before_startdt() {
    let mut config = StationConfig::new(CA);
    config.groups = vec![GroupConfig {
        masters: vec!["10.9.9.9".parse().unwrap()],
    }];
    let (station, mut actions) = spawn_station(
        "127.0.0.1:0".parse().unwrap(),
        config,
        PointDb::new(),
        Vec::new(),
    )
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(station.local_addr())
        .await
        .unwrap();
    let _ = s.write_all(&[0x68, 4, 0x07, 0, 0, 0]).await;
    let mut buf = [0u8; 16];
    let n = timeout(T, s.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "closed without STARTDT con");
    assert!(
        actions.try_recv().is_err(),
        "a refused peer is no connection"
    );
    assert!(station.status().await.unwrap().connections.is_empty());
}
