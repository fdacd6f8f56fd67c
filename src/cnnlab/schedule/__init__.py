"""The scheduling engine shared by studies and tuning: who trains which run, and where.

Both a study (a grid of cells x seeds) and a tune (a sampled search) are an Optuna study in
an RDB storage: a SQLite file inside the output folder by default, PostgreSQL when several
machines work on one folder. Optuna hands out the work (``GridSampler`` for a study, any
sampler for a tune); every trial trains one ordinary run folder, so reports, predict,
ensembles and the app need nothing special.

The pieces, each usable on its own:

- :mod:`~cnnlab.schedule.storage`: ``open_storage`` (heartbeats, retry of dead workers'
  trials, a lock timeout fit for several processes) and ``open_study``.
- :mod:`~cnnlab.schedule.worker`: ``run_worker`` (the loop one process runs until no work is
  left), ``reclaim_dead_trials`` (a killed worker's trial goes back into the queue at once on
  its own machine, after the heartbeat grace period anywhere else), ``RunFailed``.
- :mod:`~cnnlab.schedule.pool`: ``run_pool`` (K worker processes on one machine, CPU threads
  split between them, a progress bar read from the storage).
- :mod:`~cnnlab.schedule.runs`: ``train_in_folder`` (train one config into a fixed run
  folder: skip it when finished, resume it from its checkpoint when interrupted, record a
  diverged or crashed run as failed with its reason).

A trial that raises :class:`~cnnlab.schedule.worker.RunFailed` is FAIL with the reason in its
``error`` user attribute and is never retried (it would fail again); a trial whose process
died is FAIL without ``error`` and is queued again with the same parameters, so its run folder
resumes from the last checkpoint.
"""
