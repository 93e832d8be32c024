"""Two builds of one small app, for the upgrade test (``tests/temporal/test_upgrades.py``).

Build 2 changes the ``shipping`` graph in place — a node added, the version left at 1 — which
breaks the replay of runs that build 1 started: only worker versioning (pinned runs) keeps
them safe. Each node records the build that ran it.
"""
