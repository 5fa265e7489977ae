//! [`Region`]: the index ranges an event wrote or blanked, per dimension.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Index range `[start, stop)` per dimension that an event wrote or blanked, ordered by
/// dimension name. Serialised as the plain map (`{"time": [3, 5]}`), shown as
/// `time[3:5]` (dimensions separated by spaces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Region(BTreeMap<String, [u64; 2]>);

impl Region {
    /// The range `[start, stop)` of one dimension.
    pub fn along(dim: &str, start: u64, stop: u64) -> Self {
        Self(BTreeMap::from([(dim.to_string(), [start, stop])]))
    }

    /// The range `[start, stop)` of `dim`, if the region has it.
    pub fn range(&self, dim: &str) -> Option<[u64; 2]> {
        self.0.get(dim).copied()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (dim, [start, stop])) in self.0.iter().enumerate() {
            let space = if i == 0 { "" } else { " " };
            write!(f, "{space}{dim}[{start}:{stop}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_and_serialises_like_the_map_it_replaces() {
        let region = Region::along("time", 3, 5);
        assert_eq!(region.to_string(), "time[3:5]");
        assert_eq!(serde_json::to_string(&region).unwrap(), r#"{"time":[3,5]}"#);
        let two: Region = serde_json::from_str(r#"{"b":[0,1],"a":[2,4]}"#).unwrap();
        assert_eq!(two.to_string(), "a[2:4] b[0:1]");
        assert_eq!(two.range("a"), Some([2, 4]));
    }
}
