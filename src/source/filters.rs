//! The HDF5 filter pipeline of a netCDF-4 chunk, undone in Rust: deflate (zlib), byte
//! shuffle and the Fletcher-32 checksum, the filters netCDF-C writes.
//!
//! A chunk is stored with its dataset's filters applied in pipeline order; decoding runs
//! them backwards, skipping those the chunk's filter mask marks as not applied. Any
//! surprise (a stream that does not inflate, a checksum that does not match, a decoded
//! size other than the chunk's) is `None` from [`decode`]: the caller then reads through
//! netCDF-C, which decodes or reports the error exactly as before. [`check`] runs the
//! same pipeline over a chunk that is copied compressed (passthrough) and says what is
//! wrong with it ([`ChunkDamage`]), since nothing else would decode it.

use std::borrow::Cow;

use flate2::{Decompress, FlushDecompress, Status};

/// One filter of a dataset's pipeline that zru decodes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// zlib-wrapped deflate (HDF5 filter 1).
    Deflate,
    /// Byte shuffle of elements of this many bytes (HDF5 filter 2).
    Shuffle(usize),
    /// Fletcher-32 checksum appended to the chunk (HDF5 filter 3).
    Fletcher32,
}

/// Why a stored chunk does not decode: the file's bytes are damaged (bit rot, a bad
/// copy or upload) although its HDF5 metadata reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkDamage {
    /// zlib rejects the stream: a bad header, an invalid deflate block or an Adler-32
    /// checksum that does not match the inflated bytes.
    #[error("its deflate stream does not inflate ({0})")]
    Inflate(String),
    /// The stream stops before its end.
    #[error("its deflate stream is cut short ({stored} bytes stored)")]
    Truncated {
        /// The chunk's stored bytes.
        stored: usize,
    },
    /// The stream inflates to far more than the chunk holds.
    #[error("its deflate stream inflates to more than {limit} bytes")]
    TooLong {
        /// The bytes inflated before giving up.
        limit: usize,
    },
    /// The trailing Fletcher-32 checksum does not match.
    #[error("its Fletcher-32 checksum does not match")]
    Checksum,
    /// The decoded chunk is not the chunk's size.
    #[error("it decodes to {got} bytes, not the chunk's {want}")]
    Size {
        /// Bytes decoded.
        got: usize,
        /// Bytes of one chunk (its elements times their width).
        want: usize,
    },
}

/// Decodes one stored chunk: `filters` in pipeline order, `mask` the chunk's filter
/// mask (bit i set: filter i was not applied), `size` the decoded chunk's bytes.
pub(crate) fn decode(raw: Vec<u8>, filters: &[Filter], mask: u32, size: usize) -> Option<Vec<u8>> {
    undo(Cow::Owned(raw), filters, mask, size, true)
        .ok()
        .map(Cow::into_owned)
}

/// Checks that a stored chunk decodes to `size` bytes (arguments as [`decode`]) without
/// keeping its values: the deflate stream inflates, with its Adler-32 checksum, and the
/// Fletcher-32 checksum matches. Byte shuffle keeps the length, so it is not undone.
pub(crate) fn check(
    raw: &[u8],
    filters: &[Filter],
    mask: u32,
    size: usize,
) -> Result<(), ChunkDamage> {
    undo(Cow::Borrowed(raw), filters, mask, size, false).map(drop)
}

/// Runs the pipeline backwards over a stored chunk (shuffle only if `unshuffle`).
fn undo<'a>(
    raw: Cow<'a, [u8]>,
    filters: &[Filter],
    mask: u32,
    size: usize,
    unshuffle_too: bool,
) -> Result<Cow<'a, [u8]>, ChunkDamage> {
    let mut data = raw;
    for (i, filter) in filters.iter().enumerate().rev() {
        if i < 32 && mask & (1 << i) != 0 {
            continue;
        }
        data = match *filter {
            Filter::Deflate => Cow::Owned(inflate(&data, size)?),
            Filter::Shuffle(width) if unshuffle_too => Cow::Owned(unshuffle(&data, width)),
            Filter::Shuffle(_) => data,
            Filter::Fletcher32 => Cow::Owned(strip_checksum(data.into_owned())?),
        };
    }
    if data.len() != size {
        return Err(ChunkDamage::Size {
            got: data.len(),
            want: size,
        });
    }
    Ok(data)
}

/// Inflates a zlib stream of about `size` bytes (a checksum filter earlier in the
/// pipeline adds a few); more than twice that is not this chunk's data.
fn inflate(input: &[u8], size: usize) -> Result<Vec<u8>, ChunkDamage> {
    let limit = size.saturating_mul(2).saturating_add(4096);
    let mut out = Vec::with_capacity(size + 16);
    let mut inflater = Decompress::new(true);
    loop {
        let consumed = inflater.total_in() as usize;
        let before = out.len();
        let status = inflater
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Finish)
            .map_err(|e| ChunkDamage::Inflate(e.to_string()))?;
        match status {
            Status::StreamEnd => return Ok(out),
            _ if out.len() == out.capacity() && out.len() < limit => {
                out.reserve(out.len().min(limit - out.len()).max(64))
            }
            _ if out.len() == before && inflater.total_in() as usize == consumed => {
                return Err(if out.len() >= limit {
                    ChunkDamage::TooLong { limit }
                } else {
                    ChunkDamage::Truncated {
                        stored: input.len(),
                    }
                });
            }
            _ => {}
        }
    }
}

/// Undoes HDF5's byte shuffle: the stream holds byte 0 of every element, then byte 1,
/// ...; bytes past the last whole element are stored as they are.
pub(crate) fn unshuffle(data: &[u8], width: usize) -> Vec<u8> {
    let count = data.len() / width.max(1);
    if width <= 1 || count <= 1 {
        return data.to_vec();
    }
    let mut out = vec![0u8; data.len()];
    for (byte, plane) in data[..count * width].chunks_exact(count).enumerate() {
        for (element, &b) in plane.iter().enumerate() {
            out[element * width + byte] = b;
        }
    }
    out[count * width..].copy_from_slice(&data[count * width..]);
    out
}

/// Checks and removes the trailing Fletcher-32 checksum (stored little-endian; HDF5
/// also accepts the byte order written by its 1.6 releases).
fn strip_checksum(mut data: Vec<u8>) -> Result<Vec<u8>, ChunkDamage> {
    let body = data.len().checked_sub(4).ok_or(ChunkDamage::Checksum)?;
    let mut tail = [0u8; 4];
    tail.copy_from_slice(&data[body..]);
    let stored = u32::from_le_bytes(tail);
    data.truncate(body);
    let sum = fletcher32(&data);
    let [a, b, c, d] = sum.to_le_bytes();
    let old_order = u32::from_le_bytes([b, a, d, c]);
    if stored == sum || stored == old_order {
        Ok(data)
    } else {
        Err(ChunkDamage::Checksum)
    }
}

/// HDF5's Fletcher-32 over 16-bit big-endian words (an odd last byte is the high byte
/// of a last word), sums folded every 360 words.
pub(crate) fn fletcher32(data: &[u8]) -> u32 {
    let fold = |x: u32| (x & 0xffff) + (x >> 16);
    let (mut sum1, mut sum2) = (0u32, 0u32);
    let even = data.len() & !1;
    let odd = data.get(even).copied();
    for block in data[..even].chunks(720) {
        for word in block.chunks_exact(2) {
            sum1 = sum1.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
            sum2 = sum2.wrapping_add(sum1);
        }
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    if let Some(byte) = odd {
        sum1 = sum1.wrapping_add(u32::from(byte) << 8);
        sum2 = sum2.wrapping_add(sum1);
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    (fold(sum2) << 16) | fold(sum1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn shuffle(data: &[u8], width: usize) -> Vec<u8> {
        let count = data.len() / width;
        let mut out = Vec::with_capacity(data.len());
        for byte in 0..width {
            out.extend((0..count).map(|e| data[e * width + byte]));
        }
        out.extend_from_slice(&data[count * width..]);
        out
    }

    #[test]
    fn unshuffle_inverts_the_shuffle_and_keeps_a_ragged_tail() {
        let data: Vec<u8> = (0..23).collect();
        for width in [1, 2, 4, 8] {
            assert_eq!(unshuffle(&shuffle(&data, width), width), data, "{width}");
        }
    }

    #[test]
    fn fletcher32_of_known_inputs() {
        // Worked by hand: words 0x6162, 0x6364, then the odd byte 0x65 as 0x6500.
        let sum1 = 0x6162 + 0x6364 + 0x6500;
        let sum2 = 0x6162 + (0x6162 + 0x6364) + sum1;
        let fold = |x: u32| (x & 0xffff) + (x >> 16);
        assert_eq!(fletcher32(b"abcde"), (fold(sum2) << 16) | fold(sum1));
        assert_eq!(fletcher32(b""), 0);
    }

    #[test]
    fn the_pipeline_runs_backwards_and_honours_the_mask() {
        let plain: Vec<u8> = (0..4000u32)
            .flat_map(|i| (i as u16).to_le_bytes())
            .collect();
        let shuffled = shuffle(&plain, 2);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        z.write_all(&shuffled).unwrap();
        let mut stored = z.finish().unwrap();
        stored.extend_from_slice(&fletcher32(&stored).to_le_bytes());
        let filters = [Filter::Shuffle(2), Filter::Deflate, Filter::Fletcher32];
        assert_eq!(
            decode(stored.clone(), &filters, 0, plain.len()),
            Some(plain.clone())
        );
        // A damaged checksum or a wrong size is left to netCDF-C.
        let mut bad = stored.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode(bad, &filters, 0, plain.len()), None);
        assert_eq!(decode(stored, &filters, 0, plain.len() + 2), None);
        // Mask bit 1: deflate was skipped for this chunk.
        let mut unzipped = shuffled.clone();
        unzipped.extend_from_slice(&fletcher32(&shuffled).to_le_bytes());
        assert_eq!(decode(unzipped, &filters, 0b010, plain.len()), Some(plain));
    }

    #[test]
    fn check_says_what_is_wrong_with_a_damaged_chunk() {
        let plain: Vec<u8> = (0..4000u32)
            .flat_map(|i| ((i * 7) as u16).to_le_bytes())
            .collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        z.write_all(&shuffle(&plain, 2)).unwrap();
        let stored = z.finish().unwrap();
        let filters = [Filter::Shuffle(2), Filter::Deflate];
        let n = plain.len();
        assert_eq!(check(&stored, &filters, 0, n), Ok(()));
        // One byte flipped in the deflate stream; in its Adler-32 trailer.
        let mut flipped = stored.clone();
        flipped[stored.len() / 2] ^= 0xff;
        assert!(
            matches!(
                check(&flipped, &filters, 0, n),
                Err(ChunkDamage::Inflate(_))
            ),
            "{:?}",
            check(&flipped, &filters, 0, n)
        );
        let mut trailer = stored.clone();
        *trailer.last_mut().unwrap() ^= 1;
        let Err(ChunkDamage::Inflate(why)) = check(&trailer, &filters, 0, n) else {
            panic!("a bad Adler-32 passed");
        };
        assert!(why.contains("data check"), "{why}");
        // Cut short.
        let cut = &stored[..stored.len() - 10];
        assert_eq!(
            check(cut, &filters, 0, n),
            Err(ChunkDamage::Truncated {
                stored: stored.len() - 10
            })
        );
        // A whole stream of another size; unfiltered bytes of another size.
        assert_eq!(
            check(&stored, &filters, 0, n + 2),
            Err(ChunkDamage::Size {
                got: n,
                want: n + 2
            })
        );
        assert_eq!(
            check(&plain[1..], &[], 0, n),
            Err(ChunkDamage::Size {
                got: n - 1,
                want: n
            })
        );
        // A stream of far more than the chunk.
        assert_eq!(
            check(&stored, &filters, 0, 100),
            Err(ChunkDamage::TooLong { limit: 4296 })
        );
        // With Fletcher-32 (not a passthrough layout), the checksum is checked too.
        let mut checked = stored.clone();
        checked.extend_from_slice(&fletcher32(&stored).to_le_bytes());
        let with_sum = [Filter::Shuffle(2), Filter::Deflate, Filter::Fletcher32];
        assert_eq!(check(&checked, &with_sum, 0, n), Ok(()));
        let mut bad_sum = checked.clone();
        *bad_sum.last_mut().unwrap() ^= 1;
        assert_eq!(check(&bad_sum, &with_sum, 0, n), Err(ChunkDamage::Checksum));
    }
}
