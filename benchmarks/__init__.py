"""belugaflow's benchmarks: ``python -m benchmarks.run`` (or ``make bench``)."""
