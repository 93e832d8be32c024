"""Runnable examples of belugaflow (``python -m examples.order_processing``)."""
