//! Generator of GHRSST L3S-like daily netCDF-4 files.
//!
//! The files written here mimic the layout of a real GHRSST GDS 2.0 L3S
//! (super-collated, gridded) sea surface temperature product closely enough
//! to exercise zru end to end: one file per day, an unlimited `time`
//! dimension of length 1, a regular global `lat`/`lon` grid of cell centres,
//! packed (`scale_factor`/`add_offset`) integer variables with `_FillValue`s,
//! deflate compression and chunking.
//!
//! Everything is deterministic: the same options and day always produce the
//! same values. The content of a day depends only on the day itself, the
//! grid size, [`GriddedSampleOptions::seed`] and
//! [`GriddedSampleOptions::revision`] (not on
//! [`GriddedSampleOptions::start`]), so overlapping runs agree on shared days.
//!
//! * Land is a fixed set of elliptical "continents" plus an Antarctic cap; it
//!   is identical for every day, seed and revision.
//! * About 5 % of the ocean pixels are "cloud"; the cloud pattern depends on
//!   the seed and the day but not on the revision.
//! * Land and cloud pixels hold `_FillValue` in every variable that has one.
//! * A revision `> 0` changes `sea_surface_temperature` at every valid pixel
//!   (by at least `0.05 * revision` K), while the grid, times, land/cloud
//!   mask and the other variables stay identical to revision 0.
//!
//! Variables are generated and written in blocks of rows, so full-size grids
//! (4500 x 6000) are produced with bounded memory.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

/// Options for generated gridded SST files.
#[derive(Debug, Clone)]
pub struct GriddedSampleOptions {
    /// Number of daily files.
    pub days: usize,
    /// Grid rows (latitudes).
    pub lat: usize,
    /// Grid columns (longitudes).
    pub lon: usize,
    /// First day.
    pub start: NaiveDate,
    /// 0 = original values; `> 0` = revised values (same grid, times and
    /// masks; SST values differ deterministically).
    pub revision: u32,
    /// Seed of the deterministic pseudo-random noise and cloud pattern.
    pub seed: u64,
}

impl Default for GriddedSampleOptions {
    /// Three days of a 1-degree global grid starting 2024-01-01, revision 0,
    /// seed 1.
    fn default() -> Self {
        Self {
            days: 3,
            lat: 180,
            lon: 360,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("2024-01-01 is a valid date"),
            revision: 0,
            seed: 1,
        }
    }
}

/// Errors of the sample generator.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Creating or writing a netCDF file failed.
    #[error("cannot write sample file {path}: {source}")]
    Write {
        /// File being written.
        path: PathBuf,
        /// Underlying netCDF error.
        #[source]
        source: netcdf::Error,
    },
    /// Creating the output directory failed.
    #[error("cannot create directory {path}: {source}")]
    Dir {
        /// Directory being created.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// File name for a day, e.g.
/// `"20240101120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"`.
pub fn gridded_sample_name(day: NaiveDate) -> String {
    format!(
        "{}120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc",
        day.format("%Y%m%d")
    )
}

/// Writes one file per day (`opts.days` days from `opts.start`) into
/// `out_dir` (created if missing), named by [`gridded_sample_name`].
/// Existing files are overwritten. Returns the paths in time order.
pub fn write_gridded_samples(
    out_dir: &Path,
    opts: &GriddedSampleOptions,
) -> Result<Vec<PathBuf>, SampleError> {
    std::fs::create_dir_all(out_dir).map_err(|source| SampleError::Dir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::with_capacity(opts.days);
    for k in 0..opts.days {
        let day = opts
            .start
            .checked_add_days(chrono::Days::new(k as u64))
            .ok_or_else(|| SampleError::Write {
                path: out_dir.to_path_buf(),
                source: netcdf::Error::Str(format!(
                    "day {k} after {} is out of the date range",
                    opts.start
                )),
            })?;
        let path = out_dir.join(gridded_sample_name(day));
        write_gridded_sample_file(&path, day, opts)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes a single day's file to `path` (overwriting it), using the grid,
/// seed and revision of `opts`; used by [`write_gridded_samples`].
///
/// `opts.days` and `opts.start` are ignored: the content depends only on
/// `day`, the grid size, `opts.seed` and `opts.revision`.
pub fn write_gridded_sample_file(
    path: &Path,
    day: NaiveDate,
    opts: &GriddedSampleOptions,
) -> Result<(), SampleError> {
    write_file(path, day, opts).map_err(|source| SampleError::Write {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Constants of the file layout.

/// Fill value of the int16 variables.
const FILL_I16: i16 = -32768;
/// Fill value of the int8 variables.
const FILL_I8: i8 = -128;
/// Scale factor of `sea_surface_temperature`.
const SST_SCALE: f64 = 0.01;
/// Offset of `sea_surface_temperature`.
const SST_OFFSET: f64 = 273.15;
/// Valid packed range of `sea_surface_temperature`.
const SST_VALID: (i16, i16) = (-200, 5000);
/// Maximum rows per chunk and per write block.
const BLOCK_ROWS: usize = 500;
/// Maximum columns per chunk.
const CHUNK_COLS: usize = 1000;
/// Deflate level of the 3-D variables.
const DEFLATE_LEVEL: i32 = 4;
/// Bit of `l2p_flags` marking land.
const FLAG_LAND: i16 = 2;

/// Names of the 3-D variables, in writing order.
const VARS_3D: [&str; 6] = [
    "sea_surface_temperature",
    "quality_level",
    "sses_bias",
    "sses_standard_deviation",
    "sst_dtime",
    "l2p_flags",
];

/// Reference epoch of the `time` variable.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1981, 1, 1).expect("1981-01-01 is a valid date")
}

/// Seconds from 1981-01-01T00:00:00 to `day` at 12:00:00.
fn reference_seconds(day: NaiveDate) -> i64 {
    (day - epoch()).num_seconds() + 43_200
}

// ---------------------------------------------------------------------------
// Deterministic pseudo-random numbers.

/// The splitmix64 finaliser: a cheap, well-mixing 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Key of one noise stream for a (seed, day, stream) combination.
fn stream_key(seed: u64, day_index: i64, stream: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ day_index as u64) ^ stream)
}

/// Hash of pixel (i, j) within a stream.
fn pixel_hash(key: u64, i: usize, j: usize) -> u64 {
    splitmix64(key ^ (((i as u64) << 32) | (j as u64 & 0xFFFF_FFFF)))
}

/// Maps 16 bits to a uniform value in [-1, 1).
fn unit16(bits: u64) -> f64 {
    (bits & 0xFFFF) as f64 / 32768.0 - 1.0
}

// ---------------------------------------------------------------------------
// Land mask.

/// Elliptical "continents": (centre lat, centre lon, semi-axis lat,
/// semi-axis lon), in degrees.
const CONTINENTS: [(f64, f64, f64, f64); 7] = [
    (45.0, -100.0, 22.0, 32.0), // North America
    (72.0, -40.0, 10.0, 16.0),  // Greenland
    (-15.0, -60.0, 26.0, 16.0), // South America
    (50.0, 85.0, 22.0, 65.0),   // Eurasia
    (5.0, 20.0, 30.0, 20.0),    // Africa
    (-25.0, 134.0, 12.0, 18.0), // Australia
    (-20.0, 47.0, 7.0, 4.0),    // Madagascar
];

/// Southern latitude limit of the Antarctic land cap.
const ANTARCTIC_LAT: f64 = -72.0;

/// Whether the cell centre at (`lat`, `lon`) degrees is land.
fn is_land(lat: f64, lon: f64) -> bool {
    if lat < ANTARCTIC_LAT {
        return true;
    }
    CONTINENTS.iter().any(|&(clat, clon, alat, alon)| {
        let dlat = (lat - clat) / alat;
        if dlat.abs() > 1.0 {
            return false;
        }
        let dlon = ((lon - clon + 540.0).rem_euclid(360.0) - 180.0) / alon;
        dlat * dlat + dlon * dlon <= 1.0
    })
}

/// Latitude of the centre of row `i` of `n` rows (south to north).
fn lat_centre(i: usize, n: usize) -> f64 {
    -90.0 + (i as f64 + 0.5) * 180.0 / n as f64
}

/// Longitude of the centre of column `j` of `n` columns (west to east).
fn lon_centre(j: usize, n: usize) -> f64 {
    -180.0 + (j as f64 + 0.5) * 360.0 / n as f64
}

// ---------------------------------------------------------------------------
// Field generation.

/// Per-column precomputed terms.
struct Columns {
    lon: Vec<f64>,
    sin3: Vec<f64>,
    cos3: Vec<f64>,
    sin2: Vec<f64>,
    cos2: Vec<f64>,
    /// Base `sst_dtime` offset (seconds) from the local solar time.
    dtime: Vec<f64>,
}

impl Columns {
    fn new(n: usize) -> Self {
        let lon: Vec<f64> = (0..n).map(|j| lon_centre(j, n)).collect();
        let rad = |l: &f64| l.to_radians();
        Self {
            sin3: lon.iter().map(|l| (3.0 * rad(l)).sin()).collect(),
            cos3: lon.iter().map(|l| (3.0 * rad(l)).cos()).collect(),
            sin2: lon.iter().map(|l| (2.0 * rad(l)).sin()).collect(),
            cos2: lon.iter().map(|l| (2.0 * rad(l)).cos()).collect(),
            dtime: lon.iter().map(|l| -l / 180.0 * 28_800.0).collect(),
            lon,
        }
    }
}

/// Day-dependent parameters of the field.
struct DayParams {
    /// Noise stream (cloud, noise, quality, SSES, dtime).
    key: u64,
    /// Noise stream of the revision shift (only used when revision > 0).
    rev_key: u64,
    revision: u32,
    /// sin/cos of the phase of the first travelling wave.
    p1: (f64, f64),
    /// sin/cos of the phase of the second travelling wave.
    p2: (f64, f64),
    /// Seasonal factor (+1 in northern summer, -1 in northern winter).
    season: f64,
}

impl DayParams {
    fn new(day: NaiveDate, opts: &GriddedSampleOptions) -> Self {
        let d = (day - epoch()).num_days();
        let phase1 = 0.35 * d as f64;
        let phase2 = -0.2 * d as f64;
        let doy = f64::from(day.ordinal0());
        Self {
            key: stream_key(opts.seed, d, 0x5353_545F_4241_5345),
            rev_key: stream_key(
                opts.seed,
                d,
                0x5245_5649_5349_4F4E ^ u64::from(opts.revision),
            ),
            revision: opts.revision,
            p1: phase1.sin_cos(),
            p2: phase2.sin_cos(),
            season: -(2.0 * std::f64::consts::PI * (doy - 15.0) / 365.25).cos(),
        }
    }
}

/// Output buffers of one block of rows.
#[derive(Default)]
struct Block {
    sst: Vec<i16>,
    quality: Vec<i8>,
    bias: Vec<i8>,
    stddev: Vec<i8>,
    dtime: Vec<i16>,
    flags: Vec<i16>,
}

impl Block {
    fn clear(&mut self) {
        self.sst.clear();
        self.quality.clear();
        self.bias.clear();
        self.stddev.clear();
        self.dtime.clear();
        self.flags.clear();
    }

    fn push_fill(&mut self, land: bool) {
        self.sst.push(FILL_I16);
        self.quality.push(FILL_I8);
        self.bias.push(FILL_I8);
        self.stddev.push(FILL_I8);
        self.dtime.push(FILL_I16);
        self.flags.push(if land { FLAG_LAND } else { 0 });
    }

    /// Fills the buffers for rows `rows` of an `nlat` x `cols.lon.len()` grid.
    fn generate(
        &mut self,
        rows: std::ops::Range<usize>,
        nlat: usize,
        cols: &Columns,
        p: &DayParams,
    ) {
        self.clear();
        let nlon = cols.lon.len();
        for i in rows {
            let lat = lat_centre(i, nlat);
            let phi = lat.to_radians();
            let cphi = phi.cos();
            // Warm equator (~302 K), cold poles (~271.5 K).
            let base = 271.5 + 30.5 * cphi * cphi + 1.2 * (2.0 * phi).sin() * p.season;
            let amp1 = 0.6 * cphi;
            let amp2 = 0.4 * (2.0 * phi).sin();
            for j in 0..nlon {
                if is_land(lat, cols.lon[j]) {
                    self.push_fill(true);
                    continue;
                }
                let h = pixel_hash(p.key, i, j);
                // ~5 % cloud (3277 / 65536).
                if h & 0xFFFF < 3277 {
                    self.push_fill(false);
                    continue;
                }
                // sin(3*lon + phase1) and cos(2*lon + phase2).
                let w1 = cols.sin3[j] * p.p1.1 + cols.cos3[j] * p.p1.0;
                let w2 = cols.cos2[j] * p.p2.1 - cols.sin2[j] * p.p2.0;
                let mut kelvin = base + amp1 * w1 + amp2 * w2 + 0.15 * unit16(h >> 16);
                if p.revision > 0 {
                    let r = pixel_hash(p.rev_key, i, j);
                    kelvin += 0.05 * f64::from(p.revision) + 0.04 * (unit16(r) + 1.0) / 2.0;
                }
                let packed = ((kelvin - SST_OFFSET) / SST_SCALE).round();
                let packed = packed.clamp(f64::from(SST_VALID.0), f64::from(SST_VALID.1));
                self.sst.push(packed as i16);

                const QUALITY: [i8; 8] = [2, 3, 4, 4, 5, 5, 5, 5];
                self.quality.push(QUALITY[((h >> 32) & 7) as usize]);
                self.bias.push((((h >> 35) & 0xFF) % 41) as i8 - 20);
                self.stddev.push((((h >> 43) & 0xFF) % 61) as i8 - 30);
                let dt = cols.dtime[j] + 10.0 * (((h >> 51) & 0xFF) as f64 - 128.0);
                self.dtime.push(dt.round().clamp(-32767.0, 32767.0) as i16);
                self.flags.push(0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// File writing.

/// Writes the file; errors are wrapped with the path by the caller.
fn write_file(path: &Path, day: NaiveDate, opts: &GriddedSampleOptions) -> netcdf::Result<()> {
    let (nlat, nlon) = (opts.lat, opts.lon);
    let time_value = i32::try_from(reference_seconds(day)).map_err(|_| {
        netcdf::Error::Str(format!("day {day} does not fit the int32 time variable"))
    })?;

    let mut file = netcdf::create(path)?;
    define(&mut file, day, opts)?;

    // Coordinates.
    let lat: Vec<f32> = (0..nlat).map(|i| lat_centre(i, nlat) as f32).collect();
    let lon: Vec<f32> = (0..nlon).map(|j| lon_centre(j, nlon) as f32).collect();
    var_mut(&mut file, "time")?.put_values(&[time_value], 0..1)?;
    if nlat > 0 {
        var_mut(&mut file, "lat")?.put_values(&lat, ..)?;
    }
    if nlon > 0 {
        var_mut(&mut file, "lon")?.put_values(&lon, ..)?;
    }

    // 3-D variables, block of rows by block of rows.
    if nlat > 0 && nlon > 0 {
        let cols = Columns::new(nlon);
        let params = DayParams::new(day, opts);
        let mut block = Block::default();
        let mut r0 = 0;
        while r0 < nlat {
            let r1 = (r0 + BLOCK_ROWS).min(nlat);
            block.generate(r0..r1, nlat, &cols, &params);
            let ext = [0..1, r0..r1, 0..nlon];
            var_mut(&mut file, VARS_3D[0])?.put_values(&block.sst, ext.clone())?;
            var_mut(&mut file, VARS_3D[1])?.put_values(&block.quality, ext.clone())?;
            var_mut(&mut file, VARS_3D[2])?.put_values(&block.bias, ext.clone())?;
            var_mut(&mut file, VARS_3D[3])?.put_values(&block.stddev, ext.clone())?;
            var_mut(&mut file, VARS_3D[4])?.put_values(&block.dtime, ext.clone())?;
            var_mut(&mut file, VARS_3D[5])?.put_values(&block.flags, ext)?;
            r0 = r1;
        }
    }
    file.close()
}

/// Looks up a variable defined by [`define`].
fn var_mut<'f>(
    file: &'f mut netcdf::FileMut,
    name: &str,
) -> netcdf::Result<netcdf::VariableMut<'f>> {
    file.variable_mut(name)
        .ok_or_else(|| netcdf::Error::NotFound(format!("variable {name}")))
}

/// Sets compression, chunking and (optionally) the fill value of a 3-D
/// variable.
fn setup_3d<T: netcdf::NcTypeDescriptor>(
    var: &mut netcdf::VariableMut<'_>,
    nlat: usize,
    nlon: usize,
    fill: Option<T>,
) -> netcdf::Result<()> {
    var.set_chunking(&[1, nlat.clamp(1, BLOCK_ROWS), nlon.clamp(1, CHUNK_COLS)])?;
    var.set_compression(DEFLATE_LEVEL, true)?;
    if let Some(fill) = fill {
        var.set_fill_value(fill)?;
    }
    Ok(())
}

/// Defines dimensions, variables and attributes.
fn define(
    file: &mut netcdf::FileMut,
    day: NaiveDate,
    opts: &GriddedSampleOptions,
) -> netcdf::Result<()> {
    let (nlat, nlon) = (opts.lat, opts.lon);
    let dims3 = ["time", "lat", "lon"];
    file.add_unlimited_dimension("time")?;
    file.add_dimension("lat", nlat)?;
    file.add_dimension("lon", nlon)?;

    {
        let mut v = file.add_variable::<i32>("time", &["time"])?;
        v.put_attribute("long_name", "reference time of sst file")?;
        v.put_attribute("standard_name", "time")?;
        v.put_attribute("axis", "T")?;
        v.put_attribute("units", "seconds since 1981-01-01 00:00:00")?;
        v.put_attribute("calendar", "gregorian")?;
        v.put_attribute("comment", "Nominal time of the collated Level 3 product")?;
    }
    {
        let mut v = file.add_variable::<f32>("lat", &["lat"])?;
        v.put_attribute("long_name", "latitude")?;
        v.put_attribute("standard_name", "latitude")?;
        v.put_attribute("axis", "Y")?;
        v.put_attribute("units", "degrees_north")?;
        v.put_attribute("valid_min", -90.0f32)?;
        v.put_attribute("valid_max", 90.0f32)?;
        v.put_attribute("comment", "Latitudes of grid cell centres, south to north")?;
    }
    {
        let mut v = file.add_variable::<f32>("lon", &["lon"])?;
        v.put_attribute("long_name", "longitude")?;
        v.put_attribute("standard_name", "longitude")?;
        v.put_attribute("axis", "X")?;
        v.put_attribute("units", "degrees_east")?;
        v.put_attribute("valid_min", -180.0f32)?;
        v.put_attribute("valid_max", 180.0f32)?;
        v.put_attribute("comment", "Longitudes of grid cell centres, west to east")?;
    }
    {
        let mut v = file.add_variable::<i16>("sea_surface_temperature", &dims3)?;
        setup_3d(&mut v, nlat, nlon, Some(FILL_I16))?;
        v.put_attribute("long_name", "sea surface sub-skin temperature")?;
        v.put_attribute("standard_name", "sea_surface_subskin_temperature")?;
        v.put_attribute("units", "kelvin")?;
        v.put_attribute("scale_factor", SST_SCALE as f32)?;
        v.put_attribute("add_offset", SST_OFFSET as f32)?;
        v.put_attribute("valid_min", SST_VALID.0)?;
        v.put_attribute("valid_max", SST_VALID.1)?;
        v.put_attribute("coverage_content_type", "physicalMeasurement")?;
        v.put_attribute("source", "zru sample generator")?;
        v.put_attribute(
            "comment",
            "Synthetic SST for testing: zonal climatology plus travelling waves \
             and deterministic noise; land and cloud are _FillValue",
        )?;
    }
    {
        let mut v = file.add_variable::<i8>("quality_level", &dims3)?;
        setup_3d(&mut v, nlat, nlon, Some(FILL_I8))?;
        v.put_attribute("long_name", "quality level of SST pixel")?;
        v.put_attribute("valid_min", 0i8)?;
        v.put_attribute("valid_max", 5i8)?;
        v.put_attribute("flag_values", vec![0i8, 1, 2, 3, 4, 5])?;
        v.put_attribute(
            "flag_meanings",
            "no_data bad_data worst_quality low_quality acceptable_quality best_quality",
        )?;
        v.put_attribute("coverage_content_type", "qualityInformation")?;
        v.put_attribute(
            "comment",
            "These are the overall quality indicators and are used for all GHRSST SSTs",
        )?;
    }
    {
        let mut v = file.add_variable::<i8>("sses_bias", &dims3)?;
        setup_3d(&mut v, nlat, nlon, Some(FILL_I8))?;
        v.put_attribute("long_name", "SSES bias estimate")?;
        v.put_attribute("units", "kelvin")?;
        v.put_attribute("scale_factor", 0.016f32)?;
        v.put_attribute("add_offset", 0.0f32)?;
        v.put_attribute("valid_min", -127i8)?;
        v.put_attribute("valid_max", 127i8)?;
        v.put_attribute("coverage_content_type", "auxiliaryInformation")?;
        v.put_attribute(
            "comment",
            "Bias is derived against a synthetic reference; subtract from SST",
        )?;
    }
    {
        let mut v = file.add_variable::<i8>("sses_standard_deviation", &dims3)?;
        setup_3d(&mut v, nlat, nlon, Some(FILL_I8))?;
        v.put_attribute("long_name", "SSES standard deviation")?;
        v.put_attribute("units", "kelvin")?;
        v.put_attribute("scale_factor", 0.01f32)?;
        v.put_attribute("add_offset", 1.0f32)?;
        v.put_attribute("valid_min", -127i8)?;
        v.put_attribute("valid_max", 127i8)?;
        v.put_attribute("coverage_content_type", "auxiliaryInformation")?;
        v.put_attribute("comment", "Synthetic standard deviation estimate")?;
    }
    {
        let mut v = file.add_variable::<i16>("sst_dtime", &dims3)?;
        setup_3d(&mut v, nlat, nlon, Some(FILL_I16))?;
        v.put_attribute("long_name", "time difference from reference time")?;
        v.put_attribute("units", "second")?;
        v.put_attribute("scale_factor", 1i16)?;
        v.put_attribute("add_offset", 0i16)?;
        v.put_attribute("valid_min", -32767i16)?;
        v.put_attribute("valid_max", 32767i16)?;
        v.put_attribute("coverage_content_type", "referenceInformation")?;
        v.put_attribute(
            "comment",
            "time plus sst_dtime gives seconds after 00:00:00 UTC January 1, 1981",
        )?;
    }
    {
        let mut v = file.add_variable::<i16>("l2p_flags", &dims3)?;
        setup_3d::<i16>(&mut v, nlat, nlon, None)?;
        v.put_attribute("long_name", "L2P flags")?;
        v.put_attribute("valid_min", 0i16)?;
        v.put_attribute("valid_max", 31i16)?;
        v.put_attribute("flag_masks", vec![1i16, 2, 4, 8, 16])?;
        v.put_attribute("flag_meanings", "microwave land ice lake river")?;
        v.put_attribute("coverage_content_type", "qualityInformation")?;
        v.put_attribute("comment", "Bit 2 (value 2) marks land; other bits unused")?;
    }

    let start = day.format("%Y-%m-%dT00:00:00Z").to_string();
    let stop = day.format("%Y-%m-%dT23:59:59Z").to_string();
    let lat_res = if nlat > 0 { 180.0 / nlat as f32 } else { 0.0 };
    let lon_res = if nlon > 0 { 360.0 / nlon as f32 } else { 0.0 };
    let globals: [(&str, netcdf::AttributeValue); 29] = [
        ("Conventions", "CF-1.7, ACDD-1.3".into()),
        (
            "title",
            "Synthetic L3S daily gridded sea surface temperature (zru sample)".into(),
        ),
        (
            "summary",
            "Deterministic synthetic imitation of a GHRSST GDS 2.0 L3S SST product, \
             generated by zru for demonstrations, tests and benchmarks. \
             Not real data."
                .into(),
        ),
        ("references", "https://www.ghrsst.org".into()),
        ("institution", "zru sample generator".into()),
        ("history", "created by zru::sample".into()),
        ("comment", "Synthetic data: do not use for science".into()),
        (
            "license",
            "Synthetic data, free to use without restriction".into(),
        ),
        ("id", "ZRU-L3S_GHRSST-SSTsubskin-SAMPLE".into()),
        ("naming_authority", "org.ghrsst".into()),
        ("product_version", "0.1".into()),
        (
            "uuid",
            format!("zru-sample-{}-{}", day.format("%Y%m%d"), opts.revision).into(),
        ),
        ("gds_version_id", "2.0".into()),
        ("netcdf_version_id", "4".into()),
        ("file_quality_level", 3i32.into()),
        ("spatial_resolution", format!("{lat_res} degree").into()),
        (
            "start_time",
            day.format("%Y%m%dT000000Z").to_string().into(),
        ),
        ("stop_time", day.format("%Y%m%dT235959Z").to_string().into()),
        ("time_coverage_start", start.into()),
        ("time_coverage_end", stop.into()),
        ("northernmost_latitude", 90.0f32.into()),
        ("southernmost_latitude", (-90.0f32).into()),
        ("easternmost_longitude", 180.0f32.into()),
        ("westernmost_longitude", (-180.0f32).into()),
        ("geospatial_lat_resolution", lat_res.into()),
        ("geospatial_lon_resolution", lon_res.into()),
        (
            "project",
            "Group for High Resolution Sea Surface Temperature".into(),
        ),
        ("processing_level", "L3S".into()),
        (
            "zru_sample_revision",
            i32::try_from(opts.revision).unwrap_or(i32::MAX).into(),
        ),
    ];
    for (name, value) in globals {
        file.add_attribute(name, value)?;
    }
    file.add_attribute("geospatial_lat_units", "degrees_north")?;
    file.add_attribute("geospatial_lon_units", "degrees_east")?;
    file.add_attribute("platform", "synthetic")?;
    file.add_attribute("sensor", "synthetic")?;
    file.add_attribute("cdm_data_type", "grid")?;
    file.add_attribute("zru_sample_seed", opts.seed.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01T12:00:00 in seconds since 1981-01-01T00:00:00:
    /// 43 years with 10 leap days (1984..=2020) = 15705 days.
    const T_2024_01_01_NOON: i32 = 15_705 * 86_400 + 43_200;

    fn small(revision: u32) -> GriddedSampleOptions {
        GriddedSampleOptions {
            days: 2,
            lat: 20,
            lon: 30,
            revision,
            ..GriddedSampleOptions::default()
        }
    }

    fn read_i16(file: &netcdf::File, name: &str) -> Vec<i16> {
        file.variable(name)
            .expect("variable exists")
            .get_values::<i16, _>(..)
            .expect("readable")
    }

    fn land_mask(nlat: usize, nlon: usize) -> Vec<bool> {
        (0..nlat)
            .flat_map(|i| (0..nlon).map(move |j| is_land(lat_centre(i, nlat), lon_centre(j, nlon))))
            .collect()
    }

    #[test]
    fn time_constant_is_right() {
        assert_eq!(T_2024_01_01_NOON, 1_356_955_200);
        let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        assert_eq!(reference_seconds(day), 1_356_955_200);
    }

    #[test]
    fn names() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        assert_eq!(
            gridded_sample_name(day),
            "20240101120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"
        );
    }

    #[test]
    fn writes_two_days() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/out");
        let opts = small(0);
        let paths = write_gridded_samples(&out, &opts).unwrap();
        assert_eq!(paths.len(), 2);
        assert!(
            paths[0].ends_with("20240101120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc")
        );
        assert!(
            paths[1].ends_with("20240102120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc")
        );

        let land = land_mask(20, 30);
        assert!(land.iter().any(|&l| l), "grid has land");
        assert!(land.iter().any(|&l| !l), "grid has ocean");

        for (k, path) in paths.iter().enumerate() {
            let f = netcdf::open(path).unwrap();
            let time = f.dimension("time").unwrap();
            assert!(time.is_unlimited());
            assert_eq!(time.len(), 1);
            assert_eq!(f.dimension_len("lat"), Some(20));
            assert_eq!(f.dimension_len("lon"), Some(30));

            let t = f.variable("time").unwrap();
            assert_eq!(
                t.vartype(),
                netcdf::types::NcVariableType::Int(netcdf::types::IntType::I32)
            );
            let tv = t.get_values::<i32, _>(..).unwrap();
            assert_eq!(tv, vec![T_2024_01_01_NOON + 86_400 * k as i32]);

            let lat = f.variable("lat").unwrap().get_values::<f32, _>(..).unwrap();
            assert!((lat[0] + 85.5).abs() < 1e-4 && (lat[19] - 85.5).abs() < 1e-4);
            let lon = f.variable("lon").unwrap().get_values::<f32, _>(..).unwrap();
            assert!((lon[0] + 174.0).abs() < 1e-4 && (lon[29] - 174.0).abs() < 1e-4);

            use netcdf::types::IntType;
            for (name, ty) in [
                ("sea_surface_temperature", IntType::I16),
                ("quality_level", IntType::I8),
                ("sses_bias", IntType::I8),
                ("sses_standard_deviation", IntType::I8),
                ("sst_dtime", IntType::I16),
                ("l2p_flags", IntType::I16),
            ] {
                let v = f.variable(name).unwrap();
                assert_eq!(
                    v.vartype(),
                    netcdf::types::NcVariableType::Int(ty),
                    "{name}"
                );
                let dims: Vec<String> = v.dimensions().iter().map(|d| d.name()).collect();
                assert_eq!(dims, ["time", "lat", "lon"], "{name}");
                assert_eq!(v.chunking().unwrap(), Some(vec![1, 20, 30]), "{name}");
            }

            let sst_var = f.variable("sea_surface_temperature").unwrap();
            assert_eq!(sst_var.fill_value::<i16>().unwrap(), Some(-32768));
            let sst = read_i16(&f, "sea_surface_temperature");
            let dtime = read_i16(&f, "sst_dtime");
            let flags = read_i16(&f, "l2p_flags");
            let ql = f
                .variable("quality_level")
                .unwrap()
                .get_values::<i8, _>(..)
                .unwrap();
            let bias = f
                .variable("sses_bias")
                .unwrap()
                .get_values::<i8, _>(..)
                .unwrap();
            let mut valid = 0;
            for p in 0..sst.len() {
                if land[p] {
                    assert_eq!(sst[p], FILL_I16);
                    assert_eq!(dtime[p], FILL_I16);
                    assert_eq!(ql[p], FILL_I8);
                    assert_eq!(bias[p], FILL_I8);
                    assert_eq!(flags[p], 2);
                } else {
                    assert_eq!(flags[p], 0);
                    if sst[p] != FILL_I16 {
                        valid += 1;
                        let kelvin = f64::from(sst[p]) * 0.01 + 273.15;
                        assert!((270.0..305.0).contains(&kelvin), "{kelvin}");
                        assert!((2..=5).contains(&ql[p]));
                    } else {
                        assert_eq!(ql[p], FILL_I8);
                    }
                }
            }
            let ocean = land.iter().filter(|&&l| !l).count();
            assert!(valid * 10 > ocean * 8, "at most ~5% cloud: {valid}/{ocean}");

            let rev = f.attribute("zru_sample_revision").unwrap().value().unwrap();
            assert_eq!(rev, netcdf::AttributeValue::Int(0));
        }
    }

    #[test]
    fn revision_changes_values_only() {
        let dir = tempfile::tempdir().unwrap();
        let p0 = write_gridded_samples(&dir.path().join("r0"), &small(0)).unwrap();
        let p1 = write_gridded_samples(&dir.path().join("r1"), &small(1)).unwrap();
        let land = land_mask(20, 30);
        for (a, b) in p0.iter().zip(&p1) {
            let fa = netcdf::open(a).unwrap();
            let fb = netcdf::open(b).unwrap();
            let ta = fa
                .variable("time")
                .unwrap()
                .get_values::<i32, _>(..)
                .unwrap();
            let tb = fb
                .variable("time")
                .unwrap()
                .get_values::<i32, _>(..)
                .unwrap();
            assert_eq!(ta, tb);
            let sa = read_i16(&fa, "sea_surface_temperature");
            let sb = read_i16(&fb, "sea_surface_temperature");
            assert_eq!(read_i16(&fa, "l2p_flags"), read_i16(&fb, "l2p_flags"));
            let mut compared = 0;
            for p in 0..sa.len() {
                assert_eq!(sa[p] == FILL_I16, sb[p] == FILL_I16, "same mask");
                if land[p] {
                    assert_eq!(sa[p], FILL_I16);
                } else if sa[p] != FILL_I16 {
                    assert!(sb[p] >= sa[p] + 4, "revised value differs at {p}");
                    compared += 1;
                }
            }
            assert!(compared > 0);
            let rev = fb
                .attribute("zru_sample_revision")
                .unwrap()
                .value()
                .unwrap();
            assert_eq!(rev, netcdf::AttributeValue::Int(1));
        }
    }

    #[test]
    fn deterministic_and_day_dependent() {
        let dir = tempfile::tempdir().unwrap();
        let opts = small(0);
        let a = write_gridded_samples(&dir.path().join("a"), &opts).unwrap();
        let b = write_gridded_samples(&dir.path().join("b"), &opts).unwrap();
        let s = |p: &PathBuf| read_i16(&netcdf::open(p).unwrap(), "sea_surface_temperature");
        assert_eq!(s(&a[0]), s(&b[0]));
        assert_eq!(s(&a[1]), s(&b[1]));
        assert_ne!(s(&a[0]), s(&a[1]));
    }

    #[test]
    fn multi_block_grid() {
        // More rows than one block, with a partial last block.
        let dir = tempfile::tempdir().unwrap();
        let opts = GriddedSampleOptions {
            days: 1,
            lat: BLOCK_ROWS + 7,
            lon: 12,
            ..GriddedSampleOptions::default()
        };
        let paths = write_gridded_samples(dir.path(), &opts).unwrap();
        let f = netcdf::open(&paths[0]).unwrap();
        let sst = read_i16(&f, "sea_surface_temperature");
        let land = land_mask(opts.lat, opts.lon);
        assert_eq!(sst.len(), land.len());
        for (v, l) in sst.iter().zip(&land) {
            if *l {
                assert_eq!(*v, FILL_I16);
            }
        }
        // Last rows (north pole, ocean) are written.
        assert!(sst[sst.len() - 12..].iter().any(|&v| v != FILL_I16));
    }
}
