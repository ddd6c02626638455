//! Simulated field devices, for `fieldbridge demo` and the benchmarks: they stand in for the
//! meters and RTUs of a substation on a development machine. Not for production use.
//! Behind the `demo` feature of the fieldbridge crate (docs/architecture.md).
//!
//! - [`modbus`]: a Modbus TCP server with a register bank and a simulated energy meter.
//! - [`rtu`]: a feeder RTU (an IEC 104 outstation, the iec60870 crate's controlled station).

pub mod modbus;
pub mod rtu;
