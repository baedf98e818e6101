import numpy as np
import pytest

from otpr_ros.core.normalizer import MinMaxNormalizer


def test_maps_to_unit_box_and_back(tmp_path):
    data = np.random.default_rng(0).normal(size=(100, 4)) * [1, 10, 0.1, 0]  # last dim constant
    norm = MinMaxNormalizer.fit(data)
    y = norm.normalize(data)
    assert np.allclose(y[:, :3].min(0), -1) and np.allclose(y[:, :3].max(0), 1)
    assert np.all(y[:, 3] == 0)
    assert np.allclose(norm.unnormalize(y), data)
    norm.save(tmp_path / "stats.json")
    loaded = MinMaxNormalizer.load(tmp_path / "stats.json")
    assert np.array_equal(loaded.low, norm.low) and np.array_equal(loaded.high, norm.high)


def test_bad_stats_and_input_are_refused(tmp_path):
    with pytest.raises(ValueError, match="high < low"):
        MinMaxNormalizer([0, 1], [1, 0])
    with pytest.raises(ValueError, match="NaN"):
        MinMaxNormalizer([0, np.nan], [1, 1])
    with pytest.raises(ValueError, match="last dimension 2"):
        MinMaxNormalizer([0, 0], [1, 1]).normalize(np.zeros(3))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        MinMaxNormalizer.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="missing"):
        MinMaxNormalizer.from_dict({"low": [0]})


def _hand_over_object(yaw):
    """(x, y, z, w) of a hand pointing down (a half turn about x), turned by ``yaw`` about z,
    written as robosuite writes it: w >= 0."""
    q = np.stack([np.cos(yaw / 2), np.sin(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw)], axis=-1)
    q[..., 3] = 0.01 * np.sin(7 * yaw)                 # a little off the half turn, both ways
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def test_a_sign_free_quaternion_becomes_one_value_per_rotation(tmp_path):
    """A grasp held at yaw ~0 or ~pi (a symmetric handle): the w >= 0 convention flips the sign of
    the quaternion back and forth; fitted with the quaternion declared, the normaliser gives the
    same input for q and -q, no jumps along a smooth path, and keeps that through its file."""
    rng = np.random.default_rng(0)
    yaw = np.concatenate([rng.normal(0.0, 0.3, 400), rng.normal(np.pi, 0.3, 400)])
    data = np.column_stack([rng.normal(size=800), _hand_over_object(yaw), rng.normal(size=800)])
    path = np.column_stack([np.zeros(200), _hand_over_object(np.linspace(-0.5, 0.5, 200)), np.zeros(200)])
    jumps = lambda x: int((np.linalg.norm(np.diff(x[:, 1:5], axis=0), axis=1) > 0.5).sum())   # noqa: E731
    assert jumps(path) >= 3                                          # what the policy saw before

    plain, signed = MinMaxNormalizer.fit(data), MinMaxNormalizer.fit(data, quaternions=[1])
    flipped = data.copy()
    flipped[:, 1:5] *= -1
    assert not np.allclose(plain.normalize(flipped), plain.normalize(data))
    assert np.allclose(signed.normalize(flipped), signed.normalize(data))
    assert jumps(signed.canonical(path)) == 0 and jumps(signed.normalize(path)) == 0
    assert np.abs(signed.normalize(data)).max() <= 1 + 1e-9

    signed.save(tmp_path / "stats.json")
    loaded = MinMaxNormalizer.load(tmp_path / "stats.json")
    assert np.allclose(loaded.normalize(path), signed.normalize(path))
    low, high = signed.bounds(2.0)
    assert (low[1:5] == -1).all() and (high[1:5] == 1).all()
    plain_low, plain_high = plain.bounds(2.0)
    assert low[0] == plain_low[0] and high[0] == plain_high[0]        # other values: as before
    with pytest.raises(ValueError, match="quaternions"):
        MinMaxNormalizer([0, 0, 0, 0], [1, 1, 1, 1], [(1, [1, 0, 0, 0])])
    with pytest.raises(ValueError, match="quaternions"):
        MinMaxNormalizer([0, 0, 0, 0], [1, 1, 1, 1], [(0, [1, 1, 0, 0])])


def test_pretraining_a_square_model_keeps_its_hand_quaternion_in_one_hemisphere(tmp_path):
    """otpr-pretrain --task square fits the reference of the quaternion the task declares
    (robosuite's nut-to-hand orientation, observation values 12-15) into the model's
    normalizer.json; the loaded model's normaliser then gives q and -q one input. A Lift model
    declares none and keeps its values as they come."""
    import copy

    import yaml
    from model_fixtures import TINY_CONFIG, make_tiny_model
    from model_fixtures import episode as fixture_episode

    from otpr_ros.data.robomimic_hdf5 import write_dataset
    from otpr_ros.model.directory import load_model
    from otpr_ros.tools.pretrain import main as pretrain_main

    rng = np.random.default_rng(0)

    def episode(length, seed):          # the fixture's, with Square's 14 object values
        record = fixture_episode(length, seed)
        obj = np.concatenate([rng.normal(size=(length + 1, 3)), _hand_over_object(rng.normal(0.0, 0.3, length + 1)),
                              rng.normal(size=(length + 1, 7))], axis=1)
        record["obs"]["object"], record["next_obs"]["object"] = obj[:-1], obj[1:]
        return record

    write_dataset(tmp_path / "square.hdf5", [episode(12, s) for s in range(6)], {"env_name": "NutAssemblySquare"},
                  valid_fraction=0.0)
    settings = copy.deepcopy(TINY_CONFIG)
    settings["otpr"]["obs_dim"] = 23
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(settings))
    assert pretrain_main(["--task", "square", "--dataset", str(tmp_path / "square.hdf5"), "--output",
                          str(tmp_path / "model"), "--config", str(tmp_path / "tiny.yaml"), "--policy-steps", "2",
                          "--critic-steps", "2", "--batch-size", "8", "--device", "cpu", "--no-onnx",
                          "--logdir", str(tmp_path / "tb")]) == 0
    normalizer = load_model(tmp_path / "model", device="cpu").obs_normalizer
    assert [start for start, _ in normalizer.quaternions] == [12]
    obs = np.concatenate([rng.normal(size=9), [0.1, 0.2, 0.3], _hand_over_object(np.array(0.2)),
                          rng.normal(size=7)])
    flipped = obs.copy()
    flipped[12:16] *= -1
    assert np.allclose(normalizer.normalize(flipped), normalizer.normalize(obs))
    assert load_model(make_tiny_model(tmp_path), device="cpu").obs_normalizer.quaternions == []      # Lift


def test_bounds_widen_to_a_margin_around_the_centre_for_near_constant_components():
    """A component the data held nearly constant (an object the demonstrations never moved) gets
    the centre +- margin; one the data spans keeps its normalised limit."""
    normalizer = MinMaxNormalizer([0.0, 1.0, -2.0], [1e-4, 1.0, 2.0])        # tiny, constant, wide
    low, high = normalizer.bounds(20.0)
    assert np.allclose(low, [-0.00095, -19.0, -40.0]) and np.allclose(high, [0.00105, 21.0, 40.0])
    low, high = normalizer.bounds(20.0, margin=5.0)
    assert np.allclose(low, [0.00005 - 5.0, -19.0, -40.0]) and np.allclose(high, [0.00005 + 5.0, 21.0, 40.0])
    assert np.allclose(normalizer.bounds(20.0, margin=0.0)[0], normalizer.bounds(20.0)[0])
