"""Fixtures of the AWS tests: a moto server for the session (reset before each test),
the zru binary (``ZRU_BIN``), the Lambda bootstrap binaries (``ZRU_LAMBDA_DIR``, built
by ``cargo lambda build``), and readers of stores on the emulator's S3.

Missing binaries or tools are failures, never skips.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import pytest
import xarray as xr

from harness import REGION, MotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]

# The interop tests' helpers (sample files, configs, xarray comparisons), loaded under
# another module name so the two test directories' conftest modules do not collide.
_spec = importlib.util.spec_from_file_location(
    "interop_helpers", REPO_ROOT / "tests" / "interop" / "conftest.py")
interop = importlib.util.module_from_spec(_spec)
sys.modules["interop_helpers"] = interop
_spec.loader.exec_module(interop)


def _executable(env_name: str, default: Path) -> Path:
    path = Path(os.environ.get(env_name) or default)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"{env_name}={path} is not an executable file; run the suite "
                    "through scripts/test.sh", pytrace=False)
    return path


@pytest.fixture(scope="session")
def zru_bin() -> Path:
    return _executable("ZRU_BIN", REPO_ROOT / "target" / "release" / "zru")


@pytest.fixture(scope="session")
def lambda_dir() -> Path:
    path = Path(os.environ.get("ZRU_LAMBDA_DIR") or REPO_ROOT / "target" / "lambda")
    if not path.is_dir():
        pytest.fail(f"ZRU_LAMBDA_DIR={path} is not a directory; build the functions with "
                    "`cargo lambda build --release --features static-netcdf` "
                    "(scripts/test.sh does)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory) -> MotoServer:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_session) -> MotoServer:
    """The emulator, emptied before the test."""
    moto_session.reset()
    return moto_session


def zru_env(moto: MotoServer, **extra) -> dict[str, str]:
    env = {**os.environ, **moto.env(), "NO_COLOR": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def s3_zarr_store(moto: MotoServer, bucket: str, prefix: str):
    """A read-only zarr-python store over ``s3://bucket/prefix`` on the emulator."""
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    s3 = S3Store(bucket, prefix=prefix, endpoint=moto.endpoint, region=REGION,
                 access_key_id="testing", secret_access_key="testing",
                 client_options={"allow_http": True})
    return ObjectStore(s3, read_only=True)


def open_s3_dataset(moto: MotoServer, bucket: str, prefix: str) -> xr.Dataset:
    """``xr.open_zarr`` of a store on the emulator (consolidated metadata), loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_zarr(s3_zarr_store(moto, bucket, prefix), consolidated=True) as ds:
            return ds.load()


def s3_objects(moto: MotoServer, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix/``, keyed by the path relative to it."""
    s3 = moto.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                            Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix) + 1:]] = body
    return out


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}
