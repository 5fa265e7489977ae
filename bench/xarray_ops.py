"""The usual way to do zru's job in Python, as the original proof of concept did it:
open the NetCDF file with xarray, open the Zarr store, search its time axis (gridded)
or its profile identities (Argo), then `to_zarr(region=...)` or
`to_zarr(append_dim=...)` with zarr-python; `append-dask` and `overwrite-dask` do the
same on the file opened with dask chunks equal to the store's (every core busy). Also the floor: netCDF-C reading the
file's variables once, without scaling.

Run as `python xarray_ops.py OP STORE FILE...`: applies OP to each file in turn, one
after another in one process (the proof of concept's loop over a day's arrivals);
prints the seconds the operations took, wall then CPU (all threads) (interpreter start
and imports excluded: a service would pay them once), exits non-zero on failure. bench/compare runs each call
in a fresh process to measure peak RSS.
"""
import sys
import time
import warnings

import dask.array  # noqa: F401  (imported here, not lazily inside the timed operation)
import netCDF4
import numpy as np
import xarray as xr
import zarr  # noqa: F401

warnings.simplefilter("ignore")
xr.backends.list_engines()  # loads the backend plugins, which xarray does on first open
TIME = "time"
PROF = "N_PROF"
IDENTITY = ["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"]  # zru's default `identity`


def open_file(path, chunks=None):
    return xr.open_dataset(path, mask_and_scale=True, decode_times=True, chunks=chunks)


def store_chunks(store):
    """Dask chunks matching the store's chunks, by dimension (data variables first,
    so that `time` gets their 1, not the 1-D time array's 1024)."""
    z = xr.open_zarr(store)
    chunks = {}
    for var in [*z.data_vars.values(), *z.coords.values()]:
        for dim, size in zip(var.dims, var.encoding.get("chunks", ())):
            chunks.setdefault(dim, size)
    return chunks


def time_dependent(ds):
    return ds.drop_vars([v for v in ds.variables if TIME not in ds[v].dims])


def append(store, path, chunks=None):
    ds = open_file(path, chunks)
    z = xr.open_zarr(store)
    if ds[TIME].values[0] <= z[TIME].values[-1]:
        raise SystemExit("not after the end of the store")
    time_dependent(ds).to_zarr(store, append_dim=TIME, consolidated=True)


def slot(z, value):
    index = int(np.searchsorted(z[TIME].values, value))
    if index >= z.sizes[TIME] or z[TIME].values[index] != value:
        raise SystemExit("time not in the store")
    return index


def overwrite(store, path, chunks=None):
    ds = open_file(path, chunks)
    z = xr.open_zarr(store)
    i = slot(z, ds[TIME].values[0])
    time_dependent(ds).to_zarr(store, region={TIME: slice(i, i + 1)}, consolidated=True)


def blank(store, path):
    # The proof of concept wrote NaN over the slot (xarray encodes them to _FillValue).
    ds = open_file(path)
    z = xr.open_zarr(store)
    i = slot(z, ds[TIME].values[0])
    data = time_dependent(ds)
    nan = data.copy()
    for name in nan.data_vars:
        nan[name] = xr.full_like(data[name], np.nan, dtype="float64")
        nan[name].encoding = data[name].encoding
    nan.drop_vars(TIME).to_zarr(store, region={TIME: slice(i, i + 1)}, consolidated=True)


def trimmed(values):
    """Text as str with surrounding spaces trimmed (zru compares identities so);
    numbers unchanged."""
    values = np.asarray(values)
    if values.dtype.kind == "O":
        values = np.array([v.decode() if isinstance(v, bytes) else v for v in values.ravel()],
                          dtype=str).reshape(values.shape)
    elif values.dtype.kind == "S":
        values = values.astype(str)  # ASCII, as Argo text is
    return np.strings.strip(values) if values.dtype.kind in "UT" else values


def profile_rows(z, ds):
    """Rows of the store `z` holding the (single) profile of the file `ds`."""
    match = np.ones(z.sizes[PROF], dtype=bool)
    for name in IDENTITY:
        match &= trimmed(z[name].values) == trimmed(ds[name].values[0])
    return np.flatnonzero(match)


def profile(store, path):
    """A single-cycle Argo file: overwrites its profile's row in place if the store
    holds that identity, else appends it along N_PROF."""
    ds = open_file(path)
    if ds.sizes[PROF] != 1:
        raise SystemExit("not a single-profile file")
    rows = profile_rows(xr.open_zarr(store), ds)
    if len(rows) > 1:
        raise SystemExit("profile stored more than once")
    if len(rows) == 1:
        i = int(rows[0])
        ds.to_zarr(store, region={PROF: slice(i, i + 1)}, consolidated=True)
    else:
        ds.to_zarr(store, append_dim=PROF, consolidated=True)


def floor(_store, path):
    """netCDF-C reading every variable once, raw (no scaling or masking)."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        for var in nc.variables.values():
            var[...]


def with_dask(op):
    """`op` on files opened with dask chunks equal to the store's chunks: reading,
    decoding and encoding then run on every core (dask's threaded scheduler)."""
    def run(store, path):
        op(store, path, store_chunks(store))
    return run


OPS = {"append": append, "overwrite": overwrite, "blank": blank, "profile": profile, "floor": floor,
       "append-dask": with_dask(append), "overwrite-dask": with_dask(overwrite)}

if __name__ == "__main__":
    op, store, *paths = sys.argv[1:]
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        OPS[op](store, path)
    print(time.perf_counter() - start, time.process_time() - cpu)
