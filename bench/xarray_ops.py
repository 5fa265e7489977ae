"""The usual way to do zru's job in Python, as the original proof of concept did it:
open the NetCDF file with xarray, open the Zarr store, search its time axis, then
`to_zarr(region=...)` or `to_zarr(append_dim=...)` with zarr-python. Also the floor:
netCDF-C reading the file's variables once, without scaling.

Run as `python xarray_ops.py OP STORE FILE`; prints the seconds the operation took
(interpreter start and imports excluded: a service would pay them once), exits non-zero
on failure. bench/compare runs each call in a fresh process to measure peak RSS.
"""
import sys
import time
import warnings

import netCDF4
import numpy as np
import xarray as xr

warnings.simplefilter("ignore")
TIME = "time"


def open_file(path):
    return xr.open_dataset(path, mask_and_scale=True, decode_times=True)


def time_dependent(ds):
    return ds.drop_vars([v for v in ds.variables if TIME not in ds[v].dims])


def append(store, path):
    ds = open_file(path)
    z = xr.open_zarr(store)
    if ds[TIME].values[0] <= z[TIME].values[-1]:
        raise SystemExit("not after the end of the store")
    time_dependent(ds).to_zarr(store, append_dim=TIME, consolidated=True)


def slot(z, value):
    index = int(np.searchsorted(z[TIME].values, value))
    if index >= z.sizes[TIME] or z[TIME].values[index] != value:
        raise SystemExit("time not in the store")
    return index


def overwrite(store, path):
    ds = open_file(path)
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


def floor(_store, path):
    """netCDF-C reading every variable once, raw (no scaling or masking)."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        for var in nc.variables.values():
            var[...]


if __name__ == "__main__":
    op, store, path = sys.argv[1:4]
    start = time.perf_counter()
    {"append": append, "overwrite": overwrite, "blank": blank, "floor": floor}[op](store, path)
    print(time.perf_counter() - start)
