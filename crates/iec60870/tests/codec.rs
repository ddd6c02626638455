//! Exact byte vectors for every type identification (SQ=0 and SQ=1), APCI vectors, error
//! cases and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use iec60870::*;
use proptest::prelude::*;

use InformationElement as E;

const CP24: [u8; 3] = [0x34, 0x12, 0x05];
/// 2024-02-29 13:45:12.345, Thursday.
const CP56: [u8; 7] = [0x39, 0x30, 0x2D, 0x0D, 0x9D, 0x02, 0x18];

fn cp24() -> Cp24Time2a {
    Cp24Time2a {
        millis: 0x1234,
        minute: 5,
        invalid: false,
    }
}

fn cp56() -> Cp56Time2a {
    Cp56Time2a::from_unix_ms(1_709_214_312_345).unwrap()
}

/// (type, element, element octets) for every type; the time tag follows from the type.
fn table() -> Vec<(TypeId, InformationElement, Vec<u8>)> {
    use TypeId::*;
    let sp = E::SinglePoint {
        value: true,
        quality: Quality::IV,
    };
    let dp = E::DoublePoint {
        value: DoublePointValue::On,
        quality: Quality::NT,
    };
    let st = E::StepPosition {
        value: -1,
        transient: true,
        quality: Quality::OV,
    };
    let bo = E::Bitstring32 {
        value: 0x1234_5678,
        quality: Quality::SB,
    };
    let nva = E::Normalized {
        value: -2,
        quality: Quality::GOOD,
    };
    let sva = E::Scaled {
        value: 1000,
        quality: Quality::BL,
    };
    let flt = E::Float {
        value: 1.5,
        quality: Quality::GOOD,
    };
    let it = E::IntegratedTotal {
        counter: 100_000,
        seq: 3,
        cy: true,
        ca: false,
        iv: false,
    };
    let ep = E::ProtectionEvent {
        event: DoublePointValue::On,
        quality: Quality::EI,
        elapsed: Cp16Time2a(500),
    };
    let epb = E::ProtectionStartEvents {
        events: 0x03,
        quality: Quality::IV,
        duration: Cp16Time2a(0x0102),
    };
    let epc = E::ProtectionOutputCircuits {
        circuits: 0x05,
        quality: Quality::NT,
        operating_time: Cp16Time2a(0x0A0B),
    };
    let sc = E::SingleCommand {
        value: true,
        qu: 1,
        select: true,
    };
    let dc = E::DoubleCommand {
        value: DoublePointValue::Off,
        qu: 0,
        select: false,
    };
    let rc = E::RegulatingStep {
        value: StepCommand::Higher,
        qu: 2,
        select: false,
    };
    let sena = E::SetpointNormalized {
        value: 0x1234,
        ql: 0,
        select: true,
    };
    let senb = E::SetpointScaled {
        value: -100,
        ql: 5,
        select: false,
    };
    let senc = E::SetpointFloat {
        value: -2.0,
        ql: 0,
        select: false,
    };
    let bocmd = E::Bitstring32Command { value: 0xAABB_CCDD };
    let v = |b: &[u8]| b.to_vec();
    vec![
        (M_SP_NA_1, sp, v(&[0x81])),
        (M_SP_TA_1, sp, v(&[0x81])),
        (M_DP_NA_1, dp, v(&[0x42])),
        (M_DP_TA_1, dp, v(&[0x42])),
        (M_ST_NA_1, st, v(&[0xFF, 0x01])),
        (M_ST_TA_1, st, v(&[0xFF, 0x01])),
        (M_BO_NA_1, bo, v(&[0x78, 0x56, 0x34, 0x12, 0x20])),
        (M_BO_TA_1, bo, v(&[0x78, 0x56, 0x34, 0x12, 0x20])),
        (M_ME_NA_1, nva, v(&[0xFE, 0xFF, 0x00])),
        (M_ME_TA_1, nva, v(&[0xFE, 0xFF, 0x00])),
        (M_ME_NB_1, sva, v(&[0xE8, 0x03, 0x10])),
        (M_ME_TB_1, sva, v(&[0xE8, 0x03, 0x10])),
        (M_ME_NC_1, flt, v(&[0x00, 0x00, 0xC0, 0x3F, 0x00])),
        (M_ME_TC_1, flt, v(&[0x00, 0x00, 0xC0, 0x3F, 0x00])),
        (M_IT_NA_1, it, v(&[0xA0, 0x86, 0x01, 0x00, 0x23])),
        (M_IT_TA_1, it, v(&[0xA0, 0x86, 0x01, 0x00, 0x23])),
        (M_EP_TA_1, ep, v(&[0x0A, 0xF4, 0x01])),
        (M_EP_TB_1, epb, v(&[0x03, 0x80, 0x02, 0x01])),
        (M_EP_TC_1, epc, v(&[0x05, 0x40, 0x0B, 0x0A])),
        (
            M_PS_NA_1,
            E::PackedSinglePoints {
                status: 0x00FF,
                changed: 0x0F00,
                quality: Quality::GOOD,
            },
            v(&[0xFF, 0x00, 0x00, 0x0F, 0x00]),
        ),
        (
            M_ME_ND_1,
            E::NormalizedNoQuality { value: 0x4000 },
            v(&[0x00, 0x40]),
        ),
        (M_SP_TB_1, sp, v(&[0x81])),
        (M_DP_TB_1, dp, v(&[0x42])),
        (M_ST_TB_1, st, v(&[0xFF, 0x01])),
        (M_BO_TB_1, bo, v(&[0x78, 0x56, 0x34, 0x12, 0x20])),
        (M_ME_TD_1, nva, v(&[0xFE, 0xFF, 0x00])),
        (M_ME_TE_1, sva, v(&[0xE8, 0x03, 0x10])),
        (M_ME_TF_1, flt, v(&[0x00, 0x00, 0xC0, 0x3F, 0x00])),
        (M_IT_TB_1, it, v(&[0xA0, 0x86, 0x01, 0x00, 0x23])),
        (M_EP_TD_1, ep, v(&[0x0A, 0xF4, 0x01])),
        (M_EP_TE_1, epb, v(&[0x03, 0x80, 0x02, 0x01])),
        (M_EP_TF_1, epc, v(&[0x05, 0x40, 0x0B, 0x0A])),
        (C_SC_NA_1, sc, v(&[0x85])),
        (C_DC_NA_1, dc, v(&[0x01])),
        (C_RC_NA_1, rc, v(&[0x0A])),
        (C_SE_NA_1, sena, v(&[0x34, 0x12, 0x80])),
        (C_SE_NB_1, senb, v(&[0x9C, 0xFF, 0x05])),
        (C_SE_NC_1, senc, v(&[0x00, 0x00, 0x00, 0xC0, 0x00])),
        (C_BO_NA_1, bocmd, v(&[0xDD, 0xCC, 0xBB, 0xAA])),
        (C_SC_TA_1, sc, v(&[0x85])),
        (C_DC_TA_1, dc, v(&[0x01])),
        (C_RC_TA_1, rc, v(&[0x0A])),
        (C_SE_TA_1, sena, v(&[0x34, 0x12, 0x80])),
        (C_SE_TB_1, senb, v(&[0x9C, 0xFF, 0x05])),
        (C_SE_TC_1, senc, v(&[0x00, 0x00, 0x00, 0xC0, 0x00])),
        (C_BO_TA_1, bocmd, v(&[0xDD, 0xCC, 0xBB, 0xAA])),
        (
            M_EI_NA_1,
            E::EndOfInit {
                cause: 2,
                local_change: true,
            },
            v(&[0x82]),
        ),
        (C_IC_NA_1, E::Interrogation { qoi: 20 }, v(&[0x14])),
        (
            C_CI_NA_1,
            E::CounterInterrogation { rqt: 5, frz: 1 },
            v(&[0x45]),
        ),
        (C_RD_NA_1, E::Read, v(&[])),
        (C_CS_NA_1, E::ClockSync { time: cp56() }, v(&CP56)),
        (C_TS_NA_1, E::Test { pattern: 0x55AA }, v(&[0xAA, 0x55])),
        (C_RP_NA_1, E::ResetProcess { qrp: 1 }, v(&[0x01])),
        (
            C_CD_NA_1,
            E::DelayAcquisition {
                delay: Cp16Time2a(1000),
            },
            v(&[0xE8, 0x03]),
        ),
        (C_TS_TA_1, E::TestWithTime { counter: 7 }, v(&[0x07, 0x00])),
        (
            P_ME_NA_1,
            E::ParameterNormalized { value: 100, qpm: 1 },
            v(&[0x64, 0x00, 0x01]),
        ),
        (
            P_ME_NB_1,
            E::ParameterScaled { value: -1, qpm: 2 },
            v(&[0xFF, 0xFF, 0x02]),
        ),
        (
            P_ME_NC_1,
            E::ParameterFloat { value: 0.5, qpm: 3 },
            v(&[0x00, 0x00, 0x00, 0x3F, 0x03]),
        ),
        (P_AC_NA_1, E::ParameterActivation { qpa: 3 }, v(&[0x03])),
    ]
}

fn time_for(tid: TypeId) -> (Option<TimeTag>, Vec<u8>) {
    match tid.time_tag() {
        TimeTagKind::None => (None, vec![]),
        TimeTagKind::Cp24 => (Some(TimeTag::Cp24(cp24())), CP24.to_vec()),
        TimeTagKind::Cp56 => (Some(TimeTag::Cp56(cp56())), CP56.to_vec()),
    }
}

fn cot() -> Cot {
    Cot {
        cause: Cause::SPONTANEOUS,
        negative: false,
        test: true,
        originator: 7,
    }
}

#[test]
fn table_covers_every_type() {
    let t = table();
    for tid in TypeId::ALL {
        assert_eq!(
            t.iter().filter(|(x, _, _)| x == tid).count(),
            1,
            "{tid} missing or duplicated"
        );
    }
}

#[test]
fn every_type_sq0_exact_bytes() {
    let sizes = AsduSizes::default();
    for (tid, el, el_bytes) in table() {
        let (time, time_bytes) = time_for(tid);
        let asdu = Asdu {
            type_id: tid,
            sq: false,
            cot: cot(),
            common_address: CommonAddress(0x1234),
            objects: vec![InformationObject {
                ioa: Ioa(0x03_0201),
                element: el,
                time,
            }],
        };
        let mut expected = vec![tid as u8, 0x01, 0x83, 0x07, 0x34, 0x12, 0x01, 0x02, 0x03];
        expected.extend(&el_bytes);
        expected.extend(&time_bytes);
        let enc = asdu.encode(&sizes).unwrap();
        assert_eq!(enc, expected, "{tid}");
        assert_eq!(Asdu::decode(&expected, &sizes).unwrap(), asdu, "{tid}");
        // every strict prefix is an error, never a panic
        for n in 0..expected.len() {
            assert!(
                Asdu::decode(&expected[..n], &sizes).is_err(),
                "{tid} prefix {n}"
            );
        }
        let mut long = expected.clone();
        long.push(0);
        assert_eq!(
            Asdu::decode(&long, &sizes),
            Err(AsduError::TrailingBytes(1)),
            "{tid}"
        );
    }
}

#[test]
fn every_type_sq1_exact_bytes() {
    let sizes = AsduSizes::default();
    for (tid, el, el_bytes) in table() {
        let (time, time_bytes) = time_for(tid);
        let obj = |ioa| InformationObject {
            ioa: Ioa(ioa),
            element: el,
            time,
        };
        let asdu = Asdu {
            type_id: tid,
            sq: true,
            cot: cot(),
            common_address: CommonAddress(0x1234),
            objects: vec![obj(0x03_0201), obj(0x03_0202)],
        };
        let mut expected = vec![tid as u8, 0x82, 0x83, 0x07, 0x34, 0x12, 0x01, 0x02, 0x03];
        for _ in 0..2 {
            expected.extend(&el_bytes);
            expected.extend(&time_bytes);
        }
        assert_eq!(asdu.encode(&sizes).unwrap(), expected, "{tid}");
        assert_eq!(Asdu::decode(&expected, &sizes).unwrap(), asdu, "{tid}");
    }
}

#[test]
fn small_field_sizes() {
    let sizes = AsduSizes::from_octets(1, 1, 1).unwrap();
    let asdu = Asdu::single(
        TypeId::M_ME_NB_1,
        Cot::new(Cause::INTERROGATED_BY_STATION),
        CommonAddress(5),
        InformationObject::new(
            Ioa(200),
            E::Scaled {
                value: -3,
                quality: Quality::GOOD,
            },
        ),
    );
    let bytes = vec![11, 0x01, 20, 5, 200, 0xFD, 0xFF, 0x00];
    assert_eq!(asdu.encode(&sizes).unwrap(), bytes);
    assert_eq!(Asdu::decode(&bytes, &sizes).unwrap(), asdu);

    let sizes2 = AsduSizes::from_octets(2, 2, 2).unwrap();
    let bytes = vec![11, 0x01, 20, 0, 5, 0, 200, 1, 0xFD, 0xFF, 0x00];
    let mut a2 = asdu.clone();
    a2.objects[0].ioa = Ioa(0x01C8);
    assert_eq!(a2.encode(&sizes2).unwrap(), bytes);
    assert_eq!(Asdu::decode(&bytes, &sizes2).unwrap(), a2);

    // out of range for the configured sizes
    let mut big = asdu.clone();
    big.objects[0].ioa = Ioa(256);
    assert!(matches!(
        big.encode(&sizes),
        Err(AsduError::AddressTooLarge(_))
    ));
    let mut big = asdu.clone();
    big.common_address = CommonAddress(256);
    assert!(matches!(
        big.encode(&sizes),
        Err(AsduError::AddressTooLarge(_))
    ));
    let mut big = asdu;
    big.cot.originator = 1;
    assert!(matches!(
        big.encode(&sizes),
        Err(AsduError::AddressTooLarge(_))
    ));
    assert!(AsduSizes::from_octets(3, 2, 3).is_none());
    assert!(AsduSizes::from_octets(2, 2, 4).is_none());
}

#[test]
fn decode_errors_are_typed() {
    let sizes = AsduSizes::default();
    for t in [0u8, 22, 29, 41, 44, 52, 57, 65, 99, 108, 114, 127, 255] {
        let bytes = [t, 1, 3, 0, 1, 0, 1, 0, 0, 0];
        assert_eq!(
            Asdu::decode(&bytes, &sizes),
            Err(AsduError::UnknownTypeId(t))
        );
    }
    assert_eq!(
        Asdu::decode(&[1, 0, 3, 0, 1, 0], &sizes),
        Err(AsduError::NoObjects)
    );
    assert_eq!(Asdu::decode(&[], &sizes), Err(AsduError::Truncated));
    // SQ=1 run past the largest 1-octet IOA
    let s1 = AsduSizes::from_octets(2, 2, 1).unwrap();
    assert_eq!(
        Asdu::decode(&[1, 0x82, 3, 0, 1, 0, 0xFF, 0, 0], &s1),
        Err(AsduError::IoaOverflow)
    );
}

#[test]
fn encode_errors_are_typed() {
    let sizes = AsduSizes::default();
    let sp = E::SinglePoint {
        value: true,
        quality: Quality::GOOD,
    };
    let mut a = Asdu::new(TypeId::M_ME_NC_1, cot(), CommonAddress(1));
    assert_eq!(a.encode(&sizes), Err(AsduError::NoObjects));
    a.objects.push(InformationObject::new(Ioa(1), sp));
    assert_eq!(
        a.encode(&sizes),
        Err(AsduError::ElementMismatch(TypeId::M_ME_NC_1))
    );
    a.type_id = TypeId::M_SP_TB_1;
    assert_eq!(
        a.encode(&sizes),
        Err(AsduError::TimeTagMismatch(TypeId::M_SP_TB_1))
    );
    a.type_id = TypeId::M_SP_NA_1;
    a.sq = true;
    a.objects.push(InformationObject::new(Ioa(3), sp));
    assert_eq!(a.encode(&sizes), Err(AsduError::NotSequential));
    a.sq = false;
    a.objects = vec![InformationObject::new(Ioa(1), sp); 128];
    assert_eq!(a.encode(&sizes), Err(AsduError::TooManyObjects(128)));
    // 61 floats * (3 + 5) + 6 = 494 > 249
    a.type_id = TypeId::M_ME_NC_1;
    a.objects = vec![
        InformationObject::new(
            Ioa(1),
            E::Float {
                value: 1.0,
                quality: Quality::GOOD
            }
        );
        61
    ];
    assert!(matches!(a.encode(&sizes), Err(AsduError::TooLong(_))));
    a.objects.truncate(30); // 6 + 30 * 8 = 246
    assert_eq!(a.encode(&sizes).unwrap().len(), 246);
    let st = Asdu::single(
        TypeId::M_ST_NA_1,
        cot(),
        CommonAddress(1),
        InformationObject::new(
            Ioa(1),
            E::StepPosition {
                value: 64,
                transient: false,
                quality: Quality::GOOD,
            },
        ),
    );
    assert!(matches!(
        st.encode(&sizes),
        Err(AsduError::ValueOutOfRange(_))
    ));
}

#[test]
fn apci_vectors() {
    let u = [
        (UFunction::StartDtAct, 0x07),
        (UFunction::StartDtCon, 0x0B),
        (UFunction::StopDtAct, 0x13),
        (UFunction::StopDtCon, 0x23),
        (UFunction::TestFrAct, 0x43),
        (UFunction::TestFrCon, 0x83),
    ];
    for (f, b) in u {
        let bytes = vec![0x68, 0x04, b, 0, 0, 0];
        assert_eq!(Frame::U(f).encode().unwrap(), bytes);
        assert_eq!(parse_frame(&bytes).unwrap(), Some((Frame::U(f), 6)));
    }
    let s = vec![0x68, 0x04, 0x01, 0x00, 0x0A, 0x00];
    let sf = Frame::S { nr: SeqNum::new(5) };
    assert_eq!(sf.encode().unwrap(), s);
    assert_eq!(parse_frame(&s).unwrap(), Some((sf, 6)));

    // I frame N(S)=1 N(R)=2 carrying a station interrogation
    let gi = vec![
        0x68, 0x0E, 0x02, 0x00, 0x04, 0x00, 0x64, 0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x14,
    ];
    let asdu = Asdu::single(
        TypeId::C_IC_NA_1,
        Cot::new(Cause::ACTIVATION),
        CommonAddress(1),
        InformationObject::new(Ioa(0), E::Interrogation { qoi: 20 }),
    );
    let sizes = AsduSizes::default();
    assert_eq!(
        encode_i_frame(SeqNum::new(1), SeqNum::new(2), &asdu, &sizes).unwrap(),
        gi
    );
    let apdu = decode_apdu(&gi, &sizes).unwrap();
    assert_eq!(apdu.asdu, Some(asdu.clone()));
    assert!(matches!(apdu.frame, Frame::I { ns, nr, .. } if ns.value() == 1 && nr.value() == 2));

    // largest sequence numbers
    let top = Frame::I {
        ns: SeqNum::new(32767),
        nr: SeqNum::new(32767),
        asdu: asdu.encode(&sizes).unwrap(),
    };
    let enc = top.encode().unwrap();
    assert_eq!(&enc[2..6], &[0xFE, 0xFF, 0xFE, 0xFF]);
    assert_eq!(parse_frame(&enc).unwrap(), Some((top, enc.len())));

    // partial input needs more bytes
    for n in 0..gi.len() {
        assert_eq!(parse_frame(&gi[..n]).unwrap(), None, "prefix {n}");
    }
}

#[test]
fn apci_errors() {
    assert_eq!(
        parse_frame(&[0x69, 4, 7, 0, 0, 0]),
        Err(FrameError::BadStart(0x69))
    );
    assert_eq!(parse_frame(&[0x68, 254]), Err(FrameError::BadLength(254)));
    assert_eq!(parse_frame(&[0x68, 255]), Err(FrameError::BadLength(255)));
    assert_eq!(parse_frame(&[0x68, 3]), Err(FrameError::BadLength(3)));
    assert_eq!(
        parse_frame(&[0x68, 4, 0, 0, 0, 0]),
        Err(FrameError::EmptyIFrame)
    );
    assert!(matches!(
        parse_frame(&[0x68, 4, 0x0F, 0, 0, 0]),
        Err(FrameError::BadControl(_))
    ));
    assert!(matches!(
        parse_frame(&[0x68, 4, 0x07, 1, 0, 0]),
        Err(FrameError::BadControl(_))
    ));
    assert_eq!(
        parse_frame(&[0x68, 5, 0x07, 0, 0, 0, 0]),
        Err(FrameError::UnexpectedPayload(5))
    );
    assert_eq!(
        parse_frame(&[0x68, 5, 0x01, 0, 0, 0, 0]),
        Err(FrameError::UnexpectedPayload(5))
    );
    assert!(matches!(
        parse_frame(&[0x68, 6, 0x00, 0, 0x01, 0, 1, 1]),
        Err(FrameError::BadControl(_))
    ));
    let sizes = AsduSizes::default();
    assert!(matches!(
        decode_apdu(&[0x68, 4, 7, 0, 0, 0, 0], &sizes),
        Err(ApduError::Frame(FrameError::TrailingBytes(1)))
    ));
    assert!(matches!(
        decode_apdu(&[0x68, 4, 7, 0], &sizes),
        Err(ApduError::Frame(FrameError::Truncated))
    ));
    assert!(matches!(
        decode_apdu(&[0x68, 5, 0, 0, 0, 0, 22], &sizes),
        Err(ApduError::Asdu(AsduError::UnknownTypeId(22)))
    ));
    let too_long = Frame::I {
        ns: SeqNum::new(0),
        nr: SeqNum::new(0),
        asdu: vec![1; 250],
    };
    assert_eq!(too_long.encode(), Err(FrameError::TooLong(250)));
    // the largest frame: 249 octets of ASDU
    let max = Frame::I {
        ns: SeqNum::new(0),
        nr: SeqNum::new(0),
        asdu: vec![1; 249],
    };
    let enc = max.encode().unwrap();
    assert_eq!(enc[1], 253);
    assert_eq!(parse_frame(&enc).unwrap().unwrap().1, 255);
}

#[test]
fn seqnum_wraps() {
    assert_eq!(SeqNum::new(32767).next(), SeqNum::new(0));
    assert_eq!(SeqNum::new(32767).distance_to(SeqNum::new(2)), 3);
    assert_eq!(SeqNum::new(0xFFFF).value(), 32767);
}

#[test]
fn cot_octet() {
    let c = Cot {
        cause: Cause::ACTIVATION_CON,
        negative: true,
        test: true,
        originator: 3,
    };
    assert_eq!(c.octet(), 0xC7);
    assert_eq!(Cot::from_octets(0xC7, 3), c);
    assert!(Cause::UNKNOWN_IOA.is_unknown_failure());
    assert!(!Cause::ACTIVATION_CON.is_unknown_failure());
    assert_eq!(Cause::interrogated_by_group(16), Cause::new(36));
    assert_eq!(Cause::new(64), None);
}

// ---------- property tests ----------

fn finite(bits: u32) -> f32 {
    let f = f32::from_bits(bits);
    if f.is_finite() {
        f
    } else {
        0.25
    }
}

/// A valid element for `tid` built from random octets.
fn element(tid: TypeId, r: &[u8; 16]) -> InformationElement {
    use TypeId::*;
    let u16v = u16::from_le_bytes([r[1], r[2]]);
    let i16v = i16::from_le_bytes([r[1], r[2]]);
    let u32v = u32::from_le_bytes([r[1], r[2], r[3], r[4]]);
    let b = |i: usize| r[i] & 1 != 0;
    let q = Quality(r[5]);
    let siq = Quality(r[5] & 0xF0);
    let qds = Quality(r[5] & 0xF1);
    let qdp = Quality(r[5] & 0xF8);
    let dp = DoublePointValue::from_bits(r[6]);
    let _ = q;
    match tid {
        M_SP_NA_1 | M_SP_TA_1 | M_SP_TB_1 => E::SinglePoint {
            value: b(0),
            quality: siq,
        },
        M_DP_NA_1 | M_DP_TA_1 | M_DP_TB_1 => E::DoublePoint {
            value: dp,
            quality: siq,
        },
        M_ST_NA_1 | M_ST_TA_1 | M_ST_TB_1 => E::StepPosition {
            value: (r[1] % 128) as i8 - 64,
            transient: b(0),
            quality: qds,
        },
        M_BO_NA_1 | M_BO_TA_1 | M_BO_TB_1 => E::Bitstring32 {
            value: u32v,
            quality: qds,
        },
        M_ME_NA_1 | M_ME_TA_1 | M_ME_TD_1 => E::Normalized {
            value: i16v,
            quality: qds,
        },
        M_ME_NB_1 | M_ME_TB_1 | M_ME_TE_1 => E::Scaled {
            value: i16v,
            quality: qds,
        },
        M_ME_NC_1 | M_ME_TC_1 | M_ME_TF_1 => E::Float {
            value: finite(u32v),
            quality: qds,
        },
        M_IT_NA_1 | M_IT_TA_1 | M_IT_TB_1 => E::IntegratedTotal {
            counter: u32v as i32,
            seq: r[7] & 0x1F,
            cy: b(8),
            ca: b(9),
            iv: b(10),
        },
        M_EP_TA_1 | M_EP_TD_1 => E::ProtectionEvent {
            event: dp,
            quality: qdp,
            elapsed: Cp16Time2a(u16v),
        },
        M_EP_TB_1 | M_EP_TE_1 => E::ProtectionStartEvents {
            events: r[7] & 0x3F,
            quality: qdp,
            duration: Cp16Time2a(u16v),
        },
        M_EP_TC_1 | M_EP_TF_1 => E::ProtectionOutputCircuits {
            circuits: r[7] & 0x0F,
            quality: qdp,
            operating_time: Cp16Time2a(u16v),
        },
        M_PS_NA_1 => E::PackedSinglePoints {
            status: u16v,
            changed: u16::from_le_bytes([r[3], r[4]]),
            quality: qds,
        },
        M_ME_ND_1 => E::NormalizedNoQuality { value: i16v },
        M_EI_NA_1 => E::EndOfInit {
            cause: r[7] & 0x7F,
            local_change: b(0),
        },
        C_SC_NA_1 | C_SC_TA_1 => E::SingleCommand {
            value: b(0),
            qu: r[7] & 0x1F,
            select: b(8),
        },
        C_DC_NA_1 | C_DC_TA_1 => E::DoubleCommand {
            value: dp,
            qu: r[7] & 0x1F,
            select: b(8),
        },
        C_RC_NA_1 | C_RC_TA_1 => E::RegulatingStep {
            value: match r[6] % 4 {
                0 => StepCommand::Invalid0,
                1 => StepCommand::Lower,
                2 => StepCommand::Higher,
                _ => StepCommand::Invalid3,
            },
            qu: r[7] & 0x1F,
            select: b(8),
        },
        C_SE_NA_1 | C_SE_TA_1 => E::SetpointNormalized {
            value: i16v,
            ql: r[7] & 0x7F,
            select: b(8),
        },
        C_SE_NB_1 | C_SE_TB_1 => E::SetpointScaled {
            value: i16v,
            ql: r[7] & 0x7F,
            select: b(8),
        },
        C_SE_NC_1 | C_SE_TC_1 => E::SetpointFloat {
            value: finite(u32v),
            ql: r[7] & 0x7F,
            select: b(8),
        },
        C_BO_NA_1 | C_BO_TA_1 => E::Bitstring32Command { value: u32v },
        C_IC_NA_1 => E::Interrogation { qoi: r[7] },
        C_CI_NA_1 => E::CounterInterrogation {
            rqt: r[7] & 0x3F,
            frz: r[8] & 0x03,
        },
        C_RD_NA_1 => E::Read,
        C_CS_NA_1 => E::ClockSync { time: time56(r) },
        C_TS_NA_1 => E::Test { pattern: u16v },
        C_RP_NA_1 => E::ResetProcess { qrp: r[7] },
        C_CD_NA_1 => E::DelayAcquisition {
            delay: Cp16Time2a(u16v),
        },
        C_TS_TA_1 => E::TestWithTime { counter: u16v },
        P_ME_NA_1 => E::ParameterNormalized {
            value: i16v,
            qpm: r[7],
        },
        P_ME_NB_1 => E::ParameterScaled {
            value: i16v,
            qpm: r[7],
        },
        P_ME_NC_1 => E::ParameterFloat {
            value: finite(u32v),
            qpm: r[7],
        },
        P_AC_NA_1 => E::ParameterActivation { qpa: r[7] },
    }
}

/// Any bit pattern the CP56 fields can carry (not necessarily a valid date).
fn time56(r: &[u8; 16]) -> Cp56Time2a {
    Cp56Time2a {
        millis: u16::from_le_bytes([r[9], r[10]]),
        minute: r[11] & 0x3F,
        hour: r[12] & 0x1F,
        day: r[13] & 0x1F,
        weekday: r[13] >> 5,
        month: r[14] & 0x0F,
        year: r[15] & 0x7F,
        invalid: r[11] & 0x80 != 0,
        summer_time: r[12] & 0x80 != 0,
    }
}

fn tag(tid: TypeId, r: &[u8; 16]) -> Option<TimeTag> {
    match tid.time_tag() {
        TimeTagKind::None => None,
        TimeTagKind::Cp24 => Some(TimeTag::Cp24(time56(r).into())),
        TimeTagKind::Cp56 => Some(TimeTag::Cp56(time56(r))),
    }
}

fn sizes_strategy() -> impl Strategy<Value = AsduSizes> {
    (1u8..=2, 1u8..=2, 1u8..=3).prop_map(|(c, a, i)| AsduSizes::from_octets(c, a, i).unwrap())
}

prop_compose! {
    fn arb_asdu()(
        sizes in sizes_strategy(),
        t in 0..TypeId::ALL.len(),
        sq in any::<bool>(),
        cause in 0u8..64,
        neg in any::<bool>(),
        test in any::<bool>(),
        oa in any::<u8>(),
        ca in any::<u16>(),
        base in any::<u32>(),
        seeds in proptest::collection::vec(any::<[u8; 16]>(), 1..20),
    ) -> (AsduSizes, Asdu) {
        let tid = TypeId::ALL[t];
        let max = sizes.max_ioa();
        let base = base & max;
        let ca = match sizes.ca { CaSize::One => ca & 0xFF, CaSize::Two => ca };
        let oa = match sizes.cot { CotSize::One => 0, CotSize::Two => oa };
        let objects = seeds
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let ioa = if sq {
                    base.wrapping_add(i as u32) & max
                } else {
                    u32::from_le_bytes([r[0], r[3], r[15], 0]) & max
                };
                InformationObject { ioa: Ioa(ioa), element: element(tid, r), time: tag(tid, r) }
            })
            .collect();
        let asdu = Asdu {
            type_id: tid,
            sq,
            cot: Cot { cause: Cause::new(cause).unwrap(), negative: neg, test, originator: oa },
            common_address: CommonAddress(ca),
            objects,
        };
        (sizes, asdu)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip((sizes, asdu) in arb_asdu()) {
        match asdu.encode(&sizes) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= MAX_ASDU_LEN);
                let back = Asdu::decode(&bytes, &sizes).unwrap();
                prop_assert_eq!(&back, &asdu);
                // and through an I frame
                let frame = encode_i_frame(SeqNum::new(7), SeqNum::new(9), &asdu, &sizes).unwrap();
                prop_assert_eq!(decode_apdu(&frame, &sizes).unwrap().asdu, Some(asdu));
            }
            // the only legitimate refusals for generated input
            Err(AsduError::TooLong(_)) | Err(AsduError::NotSequential) => {}
            Err(e) => prop_assert!(false, "unexpected encode error {e}"),
        }
    }

    #[test]
    fn decode_arbitrary_never_panics(
        sizes in sizes_strategy(),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(asdu) = Asdu::decode(&bytes, &sizes) {
            // what decodes re-encodes and decodes to the same thing
            let again = asdu.encode(&sizes).unwrap();
            let back = Asdu::decode(&again, &sizes).unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{asdu:?}"));
        }
        let _ = parse_frame(&bytes);
        let _ = decode_apdu(&bytes, &sizes);
    }
}

#[test]
fn value_helpers() {
    let sp = E::SinglePoint {
        value: true,
        quality: Quality::IV | Quality::NT,
    };
    assert_eq!(sp.numeric_value(), Some(1.0));
    assert_eq!(sp.quality().codes(), vec!["iv", "nt"]);
    let n = E::Normalized {
        value: -16384,
        quality: Quality::GOOD,
    };
    assert_eq!(n.numeric_value(), Some(-0.5));
    let it = E::IntegratedTotal {
        counter: -5,
        seq: 0,
        cy: true,
        ca: false,
        iv: true,
    };
    assert_eq!(it.numeric_value(), Some(-5.0));
    assert!(it.quality().invalid());
    assert_eq!(E::Interrogation { qoi: 20 }.numeric_value(), None);

    let t = cp56();
    let obj = InformationObject::with_cp56(Ioa(1), sp, t);
    assert_eq!(obj.timestamp_ms(), Some(1_709_214_312_345));
    let bad = InformationObject::with_cp56(Ioa(1), sp, Cp56Time2a { invalid: true, ..t });
    assert_eq!(bad.timestamp_ms(), None);
    assert_eq!(InformationObject::new(Ioa(1), sp).timestamp_ms(), None);

    #[cfg(feature = "tokio")]
    {
        let p = Point::float(Ioa(5), 1.5, Quality::GOOD).with_time(t);
        assert_eq!(p.type_id, TypeId::M_ME_TF_1);
        assert_eq!(p.time, Some(TimeTag::Cp56(t)));
        assert!(Point::new(p.type_id, p.ioa, p.element, p.time).is_ok());
    }
    for tid in TypeId::ALL {
        if let Some(tagged) = tid.with_cp56() {
            assert_eq!(tagged.time_tag(), TimeTagKind::Cp56, "{tid}");
            if tid.time_tag() == TimeTagKind::None {
                assert_eq!(tagged.without_time(), *tid, "{tid}");
            }
        }
    }
}
