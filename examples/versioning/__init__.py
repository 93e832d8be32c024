"""Changing a workflow while runs of the old code are still open: ``workflow.patched()``.

``v1.ShipOrder`` packs an order, waits for a ``confirm`` signal, then ships it. ``v2.ShipOrder``
— the same workflow name, deployed later — checks the address first, behind
``workflow.patched("check-address")``. A v1 run that is waiting for its signal when the v2
worker takes over replays under v2 without the check and finishes on v1's path; runs started
after the deployment take the new path. ``tests/temporal/test_versioning.py`` shows both, and
that the same change without the guard breaks the v1 run's replay.
"""
