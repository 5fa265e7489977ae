//! The gridded family's options: `time_step` and `time_tolerance`, read as durations.

use std::sync::Arc;

use serde::Deserialize;
use zru_handlers::cf_time::unit_seconds;

use crate::collection::FamilyOptions;
use crate::config::{DatasetConfig, Problem};

/// Default `time_tolerance` (1 ms): far below the spacing of 1 Hz data, far above the
/// rounding of a time converted between units. See docs/config.md, "Placing files in time".
pub const DEFAULT_TIME_TOLERANCE: &str = "1 millisecond";

/// The keys of a gridded dataset file beyond the common ones.
pub const OPTION_KEYS: &[&str] = &["time_step", "time_tolerance"];

/// The gridded options as written in a dataset file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    /// Regular spacing of the time axis, e.g. `"1 day"`: every instant has a slot.
    #[serde(default)]
    time_step: Option<String>,
    /// Two times closer than this are the same instant (default `"1 millisecond"`).
    #[serde(default)]
    time_tolerance: Option<String>,
}

/// A gridded dataset's parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct GriddedOptions {
    /// Regular spacing of the time axis in seconds (`time_step`), if any.
    pub time_step_seconds: Option<f64>,
    /// Two times closer than this many seconds are the same instant (`time_tolerance`).
    pub time_tolerance_seconds: f64,
}

impl FamilyOptions for GriddedOptions {}

/// Parses and checks the gridded options of a dataset file.
pub(super) fn parse(
    _config: &DatasetConfig,
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>> {
    let written: Written = crate::collection::parse_written(options)?;
    let (time_step_seconds, time_tolerance_seconds) = durations(
        written.time_step.as_deref(),
        written.time_tolerance.as_deref(),
    )?;
    Ok(Arc::new(GriddedOptions {
        time_step_seconds,
        time_tolerance_seconds,
    }))
}

/// The shortest `time_step`: a finer axis would need more slots than zru can hold.
pub const MIN_TIME_STEP_SECONDS: f64 = 1e-3;
/// The longest `time_step` (100 years of 365 days).
pub const MAX_TIME_STEP_SECONDS: f64 = 36_500.0 * 86_400.0;
/// `time_tolerance` must be below one day.
pub const MAX_TIME_TOLERANCE_SECONDS: f64 = 86_400.0;

/// A duration such as `"1 day"` in seconds, or what is wrong with it.
fn duration_seconds(text: &str) -> Result<f64, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [count, unit] = parts.as_slice() else {
        return Err(format!(
            "{text:?} is not \"<number> <unit>\" (e.g. \"1 day\", \"6 hours\")"
        ));
    };
    let count: f64 = count
        .parse()
        .map_err(|_| format!("{count:?} in {text:?} is not a number"))?;
    let unit = unit_seconds(unit).ok_or_else(|| {
        format!(
            "{unit:?} in {text:?} is not a unit (microseconds, milliseconds, seconds, minutes, hours, days, weeks)"
        )
    })?;
    if count.is_nan() {
        return Err(format!("{text:?} is not a number (NaN)"));
    }
    if count < 0.0 {
        return Err(format!("{text:?} is negative"));
    }
    let seconds = count * unit;
    if !seconds.is_finite() {
        return Err(format!("{text:?} is infinite"));
    }
    Ok(seconds)
}

/// `time_step` and `time_tolerance` in seconds (the tolerance defaults to
/// [`DEFAULT_TIME_TOLERANCE`]), or every problem with them.
fn durations(
    time_step: Option<&str>,
    time_tolerance: Option<&str>,
) -> Result<(Option<f64>, f64), Vec<Problem>> {
    let mut problems = Vec::new();
    const STEP_FIX: &str =
        "write a step between 1 millisecond and 36500 days, e.g. \"1 day\" or \"6 hours\"";
    let step = match time_step.map(duration_seconds) {
        None => None,
        Some(Err(reason)) => {
            problems.push(Problem::new("time_step", &reason, STEP_FIX));
            None
        }
        Some(Ok(step)) if step <= 0.0 => {
            problems.push(Problem::new("time_step", "is zero", STEP_FIX));
            None
        }
        Some(Ok(step)) if step < MIN_TIME_STEP_SECONDS => {
            problems.push(Problem::new(
                "time_step",
                &format!("{step} s is below 1 millisecond (the store would need a slot per step)"),
                STEP_FIX,
            ));
            None
        }
        Some(Ok(step)) if step > MAX_TIME_STEP_SECONDS => {
            problems.push(Problem::new(
                "time_step",
                &format!("{step} s is longer than 36500 days"),
                STEP_FIX,
            ));
            None
        }
        Some(Ok(step)) => Some(step),
    };
    let written = time_tolerance.is_some();
    let text = time_tolerance.unwrap_or(DEFAULT_TIME_TOLERANCE);
    const TOLERANCE_FIX: &str =
        "write a tolerance of at least 0 and below 1 day, e.g. \"1 second\" or \"0 seconds\"";
    let tolerance = match duration_seconds(text) {
        Err(reason) => {
            problems.push(Problem::new("time_tolerance", &reason, TOLERANCE_FIX));
            0.0
        }
        Ok(t) if t >= MAX_TIME_TOLERANCE_SECONDS => {
            problems.push(Problem::new(
                "time_tolerance",
                &format!("{t} s is not below 1 day"),
                TOLERANCE_FIX,
            ));
            0.0
        }
        Ok(t) => t,
    };
    if let Some(step) = step {
        if tolerance * 2.0 >= step {
            let default = if written {
                String::new()
            } else {
                format!(" (the default {DEFAULT_TIME_TOLERANCE:?})")
            };
            problems.push(Problem::new(
                "time_tolerance",
                &format!(
                    "{tolerance} s{default} is not less than half of time_step ({step} s): two grid slots could match one time"
                ),
                &format!(
                    "set time_tolerance below {} seconds, e.g. \"{} seconds\"",
                    step / 2.0,
                    step / 4.0
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok((step, tolerance))
    } else {
        Err(problems)
    }
}
