//! Identities and shards shared by the families that find rows by identity or by
//! source key (profiles, series).
//!
//! An [`Identity`] is one record's (or file's) identity as trimmed text parts. An index
//! of identities and keys is split into [`SHARDS`] identity shards and as many key
//! shards by a stable hash ([`fnv1a64`], [`Shard::of_identity`], [`Shard::of_key`]),
//! so that a file needs only the few shards its identities and key fall in; a shard's
//! file is `identity/<xx>.json` or `key/<xx>.json` under the index's directory.

use std::fmt;

/// Number of identity shards (and of key shards).
pub const SHARDS: u16 = 256;

/// The identity of one profile: its identity variables' values as text, whitespace
/// trimmed (`"2902093 "` and `"2902093"` are the same platform).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(Vec<String>);

impl Identity {
    /// Builds an identity from its parts (trimmed).
    pub fn new<S: AsRef<str>>(parts: &[S]) -> Self {
        Self(
            parts
                .iter()
                .map(|p| p.as_ref().trim().to_string())
                .collect(),
        )
    }

    /// The parts, trimmed.
    pub fn parts(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Text of a numeric identity part: integers without a decimal point.
pub fn number_text(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// 64-bit FNV-1a: a fixed, documented hash (the same in every build and process, unlike
/// std's randomized hasher), so shard names stay valid across runs and versions.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .into_iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// One shard of an index: which part of it, and its number below [`SHARDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shard {
    /// Profiles whose identity hashes to this number: identity → row and key.
    Identity(u16),
    /// Keys that hash to this number: key → rows (and their identities).
    Key(u16),
}

impl Shard {
    /// The shard of an identity: its parts hashed, each followed by `0xff` (a byte no
    /// UTF-8 text holds, so `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn of_identity(identity: &Identity) -> Self {
        let bytes = identity
            .0
            .iter()
            .flat_map(|part| part.bytes().chain(std::iter::once(0xff)));
        Self::Identity(Self::number(fnv1a64(bytes)))
    }

    /// The shard of a source key.
    pub fn of_key(key: &str) -> Self {
        Self::Key(Self::number(fnv1a64(key.bytes())))
    }

    /// The hash's eight bytes folded by XOR, so every bit of it counts.
    fn number(hash: u64) -> u16 {
        let folded = hash.to_le_bytes().iter().fold(0u8, |acc, b| acc ^ b);
        u16::from(folded) % SHARDS
    }

    /// Every shard of an index, identity shards first.
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..SHARDS)
            .map(Shard::Identity)
            .chain((0..SHARDS).map(Shard::Key))
    }

    /// The shard's path relative to the index's directory: `identity/3f.json`.
    pub fn path(&self) -> String {
        match self {
            Shard::Identity(n) => format!("identity/{n:02x}.json"),
            Shard::Key(n) => format!("key/{n:02x}.json"),
        }
    }

    /// Position of the shard in [`Shard::all`].
    pub fn position(&self) -> usize {
        match self {
            Shard::Identity(n) => usize::from(*n),
            Shard::Key(n) => usize::from(SHARDS) + usize::from(*n),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(platform: &str, cycle: u32) -> Identity {
        Identity::new(&[platform.to_string(), cycle.to_string(), "A".to_string()])
    }

    #[test]
    fn numbers_are_identity_text_without_decimals() {
        assert_eq!(number_text(12.0), "12");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(
            Identity::new(&["2902093 ", " 7", "A"]).to_string(),
            "2902093/7/A"
        );
    }

    #[test]
    fn the_hash_and_shards_are_stable() {
        // FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
        // Shard numbers are part of the stored format: they must never change (values
        // computed independently: FNV-1a 64, its eight bytes folded by XOR).
        assert_eq!(Shard::of_key("argo/2902093_prof.nc"), Shard::Key(0x40));
        assert_eq!(
            Shard::of_identity(&Identity::new(&["2902093 ", "1", "A"])),
            Shard::Identity(0xf3)
        );
        assert_eq!(Shard::Identity(0xf3).path(), "identity/f3.json");
        assert_eq!(Shard::Key(10).path(), "key/0a.json");
        assert_ne!(
            Shard::of_identity(&Identity::new(&["ab", "c"])),
            Shard::of_identity(&Identity::new(&["a", "bc"])),
        );
    }

    #[test]
    fn shards_are_evenly_filled() {
        let mut counts = vec![0usize; usize::from(SHARDS)];
        for i in 0..100_000u32 {
            let identity = id(&(5_900_000 + i / 100).to_string(), i % 100 + 1);
            counts[Shard::of_identity(&identity).position()] += 1;
        }
        let mean = 100_000 / usize::from(SHARDS);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            *max < mean * 3 / 2 && *min > mean / 2,
            "{min}..{max} around {mean}"
        );
    }
}
