"""Who may change the served policy: signed ``policy_update`` announcements, learner runs,
model roots.

- A key is 32 random bytes (hex) in a file only its owner may read (``create_key``,
  ``otpr-keygen``); ``load_key`` refuses a file others can read, as ssh does.
- The learner signs each announcement (``sign``): HMAC-SHA256 over the learner run's id,
  the version, the model directory's path and its weights' sha256.
- A policy server's ``UpdateGuard`` accepts an announcement only when it is signed with the
  server's key (with no key configured: any, and the server says so); its run is the one
  being served with a higher version (a resumed learner keeps its run and continues above its
  last version) or a run never served before (a new learner run; its versions start again);
  and its path lies inside the allowed model roots. A run the server has left is never
  accepted again, so an old announcement replayed cannot bring back old weights.
  Each refusal has a reason (``REASONS``), counted by the server.
"""

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32
REASONS = ("malformed", "unsigned", "bad_signature", "old_run", "not_newer", "outside_roots", "bad_model")


class UpdateRefused(ValueError):
    """An announcement that must not change what the arm does; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def create_key(path) -> Path:
    """A new key at ``path`` (mode 0600, the folder made 0700 if new); an existing file is kept
    as it is (a resumed run keeps its key) after checking it is a usable key."""
    path = Path(path)
    if path.exists():
        load_key(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
    return path


def load_key(path) -> bytes:
    """The key in ``path``; ValueError when the file is readable by others or not a key."""
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"update key {path}: group or others may read it (mode {stat.S_IMODE(mode):o}); "
                         f"only its owner may: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(f"update key {path}: expected {2 * KEY_BYTES} hex digits (otpr-keygen makes one)")
    return key


def _signed_bytes(update: dict) -> bytes:
    return json.dumps([update["run"], update["version"], update["path"], update["weights_sha256"]]).encode()


def sign(key: bytes, update: dict) -> str:
    """The announcement's signature: HMAC-SHA256 (hex) over run, version, path and weights' sha256."""
    return hmac.new(key, _signed_bytes(update), hashlib.sha256).hexdigest()


def inside(path, roots) -> bool:
    """Whether ``path`` (links resolved) lies in one of ``roots``."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


class UpdateGuard:
    """The policy server's rule for ``policy_update`` (module doc); ``check`` raises
    UpdateRefused, ``accepted`` records an announcement once its model has loaded."""

    def __init__(self, key: bytes | None, roots):
        self.key, self.roots = key, [Path(r) for r in roots]
        self.run, self.version, self.left = None, 0, set()

    def check_path(self, path) -> None:
        if not inside(path, self.roots):
            raise UpdateRefused("outside_roots", f"{path} is outside the allowed model roots "
                                f"{[str(r) for r in self.roots]}")

    def check(self, update: dict) -> None:
        if self.key is not None:
            signature = update.get("signature")
            if not isinstance(signature, str):
                raise UpdateRefused("unsigned", "unsigned announcement; this server takes only signed ones")
            if not hmac.compare_digest(signature, sign(self.key, update)):
                raise UpdateRefused("bad_signature", "signature does not match (another key, or altered)")
        if update["run"] in self.left:
            raise UpdateRefused("old_run", f"run {update['run']} was replaced by run {self.run}; its "
                                "announcements are not accepted again")
        if update["run"] == self.run and update["version"] <= self.version:
            raise UpdateRefused("not_newer", f"version {update['version']} is not newer than the served "
                                f"{self.version} of run {self.run}")
        self.check_path(update["path"])

    def accepted(self, update: dict) -> None:
        if self.run is not None and update["run"] != self.run:
            self.left.add(self.run)
        self.run, self.version = update["run"], update["version"]
