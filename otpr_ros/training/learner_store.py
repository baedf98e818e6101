"""What a learner must not lose when it crashes: the transitions it received and its state.

- ``ReplayLog``: received transitions (robot units, as they came off the bus) appended to
  ``<dir>/chunk_<n>.<sha256>.npz``. A chunk is written to a temporary file, flushed to the
  disk and renamed, so it is either whole or absent; its name carries its checksum, so a
  chunk damaged later is found and skipped (its transitions counted) instead of loaded.
  Only persisted transitions are acknowledged to the bridges.
- ``Checkpoints``: the learner's whole state (networks, optimiser states, random generator,
  counters) in ``<dir>/<name>/`` with a manifest of checksums, written beside and renamed
  into place; ``latest()`` is the newest complete one (a crash while writing leaves a
  ``.partial`` directory that is ignored and cleared).
- ``PolicySnapshots``: the published weights, ``<dir>/v<version>`` model directories written
  atomically; versions only grow, across restarts too; the newest few are kept.
- ``check_fresh_output``: a run that must not resume refuses a directory holding another.
- ``run_id``: the learner run's id in ``<dir>/run_id``, kept by a resumed run (its policy
  updates are of the same run, and servers take them as newer versions of it).
"""

import hashlib
import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np
import torch


OPTIONAL = {"expert"}     # fields a replay log written before them lacks (read as 0)
CHUNK_NAME = re.compile(r"^chunk_(\d{9})\.([0-9a-f]{64})\.npz$")


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename, fsync the folder)."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReplayLog:
    def __init__(self, directory, fields: tuple):
        """``fields``: the names of a transition's fields (``bridge_session.TRANSITION_FIELDS``)."""
        self.directory, self.fields = Path(directory), tuple(fields)
        self.directory.mkdir(parents=True, exist_ok=True)
        for partial in self.directory.glob("*.partial"):
            partial.unlink()                     # never acknowledged: the bridges still hold them
        self.pending = []
        self.chunks = len(self._chunk_files())
        self.acknowledged = {}                   # (source, stream) -> last sequence on disk

    def _chunk_files(self) -> list[tuple[int, Path, str]]:
        found = []
        for path in self.directory.iterdir():
            match = CHUNK_NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path, match.group(2)))
        return sorted(found)

    def append(self, fields: dict) -> None:
        self.pending.append(fields)

    def flush(self) -> int:
        """Write the pending transitions as one chunk; returns how many were written."""
        if not self.pending:
            return 0
        arrays = {name: np.stack([np.asarray(t.get(name, 0.0) if name in OPTIONAL else t[name], np.float32)
                                  for t in self.pending]) for name in self.fields}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        name = f"chunk_{self.chunks:09d}.{hashlib.sha256(data).hexdigest()}.npz"
        _write_durably(self.directory / name, data)
        self.chunks += 1
        written, self.pending = self.pending, []
        self._acknowledge(arrays)
        return len(written)

    def _acknowledge(self, arrays: dict) -> None:
        for source, stream, sequence in zip(arrays["source"], arrays["stream"], arrays["sequence"]):
            key = (int(source), int(stream))
            self.acknowledged[key] = max(self.acknowledged.get(key, -1), int(sequence))

    def load(self):
        """Every persisted transition in order, as dicts of arrays (one per chunk), and a
        report: chunks read, chunks damaged (skipped, named) and transitions in them."""
        batches, damaged = [], []
        for _, path, checksum in self._chunk_files():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != checksum:
                damaged.append(path.name)
                continue
            try:
                with np.load(io.BytesIO(data)) as archive:
                    arrays = {name: archive[name] for name in self.fields if name not in OPTIONAL or
                              name in archive}
                    for name in set(self.fields) & OPTIONAL - set(arrays):      # a log from before the field
                        arrays[name] = np.zeros_like(arrays["sequence"])
            except (KeyError, ValueError, OSError):
                damaged.append(path.name)
                continue
            self._acknowledge(arrays)
            batches.append(arrays)
        return batches, {"chunks": len(batches), "damaged": damaged,
                         "transitions": sum(len(b["sequence"]) for b in batches)}


class Checkpoints:
    def __init__(self, directory, keep: int = 2):
        self.directory, self.keep = Path(directory), keep
        self.directory.mkdir(parents=True, exist_ok=True)
        for partial in self.directory.glob("*.partial"):
            shutil.rmtree(partial, ignore_errors=True)    # a crash while writing: never complete

    def save(self, name: str, state: dict) -> Path:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        final = self.directory / name
        staging = self.directory / (name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        _write_durably(staging / "state.pt", data)
        manifest = {"name": name, "state_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        _write_durably(staging / "manifest.json", json.dumps(manifest).encode())
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        _sync_folder(self.directory)
        for old in self._complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _complete(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_dir() and not p.name.endswith(".partial"))

    def latest(self, map_location="cpu"):
        """(path, state) of the newest checkpoint whose files match its manifest, the names of
        newer ones that do not (skipped); (None, None, skipped) when there is none."""
        skipped = []
        for path in reversed(self._complete()):
            try:
                manifest = json.loads((path / "manifest.json").read_text())
                data = (path / "state.pt").read_bytes()
            except (OSError, json.JSONDecodeError):
                skipped.append(path.name)
                continue
            if hashlib.sha256(data).hexdigest() != manifest.get("state_sha256"):
                skipped.append(path.name)
                continue
            return path, torch.load(io.BytesIO(data), map_location=map_location, weights_only=False), skipped
        return None, None, skipped


def check_fresh_output(output: Path, resume: bool) -> None:
    """ValueError when ``output`` holds a previous run (checkpoints, replay) that is not to be resumed."""
    if not resume and any((output / d).is_dir() and any((output / d).iterdir()) for d in ("checkpoints", "replay")):
        raise ValueError(f"output_dir {output} holds a previous run (checkpoints, replay): resume it "
                         "(resume: true) or choose another output_dir")


def run_id(output: Path, resume: bool) -> str:
    """The run's id: the one in ``<output>/run_id`` when resuming and there is one, else a new one written there."""
    path = Path(output) / "run_id"
    if resume and path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_durably(path, (new := secrets.token_hex(8)).encode())
    return new


class PolicySnapshots:
    """Published weights: ``<directory>/v<version>``, the newest ``keep`` of them on disk."""

    def __init__(self, directory, keep: int = 3):
        self.directory, self.keep, self.version = Path(directory), keep, 0

    def resume(self, version: int) -> int:
        """Versions continue above ``version`` (a checkpoint's) and above every snapshot on disk."""
        published = [int(p.name[1:]) for p in self.directory.glob("v*") if p.name[1:].isdigit()]
        self.version = max([self.version, version, *published])
        return self.version

    def write(self, learner, card: str) -> tuple[int, Path, str]:
        """The learner's weights as the next version: (version, path, sha256 of the weights);
        the oldest beyond ``keep`` are removed (servers have swapped them out by then)."""
        self.version += 1
        path = learner.snapshot(self.directory / f"v{self.version:06d}", card)
        digest = json.loads((path / "model.json").read_text())["files"]["weights.pt"]     # hashed when written
        for old in sorted(self.directory.glob("v*"))[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return self.version, path, digest
