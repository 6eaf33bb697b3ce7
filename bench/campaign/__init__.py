"""Evaluation campaigns on top of the one loop: suites (many tasks, one table), re-scoring
saved predictions, resuming runs, and sweeps of models x tasks through submitit."""
