"""Online fine-tuning, once: the loop (``loop.OnlineRun``: pacing by the update-to-data ratio,
updates, counters, curve rows) and the evaluation schedule (``schedule.EvaluationSchedule``:
held-out and validation evaluations, selection, the curve). Two thin drivers run them: the
``learner`` node (transitions from the bus) and ``otpr-finetune`` (environments in process)."""
