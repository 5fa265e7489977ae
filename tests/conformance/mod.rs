//! Conformance suites run against every backend (see `docs/testing.md`): the queue
//! (`queue`, with `sqs`: the trait over a live SQS queue) and the store backends
//! (`store`), with `moto`: the emulator their AWS runs use.

#![allow(dead_code)]

pub mod moto;
pub mod queue;
pub mod sqs;
pub mod store;
