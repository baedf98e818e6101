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
