//! Conformance suites run against every backend (see `docs/testing.md`): the queue
//! (`queue`, with `sqs`: the trait over a live SQS queue) and the store backends
//! (`store`), with `moto`: the emulator their AWS runs use.

// Suite helpers are test code outside `#[test]` functions: they may unwrap and print
// (clippy.toml allows that only inside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]
#![allow(dead_code)]

pub mod moto;
pub mod queue;
pub mod sqs;
pub mod store;

/// Runs each of a suite's `cases` against `backend`, printing each one's time.
pub fn run_cases<B, F: Fn(&B)>(suite: &str, backend_name: &str, backend: &B, cases: &[(&str, F)]) {
    for (name, case) in cases {
        let started = std::time::Instant::now();
        case(backend);
        eprintln!(
            "{suite} conformance: {backend_name} {name} ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
}
