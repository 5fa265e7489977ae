//! Gridded time series: where a file's times go on the store's time axis.
//!
//! The store's time axis is strictly increasing and never holds duplicates. A file's
//! times either match existing slots (overwrite), lie after the end (append), or, with
//! a regular `time_step`, land on a blank slot inside the axis (fill). Anything else
//! would break the order and is rejected.
//!
//! The time tolerance never lets two times share a slot: the file's consecutive times
//! must be more than twice the tolerance apart, a time must be within the tolerance of
//! at most one store slot, and with a step the tolerance must be under half the step.
//! Such files or configurations are rejected, never matched approximately.

use thiserror::Error;

use crate::AppendPlan;

/// Read access to the store's time axis, in the store's units.
///
/// Implementations may do I/O (a chunk read per call): [`place_times`] calls
/// [`TimeAxis::value`] O(log n) times per file time, never once per slot.
pub trait TimeAxis {
    /// Number of slots on the axis (the store's length along its time dimension).
    fn len(&self) -> u64;
    /// Time of slot `index` (`index < len()`), in the store's units; an error if it
    /// cannot be read.
    fn value(&self, index: u64) -> Result<f64, AxisReadError>;
    /// Whether the axis has no slot yet (a new store).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An I/O failure reported by a [`TimeAxis`] implementation.
#[derive(Debug, Error)]
#[error("cannot read the store's time axis at index {index}: {message}")]
pub struct AxisReadError {
    /// The slot whose time could not be read.
    pub index: u64,
    /// What went wrong (the store's own error, as text).
    pub message: String,
}

/// Placement rules from the dataset configuration, in the store's time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementRules {
    /// Regular spacing of the axis: every instant has a slot.
    pub time_step: Option<f64>,
    /// Two times closer than this are the same instant.
    pub tolerance: f64,
    /// Most slots one file may add to the axis (its own times and the gap before
    /// them): bounds the allocation of a file dated absurdly far ahead.
    pub max_new_slots: u64,
}

/// Default of [`PlacementRules::max_new_slots`].
pub const DEFAULT_MAX_NEW_SLOTS: u64 = 10_000_000;

/// Why a file's times cannot be placed on the store's time axis ([`place_times`]).
///
/// Times are in the store's units; positions count the file's times from 0, indices
/// the store's slots from 0. Every variant but [`PlacementError::Axis`] is about the
/// file or the configuration; `Axis` is a failure to read the store.
#[derive(Debug, Error)]
pub enum PlacementError {
    /// The file has no time values along the append dimension.
    #[error("the file has no time values along the append dimension")]
    NoTimes,
    /// A file time is NaN or infinite.
    #[error("time value #{position} of the file is not finite ({value})")]
    NotFinite {
        /// Position of the time in the file.
        position: usize,
        /// The time.
        value: f64,
    },
    /// A file time is not greater than the one before it.
    #[error(
        "the file's times are not strictly increasing (#{position}: {value} after {previous})"
    )]
    FileNotIncreasing {
        /// Position of the time in the file.
        position: usize,
        /// The time.
        value: f64,
        /// The time at `position - 1`.
        previous: f64,
    },
    /// A file time lies before the store's first time (by more than the tolerance):
    /// it would need a slot in front of slot 0.
    #[error(
        "time {value} is before the store's first time {first}: prepending would shift every index and is not supported"
    )]
    BeforeStart {
        /// The file's time.
        value: f64,
        /// The time of the store's slot 0 (with a step and an empty store, the file's
        /// first time).
        first: f64,
    },
    /// With a `time_step`: a file time is farther than the tolerance from the nearest
    /// grid slot.
    #[error(
        "time {value} is not on the store's time step grid (nearest slot {index} holds {slot})"
    )]
    OffGrid {
        /// The file's time.
        value: f64,
        /// The nearest grid slot.
        index: u64,
        /// That slot's time on the grid.
        slot: f64,
    },
    /// Without a `time_step`: a file time falls inside the store's range but matches
    /// no slot, so it would have to be inserted between two slots.
    #[error(
        "time {value} is not in the store and falls before its last time {last}: inserting it would break the increasing order of the time axis (set time_step to allow filling slots)"
    )]
    BreaksOrder {
        /// The file's time.
        value: f64,
        /// The time of the store's last slot.
        last: f64,
    },
    /// Two consecutive file times are at most twice the tolerance apart, so both could
    /// match one slot.
    #[error(
        "times #{position} ({value}) and #{previous_position} ({previous}) of the file are not more than twice the time tolerance ({tolerance}) apart, so both could match one slot: lower time_tolerance in the dataset's configuration"
    )]
    TimesTooClose {
        /// Position of the later time in the file.
        position: usize,
        /// The later time.
        value: f64,
        /// Position of the earlier time (`position - 1`).
        previous_position: usize,
        /// The earlier time.
        previous: f64,
        /// The configured tolerance.
        tolerance: f64,
    },
    /// Without a `time_step`: a file time is within the tolerance of two adjacent store
    /// slots (the store's own times are closer than twice the tolerance).
    #[error(
        "time {value} is within the time tolerance ({tolerance}) of two store slots, {first} ({first_time}) and {second} ({second_time}): lower time_tolerance in the dataset's configuration"
    )]
    AmbiguousSlot {
        /// The file's time.
        value: f64,
        /// The configured tolerance.
        tolerance: f64,
        /// The lower of the two slots.
        first: u64,
        /// Its time.
        first_time: f64,
        /// The higher of the two slots (`first + 1`).
        second: u64,
        /// Its time.
        second_time: f64,
    },
    /// The configuration's tolerance is not under half its `time_step` (or the step is
    /// not positive): a configuration error, raised for every file.
    #[error(
        "the time tolerance ({tolerance}) is not under half the time step ({step}): two times could match one slot"
    )]
    ToleranceTooLarge {
        /// The configured tolerance.
        tolerance: f64,
        /// The configured step.
        step: f64,
    },
    /// With a `time_step`: a file time lies so far after the store's end that the axis
    /// would grow by more than [`PlacementRules::max_new_slots`] slots.
    #[error(
        "time {value} would add {slots} slots to the store's time axis (at most {max} per file): the time is wrong, or the file must be split"
    )]
    TooManyNewSlots {
        /// The file's time.
        value: f64,
        /// Slots the axis would grow by (a float: it may exceed `u64`).
        slots: f64,
        /// The limit, [`PlacementRules::max_new_slots`].
        max: u64,
    },
    /// The store's time axis could not be read ([`TimeAxis::value`] failed).
    #[error(transparent)]
    Axis(#[from] AxisReadError),
}

/// Where each of a file's times goes: an [`AppendPlan`] (read through `Deref`: the
/// slot of each time, the axis length before and after) and the times.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Store index of each file time, and the axis length before and after the update.
    pub slots: AppendPlan,
    /// The file's times (store units), in the file's order: every slot the file covers
    /// gets its time, so a slot's time does not depend on the order files arrived in.
    pub times: Vec<f64>,
    /// Time values of every new slot `old_len..new_len` (file times and, with a time step,
    /// the computed times of the blank slots between them).
    pub new_slot_times: Vec<f64>,
}

impl std::ops::Deref for Placement {
    type Target = AppendPlan;

    fn deref(&self) -> &AppendPlan {
        &self.slots
    }
}

/// Places a file's times (already converted to store units) on the store's axis.
pub fn place_times(
    axis: &dyn TimeAxis,
    file_times: &[f64],
    rules: PlacementRules,
) -> Result<Placement, PlacementError> {
    check_file_times(file_times, rules.tolerance)?;
    let old_len = axis.len();
    let indices = match rules.time_step {
        Some(step) => place_on_grid(axis, file_times, step, rules)?,
        None => place_by_search(axis, file_times, rules.tolerance)?,
    };
    let new_len = indices
        .iter()
        .map(|&i| i + 1)
        .max()
        .unwrap_or(old_len)
        .max(old_len);
    let new_slot_times = new_slot_times(axis, file_times, &indices, old_len, new_len, rules)?;
    Ok(Placement {
        slots: AppendPlan {
            indices,
            old_len,
            new_len,
        },
        times: file_times.to_vec(),
        new_slot_times,
    })
}

fn check_file_times(file_times: &[f64], tolerance: f64) -> Result<(), PlacementError> {
    if file_times.is_empty() {
        return Err(PlacementError::NoTimes);
    }
    for (position, &value) in file_times.iter().enumerate() {
        if !value.is_finite() {
            return Err(PlacementError::NotFinite { position, value });
        }
        let Some(&previous) = position.checked_sub(1).and_then(|p| file_times.get(p)) else {
            continue;
        };
        if value <= previous {
            return Err(PlacementError::FileNotIncreasing {
                position,
                value,
                previous,
            });
        }
        if value - previous <= 2.0 * tolerance {
            return Err(PlacementError::TimesTooClose {
                position,
                value,
                previous_position: position - 1,
                previous,
                tolerance,
            });
        }
    }
    Ok(())
}

/// Rejects a time that would grow the axis by more than the rules allow.
fn check_growth(value: f64, slots: f64, rules: PlacementRules) -> Result<(), PlacementError> {
    if slots > rules.max_new_slots as f64 {
        return Err(PlacementError::TooManyNewSlots {
            value,
            slots,
            max: rules.max_new_slots,
        });
    }
    Ok(())
}

/// With a regular step the slot is computed from the first time: O(1) per time.
fn place_on_grid(
    axis: &dyn TimeAxis,
    file_times: &[f64],
    step: f64,
    rules: PlacementRules,
) -> Result<Vec<u64>, PlacementError> {
    let tolerance = rules.tolerance;
    if !(step > 0.0 && tolerance < step / 2.0) {
        return Err(PlacementError::ToleranceTooLarge { tolerance, step });
    }
    let first = if axis.is_empty() {
        file_times[0]
    } else {
        axis.value(0)?
    };
    let len = axis.len() as f64;
    file_times
        .iter()
        .map(|&value| {
            if value < first - tolerance {
                return Err(PlacementError::BeforeStart { value, first });
            }
            let position = ((value - first) / step).round().max(0.0);
            check_growth(value, position + 1.0 - len, rules)?;
            let index = position as u64;
            let slot = first + index as f64 * step;
            if (value - slot).abs() > tolerance {
                return Err(PlacementError::OffGrid { value, index, slot });
            }
            Ok(index)
        })
        .collect()
}

/// Without a step: overwrite matching times (binary search), append after the end.
fn place_by_search(
    axis: &dyn TimeAxis,
    file_times: &[f64],
    tolerance: f64,
) -> Result<Vec<u64>, PlacementError> {
    let len = axis.len();
    if len == 0 {
        return Ok((0..file_times.len() as u64).collect());
    }
    let last = axis.value(len - 1)?;
    let first = axis.value(0)?;
    let mut next_new = len;
    file_times
        .iter()
        .map(|&value| {
            if value > last + tolerance {
                next_new += 1;
                return Ok(next_new - 1);
            }
            if value < first - tolerance {
                return Err(PlacementError::BeforeStart { value, first });
            }
            find_slot(axis, value, tolerance)?.ok_or(PlacementError::BreaksOrder { value, last })
        })
        .collect()
}

/// Binary search for the slot whose time equals `value` within `tolerance`; a value
/// within the tolerance of two slots is ambiguous and rejected.
fn find_slot(
    axis: &dyn TimeAxis,
    value: f64,
    tolerance: f64,
) -> Result<Option<u64>, PlacementError> {
    let (mut low, mut high) = (0u64, axis.len());
    while low < high {
        let mid = low + (high - low) / 2;
        let slot = axis.value(mid)?;
        if (slot - value).abs() <= tolerance {
            check_unambiguous(axis, value, tolerance, mid, slot)?;
            return Ok(Some(mid));
        }
        if slot < value {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(None)
}

/// Rejects a match when a neighbour of the matched slot is also within the tolerance
/// (the store's own times closer than twice the tolerance).
fn check_unambiguous(
    axis: &dyn TimeAxis,
    value: f64,
    tolerance: f64,
    index: u64,
    time: f64,
) -> Result<(), PlacementError> {
    let neighbours = [index.checked_sub(1), index.checked_add(1)];
    for other in neighbours.into_iter().flatten().filter(|&i| i < axis.len()) {
        let other_time = axis.value(other)?;
        if (other_time - value).abs() <= tolerance {
            let ((first, first_time), (second, second_time)) = if other < index {
                ((other, other_time), (index, time))
            } else {
                ((index, time), (other, other_time))
            };
            return Err(PlacementError::AmbiguousSlot {
                value,
                tolerance,
                first,
                first_time,
                second,
                second_time,
            });
        }
    }
    Ok(())
}

fn new_slot_times(
    axis: &dyn TimeAxis,
    file_times: &[f64],
    indices: &[u64],
    old_len: u64,
    new_len: u64,
    rules: PlacementRules,
) -> Result<Vec<f64>, PlacementError> {
    if new_len == old_len {
        return Ok(Vec::new());
    }
    let grid = match rules.time_step {
        Some(step) => {
            let first = if axis.is_empty() {
                file_times[0]
            } else {
                axis.value(0)?
            };
            Some((first, step))
        }
        None => None,
    };
    Ok((old_len..new_len)
        .map(|slot| {
            indices
                .iter()
                .position(|&i| i == slot)
                .map(|p| file_times[p])
                .or_else(|| grid.map(|(first, step)| first + slot as f64 * step))
                .unwrap_or(f64::NAN)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::IndexRange;

    struct Axis(Vec<f64>);
    impl TimeAxis for Axis {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn value(&self, index: u64) -> Result<f64, AxisReadError> {
            self.0.get(index as usize).copied().ok_or(AxisReadError {
                index,
                message: "out of range".into(),
            })
        }
    }

    const DAILY: PlacementRules = PlacementRules {
        time_step: Some(1.0),
        tolerance: 1e-3,
        max_new_slots: DEFAULT_MAX_NEW_SLOTS,
    };
    const IRREGULAR: PlacementRules = PlacementRules {
        time_step: None,
        tolerance: 1e-3,
        max_new_slots: DEFAULT_MAX_NEW_SLOTS,
    };

    /// A ship track sampled every 0.99999992 s, in seconds.
    fn one_hertz(n: usize) -> Vec<f64> {
        (0..n).map(|i| 1000.0 + i as f64 * 0.999_999_92).collect()
    }

    #[test]
    fn one_hertz_revision_overwrites_each_time_in_its_own_slot() {
        let times = one_hertz(100);
        let axis = Axis(times.clone());
        // A tolerance of 1 ms separates 1 Hz samples: every time finds its own slot.
        let p = place_times(&axis, &times, IRREGULAR).unwrap();
        assert_eq!(p.indices, (0..100).collect::<Vec<u64>>());
        assert!(!p.appends());
    }

    #[test]
    fn a_tolerance_that_joins_two_file_times_is_rejected() {
        let one_second = PlacementRules {
            tolerance: 1.0,
            ..IRREGULAR
        };
        let err = place_times(&Axis(vec![]), &one_hertz(10), one_second).unwrap_err();
        assert!(
            matches!(err, PlacementError::TimesTooClose { position: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("lower time_tolerance"), "{err}");
        // 1 ms data with the default 1 ms tolerance: rejected; with 0.1 ms: placed.
        let millis: Vec<f64> = (0..50).map(|i| 5.0 + i as f64 * 1e-3).collect();
        assert!(matches!(
            place_times(&Axis(vec![]), &millis, IRREGULAR),
            Err(PlacementError::TimesTooClose { .. })
        ));
        let fine = PlacementRules {
            tolerance: 1e-4,
            ..IRREGULAR
        };
        let axis = Axis(millis.clone());
        let p = place_times(&axis, &millis, fine).unwrap();
        assert_eq!(p.indices, (0..50).collect::<Vec<u64>>());
    }

    #[test]
    fn a_time_near_two_store_slots_is_ambiguous() {
        // A store written with a finer tolerance, read with a coarser one.
        let axis = Axis(vec![10.0, 10.5, 11.0]);
        let coarse = PlacementRules {
            tolerance: 0.3,
            ..IRREGULAR
        };
        let err = place_times(&axis, &[10.26], coarse).unwrap_err();
        assert!(
            matches!(
                err,
                PlacementError::AmbiguousSlot {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_tolerance_of_half_the_step_or_more_is_rejected() {
        let loose = PlacementRules {
            tolerance: 0.5,
            ..DAILY
        };
        assert!(matches!(
            place_times(&Axis(vec![1.0]), &[2.0], loose),
            Err(PlacementError::ToleranceTooLarge { .. })
        ));
    }

    #[test]
    fn a_time_absurdly_far_ahead_is_rejected_before_allocating() {
        let axis = Axis(vec![0.0, 1.0]);
        let err = place_times(&axis, &[1e9], DAILY).unwrap_err();
        assert!(
            matches!(err, PlacementError::TooManyNewSlots { .. }),
            "{err}"
        );
        let tiny_step = PlacementRules {
            time_step: Some(1e-6),
            tolerance: 1e-7,
            ..DAILY
        };
        assert!(matches!(
            place_times(&axis, &[86_400.0], tiny_step),
            Err(PlacementError::TooManyNewSlots { .. })
        ));
        // Up to the bound is fine.
        let small = PlacementRules {
            max_new_slots: 10,
            ..DAILY
        };
        assert_eq!(place_times(&axis, &[11.0], small).unwrap().new_len, 12);
        assert!(place_times(&axis, &[12.0], small).is_err());
    }

    #[test]
    fn every_placement_carries_the_file_times() {
        let axis = Axis(vec![10.0, 11.0]);
        let p = place_times(&axis, &[11.0004, 12.0], DAILY).unwrap();
        assert_eq!(p.times, vec![11.0004, 12.0]);
        assert_eq!(p.indices, vec![1, 2]);
    }

    #[test]
    fn first_file_creates_the_axis() {
        let p = place_times(&Axis(vec![]), &[10.0], DAILY).unwrap();
        assert_eq!(p.indices, vec![0]);
        assert_eq!((p.old_len, p.new_len), (0, 1));
        assert_eq!(p.new_slot_times, vec![10.0]);
    }

    #[test]
    fn existing_time_is_overwritten_and_next_time_appended() {
        let axis = Axis(vec![10.0, 11.0, 12.0]);
        let over = place_times(&axis, &[11.0], IRREGULAR).unwrap();
        assert_eq!(over.indices, vec![1]);
        assert!(!over.appends() && over.overwrites());
        let app = place_times(&axis, &[13.5], IRREGULAR).unwrap();
        assert_eq!(app.indices, vec![3]);
        assert_eq!(app.new_len, 4);
        assert!(app.appends() && !app.overwrites());
    }

    #[test]
    fn gap_with_time_step_creates_blank_slots_that_a_later_file_fills() {
        let axis = Axis(vec![10.0, 11.0]);
        let p = place_times(&axis, &[14.0], DAILY).unwrap();
        assert_eq!(p.indices, vec![4]);
        assert_eq!(p.gap_slots(), vec![2, 3]);
        assert_eq!(p.new_slot_times, vec![12.0, 13.0, 14.0]);
        let filled = Axis(vec![10.0, 11.0, 12.0, 13.0, 14.0]);
        let fill = place_times(&filled, &[12.0], DAILY).unwrap();
        assert_eq!(fill.indices, vec![2]);
        assert!(!fill.appends());
    }

    #[test]
    fn time_inside_the_axis_but_absent_breaks_order_without_a_step() {
        let axis = Axis(vec![10.0, 11.0, 14.0]);
        let err = place_times(&axis, &[12.0], IRREGULAR).unwrap_err();
        assert!(matches!(err, PlacementError::BreaksOrder { .. }), "{err}");
        let before = place_times(&axis, &[2.0], IRREGULAR).unwrap_err();
        assert!(
            matches!(before, PlacementError::BeforeStart { .. }),
            "{before}"
        );
    }

    #[test]
    fn off_grid_and_before_start_are_rejected_with_a_step() {
        let axis = Axis(vec![10.0, 11.0]);
        assert!(matches!(
            place_times(&axis, &[12.5], DAILY),
            Err(PlacementError::OffGrid { .. })
        ));
        assert!(matches!(
            place_times(&axis, &[9.0], DAILY),
            Err(PlacementError::BeforeStart { .. })
        ));
    }

    #[test]
    fn file_times_must_increase() {
        let err = place_times(&Axis(vec![]), &[3.0, 3.0], IRREGULAR).unwrap_err();
        assert!(matches!(err, PlacementError::FileNotIncreasing { .. }));
        assert!(matches!(
            place_times(&Axis(vec![]), &[], IRREGULAR),
            Err(PlacementError::NoTimes)
        ));
        assert!(matches!(
            place_times(&Axis(vec![]), &[f64::NAN], IRREGULAR),
            Err(PlacementError::NotFinite { .. })
        ));
    }

    #[test]
    fn search_reads_logarithmically_many_slots() {
        use std::cell::Cell;
        struct Counting(u64, Cell<u64>);
        impl TimeAxis for Counting {
            fn len(&self) -> u64 {
                self.0
            }
            fn value(&self, index: u64) -> Result<f64, AxisReadError> {
                self.1.set(self.1.get() + 1);
                Ok(index as f64)
            }
        }
        let axis = Counting(100_000, Cell::new(0));
        let p = place_times(&axis, &[54_321.0], IRREGULAR).unwrap();
        assert_eq!(p.indices, vec![54_321]);
        // First and last, the binary search, and the match's two neighbours.
        assert!(axis.1.get() <= 2 + 18 + 2, "read {} slots", axis.1.get());
    }

    #[test]
    fn multi_time_file_can_overwrite_and_append() {
        let axis = Axis(vec![1.0, 2.0]);
        let p = place_times(&axis, &[2.0, 3.0, 4.0], IRREGULAR).unwrap();
        assert_eq!(p.indices, vec![1, 2, 3]);
        assert_eq!(p.region(), IndexRange::new(1, 4));
        assert_eq!(p.new_slot_times, vec![3.0, 4.0]);
    }
}
