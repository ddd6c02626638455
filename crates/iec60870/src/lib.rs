//! A panic-free IEC 60870-5-104 stack.
//! (Its place in fieldbridge: docs/architecture.md; it knows nothing of the rest.)
//!
//! Layers (each usable on its own):
//! - [`asdu`]: the ASDU model ([`Asdu`], [`InformationObject`], [`InformationElement`]) and its
//!   codec, with configurable field sizes ([`AsduSizes`], default COT 2 / CA 2 / IOA 3).
//! - [`apci`]: APCI framing of I, S and U frames ([`parse_frame`], [`Frame`], [`decode_apdu`]).
//! - [`link`]: the sans-IO link state machine ([`Link`], [`LinkConfig`]) with the k/w windows
//!   and t1/t2/t3 timers on the monotonic clock.
//! - [`time`]: CP56Time2a (UTC, years 2000-2099 for the two-digit year), CP24Time2a, CP16Time2a.
//! - [`command`]: the sans-IO command procedure ([`Command`], [`CommandSequence`]): direct or
//!   select-before-operate, the deadline checked before every step, ACT_TERM awaited or not.
//! - [`master`] (feature `tokio`, default): the tokio controlling station ([`spawn_master`], [`MasterHandle`],
//!   [`MasterEvent`]).
//! - [`outstation`] (feature `tokio`): the tokio controlled station ([`spawn_outstation`], [`PointDb`],
//!   [`CommandHandler`]).
//! - [`decode`]: protocol logging levels ([`DecodeLevel`]: off / APCI / ASDU / hex).
//!
//! Every decoder returns a `Result`; nothing received from the network can panic.
//!
//! # Master (controlling station)
//!
//! ```no_run
//! use iec60870::*;
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), MasterError> {
//! let mut config = MasterConfig::new(vec!["10.0.0.5:2404".parse().unwrap()]);
//! config.decode_level = DecodeLevel::Apci;
//! let (master, mut events) = spawn_master(config);
//! while let Some(event) = events.recv().await {
//!     match event {
//!         MasterEvent::Active => {
//!             master.general_interrogation(CommonAddress(1)).await?;
//!         }
//!         MasterEvent::Asdu(asdu) => {
//!             for obj in &asdu.objects {
//!                 tracing::info!(type_id = %asdu.type_id, ioa = %obj.ioa, element = ?obj.element);
//!             }
//!         }
//!         MasterEvent::Connected(_) | MasterEvent::Disconnected { .. } => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Outstation (controlled station)
//!
//! ```no_run
//! use iec60870::*;
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> std::io::Result<()> {
//! let mut db = PointDb::new();
//! let value = InformationElement::Float { value: 12.5, quality: Quality::GOOD };
//! db.insert(Point::new(TypeId::M_ME_NC_1, Ioa(200), value, None).expect("valid point"));
//! let config = OutstationConfig::new("0.0.0.0:2404".parse().unwrap(), CommonAddress(1));
//! let outstation = spawn_outstation(config, db, AcceptAll).await?;
//! let update = InformationElement::Float { value: 13.0, quality: Quality::GOOD };
//! let _ = outstation
//!     .update(Point::new(TypeId::M_ME_NC_1, Ioa(200), update, None).expect("valid point"))
//!     .await;
//! # Ok(()) }
//! ```

pub mod apci;
pub mod asdu;
pub mod command;
pub mod cursor;
pub mod decode;
pub mod link;
#[cfg(feature = "tokio")]
pub mod master;
#[cfg(feature = "tokio")]
pub mod outstation;
#[cfg(feature = "tokio")]
mod session;
pub mod time;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod types;

pub use apci::{
    decode_apdu, encode_i_frame, parse_frame, Apdu, ApduError, Frame, FrameError, SeqNum, UFunction,
};
pub use asdu::{
    Asdu, AsduError, InformationElement, InformationObject, StepCommand, TimeTag, MAX_ASDU_LEN,
};
pub use command::{ActTerm, Command, CommandResult, CommandSequence, CommandStep};
pub use decode::DecodeLevel;
pub use link::{
    ApciParams, ConfigError, Link, LinkConfig, LinkError, LinkEvent, LinkState, Role, SendError,
};
#[cfg(feature = "tokio")]
pub use master::{
    command_type, spawn_master, MasterConfig, MasterError, MasterEvent, MasterHandle,
};
#[cfg(feature = "tokio")]
pub use outstation::{
    spawn_outstation, AcceptAll, CommandHandler, CommandRequest, OutstationConfig, OutstationError,
    OutstationHandle, Point, PointDb,
};
pub use time::{Cp16Time2a, Cp24Time2a, Cp56Time2a, TimeError};
pub use types::{
    AsduSizes, BadQualifier, BadSize, CaSize, Cause, CommonAddress, Cot, CotSize, DoublePointValue,
    Ioa, IoaSize, Qds, Quality, TimeTagKind, TypeId, UnknownTypeId,
};
