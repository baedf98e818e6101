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


def test_kitchen_demonstrations_follow_d4rls_three_datasets():
    from otpr_ros.sim.demonstrations import task_jobs
    from otpr_ros.sim.kitchen_env import KITCHEN_TASKS
    from otpr_ros.sim.kitchen_experts import PARTIAL_FULL_SHARE, PLAN_ORDER

    def plans(task):
        jobs = task_jobs(task, 40, "expert", seed=3, noise=0.1)
        assert [j.seed for j in jobs] == list(range(3, 43)) and {j.noise for j in jobs} == {0.1}
        for job in jobs:      # four distinct sub-tasks, along the kitchen
            assert len(set(job.plan)) == 4 and list(job.plan) == sorted(job.plan, key=PLAN_ORDER.index)
        return [j.plan for j in jobs]

    assert set(plans("kitchen_complete")) == {KITCHEN_TASKS["kitchen_complete"]}
    targets = set(KITCHEN_TASKS["kitchen_partial"])
    partial = plans("kitchen_partial")
    assert sum(set(p) == targets for p in partial) == round(PARTIAL_FULL_SHARE * 40)
    assert len({p for p in partial if set(p) != targets}) > 3                  # the others vary
    mixed = plans("kitchen_mixed")
    assert all(len(set(p) & targets) in (2, 3) for p in mixed)                # some targets, never all four
    assert {len(set(p) & targets) for p in mixed} == {2, 3}
    assert task_jobs("kitchen_mixed", 40, "expert", seed=3, noise=0.1) == task_jobs("kitchen_mixed", 40, "expert",
                                                                                   seed=3, noise=0.1)


def test_kitchen_demonstrations_are_the_task_s_not_a_quality_mix():
    from otpr_ros.sim.demonstrations import task_jobs
    with pytest.raises(ValueError, match="defined by the task"):
        task_jobs("kitchen_mixed", 10, "mixed", seed=0)
    assert all(not j.plan for j in task_jobs("lift", 10, "mixed", seed=0))
