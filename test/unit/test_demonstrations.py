import pytest

from otpr_ros.sim.demonstrations import QUALITY_MIXES, quality_jobs


def test_mixed_quality_splits_episodes_by_operator_skill():
    jobs = quality_jobs(100, "mixed", seed=7)
    assert len(jobs) == 100 and [j.seed for j in jobs] == list(range(7, 107))
    by_skill = {}
    for job in jobs:
        by_skill[(job.noise, job.speed)] = by_skill.get((job.noise, job.speed), 0) + 1
    assert by_skill == {(noise, speed): round(share * 100) for share, noise, speed in QUALITY_MIXES["mixed"]}


def test_expert_quality_takes_the_given_noise():
    jobs = quality_jobs(3, "expert", seed=0, noise=0.25)
    assert [(j.seed, j.noise, j.speed) for j in jobs] == [(0, 0.25, 1.0), (1, 0.25, 1.0), (2, 0.25, 1.0)]


def test_unknown_quality_is_refused():
    with pytest.raises(ValueError, match="quality"):
        quality_jobs(3, "human", seed=0)
