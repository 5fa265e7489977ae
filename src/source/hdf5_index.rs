//! A netCDF-4 variable's chunk index, read through HDF5 (the library netCDF-C links).
//!
//! [`ChunkIndex::open`] opens the file's HDF5 dataset of a variable and says how it is
//! stored (its shape, chunk shape and filters) when zru can decode its chunks itself:
//! chunked storage, a little-endian integer or IEEE float type of the variable's own
//! width, filters among deflate, shuffle and Fletcher-32, every chunk filtered, no user
//! block. [`ChunkIndex::locate`] then gives each chunk's place in the file. Every HDF5
//! call holds the lock netCDF-C's calls hold (`netcdf_sys::libnetcdf_lock`, which is
//! `hdf5_metno_sys::LOCK`): HDF5 is not reentrant unless built thread-safe.

use std::ffi::CString;
use std::path::Path;

use hdf5_metno_sys::h5::{haddr_t, hsize_t, HADDR_UNDEF};
use hdf5_metno_sys::h5d::{
    H5D_layout_t, H5Dclose, H5Dget_chunk_info_by_coord, H5Dget_create_plist, H5Dget_space,
    H5Dget_type, H5Dopen2, H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS,
};
use hdf5_metno_sys::h5e::{H5Eset_auto2, H5E_DEFAULT};
use hdf5_metno_sys::h5f::{H5Fclose, H5Fget_create_plist, H5Fopen, H5F_ACC_RDONLY};
use hdf5_metno_sys::h5i::hid_t;
use hdf5_metno_sys::h5l::H5Lexists;
use hdf5_metno_sys::h5p::{
    H5Pclose, H5Pget_chunk, H5Pget_chunk_opts, H5Pget_filter2, H5Pget_layout, H5Pget_nfilters,
    H5Pget_userblock, H5P_DEFAULT,
};
use hdf5_metno_sys::h5s::{H5Sclose, H5Sget_simple_extent_dims, H5Sget_simple_extent_ndims};
use hdf5_metno_sys::h5t::{
    H5T_class_t, H5T_order_t, H5T_sign_t, H5Tclose, H5Tget_class, H5Tget_ebias, H5Tget_fields,
    H5Tget_offset, H5Tget_order, H5Tget_precision, H5Tget_sign, H5Tget_size,
};
use hdf5_metno_sys::h5z::{H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32, H5Z_FILTER_SHUFFLE};

use super::filters::Filter;
use crate::values::ElementType;

/// netCDF-C's name for the HDF5 dataset of a variable whose name is also a dimension's
/// but which is not that dimension's coordinate variable.
const NON_COORD_PREFIX: &str = "_nc4_non_coord_";

/// How a variable's chunks are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The dataset's current shape.
    pub shape: Vec<u64>,
    /// Its chunk shape (every stored chunk has this many elements, edge chunks padded).
    pub chunk: Vec<u64>,
    /// Its filters in pipeline (writing) order.
    pub filters: Vec<Filter>,
    /// The deflate filter's level, if it has one.
    pub deflate_level: Option<u32>,
}

/// Where one stored chunk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkLocation {
    /// Byte offset of the stored chunk in the file.
    pub offset: u64,
    /// Its stored (filtered) size in bytes.
    pub size: u64,
    /// Filters not applied to this chunk (bit i: filter i of the pipeline).
    pub mask: u32,
}

/// An HDF5 file and one of its datasets, open until dropped.
#[derive(Debug)]
pub(crate) struct ChunkIndex {
    file: hid_t,
    dataset: hid_t,
}

/// HDF5 identifiers closed (in reverse order) when dropped, for the early returns of
/// [`ChunkIndex::open`].
struct Ids(Vec<(hid_t, unsafe extern "C" fn(hid_t) -> i32)>);

impl Drop for Ids {
    fn drop(&mut self) {
        for &(id, close) in self.0.iter().rev() {
            // SAFETY: each id was returned valid by the HDF5 call that opened it and is
            // closed once, by its own close function, under the caller's lock.
            unsafe { close(id) };
        }
    }
}

impl ChunkIndex {
    /// Opens the dataset of variable `name` (`element` values, `shape` in netCDF) of
    /// the netCDF-4 file at `path`. `None` when zru cannot decode its chunks (or the
    /// file is not HDF5): the caller reads through netCDF-C.
    pub(crate) fn open(
        path: &Path,
        name: &str,
        element: ElementType,
        shape: &[u64],
    ) -> Option<(Self, Layout)> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
        let _guard = netcdf_sys::libnetcdf_lock.lock();
        let mut ids = Ids(Vec::new());
        // SAFETY: plain HDF5 calls on ids this function opened and checked, under the
        // library lock; buffers passed are sized as each call expects.
        unsafe {
            // Failures are answers here (not netCDF-4, not handled), not messages.
            H5Eset_auto2(H5E_DEFAULT, None, std::ptr::null_mut());
            let file = H5Fopen(c_path.as_ptr(), H5F_ACC_RDONLY, H5P_DEFAULT);
            if file < 0 {
                return None;
            }
            ids.0.push((file, H5Fclose));
            if !no_user_block(file) {
                return None;
            }
            let dataset = open_dataset(file, name)?;
            ids.0.push((dataset, H5Dclose));
            let layout = layout(dataset, element)?;
            if layout.shape != shape {
                return None;
            }
            ids.0.clear();
            Some((Self { file, dataset }, layout))
        }
    }

    /// The stored chunk whose first element is at `origin`; `None` if it is not
    /// stored (it reads as fill) or HDF5 cannot say.
    pub(crate) fn locate(&self, origin: &[u64]) -> Option<ChunkLocation> {
        let origin: Vec<hsize_t> = origin.to_vec();
        let (mut mask, mut addr, mut size): (u32, haddr_t, hsize_t) = (0, 0, 0);
        let _guard = netcdf_sys::libnetcdf_lock.lock();
        // SAFETY: `origin` has one entry per dimension of the open dataset; the out
        // pointers are valid locals.
        let status = unsafe {
            H5Dget_chunk_info_by_coord(
                self.dataset,
                origin.as_ptr(),
                &mut mask,
                &mut addr,
                &mut size,
            )
        };
        (status >= 0 && addr != HADDR_UNDEF && size > 0).then_some(ChunkLocation {
            offset: addr,
            size,
            mask,
        })
    }
}

impl Drop for ChunkIndex {
    fn drop(&mut self) {
        let _guard = netcdf_sys::libnetcdf_lock.lock();
        // SAFETY: both ids are open (checked in `open`) and closed once, here.
        unsafe {
            H5Dclose(self.dataset);
            H5Fclose(self.file);
        }
    }
}

/// True if the file has no user block (chunk addresses are then file offsets).
unsafe fn no_user_block(file: hid_t) -> bool {
    // SAFETY: `file` is an open file id; the property list is closed after use.
    unsafe {
        let plist = H5Fget_create_plist(file);
        if plist < 0 {
            return false;
        }
        let mut size: hsize_t = 1;
        let ok = H5Pget_userblock(plist, &mut size) >= 0;
        H5Pclose(plist);
        ok && size == 0
    }
}

/// The dataset of a netCDF variable (netCDF-C renames some, see [`NON_COORD_PREFIX`]).
unsafe fn open_dataset(file: hid_t, name: &str) -> Option<hid_t> {
    let renamed = CString::new(format!("{NON_COORD_PREFIX}{name}")).ok()?;
    let plain = CString::new(name).ok()?;
    // SAFETY: `file` is open; the names are NUL-terminated.
    unsafe {
        let name = if H5Lexists(file, renamed.as_ptr(), H5P_DEFAULT) > 0 {
            renamed
        } else if H5Lexists(file, plain.as_ptr(), H5P_DEFAULT) > 0 {
            plain
        } else {
            return None;
        };
        let dataset = H5Dopen2(file, name.as_ptr(), H5P_DEFAULT);
        (dataset >= 0).then_some(dataset)
    }
}

/// The dataset's layout, if zru decodes it: chunked, of `element`'s exact type, with
/// filters it knows, every chunk filtered.
unsafe fn layout(dataset: hid_t, element: ElementType) -> Option<Layout> {
    let mut ids = Ids(Vec::new());
    // SAFETY: `dataset` is open; every id opened here is closed by `ids`; buffers are
    // sized by the rank HDF5 reports (at most 32).
    unsafe {
        let dtype = H5Dget_type(dataset);
        if dtype < 0 {
            return None;
        }
        ids.0.push((dtype, H5Tclose));
        if !same_type(dtype, element) {
            return None;
        }
        let space = H5Dget_space(dataset);
        if space < 0 {
            return None;
        }
        ids.0.push((space, H5Sclose));
        let rank = usize::try_from(H5Sget_simple_extent_ndims(space)).ok()?;
        if rank == 0 || rank > 32 {
            return None;
        }
        let mut shape = vec![0 as hsize_t; rank];
        if H5Sget_simple_extent_dims(space, shape.as_mut_ptr(), std::ptr::null_mut()) < 0 {
            return None;
        }
        let plist = H5Dget_create_plist(dataset);
        if plist < 0 {
            return None;
        }
        ids.0.push((plist, H5Pclose));
        if H5Pget_layout(plist) != H5D_layout_t::H5D_CHUNKED {
            return None;
        }
        let mut chunk = vec![0 as hsize_t; rank];
        if usize::try_from(H5Pget_chunk(plist, rank as i32, chunk.as_mut_ptr())).ok()? != rank
            || chunk.contains(&0)
        {
            return None;
        }
        let mut opts = 0;
        if H5Pget_chunk_opts(plist, &mut opts) < 0
            || opts & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS != 0
        {
            return None;
        }
        let (filters, deflate_level) = filters(plist, element.size())?;
        Some(Layout {
            shape,
            chunk,
            filters,
            deflate_level,
        })
    }
}

/// The pipeline of a dataset creation property list, if every filter is one zru
/// decodes, and the deflate level.
unsafe fn filters(plist: hid_t, width: usize) -> Option<(Vec<Filter>, Option<u32>)> {
    let mut level = None;
    // SAFETY: `plist` is open; `values` holds `count` (8) entries as told.
    let filters = unsafe {
        let n = u32::try_from(H5Pget_nfilters(plist)).ok()?;
        (0..n)
            .map(|i| {
                let (mut flags, mut config) = (0u32, 0u32);
                let mut values = [0u32; 8];
                let mut count = values.len();
                let id = H5Pget_filter2(
                    plist,
                    i,
                    &mut flags,
                    &mut count,
                    values.as_mut_ptr(),
                    0,
                    std::ptr::null_mut(),
                    &mut config,
                );
                match id {
                    H5Z_FILTER_DEFLATE => {
                        level = (count > 0).then_some(values[0]);
                        Some(Filter::Deflate)
                    }
                    H5Z_FILTER_SHUFFLE => Some(Filter::Shuffle(match count {
                        0 => width,
                        _ => values[0] as usize,
                    })),
                    H5Z_FILTER_FLETCHER32 => Some(Filter::Fletcher32),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?
    };
    Some((filters, level))
}

/// True if the HDF5 type `dtype` is `element` in memory: little-endian, full width,
/// IEEE for floats, so that its bytes are the values netCDF-C would return.
unsafe fn same_type(dtype: hid_t, element: ElementType) -> bool {
    // SAFETY: `dtype` is an open datatype id; the out pointers are valid locals.
    unsafe {
        let size = H5Tget_size(dtype);
        let order = H5Tget_order(dtype);
        let little = order == H5T_order_t::H5T_ORDER_LE
            || (size == 1 && order == H5T_order_t::H5T_ORDER_NONE);
        if size != element.size()
            || !little
            || H5Tget_precision(dtype) != size * 8
            || H5Tget_offset(dtype) != 0
        {
            return false;
        }
        let class = H5Tget_class(dtype);
        let signed = || H5Tget_sign(dtype) == H5T_sign_t::H5T_SGN_2;
        let unsigned = || H5Tget_sign(dtype) == H5T_sign_t::H5T_SGN_NONE;
        match element {
            ElementType::I8 | ElementType::I16 | ElementType::I32 | ElementType::I64 => {
                class == H5T_class_t::H5T_INTEGER && signed()
            }
            ElementType::U8 | ElementType::U16 | ElementType::U32 | ElementType::U64 => {
                class == H5T_class_t::H5T_INTEGER && unsigned()
            }
            ElementType::F32 | ElementType::F64 => {
                let (mut spos, mut epos, mut esize, mut mpos, mut msize) = (0, 0, 0, 0, 0);
                let fields = H5Tget_fields(
                    dtype, &mut spos, &mut epos, &mut esize, &mut mpos, &mut msize,
                );
                let ieee = match element {
                    ElementType::F32 => (31, 23, 8, 0, 23, 127),
                    _ => (63, 52, 11, 0, 52, 1023),
                };
                class == H5T_class_t::H5T_FLOAT
                    && fields >= 0
                    && (spos, epos, esize, mpos, msize, H5Tget_ebias(dtype)) == ieee
            }
            ElementType::Text => false,
        }
    }
}
