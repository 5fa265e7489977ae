//! When a message the updater could not apply comes back.
//!
//! SQS makes a received message visible again only when its visibility timeout ends;
//! the queue's timeout (5400 s in the template) is sized for the longest invocation,
//! so a failed message left alone would block its FIFO group for 90 minutes per
//! receive. The updater sets each failed receipt's visibility itself
//! (`ChangeMessageVisibility`) from the failure's class:
//!
//! - permanent (a retry cannot succeed: a file that is not NetCDF, a key no dataset
//!   takes): straight to the dead-letter queue;
//! - transient (a download, a lock timeout, a ledger PUT): visible again after an
//!   exponential backoff, `base * 2^(receive - 1)` capped at `cap`, and dead-lettered
//!   on the queue's last allowed receive.
//!
//! FIFO: SQS delivers no message of a group while an earlier one is in flight, so
//! every message of a group that goes back to the queue waits as long as the group's
//! longest delay ([`group_delays`]).

use std::collections::HashMap;
use std::time::Duration;

use crate::pipeline::queue::Retry;

/// SQS refuses a visibility timeout over 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Exponential backoff of transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed receive.
    pub base: Duration,
    /// Longest delay (at most [`MAX_VISIBILITY`]).
    pub cap: Duration,
}

impl Default for Backoff {
    /// 60 s doubling up to 30 minutes: with the template's 5 receives, a message that
    /// keeps failing reaches the dead-letter queue after about 15 minutes.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(1800),
        }
    }
}

impl Backoff {
    /// The delay after the `receive_count`-th receive failed (1 for the first).
    pub fn delay(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(20);
        self.base
            .saturating_mul(1 << doublings)
            .min(self.cap)
            .min(MAX_VISIBILITY)
    }
}

/// What becomes of one failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Copied to the dead-letter queue with its reason, then deleted.
    DeadLetter,
    /// Left in the queue, visible again after this delay.
    RetryAfter(Duration),
}

/// The decision for a failed message: its class (`retry`), how many times it was
/// received, the queue's redrive limit, and whether there is a dead-letter queue.
/// Without one, even a permanent failure can only wait (the longest delay).
pub fn disposition(
    retry: Retry,
    receive_count: u32,
    max_receive_count: Option<u32>,
    has_dead_letter_queue: bool,
    backoff: &Backoff,
) -> Disposition {
    let last = max_receive_count.is_some_and(|max| receive_count >= max);
    match retry {
        Retry::Never if has_dead_letter_queue => Disposition::DeadLetter,
        Retry::Never => Disposition::RetryAfter(backoff.cap.min(MAX_VISIBILITY)),
        Retry::After(_) if last && has_dead_letter_queue => Disposition::DeadLetter,
        Retry::After(_) => Disposition::RetryAfter(backoff.delay(receive_count)),
    }
}

/// The visibility timeout of every message going back to the queue: `returning` is
/// (index, group, own delay) for each. A group's messages all wait as long as its
/// longest delay (an earlier message in flight blocks the group anyway).
pub fn group_delays(returning: &[(usize, &str, Duration)]) -> Vec<(usize, Duration)> {
    let mut longest: HashMap<&str, Duration> = HashMap::new();
    for (_, group, delay) in returning {
        let entry = longest.entry(group).or_default();
        *entry = (*entry).max(*delay);
    }
    returning
        .iter()
        .map(|(index, group, _)| (*index, longest[group]))
        .collect()
}

/// Seconds for `ChangeMessageVisibility`.
pub fn visibility_seconds(delay: Duration) -> i32 {
    delay.min(MAX_VISIBILITY).as_secs() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn backoff() -> Backoff {
        Backoff {
            base: 10 * SECOND,
            cap: 100 * SECOND,
        }
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_the_cap() {
        let b = backoff();
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 100, 100]);
        assert_eq!(b.delay(0), 10 * SECOND);
        assert_eq!(b.delay(u32::MAX), 100 * SECOND);
        let huge = Backoff {
            base: 3600 * SECOND,
            cap: Duration::from_secs(u64::MAX / 2),
        };
        assert_eq!(huge.delay(30), MAX_VISIBILITY);
        let default = Backoff::default();
        assert_eq!(default.delay(1), 60 * SECOND);
        assert_eq!(default.delay(4), 480 * SECOND);
    }

    #[test]
    fn permanent_goes_to_the_dead_letter_queue_transient_waits_until_its_last_receive() {
        let b = backoff();
        let transient = Retry::After(SECOND);
        assert_eq!(
            disposition(Retry::Never, 1, Some(5), true, &b),
            Disposition::DeadLetter
        );
        assert_eq!(
            disposition(transient, 1, Some(5), true, &b),
            Disposition::RetryAfter(10 * SECOND)
        );
        assert_eq!(
            disposition(transient, 3, Some(5), true, &b),
            Disposition::RetryAfter(40 * SECOND)
        );
        assert_eq!(
            disposition(transient, 5, Some(5), true, &b),
            Disposition::DeadLetter
        );
        // No dead-letter queue: everything waits, a permanent failure the longest.
        assert_eq!(
            disposition(Retry::Never, 1, None, false, &b),
            Disposition::RetryAfter(100 * SECOND)
        );
        assert_eq!(
            disposition(transient, 9, None, false, &b),
            Disposition::RetryAfter(100 * SECOND)
        );
    }

    #[test]
    fn a_group_waits_as_long_as_its_longest_delay() {
        let delays = group_delays(&[
            (0, "s3://b/sst", 10 * SECOND),
            (1, "s3://b/argo", 20 * SECOND),
            (3, "s3://b/sst", 40 * SECOND),
        ]);
        assert_eq!(
            delays,
            [(0, 40 * SECOND), (1, 20 * SECOND), (3, 40 * SECOND)]
        );
        assert_eq!(visibility_seconds(40 * SECOND), 40);
        assert_eq!(visibility_seconds(Duration::from_secs(99_999)), 43_200);
    }
}
