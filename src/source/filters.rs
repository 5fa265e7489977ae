//! The HDF5 filter pipeline of a netCDF-4 chunk, undone in Rust: deflate (zlib), byte
//! shuffle and the Fletcher-32 checksum, the filters netCDF-C writes.
//!
//! A chunk is stored with its dataset's filters applied in pipeline order; decoding runs
//! them backwards, skipping those the chunk's filter mask marks as not applied. Any
//! surprise (a stream that does not inflate, a checksum that does not match, a decoded
//! size other than the chunk's) is `None`: the caller then reads through netCDF-C,
//! which decodes or reports the error exactly as before.

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

/// Decodes one stored chunk: `filters` in pipeline order, `mask` the chunk's filter
/// mask (bit i set: filter i was not applied), `size` the decoded chunk's bytes.
pub(crate) fn decode(raw: Vec<u8>, filters: &[Filter], mask: u32, size: usize) -> Option<Vec<u8>> {
    let mut data = raw;
    for (i, filter) in filters.iter().enumerate().rev() {
        if i < 32 && mask & (1 << i) != 0 {
            continue;
        }
        data = match *filter {
            Filter::Deflate => inflate(&data, size)?,
            Filter::Shuffle(width) => unshuffle(&data, width),
            Filter::Fletcher32 => strip_checksum(data)?,
        };
    }
    (data.len() == size).then_some(data)
}

/// Inflates a zlib stream of about `size` bytes (a checksum filter earlier in the
/// pipeline adds a few); more than twice that is not this chunk's data.
fn inflate(input: &[u8], size: usize) -> Option<Vec<u8>> {
    let limit = size.saturating_mul(2).saturating_add(4096);
    let mut out = Vec::with_capacity(size + 16);
    let mut inflater = Decompress::new(true);
    loop {
        let consumed = inflater.total_in() as usize;
        let before = out.len();
        let status = inflater
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Finish)
            .ok()?;
        match status {
            Status::StreamEnd => return Some(out),
            _ if out.len() == out.capacity() && out.len() < limit => {
                out.reserve(out.len().min(limit - out.len()).max(64))
            }
            _ if out.len() == before && inflater.total_in() as usize == consumed => return None,
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
fn strip_checksum(mut data: Vec<u8>) -> Option<Vec<u8>> {
    let body = data.len().checked_sub(4)?;
    let stored = u32::from_le_bytes(data[body..].try_into().ok()?);
    data.truncate(body);
    let sum = fletcher32(&data);
    let [a, b, c, d] = sum.to_le_bytes();
    let old_order = u32::from_le_bytes([b, a, d, c]);
    (stored == sum || stored == old_order).then_some(data)
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
}
