//! Helpers shared by the fieldbridge integration tests (`mod common;` in each test that uses
//! them; not every test uses every helper).
#![allow(dead_code)]

pub mod bus;
pub mod peer;
