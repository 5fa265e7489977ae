//! Index ranges along the append dimension.

use std::fmt;

/// A half-open range `[start, stop)` of indices along the append dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexRange {
    /// First index in the range.
    pub start: u64,
    /// One past the last index; `start <= stop`, equal for an empty range.
    pub stop: u64,
}

impl IndexRange {
    /// The range `[start, stop)`; `start` must not exceed `stop` (checked in debug
    /// builds only).
    pub fn new(start: u64, stop: u64) -> Self {
        debug_assert!(start <= stop);
        Self { start, stop }
    }

    /// Number of indices in the range, `stop - start`.
    pub fn len(&self) -> u64 {
        self.stop - self.start
    }

    /// Whether the range holds no index (`start == stop`).
    pub fn is_empty(&self) -> bool {
        self.start == self.stop
    }
}

impl fmt::Display for IndexRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.stop)
    }
}

/// Groups indices into maximal runs of consecutive values (input need not be sorted).
pub fn ranges_from_indices(indices: &[u64]) -> Vec<IndexRange> {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<IndexRange> = Vec::new();
    for i in sorted {
        match ranges.last_mut() {
            Some(last) if last.stop == i => last.stop = i + 1,
            _ => ranges.push(IndexRange::new(i, i + 1)),
        }
    }
    ranges
}

/// Runs of consecutive store indices in file order: `(first file position, store range)`.
/// `[3, 4, 7, 8, 9]` gives `(0, [3, 5))` and `(2, [7, 10))`.
pub fn runs_by_position(indices: &[u64]) -> Vec<(usize, IndexRange)> {
    let mut runs: Vec<(usize, IndexRange)> = Vec::new();
    for (position, &index) in indices.iter().enumerate() {
        match runs.last_mut() {
            Some((_, range)) if range.stop == index => range.stop += 1,
            _ => runs.push((position, IndexRange::new(index, index + 1))),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_consecutive_indices() {
        let ranges = ranges_from_indices(&[7, 3, 4, 5, 9, 8, 0]);
        assert_eq!(
            ranges,
            vec![
                IndexRange::new(0, 1),
                IndexRange::new(3, 6),
                IndexRange::new(7, 10)
            ]
        );
    }

    #[test]
    fn runs_follow_consecutive_store_indices_in_file_order() {
        assert_eq!(
            runs_by_position(&[3, 4, 7, 8, 9, 1]),
            vec![
                (0, IndexRange::new(3, 5)),
                (2, IndexRange::new(7, 10)),
                (5, IndexRange::new(1, 2))
            ]
        );
    }

    #[test]
    fn empty_input_gives_no_ranges() {
        assert!(ranges_from_indices(&[]).is_empty());
    }
}
