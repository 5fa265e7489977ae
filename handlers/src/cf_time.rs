//! CF time units: `"<unit> since <reference date>"`.
//!
//! Files of one collection may use different epochs ("days since 1985-01-01" in one
//! file, "seconds since 1981-01-01" in another). Values are converted through seconds
//! since the Unix epoch. Only calendars whose dates after 1582 are the proleptic
//! Gregorian ones are accepted (`standard`, `gregorian`, `proleptic_gregorian`).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TimeUnitsError {
    #[error("time units {0:?} are not of the form '<unit> since <date>'")]
    Form(String),
    #[error("unknown time unit {unit:?} in {units:?}")]
    Unit { unit: String, units: String },
    #[error("cannot parse reference date {date:?} in time units {units:?}")]
    Date { date: String, units: String },
    #[error("calendar {0:?} is not supported (use standard, gregorian or proleptic_gregorian)")]
    Calendar(String),
}

/// Parsed CF time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnits {
    /// Length of one unit in seconds.
    pub unit_seconds: f64,
    /// The reference date, in seconds since 1970-01-01T00:00:00Z.
    pub epoch_unix_seconds: f64,
}

impl TimeUnits {
    /// Parses a CF `units` string and checks the `calendar` attribute (if any).
    pub fn parse(units: &str, calendar: Option<&str>) -> Result<Self, TimeUnitsError> {
        check_calendar(calendar)?;
        let lower = units.trim();
        let (unit, date) = lower
            .split_once(" since ")
            .ok_or_else(|| TimeUnitsError::Form(units.to_string()))?;
        let unit_seconds = unit_seconds(unit.trim()).ok_or_else(|| TimeUnitsError::Unit {
            unit: unit.trim().to_string(),
            units: units.to_string(),
        })?;
        let epoch_unix_seconds =
            parse_reference_date(date.trim()).ok_or_else(|| TimeUnitsError::Date {
                date: date.trim().to_string(),
                units: units.to_string(),
            })?;
        Ok(Self {
            unit_seconds,
            epoch_unix_seconds,
        })
    }

    /// Seconds since the Unix epoch of a value in these units.
    pub fn to_unix_seconds(&self, value: f64) -> f64 {
        self.epoch_unix_seconds + value * self.unit_seconds
    }

    /// Value in these units of a time in seconds since the Unix epoch.
    pub fn from_unix_seconds(&self, seconds: f64) -> f64 {
        (seconds - self.epoch_unix_seconds) / self.unit_seconds
    }

    /// Converts a value expressed in `other` units into these units.
    pub fn convert_from(&self, other: &TimeUnits, value: f64) -> f64 {
        if self == other {
            return value;
        }
        self.from_unix_seconds(other.to_unix_seconds(value))
    }
}

fn check_calendar(calendar: Option<&str>) -> Result<(), TimeUnitsError> {
    match calendar.map(|c| c.trim().to_ascii_lowercase()) {
        None => Ok(()),
        Some(c)
            if matches!(
                c.as_str(),
                "" | "standard" | "gregorian" | "proleptic_gregorian"
            ) =>
        {
            Ok(())
        }
        Some(c) => Err(TimeUnitsError::Calendar(c)),
    }
}

/// Seconds in one unit named as CF/UDUNITS does (plural, singular or abbreviated).
pub fn unit_seconds(unit: &str) -> Option<f64> {
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "microseconds" | "microsecond" | "us" => 1e-6,
        "milliseconds" | "millisecond" | "ms" => 1e-3,
        "seconds" | "second" | "secs" | "sec" | "s" => 1.0,
        "minutes" | "minute" | "mins" | "min" => 60.0,
        "hours" | "hour" | "hrs" | "hr" | "h" => 3600.0,
        "days" | "day" | "d" => 86400.0,
        "weeks" | "week" => 7.0 * 86400.0,
        _ => return None,
    };
    Some(seconds)
}

/// Parses durations such as `"1 day"`, `"6 hours"`, `"3600 s"` into seconds.
pub fn parse_duration_seconds(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let count: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() || !(count.is_finite() && count > 0.0) {
        return None;
    }
    Some(count * unit_seconds(unit)?)
}

/// Parses "1985-01-01", "1985-01-01 00:00:00", "1985-01-01T00:00:00Z",
/// "1950-01-01 00:00:00 UTC", "1985-01-01 00:00:00+00:00", "1981-1-1 0:0:0".
fn parse_reference_date(text: &str) -> Option<f64> {
    let mut text = text.trim();
    for suffix in ["UTC", "GMT", "Z"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            text = stripped.trim_end();
            break;
        }
    }
    let text = text.replacen('T', " ", 1);
    let (text, offset_seconds) = split_utc_offset(&text);
    let mut fields = text.split_whitespace();
    let date = NaiveDate::parse_from_str(fields.next()?, "%Y-%m-%d").ok()?;
    let time = match fields.next() {
        None => NaiveTime::MIN,
        Some(t) => parse_time_of_day(t)?,
    };
    if fields.next().is_some() {
        return None;
    }
    let datetime = NaiveDateTime::new(date, time);
    let seconds = datetime.and_utc().timestamp() as f64
        + f64::from(datetime.and_utc().timestamp_subsec_nanos()) * 1e-9;
    Some(seconds - offset_seconds)
}

fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M", "%H"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
}

/// Splits a trailing UTC offset (`+00:00`, `-0500`, ` +10`) from a date-time string.
fn split_utc_offset(text: &str) -> (String, f64) {
    let trimmed = text.trim();
    // The offset comes after the time of day, so look only past the date part.
    let Some(search_from) = trimmed.find(' ') else {
        return (trimmed.to_string(), 0.0);
    };
    if let Some(pos) = trimmed[search_from..].rfind(['+', '-']) {
        let pos = search_from + pos;
        let offset = trimmed[pos + 1..].trim().replace(':', "");
        if !offset.is_empty() && offset.len() <= 4 && offset.chars().all(|c| c.is_ascii_digit()) {
            let (hours, minutes) = if offset.len() <= 2 {
                (offset.parse::<f64>().unwrap_or(0.0), 0.0)
            } else {
                let (h, m) = offset.split_at(offset.len() - 2);
                (
                    h.parse::<f64>().unwrap_or(0.0),
                    m.parse::<f64>().unwrap_or(0.0),
                )
            };
            let sign = if trimmed.as_bytes()[pos] == b'-' {
                -1.0
            } else {
                1.0
            };
            return (
                trimmed[..pos].trim().to_string(),
                sign * (hours * 3600.0 + minutes * 60.0),
            );
        }
    }
    (trimmed.to_string(), 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86400.0;

    #[test]
    fn parses_the_unit_and_epoch_forms_seen_in_real_files() {
        let gsla_2011 = TimeUnits::parse("days since 1985-01-01 00:00:00+00:00", None).unwrap();
        let gsla_2024 =
            TimeUnits::parse("days since 1985-01-01 00:00:00 UTC", Some("gregorian")).unwrap();
        let xarray = TimeUnits::parse("days since 1985-01-01T00:00:00+00:00", None).unwrap();
        assert_eq!(gsla_2011, gsla_2024);
        assert_eq!(gsla_2011, xarray);
        assert_eq!(gsla_2011.unit_seconds, DAY);
        assert_eq!(gsla_2011.epoch_unix_seconds, 473_385_600.0);
        let ghrsst = TimeUnits::parse("seconds since 1981-01-01 00:00:00", None).unwrap();
        assert_eq!(ghrsst.epoch_unix_seconds, 347_155_200.0);
        let argo = TimeUnits::parse("days since 1950-01-01 00:00:00 UTC", None).unwrap();
        assert_eq!(argo.epoch_unix_seconds, -631_152_000.0);
    }

    #[test]
    fn converts_between_epochs() {
        let days_1985 = TimeUnits::parse("days since 1985-01-01", None).unwrap();
        let secs_1981 = TimeUnits::parse("seconds since 1981-1-1 0:0:0", None).unwrap();
        // 1985-01-01 is 1461 days after 1981-01-01.
        assert_eq!(secs_1981.convert_from(&days_1985, 0.0), 1461.0 * DAY);
        assert_eq!(days_1985.convert_from(&secs_1981, 1462.0 * DAY), 1.0);
    }

    #[test]
    fn honours_utc_offsets() {
        let plus_ten = TimeUnits::parse("hours since 2000-01-01 10:00:00+10:00", None).unwrap();
        let utc = TimeUnits::parse("hours since 2000-01-01", None).unwrap();
        assert_eq!(plus_ten.epoch_unix_seconds, utc.epoch_unix_seconds);
        let minus = TimeUnits::parse("hours since 2000-01-01 00:00:00 -0130", None).unwrap();
        assert_eq!(minus.epoch_unix_seconds, utc.epoch_unix_seconds + 5400.0);
    }

    #[test]
    fn rejects_malformed_units_and_calendars() {
        assert!(matches!(
            TimeUnits::parse("days after 1985", None),
            Err(TimeUnitsError::Form(_))
        ));
        assert!(matches!(
            TimeUnits::parse("fortnights since 1985-01-01", None),
            Err(TimeUnitsError::Unit { .. })
        ));
        assert!(matches!(
            TimeUnits::parse("days since yesterday", None),
            Err(TimeUnitsError::Date { .. })
        ));
        assert!(matches!(
            TimeUnits::parse("days since 1985-01-01", Some("noleap")),
            Err(TimeUnitsError::Calendar(_))
        ));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration_seconds("1 day"), Some(DAY));
        assert_eq!(parse_duration_seconds("6 hours"), Some(6.0 * 3600.0));
        assert_eq!(parse_duration_seconds("0 days"), None);
        assert_eq!(parse_duration_seconds("one day"), None);
        assert_eq!(parse_duration_seconds("1 day extra"), None);
    }
}
