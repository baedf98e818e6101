"""Training: pre-training from demonstrations (``pretraining``) and online fine-tuning, once:
the learner's data and updates (``online_learning.OnlineLearner``), what it persists
(``learner_store``), the loop (``loop.OnlineRun``: pacing by the update-to-data ratio,
updates, counters, curve rows) and the evaluation schedule (``schedule.EvaluationSchedule``:
held-out and validation evaluations, selection, the curve). Two thin drivers run them: the
``learner`` node (transitions from the bus) and ``otpr-finetune`` (environments in process)."""
