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
//! become that event's rejection, rolled back, and the rest of the batch go on). With
//! `ZRU_FAULT_ABORT_ON_KEY=KEY` the process aborts there instead, as a crash inside a
//! reader library would: the test that one such file does not take its batch down.
//!
//! Two store faults that do not kill, for the chaos test: with
//! `ZRU_FAULT_IO_ERROR_AFTER=k` the k-th and every later write or erase of a store key
//! fails without writing, with the error a full disk gives (`ENOSPC`); with
//! `ZRU_FAULT_READ_ONLY=1` every one fails with the error of a read-only filesystem
//! (`EROFS`). Both are what a flaky disk or a remounted volume does to a batch half-way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms the fault.
pub const KILL_AT_ENV: &str = "ZRU_FAULT_KILL_AT";

static WRITES: AtomicU64 = AtomicU64::new(0);

/// The number an environment variable holds, if it is set to one.
fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn kill_at() -> Option<u64> {
    static KILL_AT: OnceLock<Option<u64>> = OnceLock::new();
    *KILL_AT.get_or_init(|| env_number(KILL_AT_ENV))
}

/// The environment variable that names the key whose staging panics.
pub const PANIC_ON_KEY_ENV: &str = "ZRU_FAULT_PANIC_ON_KEY";

/// The environment variable that names the key whose staging aborts the process (as
/// a crash in a reader library would: no unwinding, no cleanup).
pub const ABORT_ON_KEY_ENV: &str = "ZRU_FAULT_ABORT_ON_KEY";

/// Panics if `key` is the one named by [`PANIC_ON_KEY_ENV`]; aborts the process if it
/// is the one named by [`ABORT_ON_KEY_ENV`].
pub(crate) fn panic_point(key: &str) {
    static PANIC_ON: OnceLock<Option<String>> = OnceLock::new();
    static ABORT_ON: OnceLock<Option<String>> = OnceLock::new();
    let panic_on = PANIC_ON.get_or_init(|| std::env::var(PANIC_ON_KEY_ENV).ok());
    if panic_on.as_deref() == Some(key) {
        panic!("injected panic ({PANIC_ON_KEY_ENV})");
    }
    let abort_on = ABORT_ON.get_or_init(|| std::env::var(ABORT_ON_KEY_ENV).ok());
    if abort_on.as_deref() == Some(key) {
        // The process aborts next: this line is all the crash test sees of the reason.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("injected abort ({ABORT_ON_KEY_ENV})");
        }
        std::process::abort();
    }
}

/// The environment variable that makes store writes fail from the k-th on (disk full).
pub const IO_ERROR_AFTER_ENV: &str = "ZRU_FAULT_IO_ERROR_AFTER";

/// The environment variable that makes every store write fail (read-only filesystem).
pub const READ_ONLY_ENV: &str = "ZRU_FAULT_READ_ONLY";

static STORE_WRITES: AtomicU64 = AtomicU64::new(0);

fn io_error_after() -> Option<u64> {
    static AFTER: OnceLock<Option<u64>> = OnceLock::new();
    *AFTER.get_or_init(|| env_number(IO_ERROR_AFTER_ENV))
}

fn read_only() -> bool {
    static READ_ONLY: OnceLock<bool> = OnceLock::new();
    *READ_ONLY
        .get_or_init(|| std::env::var(READ_ONLY_ENV).is_ok_and(|v| !matches!(v.trim(), "" | "0")))
}

/// True if a fault is armed (a kill point, or failing store writes).
pub(crate) fn armed() -> bool {
    kill_at().is_some() || io_error_after().is_some() || read_only()
}

/// The error an armed store fault gives the write about to happen, if any: counts
/// the store writes attempted by this process.
pub(crate) fn store_write_error() -> Option<std::io::Error> {
    const EROFS: i32 = 30;
    const ENOSPC: i32 = 28;
    if read_only() {
        return Some(std::io::Error::from_raw_os_error(EROFS));
    }
    let after = io_error_after()?;
    let n = STORE_WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    (n >= after).then(|| std::io::Error::from_raw_os_error(ENOSPC))
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
