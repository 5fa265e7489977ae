//! Sending events to the queue. A key that would escape the raw root or that no
//! dataset takes, and an event time more than an hour in the future, are refused here
//! (reported `rejected`), never enqueued.

use super::event::{now_us, ObjectEvent};
use super::queue::{NewMessage, Queue, QueueError, Sent};
use super::raw_file::non_canonical_key;
use super::report::{Report, ReportAction, SkipReason};
use crate::config::Catalog;
use crate::update::check_key;

/// Enqueues events in order; one report per event (`enqueued`, `skipped(duplicate)`
/// for a deduplicated one, `rejected` for a refused key).
pub fn enqueue(
    catalog: &Catalog,
    queue: &dyn Queue,
    events: Vec<ObjectEvent>,
) -> Result<Vec<Report>, QueueError> {
    let mut reports: Vec<Report> = Vec::with_capacity(events.len());
    let mut messages = Vec::new();
    let mut slots = Vec::new();
    let now = now_us();
    for event in events {
        let routed = check_key(&event.key)
            .map_err(|e| e.to_string())
            .and_then(|_| non_canonical_key(&event.key).map_or(Ok(()), Err))
            .and_then(|_| event.future_time_error(now).map_or(Ok(()), Err))
            .and_then(|_| catalog.route(&event.key).map_err(|e| e.to_string()));
        match routed {
            Ok(dataset) => {
                let report = Report {
                    sequencer: event.sequencer.clone(),
                    ..Report::new(
                        &event.key,
                        event.kind,
                        Some(dataset.name()),
                        ReportAction::Enqueued,
                    )
                };
                slots.push(reports.len());
                reports.push(report);
                messages.push(NewMessage {
                    group: dataset.name().to_string(),
                    dedup_id: event.dedup_id(),
                    event,
                });
            }
            Err(reason) => reports.push(
                Report::new(&event.key, event.kind, None, ReportAction::Rejected)
                    .with_reason(reason),
            ),
        }
    }
    for (slot, sent) in slots.into_iter().zip(queue.send(&messages)?) {
        let report = &mut reports[slot];
        match sent {
            Sent::Enqueued(id) => report.message_id = Some(id),
            Sent::Duplicate => {
                report.action = ReportAction::Skipped(SkipReason::Duplicate);
                report.reason = Some(format!(
                    "{}: sent again within the deduplication window",
                    report.key
                ));
            }
        }
    }
    Ok(reports)
}
