import numpy as np
import pytest
import torch

from otpr_ros.training.learner_store import Checkpoints, PolicySnapshots, ReplayLog, check_fresh_output

FIELDS = ("obs", "reward", "sequence", "source", "stream")


def transition(sequence, source=0, stream=7):
    return {"obs": np.full(3, sequence, np.float32), "reward": float(sequence) / 10, "sequence": float(sequence),
            "source": float(source), "stream": float(stream)}


def test_transitions_are_acknowledged_only_once_on_disk_and_load_back_in_order(tmp_path):
    log = ReplayLog(tmp_path, FIELDS)
    for sequence in range(5):
        log.append(transition(sequence))
    assert log.acknowledged == {} and not list(tmp_path.iterdir()), "nothing acknowledged before it is written"
    assert log.flush() == 5 and log.acknowledged == {(0, 7): 4}
    log.append(transition(0, source=1, stream=9))
    log.flush()
    assert log.flush() == 0
    batches, report = ReplayLog(tmp_path, FIELDS).load()
    assert report == {"chunks": 2, "damaged": [], "transitions": 6}
    np.testing.assert_array_equal(batches[0]["sequence"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(batches[0]["obs"][3], [3, 3, 3])
    assert batches[1]["source"][0] == 1


def test_a_damaged_chunk_is_skipped_and_named_and_a_half_written_one_ignored(tmp_path):
    log = ReplayLog(tmp_path, FIELDS)
    for chunk in range(3):
        log.append(transition(chunk))
        log.flush()
    damaged = sorted(tmp_path.glob("chunk_000000001.*"))[0]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (tmp_path / "chunk_000000003.ab.npz.partial").write_bytes(b"half a chunk")    # a crash while writing
    reopened = ReplayLog(tmp_path, FIELDS)
    batches, report = reopened.load()
    assert report["damaged"] == [damaged.name] and report["chunks"] == 2
    assert [int(b["sequence"][0]) for b in batches] == [0, 2]
    assert not list(tmp_path.glob("*.partial")) and reopened.acknowledged == {(0, 7): 2}
    reopened.append(transition(3))
    reopened.flush()                     # numbering goes on after the chunks on disk
    assert len(list(tmp_path.glob("chunk_000000003.*.npz"))) == 1


def test_the_newest_complete_checkpoint_is_loaded(tmp_path):
    store = Checkpoints(tmp_path, keep=2)
    for updates in (100, 200, 300):
        store.save(f"u{updates:09d}", {"updates": updates, "weights": torch.full((4,), float(updates))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u000000200", "u000000300"], "the oldest is pruned"
    path, state, skipped = store.latest()
    assert path.name == "u000000300" and state["updates"] == 300 and skipped == []
    # a crash while writing the next one leaves a .partial directory: ignored, then cleared
    (tmp_path / "u000000400.partial").mkdir()
    (tmp_path / "u000000400.partial" / "state.pt").write_bytes(b"\x00" * 10)
    # a checkpoint damaged after it was written is skipped for the one before
    (tmp_path / "u000000300" / "state.pt").write_bytes(b"not the state")
    store = Checkpoints(tmp_path)
    path, state, skipped = store.latest()
    assert path.name == "u000000200" and torch.equal(state["weights"], torch.full((4,), 200.0))
    assert skipped == ["u000000300"] and not (tmp_path / "u000000400.partial").exists()


def test_no_checkpoint(tmp_path):
    assert Checkpoints(tmp_path).latest() == (None, None, [])


def test_snapshot_versions_grow_across_restarts_and_only_the_newest_stay(tmp_path):
    from model_fixtures import make_tiny_model
    from otpr_ros.model.directory import load_model, sha256
    from otpr_ros.training.online_learning import OnlineLearner, expert_demonstrations
    model = load_model(make_tiny_model(tmp_path), "cpu")
    learner = OnlineLearner(model, expert_demonstrations(model))
    snapshots = PolicySnapshots(tmp_path / "policy", keep=2)
    written = [snapshots.write(learner, "card\n") for _ in range(3)]
    assert [w[0] for w in written] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "policy").iterdir()) == ["v000002", "v000003"]
    assert written[-1][2] == sha256(written[-1][1] / "weights.pt") and load_model(written[-1][1], "cpu")
    restarted = PolicySnapshots(tmp_path / "policy")
    assert restarted.resume(1) == 3          # above every snapshot on disk, though the checkpoint says 1
    assert restarted.resume(7) == 7 and restarted.write(learner, "card\n")[0] == 8


def test_a_previous_run_is_refused_unless_resumed(tmp_path):
    check_fresh_output(tmp_path, resume=False)             # empty: a fresh run
    (tmp_path / "replay").mkdir()
    check_fresh_output(tmp_path, resume=False)             # an empty folder holds nothing to lose
    (tmp_path / "replay" / "chunk_000000000.x.npz").write_bytes(b"")
    check_fresh_output(tmp_path, resume=True)
    with pytest.raises(ValueError, match="holds a previous run"):
        check_fresh_output(tmp_path, resume=False)
