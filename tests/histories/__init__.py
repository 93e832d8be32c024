"""Recorded workflow histories (``*.json``, named by workflow id), replayed by
``tests/temporal/test_replay.py``; ``python -m tests.histories.record`` regenerates them."""
