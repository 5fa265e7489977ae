//! The plan every family's planning returns: where each of a file's records goes along
//! the append dimension, and how long the dimension is before and after the file.
//!
//! Gridded placement ([`crate::gridded::Placement`]) and profile row planning
//! ([`crate::profiles::RowPlan`]) both extend it with what only they know (times,
//! stale rows); a family locating records by something else returns one too.

use crate::IndexRange;

/// Where a file's records go along the append dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendPlan {
    /// Store index of each of the file's records, in the file's order.
    pub indices: Vec<u64>,
    /// Length of the append dimension before the file.
    pub old_len: u64,
    /// Length of the append dimension after the file.
    pub new_len: u64,
}

impl AppendPlan {
    /// Whether the file grows the append dimension.
    pub fn appends(&self) -> bool {
        self.new_len > self.old_len
    }

    /// Whether the file writes an index the store already had.
    pub fn overwrites(&self) -> bool {
        self.overwritten() > 0
    }

    /// Number of the file's records written over existing indices.
    pub fn overwritten(&self) -> usize {
        self.indices.iter().filter(|&&i| i < self.old_len).count()
    }

    /// Number of indices the file adds.
    pub fn appended(&self) -> u64 {
        self.new_len - self.old_len
    }

    /// New indices that no record of the file covers (blank, e.g. a gap in time).
    pub fn gap_slots(&self) -> Vec<u64> {
        (self.old_len..self.new_len)
            .filter(|i| !self.indices.contains(i))
            .collect()
    }

    /// Smallest range holding every index the file writes.
    pub fn region(&self) -> IndexRange {
        let start = self.indices.iter().copied().min().unwrap_or(self.old_len);
        let stop = self.indices.iter().copied().max().map_or(start, |m| m + 1);
        IndexRange::new(start, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_overwrites_appends_and_gaps() {
        let plan = AppendPlan {
            indices: vec![1, 5, 3],
            old_len: 3,
            new_len: 6,
        };
        assert!(plan.appends() && plan.overwrites());
        assert_eq!((plan.overwritten(), plan.appended()), (1, 3));
        assert_eq!(plan.gap_slots(), vec![4]);
        assert_eq!(plan.region(), IndexRange::new(1, 6));
        let empty = AppendPlan {
            old_len: 2,
            new_len: 2,
            ..Default::default()
        };
        assert_eq!(empty.region(), IndexRange::new(2, 2));
    }
}
