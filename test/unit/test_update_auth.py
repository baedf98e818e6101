"""Who may change the served policy: keys, signatures, runs and model roots
(otpr_ros/model/update_auth.py; over DDS: test/system/test_policy_updates.py)."""

import os

import pytest

from otpr_ros.model.update_auth import UpdateGuard, UpdateRefused, create_key, load_key, sign


def announcement(key, run="run-a", version=1, path="/roots/run/policy/v000001", sha="ab" * 32):
    update = {"run": run, "version": version, "path": path, "weights_sha256": sha}
    update["signature"] = sign(key, update) if key else None
    return update


def refusal(guard, update) -> str:
    with pytest.raises(UpdateRefused) as caught:
        guard.check(update)
    return caught.value.reason


def test_a_key_is_made_for_its_owner_only_and_kept(tmp_path):
    path = create_key(tmp_path / "run" / "update.key")
    assert os.stat(path).st_mode & 0o777 == 0o600 and len(load_key(path)) == 32
    key = load_key(path)
    assert create_key(path) == path and load_key(path) == key       # a resumed run keeps its key
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="hex digits"):
        load_key(path)


def test_the_signature_covers_run_version_path_and_weights():
    key = bytes(range(32))
    update = announcement(key)
    for name, value in (("run", "run-b"), ("version", 2), ("path", "/elsewhere"), ("weights_sha256", "cd" * 32)):
        assert sign(key, {**update, name: value}) != update["signature"], name
    assert sign(bytes(32), update) != update["signature"]


def test_a_keyed_guard_takes_only_signed_newer_announcements_inside_its_roots(tmp_path):
    key, roots = bytes(range(32)), tmp_path / "roots"
    inside = str(roots / "run" / "policy" / "v000001")
    guard = UpdateGuard(key, [roots])
    first = announcement(key, path=inside)
    guard.check(first)
    guard.accepted(first)
    assert refusal(guard, {**announcement(key, version=2, path=inside), "signature": None}) == "unsigned"
    assert refusal(guard, announcement(bytes(32), version=2, path=inside)) == "bad_signature"
    assert refusal(guard, {**announcement(key, version=2, path=inside), "version": 2**31 - 1}) == "bad_signature"
    assert refusal(guard, first) == "not_newer"                       # replayed
    assert refusal(guard, announcement(key, version=2, path=str(tmp_path / "other" / "v2"))) == "outside_roots"
    assert refusal(guard, announcement(key, version=2, path=str(roots / ".." / "other"))) == "outside_roots"
    guard.check(announcement(key, version=2, path=inside))            # the run's next version
    new_run = announcement(key, run="run-b", version=1, path=inside)  # a new learner run: versions start again
    guard.check(new_run)
    guard.accepted(new_run)
    assert guard.run == "run-b" and guard.version == 1
    assert refusal(guard, announcement(key, run="run-a", version=9, path=inside)) == "old_run"


def test_a_guard_without_a_key_takes_unsigned_announcements_but_keeps_runs_and_roots(tmp_path):
    guard = UpdateGuard(None, [tmp_path])
    update = announcement(None, path=str(tmp_path / "v1"))
    guard.check(update)
    guard.accepted(update)
    assert refusal(guard, update) == "not_newer"
    assert refusal(guard, announcement(None, version=2, path="/etc")) == "outside_roots"


def test_a_linked_path_is_judged_by_where_it_leads(tmp_path):
    (tmp_path / "roots").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "roots" / "link").symlink_to(tmp_path / "outside")
    guard = UpdateGuard(None, [tmp_path / "roots"])
    assert refusal(guard, announcement(None, path=str(tmp_path / "roots" / "link"))) == "outside_roots"


def test_otpr_keygen_makes_a_key_once_and_names_a_bad_one(tmp_path, capsys):
    from otpr_ros.tools.keygen import main
    path = tmp_path / "keys" / "robot.key"
    assert main([str(path)]) == 0 and os.stat(path).st_mode & 0o777 == 0o600
    key = load_key(path)
    assert main([str(path)]) == 0 and load_key(path) == key          # kept, not overwritten
    os.chmod(path, 0o640)
    assert main([str(path)]) == 2 and "chmod 600" in capsys.readouterr().err
