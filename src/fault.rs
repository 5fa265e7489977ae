//! Fault injection for crash tests.
//!
//! With `ZRU_FAULT_KILL_AT=k` in the environment, the process sends itself SIGKILL
//! right after its k-th durable write: a store key written or erased (local or S3
//! store: the store's storage is wrapped while a fault is armed), the ledger saved, or
//! queue messages acknowledged. Without the variable, [`point`] returns at once. The
//! crash test runs `zru flush` with k = 1, 2, ... and checks that a restart ends with
//! the same store as a clean run.
//!
//! With `ZRU_FAULT_PANIC_ON_KEY=KEY`, staging the event of object `KEY` panics after
//! its first data write: the test that no input can crash the process (the panic must
//! become that event's rejection, rolled back, and the rest of the batch go on).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms the fault.
pub const KILL_AT_ENV: &str = "ZRU_FAULT_KILL_AT";

static WRITES: AtomicU64 = AtomicU64::new(0);

fn kill_at() -> Option<u64> {
    static KILL_AT: OnceLock<Option<u64>> = OnceLock::new();
    *KILL_AT.get_or_init(|| {
        std::env::var(KILL_AT_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The environment variable that names the key whose staging panics.
pub const PANIC_ON_KEY_ENV: &str = "ZRU_FAULT_PANIC_ON_KEY";

/// Panics if `key` is the one named by [`PANIC_ON_KEY_ENV`].
pub fn panic_point(key: &str) {
    static PANIC_ON: OnceLock<Option<String>> = OnceLock::new();
    let armed = PANIC_ON.get_or_init(|| std::env::var(PANIC_ON_KEY_ENV).ok());
    if armed.as_deref() == Some(key) {
        panic!("injected panic ({PANIC_ON_KEY_ENV})");
    }
}

/// True if a fault is armed (the variable is set to a number).
pub fn armed() -> bool {
    kill_at().is_some()
}

/// Marks the end of one durable write; kills the process if it is the armed one.
pub fn point() {
    let Some(limit) = kill_at() else {
        return;
    };
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if n == limit {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
