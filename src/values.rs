//! Typed element buffers and CF packing (`scale_factor`, `add_offset`, `_FillValue`).
//!
//! Values travel from a NetCDF variable to a Zarr array as one of the [`Values`]
//! variants. When the file and the store pack a variable the same way, the raw
//! integers are copied untouched, so xarray decodes exactly what it would decode from
//! the file. When they differ, values are decoded to physical units and packed again
//! with the store's encoding.

use thiserror::Error;

/// Element types zru reads from NetCDF and writes to Zarr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// 8-bit signed integer (`int8`, NetCDF `byte`).
    I8,
    /// 8-bit unsigned integer (`uint8`, NetCDF `ubyte`).
    U8,
    /// 16-bit signed integer (NetCDF `short`).
    I16,
    /// 16-bit unsigned integer (NetCDF `ushort`).
    U16,
    /// 32-bit signed integer (NetCDF `int`).
    I32,
    /// 32-bit unsigned integer (NetCDF `uint`).
    U32,
    /// 64-bit signed integer (NetCDF `int64`).
    I64,
    /// 64-bit unsigned integer (NetCDF `uint64`).
    U64,
    /// 32-bit IEEE float (NetCDF `float`).
    F32,
    /// 64-bit IEEE float (NetCDF `double`).
    F64,
    /// Variable-length UTF-8 text (NetCDF `char` arrays and strings).
    Text,
}

impl ElementType {
    /// Zarr V3 `data_type` name.
    pub(crate) fn zarr_v3_name(self) -> &'static str {
        match self {
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::Text => "string",
        }
    }

    /// Zarr V2 `dtype` (little endian, as numpy writes it).
    pub(crate) fn zarr_v2_dtype(self) -> &'static str {
        match self {
            Self::I8 => "|i1",
            Self::U8 => "|u1",
            Self::I16 => "<i2",
            Self::U16 => "<u2",
            Self::I32 => "<i4",
            Self::U32 => "<u4",
            Self::I64 => "<i8",
            Self::U64 => "<u8",
            Self::F32 => "<f4",
            Self::F64 => "<f8",
            Self::Text => "|O",
        }
    }

    /// The element type of a Zarr V3 `data_type` name (`"int16"`, `"string"`, ...);
    /// `None` for a type zru does not handle (complex, bool, fixed-length bytes, ...).
    pub(crate) fn from_zarr_v3_name(name: &str) -> Option<Self> {
        ALL.iter().copied().find(|t| t.zarr_v3_name() == name)
    }

    /// Parses a numpy dtype string such as `<i2`, `|i1` or `>f8` (byte order aside).
    pub(crate) fn from_zarr_v2_dtype(dtype: &str) -> Option<Self> {
        let body = dtype.trim_start_matches(['<', '>', '|', '=']);
        match body {
            "O" => Some(Self::Text),
            _ => ALL
                .iter()
                .copied()
                .find(|t| t != &Self::Text && &t.zarr_v2_dtype()[1..] == body),
        }
    }

    /// netCDF-C's default fill for the type (`NC_FILL_SHORT`, ...; the 64-bit ones only
    /// approximately: see [`NC_FILL_INT64`]): what an unwritten
    /// element of a variable without `_FillValue` holds. Floats use NaN instead.
    pub(crate) fn netcdf_default_fill(self) -> f64 {
        match self {
            Self::I8 => -127.0,
            Self::U8 => 255.0,
            Self::I16 => -32767.0,
            Self::U16 => 65535.0,
            Self::I32 => -2147483647.0,
            Self::U32 => 4294967295.0,
            Self::I64 => -9223372036854775806.0,
            Self::U64 => 18446744073709551614.0,
            Self::F32 | Self::F64 | Self::Text => f64::NAN,
        }
    }

    /// True for `F32` and `F64`.
    pub(crate) fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// True for the eight integer types (not floats, not text).
    pub(crate) fn is_integer(self) -> bool {
        !self.is_float() && self != Self::Text
    }

    /// Bytes per element (0 for variable-length text).
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
            Self::Text => 0,
        }
    }

    /// Range of values the type holds, for packing checks.
    pub fn range(self) -> (f64, f64) {
        match self {
            Self::I8 => (i8::MIN as f64, i8::MAX as f64),
            Self::U8 => (0.0, u8::MAX as f64),
            Self::I16 => (i16::MIN as f64, i16::MAX as f64),
            Self::U16 => (0.0, u16::MAX as f64),
            Self::I32 => (i32::MIN as f64, i32::MAX as f64),
            Self::U32 => (0.0, u32::MAX as f64),
            Self::I64 => (i64::MIN as f64, i64::MAX as f64),
            Self::U64 => (0.0, u64::MAX as f64),
            Self::F32 => (f32::MIN as f64, f32::MAX as f64),
            Self::F64 | Self::Text => (f64::MIN, f64::MAX),
        }
    }
}

const ALL: [ElementType; 11] = [
    ElementType::I8,
    ElementType::U8,
    ElementType::I16,
    ElementType::U16,
    ElementType::I32,
    ElementType::U32,
    ElementType::I64,
    ElementType::U64,
    ElementType::F32,
    ElementType::F64,
    ElementType::Text,
];

/// netCDF-C's `NC_FILL_INT64`, which an `f64` rounds to `i64::MIN`.
pub const NC_FILL_INT64: i64 = -9_223_372_036_854_775_806;
/// netCDF-C's `NC_FILL_UINT64`, which an `f64` rounds to 2^64.
pub const NC_FILL_UINT64: u64 = 18_446_744_073_709_551_614;

/// A flat, C-ordered buffer of one element type.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Elements of [`ElementType::I8`].
    I8(Vec<i8>),
    /// Elements of [`ElementType::U8`].
    U8(Vec<u8>),
    /// Elements of [`ElementType::I16`].
    I16(Vec<i16>),
    /// Elements of [`ElementType::U16`].
    U16(Vec<u16>),
    /// Elements of [`ElementType::I32`].
    I32(Vec<i32>),
    /// Elements of [`ElementType::U32`].
    U32(Vec<u32>),
    /// Elements of [`ElementType::I64`].
    I64(Vec<i64>),
    /// Elements of [`ElementType::U64`].
    U64(Vec<u64>),
    /// Elements of [`ElementType::F32`].
    F32(Vec<f32>),
    /// Elements of [`ElementType::F64`].
    F64(Vec<f64>),
    /// Text elements ([`ElementType::Text`]), one string per element.
    Text(Vec<String>),
}

/// Applies `$body` to the inner vector of every numeric variant; `$text` for text.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_values {
    ($values:expr, $v:ident => $body:expr, text $t:ident => $text:expr) => {
        match $values {
            $crate::values::Values::I8($v) => $body,
            $crate::values::Values::U8($v) => $body,
            $crate::values::Values::I16($v) => $body,
            $crate::values::Values::U16($v) => $body,
            $crate::values::Values::I32($v) => $body,
            $crate::values::Values::U32($v) => $body,
            $crate::values::Values::I64($v) => $body,
            $crate::values::Values::U64($v) => $body,
            $crate::values::Values::F32($v) => $body,
            $crate::values::Values::F64($v) => $body,
            $crate::values::Values::Text($t) => $text,
        }
    };
}

/// Builds a [`Values`] of `element` type by calling a generic constructor.
macro_rules! build_values {
    ($element:expr, $make:ident $(, $arg:expr)*) => {
        match $element {
            ElementType::I8 => Values::I8($make::<i8>($($arg),*)),
            ElementType::U8 => Values::U8($make::<u8>($($arg),*)),
            ElementType::I16 => Values::I16($make::<i16>($($arg),*)),
            ElementType::U16 => Values::U16($make::<u16>($($arg),*)),
            ElementType::I32 => Values::I32($make::<i32>($($arg),*)),
            ElementType::U32 => Values::U32($make::<u32>($($arg),*)),
            ElementType::I64 => Values::I64($make::<i64>($($arg),*)),
            ElementType::U64 => Values::U64($make::<u64>($($arg),*)),
            ElementType::F32 => Values::F32($make::<f32>($($arg),*)),
            ElementType::F64 => Values::F64($make::<f64>($($arg),*)),
            ElementType::Text => Values::Text(Vec::new()),
        }
    };
}

/// Builds a [`Values`] of the same variant from each variant's inner vector.
macro_rules! map_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::I8($v) => Values::I8($body),
            Values::U8($v) => Values::U8($body),
            Values::I16($v) => Values::I16($body),
            Values::U16($v) => Values::U16($body),
            Values::I32($v) => Values::I32($body),
            Values::U32($v) => Values::U32($body),
            Values::I64($v) => Values::I64($body),
            Values::U64($v) => Values::U64($body),
            Values::F32($v) => Values::F32($body),
            Values::F64($v) => Values::F64($body),
            Values::Text($v) => Values::Text($body),
        }
    };
}

/// Numeric element conversion through `f64`.
pub trait Number: Copy + Send + Sync + 'static {
    /// The value as `f64` (64-bit integers beyond 2^53 are rounded).
    fn to_f64(self) -> f64;
    /// The value converted with `as` semantics: saturating, NaN to 0 for integers.
    /// Packing checks the range first ([`ElementType::range`]).
    fn from_f64(value: f64) -> Self;
}

macro_rules! impl_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(value: f64) -> Self { value as $t }
        }
    )*};
}
impl_number!(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

impl Values {
    /// The element type of the variant.
    pub(crate) fn element_type(&self) -> ElementType {
        match self {
            Self::I8(_) => ElementType::I8,
            Self::U8(_) => ElementType::U8,
            Self::I16(_) => ElementType::I16,
            Self::U16(_) => ElementType::U16,
            Self::I32(_) => ElementType::I32,
            Self::U32(_) => ElementType::U32,
            Self::I64(_) => ElementType::I64,
            Self::U64(_) => ElementType::U64,
            Self::F32(_) => ElementType::F32,
            Self::F64(_) => ElementType::F64,
            Self::Text(_) => ElementType::Text,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        dispatch_values!(self, v => v.len(), text t => t.len())
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer of `len` copies of `fill` (a number; text fills with "").
    pub(crate) fn filled(element: ElementType, len: usize, fill: f64) -> Self {
        fn make<T: Number>(len: usize, fill: f64) -> Vec<T> {
            vec![T::from_f64(fill); len]
        }
        match element {
            ElementType::Text => Values::Text(vec![String::new(); len]),
            _ => build_values!(element, make, len, fill),
        }
    }

    /// `len` copies of netCDF-C's default fill of `element` (exact, also for the 64-bit
    /// integers, whose defaults an `f64` cannot hold; NaN for floats, "" for text).
    pub(crate) fn filled_with_netcdf_default(element: ElementType, len: usize) -> Self {
        match element {
            ElementType::I64 => Values::I64(vec![NC_FILL_INT64; len]),
            ElementType::U64 => Values::U64(vec![NC_FILL_UINT64; len]),
            _ => Self::filled(element, len, element.netcdf_default_fill()),
        }
    }

    /// Values as `f64` (text gives an error).
    pub(crate) fn to_f64_vec(&self) -> Result<Vec<f64>, ValuesError> {
        dispatch_values!(self, v => Ok(v.iter().map(|x| x.to_f64()).collect()),
            text _t => Err(ValuesError::NotNumeric))
    }

    /// Copies of elements `[start, start + len)`.
    pub fn slice(&self, start: usize, len: usize) -> Self {
        map_values!(self, v => v[start..start + len].to_vec())
    }

    /// Appends `other`'s elements (same element type) to these.
    pub fn append(&mut self, other: Values) -> Result<(), ValuesError> {
        macro_rules! join {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((Values::$variant(a), Values::$variant(mut b)) => a.append(&mut b),)*
                    (a, b) => {
                        return Err(ValuesError::Incompatible {
                            from: b.element_type(),
                            to: a.element_type(),
                        })
                    }
                }
            };
        }
        join!(I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, Text);
        Ok(())
    }

    /// Splits off the elements from `at` on (like `Vec::split_off`).
    pub(crate) fn split_off(&mut self, at: usize) -> Values {
        map_values!(self, v => v.split_off(at))
    }

    /// The C-ordered sub-block of these values (a block of `shape`) that keeps
    /// `count` positions from `start` along `axis` and every position of the others.
    pub(crate) fn select_along(
        &self,
        shape: &[u64],
        axis: usize,
        start: u64,
        count: u64,
    ) -> Result<Values, ValuesError> {
        let shape_error = || ValuesError::Shape {
            from: shape.to_vec(),
            to: shape
                .iter()
                .enumerate()
                .map(|(i, &n)| if i == axis { count } else { n })
                .collect(),
        };
        let fits = axis < shape.len()
            && start
                .checked_add(count)
                .is_some_and(|end| end <= shape[axis])
            && shape.iter().product::<u64>() == self.len() as u64;
        if !fits {
            return Err(shape_error());
        }
        let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
        let range = start as usize..(start + count) as usize;
        fn select<T: Clone>(
            v: &[T],
            dims: &[usize],
            axis: usize,
            range: std::ops::Range<usize>,
        ) -> Option<Vec<T>> {
            let view = ndarray::ArrayView::from_shape(ndarray::IxDyn(dims), v).ok()?;
            let part = view.slice_axis(ndarray::Axis(axis), range.into());
            Some(part.iter().cloned().collect())
        }
        Ok(map_values!(self, v => select(v, &dims, axis, range.clone()).ok_or_else(shape_error)?))
    }
}

/// Copies a C-ordered block of shape `from` into a block of shape `to` (each axis at
/// least as long), starting at the origin; the rest is `fill`.
fn pad_block<T: Clone>(src: &[T], from: &[u64], to: &[u64], fill: T) -> Vec<T> {
    let Some((&row_len, outer_from)) = from.split_last() else {
        return src.to_vec();
    };
    let mut out = vec![fill; to.iter().product::<u64>() as usize];
    // Strides of `to`, in elements.
    let mut strides = vec![1u64; to.len()];
    for axis in (0..to.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * to[axis + 1];
    }
    let row_len = row_len as usize;
    let outer_count: u64 = outer_from.iter().product();
    for outer in 0..outer_count {
        let (mut rest, mut dst) = (outer, 0u64);
        for axis in (0..outer_from.len()).rev() {
            dst += (rest % outer_from[axis]) * strides[axis];
            rest /= outer_from[axis];
        }
        let src_start = outer as usize * row_len;
        out[dst as usize..dst as usize + row_len]
            .clone_from_slice(&src[src_start..src_start + row_len]);
    }
    out
}

impl Values {
    /// The values, a C-ordered block of shape `from`, placed at the origin of a block of
    /// shape `to` (same rank, no axis shorter); the rest is `fill` ("" for text).
    pub(crate) fn padded(
        &self,
        from: &[u64],
        to: &[u64],
        fill: f64,
    ) -> Result<Values, ValuesError> {
        let fits = from.len() == to.len()
            && from.iter().zip(to).all(|(f, t)| f <= t)
            && from.iter().product::<u64>() == self.len() as u64;
        if !fits {
            return Err(ValuesError::Shape {
                from: from.to_vec(),
                to: to.to_vec(),
            });
        }
        if from == to {
            return Ok(self.clone());
        }
        fn pad<T: Number>(v: &[T], from: &[u64], to: &[u64], fill: f64) -> Vec<T> {
            pad_block(v, from, to, T::from_f64(fill))
        }
        Ok(match self {
            Values::I8(v) => Values::I8(pad(v, from, to, fill)),
            Values::U8(v) => Values::U8(pad(v, from, to, fill)),
            Values::I16(v) => Values::I16(pad(v, from, to, fill)),
            Values::U16(v) => Values::U16(pad(v, from, to, fill)),
            Values::I32(v) => Values::I32(pad(v, from, to, fill)),
            Values::U32(v) => Values::U32(pad(v, from, to, fill)),
            Values::I64(v) => Values::I64(pad(v, from, to, fill)),
            Values::U64(v) => Values::U64(pad(v, from, to, fill)),
            Values::F32(v) => Values::F32(pad(v, from, to, fill)),
            Values::F64(v) => Values::F64(pad(v, from, to, fill)),
            Values::Text(v) => Values::Text(pad_block(v, from, to, String::new())),
        })
    }
}

/// Why values could not be reshaped, converted or packed.
#[derive(Debug, Error, PartialEq)]
pub enum ValuesError {
    /// A block cannot be padded to a smaller or differently ranked shape.
    #[error("a block of shape {from:?} cannot be padded to shape {to:?}")]
    Shape {
        /// The block's shape.
        from: Vec<u64>,
        /// The shape asked for.
        to: Vec<u64>,
    },
    /// Text was given where numbers are needed.
    #[error("text values cannot be converted to numbers")]
    NotNumeric,
    /// No conversion between these element types (text to or from numbers, or
    /// appending values of another type).
    #[error("cannot convert {from:?} values to {to:?}")]
    Incompatible {
        /// The values' type.
        from: ElementType,
        /// The type asked for.
        to: ElementType,
    },
    /// A physical value falls outside what the store's packed integer type can
    /// hold with its `scale_factor` and `add_offset` (zru never clips).
    #[error(
        "value {value} does not fit the store's {to:?} packing (scale {scale}, offset {offset})"
    )]
    OutOfRange {
        /// The physical (unpacked) value.
        value: f64,
        /// The store's packed type.
        to: ElementType,
        /// The store's `scale_factor`.
        scale: f64,
        /// The store's `add_offset`.
        offset: f64,
    },
    /// A valid value would pack to the store's `_FillValue` and so read back as
    /// missing.
    #[error(
        "value {value} packs to {fill}, the store's _FillValue, and would read back as missing"
    )]
    PacksToFill {
        /// The physical (unpacked) value.
        value: f64,
        /// The store's `_FillValue`, in stored units.
        fill: f64,
    },
}

/// How a variable's stored numbers map to physical values (CF conventions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CfEncoding {
    /// Multiplier from stored to physical values (1 if the variable is not packed).
    pub scale_factor: f64,
    /// Added after scaling (0 if the variable is not packed).
    pub add_offset: f64,
    /// `_FillValue` (or `missing_value`) in stored units.
    pub fill_value: Option<f64>,
}

impl Default for CfEncoding {
    fn default() -> Self {
        Self {
            scale_factor: 1.0,
            add_offset: 0.0,
            fill_value: None,
        }
    }
}

impl CfEncoding {
    pub(crate) fn same_as(&self, other: &CfEncoding) -> bool {
        self.scale_factor == other.scale_factor
            && self.add_offset == other.add_offset
            && same_fill(self.fill_value, other.fill_value)
    }

    /// The physical value of a raw one: unpacked, NaN where missing.
    pub(crate) fn physical(&self, raw: f64) -> f64 {
        if self.is_missing(raw) {
            f64::NAN
        } else {
            raw * self.scale_factor + self.add_offset
        }
    }

    fn is_missing(&self, raw: f64) -> bool {
        raw.is_nan() || self.fill_value.is_some_and(|f| f == raw)
    }
}

fn same_fill(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => false,
    }
}

/// Converts values stored with `from` encoding into `to_type` stored with `to` encoding.
///
/// Same type and same packing: the raw numbers are kept (no rounding can occur).
/// Otherwise values are decoded to physical units (missing values become NaN) and
/// packed again; integers are rounded to nearest; a value outside the target type is
/// an error, never a silent wrap.
pub(crate) fn convert(
    values: Values,
    from: &CfEncoding,
    to_type: ElementType,
    to: &CfEncoding,
) -> Result<Values, ValuesError> {
    let from_type = values.element_type();
    if from_type == ElementType::Text || to_type == ElementType::Text {
        return if from_type == to_type {
            Ok(values)
        } else {
            Err(ValuesError::Incompatible {
                from: from_type,
                to: to_type,
            })
        };
    }
    if from_type == to_type && from.same_as(to) {
        return Ok(values);
    }
    let raw = values.to_f64_vec()?;
    let target_missing = to.fill_value.unwrap_or(f64::NAN);
    if to_type.is_integer() && to.fill_value.is_none() && raw.iter().any(|&r| from.is_missing(r)) {
        return Err(ValuesError::OutOfRange {
            value: f64::NAN,
            to: to_type,
            scale: to.scale_factor,
            offset: to.add_offset,
        });
    }
    let (low, high) = to_type.range();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        if from.is_missing(r) {
            out.push(target_missing);
            continue;
        }
        let physical = r * from.scale_factor + from.add_offset;
        let mut packed = (physical - to.add_offset) / to.scale_factor;
        if to_type.is_integer() {
            packed = packed.round();
        }
        if !(low..=high).contains(&packed) {
            return Err(ValuesError::OutOfRange {
                value: physical,
                to: to_type,
                scale: to.scale_factor,
                offset: to.add_offset,
            });
        }
        // A real value that packs onto the store's fill would read back as missing.
        if to.fill_value == Some(packed) {
            return Err(ValuesError::PacksToFill {
                value: physical,
                fill: packed,
            });
        }
        out.push(packed);
    }
    Ok(from_f64_values(to_type, &out))
}

/// Builds typed values from `f64` (casting; the caller checked the range).
pub(crate) fn from_f64_values(element: ElementType, values: &[f64]) -> Values {
    fn make<T: Number>(values: &[f64]) -> Vec<T> {
        values.iter().map(|&v| T::from_f64(v)).collect()
    }
    build_values!(element, make, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_along_keeps_a_run_of_positions_of_any_axis() {
        // A (2, 3, 2) block numbered 0..12 in C order.
        let block = Values::I32((0..12).collect());
        let middle = block.select_along(&[2, 3, 2], 1, 1, 2).unwrap();
        assert_eq!(middle, Values::I32(vec![2, 3, 4, 5, 8, 9, 10, 11]));
        let last = block.select_along(&[2, 3, 2], 2, 1, 1).unwrap();
        assert_eq!(last, Values::I32(vec![1, 3, 5, 7, 9, 11]));
        assert!(block.select_along(&[2, 3, 2], 1, 2, 2).is_err());
        assert!(block.select_along(&[2, 3], 1, 0, 1).is_err());
    }

    fn packed(scale: f64, offset: f64, fill: f64) -> CfEncoding {
        CfEncoding {
            scale_factor: scale,
            add_offset: offset,
            fill_value: Some(fill),
        }
    }

    #[test]
    fn same_packing_keeps_raw_integers() {
        let enc = packed(0.01, 273.15, -32768.0);
        let values = Values::I16(vec![-32768, 0, 1234]);
        let out = convert(values.clone(), &enc, ElementType::I16, &enc).unwrap();
        assert_eq!(out, values);
    }

    #[test]
    fn repacks_between_encodings_and_maps_fill() {
        let from = packed(0.01, 273.15, -32768.0);
        let to = packed(0.02, 273.15, -999.0);
        let out = convert(
            Values::I16(vec![-32768, 100, 102]),
            &from,
            ElementType::I16,
            &to,
        )
        .unwrap();
        assert_eq!(out, Values::I16(vec![-999, 50, 51]));
    }

    #[test]
    fn unpacks_to_float_store_with_nan_missing() {
        let from = packed(0.5, 10.0, -1.0);
        let to = CfEncoding {
            fill_value: Some(f64::NAN),
            ..CfEncoding::default()
        };
        let out = convert(Values::I8(vec![-1, 4]), &from, ElementType::F32, &to).unwrap();
        match out {
            Values::F32(v) => {
                assert!(v[0].is_nan());
                assert_eq!(v[1], 12.0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn out_of_range_is_an_error_not_a_wrap() {
        let from = CfEncoding::default();
        let to = packed(1.0, 0.0, -128.0);
        let err = convert(Values::F64(vec![300.0]), &from, ElementType::I8, &to).unwrap_err();
        assert!(matches!(err, ValuesError::OutOfRange { .. }));
    }

    #[test]
    fn parses_zarr_type_names() {
        assert_eq!(
            ElementType::from_zarr_v2_dtype("<i2"),
            Some(ElementType::I16)
        );
        assert_eq!(
            ElementType::from_zarr_v2_dtype("|i1"),
            Some(ElementType::I8)
        );
        assert_eq!(
            ElementType::from_zarr_v2_dtype(">f8"),
            Some(ElementType::F64)
        );
        assert_eq!(
            ElementType::from_zarr_v2_dtype("|O"),
            Some(ElementType::Text)
        );
        assert_eq!(
            ElementType::from_zarr_v3_name("float32"),
            Some(ElementType::F32)
        );
        assert_eq!(ElementType::from_zarr_v3_name("complex64"), None);
    }

    #[test]
    fn padding_places_the_block_at_the_origin() {
        let block = Values::I16(vec![1, 2, 3, 4, 5, 6]);
        let out = block.padded(&[2, 3], &[3, 4], -1.0).unwrap();
        assert_eq!(
            out,
            Values::I16(vec![1, 2, 3, -1, 4, 5, 6, -1, -1, -1, -1, -1])
        );
        let text = Values::Text(vec!["a".into(), "b".into()]);
        assert_eq!(
            text.padded(&[1, 1, 2], &[1, 2, 3], 0.0).unwrap(),
            Values::Text(
                ["a", "b", "", "", "", ""]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        assert!(matches!(
            block.padded(&[2, 3], &[2, 2], 0.0),
            Err(ValuesError::Shape { .. })
        ));
    }

    #[test]
    fn text_does_not_convert_to_numbers() {
        let err = convert(
            Values::Text(vec!["a".into()]),
            &CfEncoding::default(),
            ElementType::F32,
            &CfEncoding::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ValuesError::Incompatible { .. }));
    }
}
