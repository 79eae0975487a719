"""The hop store: every network is trained once per lineage, every parent's soft labels
are computed once per view schedule, and both are reused by every trial and run.

Layout under the store root (default `results/.store`, `--store PATH` or `TAKD_STORE`):

    hops/<key>/meta.json     lineage, metrics, curve, provenance, sha256 of weights.pt
    hops/<key>/weights.pt    {"state": selected weights, "snapshots": {epoch: weights}}
    banks/<key>.pt           one parent's fp16 logits [N_train, C] for one epoch's views
    locks/<key>.lock         held while a process trains <key>; refreshed every few seconds
    partial/<key>.pt         the latest checkpoint of a hop being trained (resumed on retry)
    failed/<key>.json        why a hop cannot be trained (diverged): a retry fails at once
    trained.log              one line per training: time, key, model, host, pid, seconds

An entry is written into a private temporary folder and renamed into place, so a reader
sees either nothing or a whole entry. Its checksum is verified on every load: a
truncated or corrupt entry is reported once, moved aside to `corrupt/` and retrained.
Two processes that want the same missing hop serialise on its lock file (O_EXCL): one
trains, the other waits and loads; a lock whose heartbeat stops for `stale_after` seconds
(a crashed trainer) is broken.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from takd_search.distill import HopResult, TrainConfig, TrainingDiverged
from takd_search.errors import UserError

SCHEMA = 1  # bump when a change makes old entries wrong; it is part of every key
log = logging.getLogger("takd_search.store")


@dataclass(frozen=True)
class HopSpec:
    """A hop's full lineage. Equal specs train bit-identical networks (on one device).

    data: the data set's content fingerprint (not its name). val_fraction / split_seed:
    the validation split. model: canonical model name ('plain10'). parents: the parent
    hops' keys (several for dense guidance). T, alpha, kd_epochs, parent_epoch: the
    distillation settings (None for a hop trained from scratch; parent_epoch None = the
    parents' selected weights). teacher: content hash of a user's teacher file, if the
    hop *is* that teacher.
    """

    data: str
    val_fraction: float
    split_seed: int
    model: str
    train: TrainConfig
    seed: int
    parents: tuple[str, ...] = ()
    T: float | None = None
    alpha: float | None = None
    kd_epochs: int | None = None
    parent_epoch: int | None = None
    teacher: str | None = None

    def canonical(self) -> HopSpec:
        """The same hop written one way: settings that cannot matter are dropped, so
        KD with alpha 0 (or 0 KD epochs) is the from-scratch hop, and T is only kept
        when soft targets are used."""
        kd_epochs = self.kd_epochs
        if kd_epochs is not None and kd_epochs >= self.train.epochs:
            kd_epochs = None
        no_kd = not self.parents or self.alpha in (None, 0) or kd_epochs == 0
        if no_kd:
            return HopSpec(
                self.data,
                self.val_fraction,
                self.split_seed,
                self.model,
                self.train,
                self.seed,
                teacher=self.teacher,
            )
        return HopSpec(
            self.data,
            self.val_fraction,
            self.split_seed,
            self.model,
            self.train,
            self.seed,
            tuple(self.parents),
            float(self.T),
            float(self.alpha),
            kd_epochs,
            self.parent_epoch,
            self.teacher,
        )

    @property
    def from_scratch(self) -> bool:
        return not self.canonical().parents

    def lineage(self) -> dict:
        d = asdict(self.canonical())
        d["parents"] = list(d["parents"])
        d["schema"] = SCHEMA
        return d

    @property
    def key(self) -> str:
        blob = json.dumps(self.lineage(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class StoreStats:
    """What the store did for this process: visible in the chain's output and the CSVs."""

    trained: int = 0
    reused: int = 0
    seconds_saved: float = 0.0
    bank_hits: int = 0
    bank_misses: int = 0
    parent_passes: int = 0  # full passes of a parent over the training split
    corrupt: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class CorruptEntry(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _provenance(result: HopResult) -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "device": result.device,
        "seconds": round(result.seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class Store:
    """A persistent hop store rooted at a folder (local disk or a shared/NFS mount).

    root=None or reuse=False turns every lookup into a miss and writes nothing
    (`--no-store`, for benchmarks); the chain hands parents to children itself.
    """

    def __init__(
        self,
        root: str | os.PathLike | None,
        *,
        reuse: bool = True,
        stale_after: float = 60.0,
        poll: float = 0.25,
        checkpoint_every_s: float | None = None,
        create: bool = True,
    ):
        """create=False opens an existing store for reading only (e.g. `export` from a
        read-only mount): no folder is made, nothing is written."""
        self.root = Path(root).expanduser().resolve() if root is not None else None
        self.reuse = reuse and self.root is not None
        self.stale_after = stale_after
        self.poll = poll
        # how often a hop in training saves a resumable checkpoint (seconds of wall time)
        self.checkpoint_every_s = (
            float(os.environ.get("TAKD_CHECKPOINT_S", 30))
            if checkpoint_every_s is None
            else checkpoint_every_s
        )
        self.stats = StoreStats()
        self._memory: dict[str, HopResult] = {}
        self._last_checkpoint: dict[str, float] = {}
        if self.root is not None and create:
            try:
                for sub in ("hops", "banks", "locks", "tmp", "partial", "failed"):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
                # folders that exist on a read-only mount pass mkdir: write to be sure
                probe = self.root / "tmp" / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise UserError(
                    f"cannot write to the hop store {self.root} ({e.strerror}): pass --store "
                    "DIR on a writable disk, or --no-store to keep no weights"
                ) from None

    # ---- hops --------------------------------------------------------------------------
    def _entry(self, key: str) -> Path:
        return self.root / "hops" / key

    def has(self, key: str) -> bool:
        return self.reuse and (self._entry(key) / "meta.json").exists()

    def load(self, key: str) -> HopResult | None:
        """The stored result for `key`, or None if absent or corrupt (corrupt is moved
        aside and reported once)."""
        if not self.reuse:
            return None
        if key in self._memory:
            return self._memory[key]
        entry = self._entry(key)
        if not entry.exists():
            return None
        try:
            result = self._read(entry)
        except CorruptEntry as e:
            self._discard(entry, f"hop {key[:12]}", str(e))
            return None
        self._memory[key] = result
        return result

    def _read(self, entry: Path) -> HopResult:
        try:
            meta = json.loads((entry / "meta.json").read_text())
            weights = entry / "weights.pt"
            if _sha256(weights) != meta["sha256"]["weights.pt"]:
                raise CorruptEntry("weights.pt checksum mismatch")
            blob = torch.load(weights, map_location="cpu", weights_only=True)
        except CorruptEntry:
            raise
        except Exception as e:  # truncated json, missing file, unpicklable weights
            raise CorruptEntry(f"{type(e).__name__}: {e}") from None
        m = meta["metrics"]
        return HopResult(
            **m,
            state=blob["state"],
            snapshots={int(k): v for k, v in blob["snapshots"].items()},
        )

    def _discard(self, path: Path, what: str, why: str) -> None:
        msg = f"store: {what} is corrupt ({why}); discarded, it will be retrained"
        log.warning(msg)
        self.stats.corrupt.append(msg)
        dest = self.root / "corrupt" / f"{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            dest.parent.mkdir(exist_ok=True)
            os.replace(path, dest)
        except OSError:  # a read-only store: the entry stays; it is not used
            shutil.rmtree(path, ignore_errors=True)

    def save(self, spec: HopSpec, result: HopResult) -> None:
        key = spec.key
        self._memory[key] = result
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            buf = io.BytesIO()
            torch.save({"state": result.state, "snapshots": result.snapshots}, buf)
            (tmp / "weights.pt").write_bytes(buf.getvalue())
            meta = {
                "key": key,
                "lineage": spec.lineage(),
                "metrics": result.metrics(),
                "provenance": _provenance(result),
                "sha256": {"weights.pt": hashlib.sha256(buf.getvalue()).hexdigest()},
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            for f in tmp.iterdir():  # durable before it becomes visible
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            entry = self._entry(key)
            if entry.exists():  # replaced (e.g. retrained to keep more snapshots)
                old = self.root / "tmp" / f"old.{key}.{uuid.uuid4().hex}"
                os.replace(entry, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        (self.root / "partial" / f"{key}.pt").unlink(missing_ok=True)

    def get_or_train(
        self,
        spec: HopSpec,
        train: Callable[[], HopResult],
        *,
        need_snapshots: tuple[int, ...] = (),
    ) -> tuple[HopResult, bool]:
        """(result, reused). Trains at most once across processes sharing the store.

        A stored entry that lacks a snapshot in `need_snapshots` is trained again (the
        same lineage gives the same network) and replaced with one that keeps it.
        """
        key = spec.key
        ok = lambda r: r is not None and all(e in r.snapshots for e in need_snapshots)  # noqa: E731
        result = self.load(key)
        if ok(result):
            return self._reused(key, result)
        if not self.reuse:
            return self._trained(spec, train()), False
        with self._lock(key):
            self._memory.pop(key, None)
            result = self.load(key)  # another process may have finished it meanwhile
            if ok(result):
                return self._reused(key, result)
            failed = self.failure(key)
            if failed:
                raise TrainingDiverged(f"{failed} (recorded in {self.root}/failed/{key}.json)")
            try:
                return self._trained(spec, train()), False
            except TrainingDiverged as e:
                self.mark_failed(key, str(e))
                raise

    def _reused(self, key: str, result: HopResult) -> tuple[HopResult, bool]:
        self.stats.reused += 1
        self.stats.seconds_saved += result.seconds
        return result, True

    def _trained(self, spec: HopSpec, result: HopResult) -> HopResult:
        self.stats.trained += 1
        if self.reuse:
            self.save(spec, result)
            line = (
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {spec.key} {spec.model} "
                f"{socket.gethostname()} {os.getpid()} {result.seconds:.2f}\n"
            )
            fd = os.open(self.root / "trained.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:  # one small O_APPEND write per line: lines never interleave
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return result

    def trained_keys(self) -> list[str]:
        """Every key trained into this store, in order, once per training (trained.log)."""
        log_file = self.root / "trained.log" if self.root else None
        if not log_file or not log_file.exists():
            return []
        return [ln.split()[1] for ln in log_file.read_text().splitlines() if ln.strip()]

    # ---- failures and partial checkpoints ------------------------------------------------
    def mark_failed(self, key: str, why: str) -> None:
        if self.reuse:
            write_json_atomic(self.root / "failed" / f"{key}.json", {"key": key, "error": why})

    def failure(self, key: str) -> str | None:
        path = self.root / "failed" / f"{key}.json" if self.reuse else None
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())["error"]
        except (OSError, ValueError, KeyError):
            return None

    def checkpoint(self, key: str, state: Callable[[], dict]) -> None:
        """Save a hop-in-training's state if `checkpoint_every_s` passed since the last."""
        if not self.reuse:
            return
        now = time.monotonic()
        last = self._last_checkpoint.setdefault(key, now)
        if now - last < self.checkpoint_every_s:
            return
        self._last_checkpoint[key] = now
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}.partial"
        torch.save(state(), tmp)
        os.replace(tmp, self.root / "partial" / f"{key}.pt")

    def resume_state(self, key: str) -> dict | None:
        """The latest checkpoint of hop `key`, if a killed attempt left one."""
        path = self.root / "partial" / f"{key}.pt" if self.reuse else None
        if path is None or not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            self._discard(path, f"checkpoint of hop {key[:12]}", f"{type(e).__name__}: {e}")
            return None

    # ---- locks -------------------------------------------------------------------------
    def _lock(self, key: str) -> _Lock:
        return _Lock(self.root / "locks" / f"{key}.lock", self.stale_after, self.poll)

    # ---- logit banks -------------------------------------------------------------------
    def load_bank(self, key: str) -> torch.Tensor | None:
        if not self.reuse:
            self.stats.bank_misses += 1
            return None
        path = self.root / "banks" / f"{key}.pt"
        if not path.exists():
            self.stats.bank_misses += 1
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            logits = blob["logits"]
            if hashlib.sha256(logits.numpy().tobytes()).hexdigest() != blob["sha256"]:
                raise CorruptEntry("checksum mismatch")
        except Exception as e:
            self._discard(path, f"logit bank {key[:12]}", f"{type(e).__name__}: {e}")
            self.stats.bank_misses += 1
            return None
        self.stats.bank_hits += 1
        return logits

    def save_bank(self, key: str, logits: torch.Tensor) -> None:
        if not self.reuse:
            return
        logits = logits.detach().to("cpu", torch.float16).contiguous()
        blob = {"logits": logits, "sha256": hashlib.sha256(logits.numpy().tobytes()).hexdigest()}
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}.pt"
        torch.save(blob, tmp)
        os.replace(tmp, self.root / "banks" / f"{key}.pt")

    # ---- listing and pruning -----------------------------------------------------------
    def entries(self) -> list[dict]:
        """One dict per stored hop: key, model, lineage, metrics, bytes, created."""
        rows = []
        if self.root is None or not (self.root / "hops").is_dir():
            return rows
        for entry in sorted((self.root / "hops").iterdir()):
            try:
                meta = json.loads((entry / "meta.json").read_text())
            except Exception:
                continue
            size = sum(f.stat().st_size for f in entry.iterdir())
            rows.append({**meta, "bytes": size, "mtime": entry.stat().st_mtime})
        return rows

    def usage(self) -> dict:
        """Bytes and counts per kind of entry."""
        out = {}
        for sub in ("hops", "banks", "corrupt", "tmp"):
            d = self.root / sub
            files = [f for f in d.rglob("*") if f.is_file()] if d.exists() else []
            out[sub] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
        return out

    def gc(self, older_than_s: float | None = None) -> dict:
        """Delete entries unused for `older_than_s` seconds (all when None), plus every
        corrupt, temporary and stale-lock leftover. Returns what was removed."""
        now, removed = time.time(), {"hops": 0, "banks": 0, "bytes": 0}

        def old(p: Path) -> bool:
            return older_than_s is None or now - p.stat().st_mtime > older_than_s

        for sub in ("hops", "banks"):
            for p in list((self.root / sub).iterdir()):
                if old(p):
                    removed["bytes"] += sum(
                        f.stat().st_size
                        for f in ([p] if p.is_file() else p.rglob("*"))
                        if f.is_file()
                    )
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    removed[sub] += 1
        for sub in ("corrupt", "tmp"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(exist_ok=True)
        return removed


class _Lock:
    """An exclusive lock file with a heartbeat; a lock whose file has not been touched for
    `stale_after` seconds belongs to a dead process and is broken."""

    def __init__(self, path: Path, stale_after: float, poll: float):
        self.path, self.stale_after, self.poll = path, stale_after, poll
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> _Lock:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age > self.stale_after:
                    log.warning("store: breaking stale lock %s (%.0f s old)", self.path, age)
                    self.path.unlink(missing_ok=True)
                    continue
                time.sleep(self.poll)
                continue
            os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
            os.close(fd)
            break
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        interval = max(0.05, self.stale_after / 4)
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.path.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def default_root(results_dir: str | os.PathLike = "results") -> Path:
    """`TAKD_STORE` if set, else `<results_dir>/.store`."""
    env = os.environ.get("TAKD_STORE")
    return Path(env) if env else Path(results_dir) / ".store"
