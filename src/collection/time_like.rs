//! Time-like variables: the variables of a file whose values are times (CF time units,
//! the time coordinate's bounds), converted to the units of their store arrays.

use std::collections::BTreeMap;

use serde_json::Value;
use zru_handlers::cf_time::TimeUnits;

use super::rows::Context;
use crate::source::{SourceFile, SourceVariable};
use crate::store::ArrayDoc;
use crate::update::UpdateError;
use crate::values::{convert, CfEncoding, ElementType, Values};

/// Rejects a time variable whose calendar differs from the store's: times convert
/// only within one calendar.
pub fn check_same_calendar(
    cx: &Context<'_>,
    variable: &str,
    file: &TimeUnits,
    store: &TimeUnits,
) -> Result<(), UpdateError> {
    if file.calendar == store.calendar {
        return Ok(());
    }
    Err(cx.schema(
        variable,
        format!(
            "calendar {:?} in the file but {:?} in the store: times convert only within one calendar",
            file.calendar, store.calendar
        ),
    ))
}

/// The file's variables whose values are times, other than the append coordinate:
/// those with CF time units (`"hours since 1950-01-01"`) and the time coordinate's
/// bounds (`time_bnds`, which take the coordinate's units). Their values are converted
/// to the units of the store's array, as the time coordinate's are.
pub struct TimeLikeVariables {
    /// File units of each time-like variable.
    file_units: BTreeMap<String, TimeUnits>,
    /// The time coordinate's bounds variable, if the file names one, and the store's
    /// time coordinate units (the bounds' units in the store).
    bounds: Option<(String, TimeUnits)>,
}

impl TimeLikeVariables {
    /// The time-like variables of a gridded file: `time_units` are the file's and the
    /// store's units of the time coordinate (the bounds' units).
    pub fn new(cx: &Context<'_>, source: &SourceFile, time_units: &(TimeUnits, TimeUnits)) -> Self {
        let (file_time_units, store_time_units) = *time_units;
        let bounds = source
            .variable(cx.append_dim())
            .and_then(|t| t.attributes.get("bounds"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut file_units = Self::with_units(source, Some(cx.append_dim()));
        if let Some(name) = &bounds {
            if source
                .variable(name)
                .is_some_and(|v| v.time_units().0.is_none())
            {
                file_units.insert(name.clone(), file_time_units);
            }
        }
        Self {
            file_units,
            bounds: bounds.map(|name| (name, store_time_units)),
        }
    }

    /// Every variable of the file with CF time units, the append coordinate included
    /// (a family whose times are data, not its axis).
    pub fn every(source: &SourceFile) -> Self {
        Self {
            file_units: Self::with_units(source, None),
            bounds: None,
        }
    }

    /// The file's variables with CF time units, but `skip`, and their units.
    fn with_units(source: &SourceFile, skip: Option<&str>) -> BTreeMap<String, TimeUnits> {
        source
            .variables()
            .iter()
            .filter(|var| Some(var.name.as_str()) != skip)
            .filter_map(|var| match var.time_units() {
                (Some(units), calendar) if units.contains(" since ") => {
                    TimeUnits::parse(units, calendar)
                        .ok()
                        .map(|units| (var.name.clone(), units))
                }
                _ => None,
            })
            .collect()
    }

    /// True if the variable is time-like: its values are converted to the store's
    /// units, never copied as they are.
    pub fn converts(&self, name: &str) -> bool {
        self.file_units.contains_key(name)
    }

    /// The units of a time-like variable's store array.
    fn store_units(
        &self,
        cx: &Context<'_>,
        var: &SourceVariable,
        doc: &ArrayDoc,
    ) -> Result<TimeUnits, UpdateError> {
        let attrs = doc.attributes();
        match attrs.get("units").and_then(Value::as_str) {
            Some(units) => {
                let calendar = attrs.get("calendar").and_then(Value::as_str);
                TimeUnits::parse(units, calendar).map_err(|source| UpdateError::TimeUnits {
                    key: cx.key.to_string(),
                    variable: format!("{} (in the store)", var.name),
                    source,
                })
            }
            None => match &self.bounds {
                Some((name, units)) if *name == var.name => Ok(*units),
                _ => Err(cx.schema(
                    &var.name,
                    "has time units in the file but none in the store".into(),
                )),
            },
        }
    }

    /// A band's values in the store array's encoding: time-like values converted to
    /// the store's units first.
    pub fn to_store(
        &self,
        cx: &Context<'_>,
        var: &SourceVariable,
        doc: &ArrayDoc,
        store_type: ElementType,
        values: Values,
    ) -> Result<Values, UpdateError> {
        let values_error = |e| cx.values_error(&var.name, e);
        let store_encoding = doc.cf_encoding();
        let Some(from) = self.file_units.get(&var.name) else {
            return convert(values, &var.encoding, store_type, &store_encoding)
                .map_err(values_error);
        };
        let to = self.store_units(cx, var, doc)?;
        if *from == to {
            return convert(values, &var.encoding, store_type, &store_encoding)
                .map_err(values_error);
        }
        check_same_calendar(cx, &var.name, from, &to)?;
        let converted: Vec<f64> = values
            .to_f64_vec()
            .map_err(values_error)?
            .into_iter()
            .map(|raw| to.convert_from(from, var.encoding.physical(raw)))
            .collect();
        if store_type.is_integer() {
            let packed = |t: f64| (t - store_encoding.add_offset) / store_encoding.scale_factor;
            if let Some(t) = converted
                .iter()
                .find(|t| t.is_finite() && (packed(**t).round() - packed(**t)).abs() > 1e-6)
            {
                return Err(cx.schema(
                    &var.name,
                    format!("time {t} is not a whole number of the store's integer time units"),
                ));
            }
        }
        convert(
            Values::F64(converted),
            &CfEncoding::default(),
            store_type,
            &store_encoding,
        )
        .map_err(values_error)
    }
}
