//! The order in which a batch's events are handed to the updater: removals first,
//! then created files by the first instant on their append coordinate, so a batch
//! appends day 2 before day 3 whatever order they arrived in (without a `time_step`,
//! day 3 first would make day 2 a rejected insertion).
//!
//! Removals and creations of different keys commute (a removal blanks only the
//! slots still holding its key), and a batch holds one event per key, so this order
//! gives the store the same content as arrival order.

use std::path::Path;

use zru_handlers::cf_time::TimeUnits;

use super::queue::Message;
use crate::config::Dataset;
use crate::source::SourceFile;
use crate::update::EventKind;

/// Seconds since the Unix epoch of a file's first append-coordinate value, if it
/// can be read (a file that cannot be read sorts last and is rejected when applied).
pub fn first_instant(dataset: &Dataset, path: &Path) -> Option<f64> {
    let source = SourceFile::open(path).ok()?;
    let variable = source.variable(&dataset.config.append_dim)?;
    let (units, calendar) = variable.time_units();
    let units = TimeUnits::parse(units?, calendar).ok()?;
    let values = source.read(&variable.name).ok()?.to_f64_vec().ok()?;
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .reduce(f64::min)
        .map(|v| units.to_unix_seconds(v))
}

/// Removals in arrival order, then creations by first instant (ties by arrival).
pub fn order_for_store(dataset: &Dataset, raw_root: &Path, messages: Vec<Message>) -> Vec<Message> {
    let (removals, creations): (Vec<Message>, Vec<Message>) = messages
        .into_iter()
        .partition(|m| m.event.kind == EventKind::Removed);
    let mut keyed: Vec<(f64, Message)> = creations
        .into_iter()
        .map(|m| {
            let instant = first_instant(dataset, &raw_root.join(&m.event.key));
            (instant.unwrap_or(f64::INFINITY), m)
        })
        .collect();
    keyed.sort_by(|(a, ma), (b, mb)| a.total_cmp(b).then(ma.id.cmp(&mb.id)));
    let mut ordered = removals;
    ordered.sort_by_key(|m| m.id);
    ordered.extend(keyed.into_iter().map(|(_, m)| m));
    ordered
}
