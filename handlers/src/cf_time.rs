//! CF time units: `"<unit> since <reference date>"`.
//!
//! Files of one collection may use different epochs ("days since 1985-01-01" in one
//! file, "seconds since 1981-01-01" in another). Values are converted through seconds
//! since the start of 1970 in the units' calendar. The CF calendars are supported:
//! `standard`/`gregorian` (reference dates from 1582-10-15 on, where it is the
//! proleptic Gregorian calendar), `proleptic_gregorian`, `julian`, `noleap`/`365_day`,
//! `all_leap`/`366_day` and `360_day`. Values convert only between units of one
//! calendar: a file whose calendar differs from its store's is rejected.

use chrono::{NaiveDate, NaiveTime, Timelike};
use thiserror::Error;

/// Why a time variable's `units` or `calendar` attribute cannot be used
/// ([`TimeUnits::parse`], [`Calendar::parse`]).
#[derive(Debug, Error, PartialEq)]
pub enum TimeUnitsError {
    /// The units have no `" since "` between a unit and a reference date (the whole
    /// `units` text).
    #[error("time units {0:?} are not of the form '<unit> since <date>'")]
    Form(String),
    /// The unit before `since` is not one [`unit_seconds`] knows (`"fortnights"`;
    /// months and years are not fixed lengths and are refused too).
    #[error("unknown time unit {unit:?} in {units:?}")]
    Unit {
        /// The unit as written, trimmed.
        unit: String,
        /// The whole `units` text.
        units: String,
    },
    /// The reference date after `since` does not parse, or is a date the calendar does
    /// not have (`2001-02-29`; `2000-02-30` outside `360_day`).
    #[error("cannot parse reference date {date:?} in time units {units:?}")]
    Date {
        /// The reference date as written, trimmed.
        date: String,
        /// The whole `units` text.
        units: String,
    },
    /// The `calendar` attribute names no CF calendar (its text, trimmed and lower-cased).
    #[error("calendar {0:?} is not a CF calendar (standard, gregorian, proleptic_gregorian, julian, noleap, 365_day, all_leap, 366_day, 360_day)")]
    Calendar(String),
    /// The calendar is `standard`/`gregorian` (or absent) and the reference date is
    /// before 1582-10-15, where that calendar is Julian: such times are not converted.
    #[error("reference date {date:?} is before 1582-10-15 in the mixed Julian/Gregorian {calendar} calendar, which zru does not convert: use calendar proleptic_gregorian or a later reference date")]
    MixedCalendar {
        /// The reference date as written, trimmed.
        date: String,
        /// The calendar as written (`standard` when the attribute is absent).
        calendar: String,
    },
}

/// A CF calendar: how dates count days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// `standard`, `gregorian` (from 1582-10-15 on) and `proleptic_gregorian`.
    Gregorian,
    /// `julian`: a leap year every four years.
    Julian,
    /// `noleap`, `365_day`.
    NoLeap,
    /// `all_leap`, `366_day`.
    AllLeap,
    /// `360_day`: twelve months of 30 days.
    Day360,
}

impl Calendar {
    /// The calendar of a CF `calendar` attribute (none or empty: standard).
    pub fn parse(text: Option<&str>) -> Result<Self, TimeUnitsError> {
        let name = text
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match name.as_str() {
            "" | "standard" | "gregorian" | "proleptic_gregorian" => Self::Gregorian,
            "julian" => Self::Julian,
            "noleap" | "365_day" => Self::NoLeap,
            "all_leap" | "366_day" => Self::AllLeap,
            "360_day" => Self::Day360,
            _ => return Err(TimeUnitsError::Calendar(name)),
        })
    }

    /// Days from 1970-01-01 to `year-month-day` in this calendar; `None` for a date the
    /// calendar does not have (2001-02-29, 2001-02-30 outside `360_day`).
    pub fn days_since_1970(self, year: i64, month: u32, day: u32) -> Option<i64> {
        if !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        let fixed = |leap: bool| -> Option<i64> {
            let lengths = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let length = lengths[month as usize - 1];
            (day <= length).then(|| {
                let before: u32 = lengths[..month as usize - 1].iter().sum();
                i64::from(before + day - 1)
            })
        };
        match self {
            Self::Gregorian => {
                let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
                Some((date - epoch).num_days())
            }
            Self::Julian => {
                // Julian day number of a Julian calendar date, less that of 1970-01-01
                // (Gregorian): real days, so Julian times convert to real instants.
                let leap = year.rem_euclid(4) == 0;
                fixed(leap)?;
                let a = (14 - i64::from(month)) / 12;
                let y = year + 4800 - a;
                let m = i64::from(month) + 12 * a - 3;
                let jdn = i64::from(day) + (153 * m + 2) / 5 + 365 * y + y.div_euclid(4) - 32083;
                Some(jdn - 2_440_588)
            }
            Self::NoLeap => Some((year - 1970) * 365 + fixed(false)?),
            Self::AllLeap => Some((year - 1970) * 366 + fixed(true)?),
            Self::Day360 => {
                (day <= 30).then(|| (year - 1970) * 360 + i64::from((month - 1) * 30 + day - 1))
            }
        }
    }
}

/// Parsed CF time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnits {
    /// Length of one unit in seconds.
    pub unit_seconds: f64,
    /// The reference date, in seconds since 1970-01-01T00:00:00 of the calendar (for
    /// the Gregorian and Julian calendars, since the Unix epoch).
    pub epoch_unix_seconds: f64,
    /// The calendar the dates count in.
    pub calendar: Calendar,
}

impl TimeUnits {
    /// Parses a CF `units` string and checks the `calendar` attribute (if any).
    pub fn parse(units: &str, calendar_name: Option<&str>) -> Result<Self, TimeUnitsError> {
        let calendar = Calendar::parse(calendar_name)?;
        let lower = units.trim();
        let (unit, date) = lower
            .split_once(" since ")
            .ok_or_else(|| TimeUnitsError::Form(units.to_string()))?;
        let unit_seconds = unit_seconds(unit.trim()).ok_or_else(|| TimeUnitsError::Unit {
            unit: unit.trim().to_string(),
            units: units.to_string(),
        })?;
        let reference =
            parse_reference_date(date.trim(), calendar).ok_or_else(|| TimeUnitsError::Date {
                date: date.trim().to_string(),
                units: units.to_string(),
            })?;
        let proleptic =
            calendar_name.is_some_and(|c| c.trim().eq_ignore_ascii_case("proleptic_gregorian"));
        if calendar == Calendar::Gregorian && !proleptic && reference.before_gregorian_reform {
            return Err(TimeUnitsError::MixedCalendar {
                date: date.trim().to_string(),
                calendar: calendar_name.unwrap_or("standard").trim().to_string(),
            });
        }
        Ok(Self {
            unit_seconds,
            epoch_unix_seconds: reference.seconds,
            calendar,
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

/// A parsed reference date.
struct ReferenceDate {
    /// Seconds since 1970-01-01T00:00:00 of the calendar.
    seconds: f64,
    /// Before 1582-10-15, where `standard` is the Julian calendar.
    before_gregorian_reform: bool,
}

/// Parses "1985-01-01", "1985-01-01 00:00:00", "1985-01-01T00:00:00Z",
/// "1950-01-01 00:00:00 UTC", "1985-01-01 00:00:00+00:00", "1981-1-1 0:0:0", in the
/// given calendar ("2000-02-30" is a `360_day` date).
fn parse_reference_date(text: &str, calendar: Calendar) -> Option<ReferenceDate> {
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
    let (year, month, day) = parse_ymd(fields.next()?)?;
    let time = match fields.next() {
        None => NaiveTime::MIN,
        Some(t) => parse_time_of_day(t)?,
    };
    if fields.next().is_some() {
        return None;
    }
    let days = calendar.days_since_1970(year, month, day)?;
    let seconds = days as f64 * 86400.0
        + f64::from(time.num_seconds_from_midnight())
        + f64::from(time.nanosecond()) * 1e-9;
    Some(ReferenceDate {
        seconds: seconds - offset_seconds,
        before_gregorian_reform: (year, month, day) < (1582, 10, 15),
    })
}

/// `Y-M-D` with a possibly negative year and unpadded month and day.
fn parse_ymd(text: &str) -> Option<(i64, u32, u32)> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let mut parts = rest.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((sign * year, month, day))
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
            TimeUnits::parse("days since 1985-01-01", Some("lunar")),
            Err(TimeUnitsError::Calendar(_))
        ));
        assert!(matches!(
            TimeUnits::parse("days since 2001-02-29", None),
            Err(TimeUnitsError::Date { .. })
        ));
        assert!(matches!(
            TimeUnits::parse("days since 0001-01-01", Some("standard")),
            Err(TimeUnitsError::MixedCalendar { .. })
        ));
        assert!(TimeUnits::parse("days since 0001-01-01", Some("proleptic_gregorian")).is_ok());
    }

    #[test]
    fn converts_within_each_cf_calendar() {
        // noleap: 2000 has no Feb 29, so 2000-03-01 is 59 days after 2000-01-01.
        let noleap_2000 = TimeUnits::parse("days since 2000-01-01", Some("noleap")).unwrap();
        let noleap_march = TimeUnits::parse("days since 2000-03-01", Some("365_day")).unwrap();
        assert_eq!(noleap_2000.calendar, Calendar::NoLeap);
        assert_eq!(noleap_2000.convert_from(&noleap_march, 0.0), 59.0);
        // 360_day: every month 30 days, and 2001-02-30 exists.
        let d360 = TimeUnits::parse("days since 2001-01-01", Some("360_day")).unwrap();
        let d360_feb = TimeUnits::parse("hours since 2001-02-30", Some("360_day")).unwrap();
        assert_eq!(d360.convert_from(&d360_feb, 24.0), 60.0);
        // all_leap: 2001 has Feb 29.
        let leap = TimeUnits::parse("days since 2001-01-01", Some("all_leap")).unwrap();
        let leap_march = TimeUnits::parse("days since 2001-03-01", Some("366_day")).unwrap();
        assert_eq!(leap.convert_from(&leap_march, 0.0), 60.0);
        // julian: 1900 is a leap year; Julian 1970-01-01 is Gregorian 1970-01-14.
        let julian = TimeUnits::parse("days since 1900-01-01", Some("julian")).unwrap();
        let julian_march = TimeUnits::parse("days since 1900-03-01", Some("julian")).unwrap();
        assert_eq!(julian.convert_from(&julian_march, 0.0), 60.0);
        let julian_1970 = TimeUnits::parse("days since 1970-01-01", Some("julian")).unwrap();
        assert_eq!(julian_1970.epoch_unix_seconds, 13.0 * DAY);
        // The Gregorian names are one calendar.
        let standard = TimeUnits::parse("days since 1985-01-01", Some("standard")).unwrap();
        let proleptic =
            TimeUnits::parse("days since 1985-01-01", Some("proleptic_gregorian")).unwrap();
        assert_eq!(standard, proleptic);
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
