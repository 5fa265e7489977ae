//! The store's time axis as the handlers see it: values read chunk by chunk on demand.

use std::cell::RefCell;
use std::collections::HashMap;

use zru_handlers::gridded::{AxisReadError, TimeAxis};

use crate::store::Transaction;

/// Reads the time coordinate (as staged in the transaction) one chunk at a time,
/// caching what it read.
pub struct StoreTimeAxis<'s> {
    tx: &'s Transaction<'s>,
    name: String,
    len: u64,
    chunk_len: u64,
    cache: RefCell<HashMap<u64, Vec<f64>>>,
}

impl<'s> StoreTimeAxis<'s> {
    /// The axis of array `name`, or an empty axis if the store has no such array.
    pub fn new(tx: &'s Transaction<'s>, name: &str) -> Self {
        let doc = tx.array_doc(name);
        let len = doc
            .and_then(|d| d.shape().ok())
            .and_then(|s| s.first().copied())
            .unwrap_or(0);
        let chunk_len = doc
            .and_then(|d| d.chunk_shape().ok())
            .and_then(|s| s.first().copied())
            .unwrap_or(1)
            .max(1);
        Self {
            tx,
            name: name.to_string(),
            len,
            chunk_len,
            cache: RefCell::new(HashMap::new()),
        }
    }
}

impl TimeAxis for StoreTimeAxis<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn value(&self, index: u64) -> Result<f64, AxisReadError> {
        let chunk = index / self.chunk_len;
        let offset = (index % self.chunk_len) as usize;
        if let Some(values) = self.cache.borrow().get(&chunk) {
            if let Some(v) = values.get(offset) {
                return Ok(*v);
            }
        }
        let start = chunk * self.chunk_len;
        let count = self.chunk_len.min(self.len.saturating_sub(start));
        let error = |message: String| AxisReadError { index, message };
        let values = self
            .tx
            .read(&self.name, &[start], &[count])
            .map_err(|e| error(e.to_string()))?
            .to_f64_vec()
            .map_err(|e| error(e.to_string()))?;
        let value = values
            .get(offset)
            .copied()
            .ok_or_else(|| error("index beyond the axis".into()))?;
        self.cache.borrow_mut().insert(chunk, values);
        Ok(value)
    }
}
