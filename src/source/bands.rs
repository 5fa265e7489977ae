//! Reading a variable in bands, so that a store can encode one band while netCDF-C
//! inflates the next.
//!
//! A band is a range of rows along one axis of the variable. Bands end on the store's
//! chunk boundaries along that axis (or at the variable's end), so each band covers
//! whole chunks and no chunk is encoded twice. The file is read in pieces that are whole
//! rows of the *file's* chunks, so netCDF-C never inflates a compressed chunk twice; a
//! [`BandAssembler`] joins pieces into bands when the two chunkings differ.

use std::ops::Range;

use crate::values::{Values, ValuesError};

/// Rows `[start, start + rows)` along `axis` of a variable, every other axis whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub axis: usize,
    pub start: u64,
    pub rows: u64,
    /// C-ordered values of the band.
    pub values: Values,
}

/// How one variable is split into bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandPlan {
    /// The axis bands run along: the first axis longer than one whose preceding axes
    /// all have length one, so a band is a contiguous run of the C-ordered values.
    pub axis: usize,
    /// Length of that axis.
    pub len: u64,
    /// Rows read from the file at a time: whole rows of the file's chunks.
    pub piece: u64,
    /// Bands end on multiples of this (the store's chunk length along the axis).
    pub align: u64,
}

impl BandPlan {
    /// Plans the bands of a variable of `shape`, stored with chunks `store_chunks` and
    /// chunked in the file as `file_chunks` (`None`: contiguous). `None` when the
    /// variable is one band anyway (no axis to split, or one store chunk along it) or
    /// empty (an axis of length zero, such as Argo's `N_HISTORY`: no values to band).
    pub fn new(shape: &[u64], store_chunks: &[u64], file_chunks: Option<&[u64]>) -> Option<Self> {
        if shape.contains(&0) {
            return None;
        }
        let axis = shape.iter().position(|&len| len > 1)?;
        let len = shape[axis];
        let align = store_chunks.get(axis).copied().filter(|&c| c > 0)?;
        if align >= len {
            return None;
        }
        let file_rows = file_chunks
            .and_then(|c| c.get(axis).copied())
            .filter(|&c| c > 0)
            .unwrap_or(align);
        // Enough whole file-chunk rows to fill at least one store chunk row.
        let piece = file_rows * align.div_ceil(file_rows);
        if piece >= len {
            return None;
        }
        Some(Self {
            axis,
            len,
            piece,
            align,
        })
    }

    /// The row ranges read from the file, in order.
    pub fn pieces(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        (0..self.len)
            .step_by(self.piece as usize)
            .map(|start| start..(start + self.piece).min(self.len))
    }
}

/// Joins pieces read in order into bands that end on the plan's alignment.
#[derive(Debug)]
pub struct BandAssembler {
    plan: BandPlan,
    /// Elements per row (product of the axes after the band axis).
    row_len: usize,
    pending: Option<Values>,
    pending_start: u64,
    pending_rows: u64,
}

impl BandAssembler {
    pub fn new(plan: BandPlan, row_len: u64) -> Self {
        Self {
            plan,
            row_len: row_len as usize,
            pending: None,
            pending_start: 0,
            pending_rows: 0,
        }
    }

    /// Adds the next piece (`rows` rows); returns the band completed by it, if any.
    pub fn push(&mut self, piece: Values, rows: u64) -> Result<Option<Band>, ValuesError> {
        match &mut self.pending {
            Some(pending) => pending.append(piece)?,
            None => self.pending = Some(piece),
        }
        self.pending_rows += rows;
        let end = self.pending_start + self.pending_rows;
        let band_end = if end >= self.plan.len {
            end
        } else {
            end / self.plan.align * self.plan.align
        };
        if band_end <= self.pending_start {
            return Ok(None);
        }
        let band_rows = band_end - self.pending_start;
        let Some(mut values) = self.pending.take() else {
            return Ok(None);
        };
        let rest = values.split_off(band_rows as usize * self.row_len);
        let band = Band {
            axis: self.plan.axis,
            start: self.pending_start,
            rows: band_rows,
            values,
        };
        self.pending_start = band_end;
        self.pending_rows -= band_rows;
        self.pending = (self.pending_rows > 0).then_some(rest);
        Ok(Some(band))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_variable_is_not_banded() {
        // Argo's HISTORY_* variables: [N_HISTORY = 0, N_PROF]; a plan would split
        // rows out of no values.
        assert_eq!(BandPlan::new(&[0, 234], &[1, 10], None), None);
        assert_eq!(BandPlan::new(&[234, 0], &[10, 1], Some(&[5, 1])), None);
        assert!(BandPlan::new(&[1, 234], &[1, 10], None).is_some());
    }

    fn rows(values: &Values) -> Vec<i16> {
        match values {
            Values::I16(v) => v.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Reads a (1, len, 2) variable whose element (0, r, c) is r, in the plan's pieces.
    fn bands_of(plan: BandPlan) -> Vec<Band> {
        let mut assembler = BandAssembler::new(plan, 2);
        let mut bands = Vec::new();
        for piece in plan.pieces() {
            let values: Vec<i16> = piece.clone().flat_map(|r| [r as i16, r as i16]).collect();
            let rows = piece.end - piece.start;
            if let Some(band) = assembler.push(Values::I16(values), rows).unwrap() {
                bands.push(band);
            }
        }
        bands
    }

    #[test]
    fn file_chunks_smaller_than_store_chunks_are_joined() {
        let plan = BandPlan::new(&[1, 4500, 2], &[1, 1000, 2], Some(&[1, 500, 2])).unwrap();
        assert_eq!((plan.axis, plan.piece, plan.align), (1, 1000, 1000));
        let bands = bands_of(plan);
        let spans: Vec<(u64, u64)> = bands.iter().map(|b| (b.start, b.rows)).collect();
        assert_eq!(
            spans,
            [
                (0, 1000),
                (1000, 1000),
                (2000, 1000),
                (3000, 1000),
                (4000, 500)
            ]
        );
        assert_eq!(rows(&bands[4].values)[0], 4000);
        assert_eq!(rows(&bands[4].values).len(), 1000);
    }

    #[test]
    fn misaligned_file_chunks_carry_rows_over() {
        // File rows of 1500, store chunks of 1000: bands end on multiples of 1000.
        let plan = BandPlan::new(&[1, 4500, 2], &[1, 1000, 2], Some(&[1, 1500, 2])).unwrap();
        assert_eq!(plan.piece, 1500);
        let bands = bands_of(plan);
        let spans: Vec<(u64, u64)> = bands.iter().map(|b| (b.start, b.rows)).collect();
        assert_eq!(spans, [(0, 1000), (1000, 2000), (3000, 1500)]);
        for band in &bands {
            let values = rows(&band.values);
            assert_eq!(values.len() as u64, band.rows * 2);
            assert_eq!(values[0] as u64, band.start);
            assert_eq!(*values.last().unwrap() as u64, band.start + band.rows - 1);
        }
    }

    #[test]
    fn contiguous_files_are_read_one_store_chunk_row_at_a_time() {
        let plan = BandPlan::new(&[1, 250, 7], &[1, 100, 7], None).unwrap();
        assert_eq!(
            plan.pieces().collect::<Vec<_>>(),
            [0..100, 100..200, 200..250]
        );
    }

    #[test]
    fn several_times_are_split_along_time() {
        let plan = BandPlan::new(&[5, 20, 30], &[1, 20, 30], Some(&[1, 20, 30])).unwrap();
        assert_eq!((plan.axis, plan.piece, plan.align), (0, 1, 1));
        assert_eq!(plan.pieces().count(), 5);
    }

    #[test]
    fn one_store_chunk_or_no_long_axis_is_one_band() {
        assert_eq!(BandPlan::new(&[1, 500, 600], &[1, 500, 600], None), None);
        assert_eq!(BandPlan::new(&[1, 1, 1], &[1, 1, 1], None), None);
        // The whole variable is one file chunk: no split saves anything.
        assert_eq!(
            BandPlan::new(&[1, 4500, 6000], &[1, 1000, 1000], Some(&[1, 4500, 6000])),
            None
        );
    }
}
