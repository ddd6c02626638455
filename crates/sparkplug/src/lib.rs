//! A Sparkplug B 3.0 edge node (Eclipse Sparkplug specification 3.0), without I/O.
//!
//! - [`payload`]: the Sparkplug B protobuf messages as hand-written `prost` structs (the
//!   schema's field numbers; no build-time `protoc`).
//! - [`topic`]: `spBv1.0/<group>/<type>/<edge_node>[/<device>]` and `spBv1.0/STATE/<host>`,
//!   with validated ids.
//! - [`edge`]: the edge node state machine: births, DATA with aliases, seq, bdSeq, rebirth,
//!   primary host gating, historical replay, DCMD writes.
//! - [`quality`]: a value's flags as the metric property `Quality`.
//!
//! The mqtt-client runs [`edge::EdgeNode`] for a device with `payload_format: sparkplug`;
//! what that guarantees on the wire is documented there (docs/sparkplug.md).

pub mod edge;
pub mod payload;
pub mod quality;
pub mod topic;

pub use edge::{
    Action, BdSeq, DeviceSpec, EdgeNode, Message, MetricRef, MetricSpec, NodeSpec, Origin, Phase,
    Qos, Write,
};
pub use payload::{DataType, Metric, MetricValue, Payload};
pub use topic::{Id, IdError, MessageType, StateTopic, Topic};
