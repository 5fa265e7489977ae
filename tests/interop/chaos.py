"""Chaos driver of the whole local pipeline (tracker issue 12).

A seeded, time-bounded random schedule against the real ``zru`` binary:

- two gridded datasets in one raw root, one queue (``STATE/queue.sqlite``):
  ``sst/`` is fed by S3-style notifications (``zru enqueue``, sequencers, each
  notification delivered late, shuffled, some twice, some redelivered with the dedup
  window off), ``wsst/`` by ``zru watch`` (local events, ordered by the watcher's
  clock). The two are separate datasets because their orders cannot mix: an S3 event
  of a key is ordered by its sequencer, a local one by its enqueue time, and the
  watcher would otherwise also enqueue the files written for the S3 part. The
  watcher runs with a configuration directory holding only ``wsst`` (so it ignores
  ``sst/``); ``enqueue`` and ``flush`` use both datasets, so every flush drains two
  message groups;
- raw files are written (a new version: one of ``REVISIONS`` pre-generated
  versions of each day), rewritten and removed at random; S3 objects by atomic
  rename (an S3 PUT is atomic), watched files either renamed into place or copied in
  place (close-write);
- flushes run in the background while files change, sometimes two at once (they
  serialise on each store's lock), with random batch sizes and ``--max-receives``;
  some are SIGKILLed at a random moment, some kill themselves after their k-th
  durable write (``ZRU_FAULT_KILL_AT``), some see a disk that fills
  (``ZRU_FAULT_IO_ERROR_AFTER``: the k-th and later store writes fail with "No space
  left on device") or a read-only store (``ZRU_FAULT_READ_ONLY``); the watcher is
  SIGKILLed and restarted (its start-up catch-up must find what it missed).

At the end: every notification is delivered, a fresh watcher catches up, clean
flushes drain the queue, the dead letters are recorded (each must state a reason)
and replayed, a clean flush applies them. Then :meth:`Chaos.check` compares

1. each store, read with ``xr.open_zarr``, with the oracle: per key, the last event
   (``sst``: in sequencer order; ``wsst``: the last change on disk): a removed key's
   slot reads blank, a created/revised key's slot holds what ``xr.open_dataset``
   reads from that exact version of the file;
2. each ledger with the last event of every key;
3. every event that reached the queue with its fate: applied or skipped (a
   ``zru flush --json`` report, which names the action and so the reason), or
   dead-lettered with a reason and then replayed. A message acknowledged by a flush
   that was killed before printing its reports (``zru flush`` prints them at the end)
   has no report: it is accepted only if it vanished from the queue while a killed
   flush ran and the ledger read right after showed its event or a newer one of its
   key (applied, stale, duplicate or superseded), or a later change removed its key's
   file (a creation ``skipped(gone)``, or an event ``skipped(superseded)`` by such a
   gone creation: neither is in the ledger; the removal that follows is).

Run it longer with ``scripts/chaos.sh`` (``python tests/interop/chaos.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import xarray as xr

SUFFIX = "120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"
DAYS = 6
REVISIONS = 4
LAT, LON = 6, 12
S3_SET = "sst"     # fed by S3 notifications (zru enqueue)
LOCAL_SET = "wsst"  # fed by zru watch
PROVENANCE = "zru_source_key"
ZRU_TIMEOUT = 180.0  # any zru call longer than this is a hang

IO_ERROR_TEXT = "No space left on device"
READ_ONLY_TEXT = "Read-only file system"

FLUSH_MODES = {  # mode: weight
    "clean": 3.0,
    "kill_at": 2.0,      # ZRU_FAULT_KILL_AT=k
    "sigkill": 2.0,      # SIGKILL from outside at a random moment
    "io_error": 1.2,     # ZRU_FAULT_IO_ERROR_AFTER=k (a disk that fills)
    "read_only": 0.8,    # ZRU_FAULT_READ_ONLY=1
}


# Known, unfixed failures: the check counts them (figures: "known failures") instead of
# failing, unless ZRU_CHAOS_STRICT=1. Each has a strict-xfail regression test in
# test_chaos.py, which fails as soon as it is fixed: then remove the entry and its
# tolerance in Chaos.compare.
KNOWN_FAILURES: dict[str, str] = {
    # None left. "interrupted creation" (a creation's batch interrupted after data chunks
    # of a blank slot were written, then its key removed: the data stayed) was fixed by
    # the before-images of the intent record (issue 12 #9); its regression test is
    # test_regression_interrupted_creation_in_a_blank_slot_then_removed_leaves_no_data.
}
STRICT = os.environ.get("ZRU_CHAOS_STRICT", "") not in ("", "0")


class ChaosFailure(AssertionError):
    pass


def day_name(day: int) -> str:
    return f"202401{day:02d}{SUFFIX}"


def key_of(dataset: str, day: int) -> str:
    return f"{dataset}/{day_name(day)}"


def sequencer_text(seq: int) -> str:
    """As S3 sends them: fixed-width hex, trailing zeros dropped (lengths differ)."""
    return f"{seq:012X}".rstrip("0") or "0"


def sequencer_int(text: str) -> int:
    return int(text.upper().ljust(12, "0"), 16)


def etag_of(path: Path) -> str:
    """The etag zru gives a local file: size and modification time (ns), hex."""
    st = path.stat()
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


@dataclass
class Event:
    """One S3 object change and its notification."""
    seq: int
    key: str
    kind: str  # created | removed
    rev: int | None
    delivered: int = 0

    @property
    def sequencer(self) -> str:
        return sequencer_text(self.seq)

    def record(self, rng: random.Random) -> dict:
        name = (rng.choice(["ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"])
                if self.kind == "created"
                else rng.choice(["ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"]))
        obj = {"key": quote_plus(self.key), "sequencer": self.sequencer}
        if self.kind == "created":
            obj["size"] = 0
            obj["eTag"] = f"v{self.rev}-{self.seq:x}"
        return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": name,
                "s3": {"bucket": {"name": "raw"}, "object": obj}}


@dataclass
class LocalOp:
    """One change the driver made to a watched file."""
    time_us: int
    key: str
    kind: str
    rev: int | None


@dataclass
class FlushRun:
    n: int
    mode: str
    proc: subprocess.Popen
    out: Path
    err: Path
    started: float
    kill_at: float | None = None
    ended: float | None = None
    returncode: int | None = None
    env: dict = field(default_factory=dict)
    args: list = field(default_factory=list)


class Chaos:
    def __init__(self, zru: Path, work: Path, seed: int, seconds: float, *,
                 faults=("kill_at", "sigkill", "io_error", "read_only"),
                 log=print):
        self.zru = Path(zru).resolve()
        self.work = Path(work)
        self.seed = seed
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.faults = set(faults)
        self.log = log
        self.raw = self.work / "raw"
        self.state = self.work / "state"
        self.logs = self.work / "logs"
        self.versions = self.work / "versions"
        self.config_all = self.work / "config" / "all"
        self.config_watch = self.work / "config" / "watch"
        self.stores = {d: self.work / "zarr" / f"{d}.zarr" for d in (S3_SET, LOCAL_SET)}
        # S3 part: every object change, in sequencer order; notifications to deliver.
        self.events: list[Event] = []
        self.by_sequencer: dict[str, Event] = {}
        self.pending: list[Event] = []
        self.next_seq = 0x10
        # Watched part: every change on disk, in order.
        self.local_ops: list[LocalOp] = []
        self.watcher: subprocess.Popen | None = None
        self.watcher_restart_at = 0.0
        self.watcher_outputs: list[Path] = []
        # Flushes.
        self.flushes: list[FlushRun] = []
        self.running: list[FlushRun] = []
        self.reports: dict[int, list[dict]] = defaultdict(list)  # message id -> reports
        # Queue observations: message id -> event body; ids present at the last look.
        self.bodies: dict[int, dict] = {}
        self.present: set[int] = set()
        self.last_look = 0.0
        self.vanished: dict[int, tuple[float, float, dict]] = {}  # id -> (after, at, ledgers)
        self.dead_seen: dict[int, str | None] = {}
        self.stats = Counter()
        self.dead_letters_replayed: list[dict] = []
        self.tmp_counter = 0
        self.known: list[str] = []

    # ------------------------------------------------------------------ running zru

    def run(self, *args, ok=True, env=None, timeout=ZRU_TIMEOUT) -> subprocess.CompletedProcess:
        argv = [str(self.zru), *map(str, args)]
        try:
            res = subprocess.run(argv, cwd=self.work, capture_output=True, text=True,
                                 timeout=timeout, env={**os.environ, "NO_COLOR": "1", **(env or {})})
        except subprocess.TimeoutExpired as exc:
            raise self.fail(f"hang: `{' '.join(argv)}` ran longer than {timeout} s") from exc
        if ok and res.returncode != 0:
            raise self.fail(f"`{' '.join(argv)}` exited {res.returncode}\n"
                            f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}")
        if "panicked at" in res.stderr:
            raise self.fail(f"panic in `{' '.join(argv)}`:\n{res.stderr}")
        return res

    def pipeline_args(self, config: Path) -> list:
        return ["--config", config, "--raw-root", self.raw, "--state-dir", self.state]

    def fail(self, message: str) -> ChaosFailure:
        return ChaosFailure(
            f"chaos seed {self.seed}: {message}\n"
            f"reproduce: ZRU_CHAOS_SEED={self.seed} ZRU_CHAOS_SECONDS={self.seconds:g} "
            f"ZRU_BIN={self.zru} .venv/bin/python -m pytest -q tests/interop/test_chaos.py "
            f"(or scripts/chaos.sh --seed {self.seed} --minutes {self.seconds / 60:g}); "
            f"work directory kept: {self.work}")

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        for d in (self.raw / S3_SET, self.raw / LOCAL_SET, self.state, self.logs,
                  self.config_all, self.config_watch, self.work / "zarr"):
            d.mkdir(parents=True, exist_ok=True)
        for dataset, sample_seed in ((S3_SET, 1), (LOCAL_SET, 2)):
            for r in range(REVISIONS):
                self.run("sample", "gridded", self.versions / dataset / f"rev{r}", "--days", DAYS,
                         "--lat", LAT, "--lon", LON, "--revision", r, "--seed", sample_seed)
            cfg = {"name": dataset, "handler": "gridded", "key_patterns": [rf"^{dataset}/.*\.nc$"],
                   "store": str(self.stores[dataset]), "append_dim": "time",
                   "chunks": {"time": 2, "lat": 4, "lon": 8}, "time_step": "1 day"}
            for cfg_dir in (self.config_all,) + ((self.config_watch,) if dataset == LOCAL_SET else ()):
                (cfg_dir / f"{dataset}.json").write_text(json.dumps(cfg, indent=2))
        # Day 1 of each dataset first, cleanly: the stores start at day 1, so no later
        # day is "before the store's start" (a permanent rejection).
        self.s3_write(1, 0)
        self.deliver(everything=True)
        self.local_write(1, 0, in_place=False)
        self.run("ingest", "--json", *self.pipeline_args(self.config_all),
                 self.raw / key_of(LOCAL_SET, 1), "--no-flush")
        self.run_flush_sync("setup")
        self.start_watcher()

    def version_file(self, dataset: str, day: int, rev: int) -> Path:
        return self.versions / dataset / f"rev{rev}" / day_name(day)

    # ------------------------------------------------------------------ raw changes

    def s3_write(self, day: int, rev: int) -> None:
        key = key_of(S3_SET, day)
        self.tmp_counter += 1
        tmp = self.raw / S3_SET / f".put-{self.tmp_counter}.part"
        shutil.copyfile(self.version_file(S3_SET, day, rev), tmp)
        os.replace(tmp, self.raw / key)  # an S3 PUT is atomic
        self.new_event(key, "created", rev)

    def s3_remove(self, day: int) -> None:
        key = key_of(S3_SET, day)
        (self.raw / key).unlink(missing_ok=True)
        self.new_event(key, "removed", None)

    def new_event(self, key: str, kind: str, rev: int | None) -> None:
        # Steps of very different sizes: sequencers change length (S3 drops no zeros,
        # but the comparison must right-pad: "1A" is after "19F").
        self.next_seq += self.rng.choice([1, 0x9, 0x90, 0xF00, 0x100 - self.next_seq % 0x100])
        event = Event(self.next_seq, key, kind, rev)
        self.events.append(event)
        self.by_sequencer[event.sequencer] = event
        self.pending.append(event)
        self.stats[f"s3 {kind}"] += 1

    def local_write(self, day: int, rev: int, *, in_place: bool) -> None:
        key = key_of(LOCAL_SET, day)
        target = self.raw / key
        if in_place:
            shutil.copyfile(self.version_file(LOCAL_SET, day, rev), target)  # close-write
        else:
            self.tmp_counter += 1
            tmp = self.raw / LOCAL_SET / f".tmp-{self.tmp_counter}.part"
            shutil.copyfile(self.version_file(LOCAL_SET, day, rev), tmp)
            os.replace(tmp, target)
        self.local_ops.append(LocalOp(time.time_ns() // 1000, key, "created", rev))
        self.stats["local created" + (" (in place)" if in_place else " (renamed)")] += 1

    def local_remove(self, day: int) -> None:
        key = key_of(LOCAL_SET, day)
        target = self.raw / key
        if self.rng.random() < 0.3:
            self.tmp_counter += 1
            away = self.raw / LOCAL_SET / f".gone-{self.tmp_counter}"
            os.replace(target, away)  # renamed away: a removal too
            away.unlink()
        else:
            target.unlink()
        self.local_ops.append(LocalOp(time.time_ns() // 1000, key, "removed", None))
        self.stats["local removed"] += 1

    def s3_op(self) -> None:
        day = self.rng.randint(1, DAYS)
        if (self.raw / key_of(S3_SET, day)).exists() and self.rng.random() < 0.3:
            self.s3_remove(day)
        else:
            self.s3_write(day, self.rng.randrange(REVISIONS))

    def local_op(self) -> None:
        day = self.rng.randint(1, DAYS)
        if (self.raw / key_of(LOCAL_SET, day)).exists() and self.rng.random() < 0.3:
            self.local_remove(day)
        else:
            self.local_write(day, self.rng.randrange(REVISIONS), in_place=self.rng.random() < 0.4)

    # ------------------------------------------------------------------ notifications

    def deliver(self, everything: bool = False) -> None:
        """Delivers some pending notifications (shuffled), with duplicates."""
        rng = self.rng
        if everything:
            batch, self.pending = self.pending, []
        else:
            if not self.pending:
                return
            rng.shuffle(self.pending)
            n = min(len(self.pending), rng.randint(1, 6))
            batch, self.pending = self.pending[:n], self.pending[n:]
        delivered = [e for e in self.events if e.delivered]
        dups = [rng.choice(batch + delivered) for _ in range(rng.randint(0, 2))]
        docs = batch + dups
        if not docs:
            return
        rng.shuffle(docs)
        for e in batch:
            e.delivered += 1
        self.stats["notifications delivered"] += len(docs)
        self.stats["notifications duplicated"] += len(dups)
        redeliver = rng.random() < 0.2
        if redeliver:
            self.stats["deliveries with the dedup window off"] += 1
        self.enqueue(docs, redeliver)

    def redeliver(self) -> None:
        """Old notifications again, past the dedup window (an SQS redelivery)."""
        done = [e for e in self.events if e.delivered]
        if not done:
            return
        docs = self.rng.sample(done, min(len(done), self.rng.randint(1, 4)))
        self.stats["notifications delivered"] += len(docs)
        self.stats["notifications duplicated"] += len(docs)
        self.stats["deliveries with the dedup window off"] += 1
        self.enqueue(docs, True)

    def enqueue(self, events: list[Event], no_dedup: bool) -> None:
        self.tmp_counter += 1
        doc = self.logs / f"notification-{self.tmp_counter}.json"
        records = [e.record(self.rng) for e in events]
        if self.rng.random() < 0.5:
            doc.write_text(json.dumps({"Records": records}))
        else:  # one document per line
            doc.write_text("".join(json.dumps({"Records": [r]}) + "\n" for r in records))
        args = ["enqueue", "--json", *self.pipeline_args(self.config_all)]
        if no_dedup:
            args += ["--dedup-window", "0"]
        res = self.run(*args, doc)
        lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        if len(lines) != len(events):
            raise self.fail(f"zru enqueue reported {len(lines)} events for {len(events)}:\n{res.stdout}")
        for rec in lines:
            if rec.get("sequencer") not in self.by_sequencer:
                raise self.fail(f"zru enqueue reported an unknown sequencer: {rec}")
            if rec["action"] == "enqueued":
                self.stats["notifications enqueued"] += 1
            elif rec["action"] == "skipped(duplicate)":
                self.stats["notifications dropped as duplicates by zru enqueue"] += 1
            else:
                raise self.fail(f"zru enqueue: unexpected report {rec}")
        self.look()

    # ------------------------------------------------------------------ watcher

    def start_watcher(self) -> None:
        n = len(self.watcher_outputs)
        out = self.logs / f"watch-{n}.out"
        self.watcher_outputs.append(out)
        self.watcher = subprocess.Popen(
            [str(self.zru), "watch", self.raw, "--config", self.config_watch,
             "--state-dir", self.state, "--json"],
            cwd=self.work, stdout=open(out, "w"), stderr=open(self.logs / f"watch-{n}.err", "w"),
            env={**os.environ, "NO_COLOR": "1"})
        self.stats["watchers started"] += 1

    def wait_watcher_ready(self, timeout=60.0) -> None:
        err = self.logs / f"watch-{len(self.watcher_outputs) - 1}.err"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "zru watch: watching" in err.read_text():
                return
            if self.watcher.poll() is not None:
                raise self.fail(f"zru watch exited {self.watcher.returncode}: {err.read_text()}")
            time.sleep(0.05)
        raise self.fail(f"hang: zru watch not ready after {timeout} s")

    def watcher_events(self) -> int:
        """Events the watchers reported enqueued (a killed one may lose its last line)."""
        n = 0
        for out in self.watcher_outputs:
            for line in out.read_text().splitlines():
                try:
                    n += json.loads(line).get("action") == "enqueued"
                except json.JSONDecodeError:
                    pass
        return n

    def kill_watcher(self) -> None:
        if self.watcher is None:
            return
        if self.watcher.poll() is not None:
            raise self.fail(f"zru watch died on its own (exit {self.watcher.returncode}): "
                            f"{(self.logs / f'watch-{len(self.watcher_outputs) - 1}.err').read_text()}")
        self.watcher.send_signal(signal.SIGKILL)
        self.watcher.wait()
        self.watcher = None
        self.stats["watcher SIGKILLs"] += 1

    # ------------------------------------------------------------------ flushes

    def flush_argv(self) -> list:
        rng = self.rng
        return ["flush", "--json", *self.pipeline_args(self.config_all),
                "--batch-size", rng.choice([1, 2, 3, 5, 8, 256]),
                "--max-receives", rng.randint(2, 4), "--lock-timeout", 150]

    def start_flush(self, mode: str, k: int | None = None,
                    kill_after: float | None = None) -> FlushRun:
        rng = self.rng
        env = {}
        kill_at = None
        if mode == "kill_at":
            env["ZRU_FAULT_KILL_AT"] = str(k or rng.randint(1, 40))
        elif mode == "sigkill":
            kill_at = time.monotonic() + (kill_after or rng.uniform(0.01, 0.8))
        elif mode == "io_error":
            env["ZRU_FAULT_IO_ERROR_AFTER"] = str(k or rng.randint(1, 25))
        elif mode == "read_only":
            env["ZRU_FAULT_READ_ONLY"] = "1"
        n = len(self.flushes)
        out, err = self.logs / f"flush-{n}.out", self.logs / f"flush-{n}.err"
        args = self.flush_argv()
        proc = subprocess.Popen([str(self.zru), *map(str, args)], cwd=self.work,
                                stdout=open(out, "w"), stderr=open(err, "w"),
                                env={**os.environ, "NO_COLOR": "1", **env})
        run = FlushRun(n, mode, proc, out, err, time.monotonic(), kill_at, env=env, args=args)
        self.flushes.append(run)
        self.running.append(run)
        self.stats[f"flushes ({mode})"] += 1
        return run

    def reap(self) -> None:
        now = time.monotonic()
        for run in list(self.running):
            if run.kill_at is not None and now >= run.kill_at and run.proc.poll() is None:
                run.proc.send_signal(signal.SIGKILL)
            if run.proc.poll() is None:
                if now - run.started > ZRU_TIMEOUT:
                    run.proc.send_signal(signal.SIGKILL)
                    run.proc.wait()
                    raise self.fail(f"hang: flush {run.n} ({run.mode}) ran longer than "
                                    f"{ZRU_TIMEOUT} s; stderr: {run.err.read_text()}")
                continue
            run.returncode = run.proc.returncode
            run.ended = time.monotonic()
            self.running.remove(run)
            self.finished(run)

    def finished(self, run: FlushRun) -> None:
        err = run.err.read_text()
        if "panicked at" in err:
            raise self.fail(f"panic in flush {run.n} ({run.mode}, env {run.env}):\n{err}")
        killed = run.returncode == -signal.SIGKILL
        with open(self.logs / "flushes.jsonl", "a") as log:
            log.write(json.dumps({"n": run.n, "mode": run.mode, "env": run.env,
                                  "args": list(map(str, run.args)), "exit": run.returncode,
                                  "seconds": round(run.ended - run.started, 3)}) + "\n")
        if killed:
            self.stats["flushes killed (SIGKILL)"] += 1
            self.stats[f"flushes killed ({run.mode})"] += 1
        elif run.returncode not in (0, 1):
            # 2: an error that stops the flush, e.g. the injected read-only store or disk
            # full hitting the ledger or the store's probe: allowed for injected faults.
            if run.mode in ("io_error", "read_only") and (IO_ERROR_TEXT in err or READ_ONLY_TEXT in err):
                self.stats[f"flushes stopped by the injected fault ({run.mode})"] += 1
            else:
                raise self.fail(f"flush {run.n} ({run.mode}, env {run.env}) exited "
                                f"{run.returncode}:\n{err}")
        lines = run.out.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if killed and i == len(lines) - 1:
                    continue  # killed while printing
                raise self.fail(f"flush {run.n}: --json line is not JSON: {line!r}") from None
            self.take_report(run, rec)
        self.look()

    def take_report(self, run: FlushRun, rec: dict) -> None:
        mid = rec.get("message_id")
        if mid is None:
            raise self.fail(f"flush {run.n}: report without a message id: {rec}")
        rec["_flush"] = run.n
        rec["_mode"] = run.mode
        self.reports[mid].append(rec)
        action = rec.get("action", "")
        self.stats[f"reports {action}"] += 1
        if action == "rejected":
            reason = rec.get("reason") or ""
            if not reason.strip():
                raise self.fail(f"flush {run.n}: rejected without a reason: {rec}")
            if IO_ERROR_TEXT in reason:
                self.stats["rejections by the injected disk-full error"] += 1
            elif READ_ONLY_TEXT in reason:
                self.stats["rejections by the injected read-only store"] += 1
            if rec.get("dead_lettered"):
                self.stats["dead-lettered (reported by a flush)"] += 1
        elif not (action in ("appended", "overwrote", "blanked", "unchanged")
                  or action.startswith("skipped(")):
            raise self.fail(f"flush {run.n}: unknown action: {rec}")

    def run_flush_sync(self, mode: str) -> FlushRun:
        run = self.start_flush(mode)
        try:
            run.proc.wait(timeout=ZRU_TIMEOUT)
        except subprocess.TimeoutExpired:
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()
            raise self.fail(f"hang: flush {run.n} ({mode}) ran longer than {ZRU_TIMEOUT} s") from None
        self.reap()
        if run.returncode not in (0, 1):
            raise self.fail(f"clean flush {run.n} exited {run.returncode}: {run.err.read_text()}")
        return run

    # ------------------------------------------------------------------ observing the queue

    def read_ledgers(self) -> dict[str, dict]:
        out = {}
        for dataset, store in self.stores.items():
            path = store.parent / (store.name + ".zru-ledger.json")
            out[dataset] = json.loads(path.read_text())["entries"] if path.exists() else {}
        return out

    def look(self) -> None:
        """Which messages are in the queue now (live or dead), then the ledgers: a
        message gone since the last look was acknowledged (after its ledger write)."""
        conn = sqlite3.connect(self.state / "queue.sqlite", timeout=60)
        try:
            rows = conn.execute("SELECT id, body, dead, last_error FROM messages").fetchall()
        finally:
            conn.close()
        now = time.monotonic()
        present = set()
        for mid, body, dead, last_error in rows:
            present.add(mid)
            if mid not in self.bodies:
                self.bodies[mid] = json.loads(body)
            if dead:
                self.dead_seen[mid] = last_error
        gone = self.present - present
        if gone:
            ledgers = self.read_ledgers()
            for mid in gone:
                self.vanished[mid] = (self.last_look, now, ledgers)
        self.present = present
        self.last_look = now

    def queue_counts(self) -> tuple[int, int, int]:
        doc = json.loads(self.run("queue", "--json", "--state-dir", self.state).stdout)
        ready = sum(g["ready"] for g in doc["groups"])
        in_flight = sum(g["in_flight"] for g in doc["groups"])
        dead = sum(g["dead"] for g in doc["groups"])
        return ready, in_flight, dead

    # ------------------------------------------------------------------ the run

    def cover_faults(self) -> None:
        """Each fault once, early and for sure: a fresh change of each dataset queued,
        then one flush with the fault (k small enough to fire), waited for."""
        for mode in [m for m in FLUSH_MODES if m in self.faults]:
            self.s3_write(self.rng.randint(1, DAYS), self.rng.randrange(REVISIONS))
            self.deliver()
            self.local_write(self.rng.randint(1, DAYS), self.rng.randrange(REVISIONS), in_place=False)
            time.sleep(0.2)  # the watcher enqueues it
            run = self.start_flush(mode, k=self.rng.randint(1, 3), kill_after=0.05)
            while run in self.running:
                self.reap()
                time.sleep(0.02)

    def chaos(self) -> None:
        rng = self.rng
        deadline = time.monotonic() + self.seconds
        self.cover_faults()
        actions = ["s3_op", "local_op", "deliver", "redeliver", "flush", "watcher_kill"]
        weights = [4.0, 4.0, 3.0, 0.4, 1.6, 0.15]
        modes = [m for m in FLUSH_MODES if m == "clean" or m in self.faults]
        mode_weights = [FLUSH_MODES[m] for m in modes]
        while time.monotonic() < deadline:
            self.reap()
            self.look()
            if self.watcher is None and time.monotonic() >= self.watcher_restart_at:
                self.start_watcher()
            action = rng.choices(actions, weights)[0]
            if action == "s3_op":
                self.s3_op()
            elif action == "local_op":
                self.local_op()
            elif action == "deliver":
                self.deliver()
            elif action == "redeliver":
                self.redeliver()
            elif action == "flush" and len(self.running) < 2:
                two = not self.running and rng.random() < 0.35
                for _ in range(2 if two else 1):
                    self.start_flush(rng.choices(modes, mode_weights)[0])
                if two:
                    self.stats["two flushes started at once"] += 1
            elif action == "watcher_kill" and self.watcher is not None:
                self.kill_watcher()
                self.watcher_restart_at = time.monotonic() + rng.uniform(0.1, 3.0)
            time.sleep(rng.uniform(0.0, 0.06))
        self.stats["chaos seconds"] = round(self.seconds)

    def settle(self) -> None:
        """Faults off: everything delivered and caught up, the queue drained, the dead
        letters recorded and replayed, drained again."""
        while self.running:
            self.reap()
            time.sleep(0.05)
        self.deliver(everything=True)
        for e in self.events:
            if not e.delivered:
                raise self.fail(f"internal: event {e} never delivered")
        # A fresh watcher's catch-up finds whatever the last one missed.
        if self.watcher is not None:
            self.kill_watcher()
        self.start_watcher()
        self.wait_watcher_ready()
        time.sleep(1.0)
        # SIGTERM, not SIGINT: a shell ignores SIGINT in the background jobs it starts,
        # and the watcher would inherit that.
        self.watcher.send_signal(signal.SIGTERM)
        try:
            self.watcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.watcher.kill()
            raise self.fail("hang: zru watch did not stop on SIGTERM") from None
        self.watcher = None
        self.drain("final")
        doc = json.loads(self.run("queue", "--json", "--state-dir", self.state).stdout)
        for d in doc["dead_letters"]:
            if not (d.get("last_error") or "").strip():
                raise self.fail(f"a dead letter without a reason: {d}")
            self.dead_letters_replayed.append(d)
        self.stats["dead letters replayed"] = len(doc["dead_letters"])
        if doc["dead_letters"]:
            self.run("queue", "replay", "--state-dir", self.state)
            self.look()
        self.drain("after replay")
        ready, in_flight, dead = self.queue_counts()
        if ready or in_flight or dead:
            doc = self.run("queue", "--state-dir", self.state).stdout
            raise self.fail(f"the queue is not empty after replaying the dead letters and a clean "
                            f"flush:\n{doc}")

    def drain(self, what: str) -> None:
        for _ in range(30):
            self.run_flush_sync("clean")
            ready, in_flight, _ = self.queue_counts()
            if not ready and not in_flight:
                return
            time.sleep(0.3)
        raise self.fail(f"hang: the queue does not drain ({what}): {self.queue_counts()}")

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        self.known = []
        self.check_store_s3()
        self.check_store_local()
        self.check_accounting()

    def read_store(self, dataset: str) -> dict:
        """Per day with data: (provenance, {variable: values}). A slot blank everywhere
        reads as no slot."""
        store = self.stores[dataset]
        with xr.open_zarr(store, consolidated=True) as ds:
            ds = ds.load()
        times = [np.datetime64(t, "D") for t in ds["time"].values]
        if len(set(times)) != len(times):
            raise self.fail(f"{dataset}: repeated times in the store: {times}")
        days = {}
        for i, t in enumerate(times):
            slot = ds.isel(time=i)
            source = str(slot[PROVENANCE].values)
            variables = {n: slot[n].values for n in ds.data_vars if n != PROVENANCE}
            blank = source == "" and all(np.all(np.isnan(v)) for v in variables.values()
                                         if v.dtype.kind == "f")
            if not blank:
                days[t] = (source, variables)
        return days

    def expected_slot(self, dataset: str, day: int, rev: int):
        with xr.open_dataset(self.version_file(dataset, day, rev)) as ds:
            ds = ds.load()
        t = np.datetime64(ds["time"].values[0], "D")
        return t, (key_of(dataset, day), {n: ds[n].isel(time=0).values for n in ds.data_vars})

    def compare(self, dataset: str, got: dict, want: dict, describe) -> None:
        if sorted(got) != sorted(want):
            raise self.fail(f"{dataset}: days with data {sorted(map(str, got))} != oracle "
                            f"{sorted(map(str, want))}\n{describe()}")
        for t, (source, variables) in want.items():
            if got[t][0] != source:
                raise self.fail(f"{dataset} {t}: provenance {got[t][0]!r} != {source!r}\n{describe()}")
            for name, values in variables.items():
                if name not in got[t][1]:
                    raise self.fail(f"{dataset} {t}: variable {name} missing from the store")
                try:
                    np.testing.assert_allclose(got[t][1][name], values, rtol=1e-6, equal_nan=True)
                except AssertionError as exc:
                    raise self.fail(f"{dataset} {t} {name}: store differs from the file's last "
                                    f"version\n{exc}\n{describe()}") from None

    def check_store_s3(self) -> None:
        last: dict[str, Event] = {}
        for e in sorted(self.events, key=lambda e: e.seq):
            last[e.key] = e
        want = {}
        for day in range(1, DAYS + 1):
            e = last.get(key_of(S3_SET, day))
            if e is not None and e.kind == "created":
                t, slot = self.expected_slot(S3_SET, day, e.rev)
                want[t] = slot

        def describe():
            return "history: " + "; ".join(
                f"{e.key[4:12]} {e.kind} rev{e.rev} seq {e.sequencer}" for e in self.events)
        self.compare(S3_SET, self.read_store(S3_SET), want, describe)
        ledger = self.read_ledgers()[S3_SET]
        if set(ledger) != set(last):
            raise self.fail(f"{S3_SET} ledger keys {sorted(ledger)} != keys with events {sorted(last)}")
        for key, e in last.items():
            entry = ledger[key]
            if entry["kind"] != e.kind or entry["order"].get("sequencer") != e.sequencer:
                raise self.fail(f"{S3_SET} ledger {key}: {entry} does not name the last event "
                                f"({e.kind}, sequencer {e.sequencer})")
        self.stats["s3 keys checked"] = len(last)

    def check_store_local(self) -> None:
        last: dict[str, LocalOp] = {}
        for op in self.local_ops:
            last[op.key] = op
        want = {}
        for key, op in last.items():
            on_disk = (self.raw / key).exists()
            if on_disk != (op.kind == "created"):
                raise self.fail(f"internal: {key} on disk {on_disk}, last op {op}")
            if op.kind == "created":
                day = int(key.split("/")[1][6:8])
                t, slot = self.expected_slot(LOCAL_SET, day, op.rev)
                want[t] = slot

        def describe():
            return "changes: " + "; ".join(f"{o.key[5:13]} {o.kind} rev{o.rev}" for o in self.local_ops)
        self.compare(LOCAL_SET, self.read_store(LOCAL_SET), want, describe)
        ledger = self.read_ledgers()[LOCAL_SET]
        for key, op in last.items():
            entry = ledger.get(key)
            if op.kind == "created":
                if entry is None or entry["kind"] != "created" or entry.get("etag") != etag_of(self.raw / key):
                    raise self.fail(f"{LOCAL_SET} ledger {key}: {entry} does not name the file on "
                                    f"disk (etag {etag_of(self.raw / key)})")
            elif entry is not None and entry["kind"] != "removed":
                # A key created and removed while no watcher ran was never seen: no entry.
                raise self.fail(f"{LOCAL_SET} ledger {key}: {entry}, but the file was removed")
        if set(ledger) - set(last):
            raise self.fail(f"{LOCAL_SET} ledger has keys never written: {sorted(set(ledger) - set(last))}")
        self.stats["local keys checked"] = len(last)

    @staticmethod
    def order_at_least(entry: dict | None, body: dict, mid: int) -> bool:
        if entry is None:
            return False
        order = entry["order"]
        if body.get("sequencer") is not None and order.get("sequencer") is not None:
            return sequencer_int(order["sequencer"]) >= sequencer_int(body["sequencer"])
        return (order["event_time_us"], order["arrival"]) >= (body["event_time_us"], mid)

    def removed_later(self, body: dict) -> bool:
        """A later change removed the key's file: what skipped(gone) means for a
        creation, and what lets the flush ack an event superseded by a gone creation."""
        key = body["key"]
        if body.get("sequencer") is not None:
            seq = sequencer_int(body["sequencer"])
            return any(e.key == key and e.kind == "removed" and e.seq > seq for e in self.events)
        ops = [o for o in self.local_ops if o.key == key]
        seen = [o for o in ops if o.time_us <= body["event_time_us"] and o.kind == "created"]
        since = seen[-1].time_us if seen else 0
        return any(o.kind == "removed" and o.time_us > since for o in ops)

    def check_accounting(self) -> None:
        terminal = {"appended", "overwrote", "blanked", "unchanged"}
        fates = Counter()
        problems = []
        # Flushes whose reports died with them: killed, or stopped by an error (exit 2).
        killed = [r for r in self.flushes if r.returncode not in (0, 1)]
        last_id = max([*self.bodies, *self.reports, 0])
        for mid in range(1, last_id + 1):
            # Ids are never reused (AUTOINCREMENT): one the looks never saw was enqueued
            # and acknowledged between two of them.
            reps = self.reports.get(mid, [])
            final = [r for r in reps if r["action"] in terminal or r["action"].startswith("skipped(")]
            body = self.bodies.get(mid)
            if final:
                fates[final[-1]["action"]] += 1
                if body is not None and any(r["key"] != body["key"] for r in reps):
                    problems.append(f"message {mid}: reports name another key: {reps}")
                continue
            if body is None:
                if killed:
                    fates["never seen in the queue (enqueued and acknowledged between two "
                          "looks, by a flush killed before its reports)"] += 1
                else:
                    problems.append(f"message {mid}: never seen, no report: silently lost")
                continue
            if mid in self.present:
                problems.append(f"message {mid} ({body['key']} {body['kind']}) still in the queue")
                continue
            if mid not in self.vanished:
                problems.append(f"message {mid} ({body['key']} {body['kind']}) never seen leaving")
                continue
            after, at, ledgers = self.vanished[mid]
            by_killed = any(r.started <= at and (r.ended or at) >= after for r in killed)
            if not by_killed:
                problems.append(f"message {mid} ({body['key']} {body['kind']}) left the queue "
                                f"without a report and no killed flush ran then: silently lost; "
                                f"its reports: {reps}")
                continue
            dataset = body["key"].split("/")[0]
            entry = ledgers.get(dataset, {}).get(body["key"])
            if self.order_at_least(entry, body, mid):
                fates["acknowledged by a killed flush (ledger holds it or newer)"] += 1
            elif self.removed_later(body):
                # skipped(gone), or skipped(superseded) by a newer creation of its key
                # that was gone: neither is in the ledger; the removal that follows is.
                fates["acknowledged by a killed flush (gone or superseded by a gone "
                      "creation: a later removal of its key follows)"] += 1
            else:
                problems.append(f"message {mid} ({body}) acknowledged by a killed flush, but the "
                                f"ledger then held {entry}: lost")
        for mid, reason in self.dead_seen.items():
            if not (reason or "").strip():
                problems.append(f"dead letter {mid} without a reason")
        if problems:
            raise self.fail("events not accounted for:\n  " + "\n  ".join(problems[:40]))
        self.fates = fates
        self.stats["messages accounted for"] = last_id
        self.stats["lost"] = 0

    # ------------------------------------------------------------------ figures

    def figures(self) -> str:
        s = self.stats
        kills = s["flushes killed (SIGKILL)"]
        lines = [
            f"chaos run, seed {self.seed}, {self.seconds:g} s of chaos"
            + (f" ({self.phases})" if getattr(self, "phases", None) else ""),
            f"  S3 object changes        {s['s3 created']} written, {s['s3 removed']} removed",
            f"  notifications            {s['notifications delivered']} delivered "
            f"({s['notifications duplicated']} duplicates, "
            f"{s['deliveries with the dedup window off']} deliveries with the dedup window off), "
            f"{s['notifications enqueued']} enqueued, "
            f"{s['notifications dropped as duplicates by zru enqueue']} dropped by zru enqueue as duplicates",
            f"  watched file changes     {s['local created (renamed)']} renamed into place, "
            f"{s['local created (in place)']} written in place, {s['local removed']} removed",
            f"  queue messages           {max([*self.bodies, *self.reports, 0])} "
            f"({self.watcher_events()} enqueued by zru watch)",
            f"  flushes                  {len(self.flushes)} ("
            + ", ".join(f"{m} {s[f'flushes ({m})']}" for m in FLUSH_MODES) + "), "
            f"{s['two flushes started at once']} times two at once",
            f"  kills                    {kills} flushes SIGKILLed, {s['watcher SIGKILLs']} watcher SIGKILLs",
            f"  injected store faults    {s['rejections by the injected disk-full error']} events rejected by "
            f"a full disk, {s['rejections by the injected read-only store']} by a read-only store, "
            f"{s['flushes stopped by the injected fault (io_error)'] + s['flushes stopped by the injected fault (read_only)']}"
            " flushes stopped by one",
            f"  dead letters             {s['dead-lettered (reported by a flush)']} reported dead-lettered, "
            f"{len(self.dead_seen)} seen, {s['dead letters replayed']} replayed at the end",
            "  fates                    " + ", ".join(f"{n} {a}" for a, n in sorted(
                getattr(self, "fates", {}).items())),
            f"  keys checked             {s['s3 keys checked']} (S3) + {s['local keys checked']} (watched)",
            f"  lost                     {s.get('lost', 'not checked')}",
            f"  known failures           {len(self.known)}"
            + "".join(f"\n    {k}" for k in self.known),
        ]
        if self.dead_letters_replayed:
            why = Counter(_reason_class(d["last_error"]) for d in self.dead_letters_replayed)
            lines.append("  dead letters by reason")
            lines += [f"    {n:5d}  {r}" for r, n in why.most_common()]
        return "\n".join(lines)

    def run_all(self) -> str:
        t0 = time.monotonic()
        self.setup()
        t1 = time.monotonic()
        try:
            self.chaos()
            t2 = time.monotonic()
            self.settle()
            t3 = time.monotonic()
        finally:
            for run in self.running:
                if run.proc.poll() is None:
                    run.proc.send_signal(signal.SIGKILL)
                    run.proc.wait()
            if self.watcher is not None and self.watcher.poll() is None:
                self.watcher.send_signal(signal.SIGKILL)
                self.watcher.wait()
        self.check()
        self.phases = (f"set-up {t1 - t0:.0f} s, chaos {t2 - t1:.0f} s, settling {t3 - t2:.0f} s, "
                       f"checks {time.monotonic() - t3:.0f} s")
        return self.figures()


def _reason_class(reason: str) -> str:
    if "received" in reason and "without being acknowledged" in reason:
        return "consumer died (received too often without acknowledgement)"
    if IO_ERROR_TEXT in reason:
        return "disk full (injected)"
    if READ_ONLY_TEXT in reason:
        return "read-only store (injected)"
    return reason[:400]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="work directory (default: a new temporary one)")
    parser.add_argument("--zru", type=Path, default=os.environ.get("ZRU_BIN"))
    parser.add_argument("--no-faults", default="", help="comma-separated fault kinds to leave out "
                        "(kill_at, sigkill, io_error, read_only)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    if args.zru is None:
        parser.error("set ZRU_BIN or --zru")
    work = args.work or Path(tempfile.mkdtemp(prefix=f"zru-chaos-{seed}-"))
    faults = {"kill_at", "sigkill", "io_error", "read_only"} - set(filter(None, args.no_faults.split(",")))
    print(f"chaos: seed {seed}, {seconds:g} s, work directory {work}", flush=True)
    chaos = Chaos(args.zru, work, seed, seconds, faults=faults)
    try:
        figures = chaos.run_all()
    except ChaosFailure as exc:
        print(chaos.figures(), flush=True)
        print(f"\nFAILED: {exc}", flush=True)
        return 1
    print(figures)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
