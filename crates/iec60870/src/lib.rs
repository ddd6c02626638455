//! A panic-free IEC 60870-5-104 stack.
//!
//! Layers (each usable on its own):
//! - [`asdu`]: the ASDU model ([`Asdu`], [`InformationObject`], [`InformationElement`]) and its
//!   codec, with configurable field sizes ([`AsduSizes`], default COT 2 / CA 2 / IOA 3).
//! - [`apci`]: APCI framing of I, S and U frames ([`parse_frame`], [`Frame`], [`decode_apdu`]).
//! - [`link`]: the sans-IO link state machine ([`Link`], [`LinkConfig`]) with the k/w windows
//!   and t1/t2/t3 timers on the monotonic clock.
//! - [`time`]: CP56Time2a (UTC, years 2000-2099 for the two-digit year), CP24Time2a, CP16Time2a.
//! - [`master`]: the tokio controlling station ([`spawn_master`], [`MasterHandle`],
//!   [`MasterEvent`]).
//! - [`outstation`]: the tokio controlled station ([`spawn_outstation`], [`PointDb`],
//!   [`CommandHandler`]).
//! - [`decode`]: protocol logging levels ([`DecodeLevel`]: off / APCI / ASDU / hex).
//!
//! Every decoder returns a `Result`; nothing received from the network can panic.

pub mod apci;
pub mod asdu;
pub mod cursor;
pub mod decode;
pub mod link;
pub mod master;
pub mod outstation;
mod session;
pub mod time;
pub mod types;

pub use apci::{
    decode_apdu, encode_i_frame, parse_frame, Apdu, ApduError, Frame, FrameError, SeqNum, UFunction,
};
pub use asdu::{
    Asdu, AsduError, InformationElement, InformationObject, StepCommand, TimeTag, MAX_ASDU_LEN,
};
pub use decode::DecodeLevel;
pub use link::{ApciParams, Link, LinkConfig, LinkError, LinkEvent, LinkState, Role, SendError};
pub use master::{
    spawn_master, CommandResult, MasterConfig, MasterError, MasterEvent, MasterHandle,
};
pub use outstation::{
    spawn_outstation, CommandHandler, CommandRequest, OutstationConfig, OutstationHandle, Point,
    PointDb,
};
pub use time::{Cp16Time2a, Cp24Time2a, Cp56Time2a, TimeError};
pub use types::{
    AsduSizes, CaSize, Cause, CommonAddress, Cot, CotSize, DoublePointValue, Ioa, IoaSize, Quality,
    TimeTagKind, TypeId,
};
