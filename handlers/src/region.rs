//! Index ranges along the append dimension.

use std::fmt;

/// A half-open range `[start, stop)` of indices along the append dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexRange {
    pub start: u64,
    pub stop: u64,
}

impl IndexRange {
    pub fn new(start: u64, stop: u64) -> Self {
        debug_assert!(start <= stop);
        Self { start, stop }
    }

    pub fn len(&self) -> u64 {
        self.stop - self.start
    }

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
    fn empty_input_gives_no_ranges() {
        assert!(ranges_from_indices(&[]).is_empty());
    }
}
