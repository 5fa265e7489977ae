//! `zru adopt`: bringing the files behind a store that `xarray.to_zarr` (or any tool
//! before zru) wrote under zru's management, without rewriting data.
//!
//! Per dataset, under the store's lock: the updater records each key as the source of
//! the slots its file's times occupy ([`crate::update::Updater::adopt_batch`]), then
//! the ledger records the file's event as applied, so a later removal or revision of
//! the key finds its slots and `zru watch` does not enqueue the file again.

use super::event::ObjectEvent;
use super::ledger::{Ledger, LedgerEntry};
use super::lock::StoreLock;
use super::report::Report;
use super::{FlushOptions, PipelineError};
use crate::update::{Event, Updater};

/// Adopts files (their created events), one report per event in order.
pub fn adopt(
    updater: &Updater,
    events: Vec<ObjectEvent>,
    options: &FlushOptions,
) -> Result<Vec<Report>, PipelineError> {
    let mut reports: Vec<Option<Report>> = vec![None; events.len()];
    for dataset in &updater.catalog.datasets {
        let mine: Vec<usize> = (0..events.len())
            .filter(|&i| {
                updater
                    .catalog
                    .route(&events[i].key)
                    .is_ok_and(|d| d.name() == dataset.name())
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let _lock = StoreLock::acquire(&options.lock_dir, &dataset.location, options.lock_timeout)?;
        let mut ledger = Ledger::load_for(dataset)?;
        let batch: Vec<Event> = mine.iter().map(|&i| events[i].update_event()).collect();
        for (&i, outcome) in mine.iter().zip(updater.adopt_batch(&batch)) {
            let report = Report::from_outcome(outcome);
            if !report.failed() {
                let event = &events[i];
                ledger.record(
                    &event.key,
                    LedgerEntry {
                        kind: event.kind,
                        order: event.order(0),
                        etag: event.etag.clone(),
                        version_id: event.version_id.clone(),
                        action: report.action.to_string(),
                        region: report.region.clone(),
                    },
                );
            }
            reports[i] = Some(report);
        }
        ledger.save()?;
    }
    // Events no dataset takes: the updater's own rejection names the reason.
    let unrouted: Vec<usize> = (0..events.len())
        .filter(|&i| reports[i].is_none())
        .collect();
    let batch: Vec<Event> = unrouted.iter().map(|&i| events[i].update_event()).collect();
    for (&i, outcome) in unrouted.iter().zip(updater.adopt_batch(&batch)) {
        reports[i] = Some(Report::from_outcome(outcome));
    }
    Ok(reports.into_iter().flatten().collect())
}
