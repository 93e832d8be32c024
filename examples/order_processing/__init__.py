"""The reference use case: validate → check_inventory → process_payment → fulfill → notify.

Backed by a real SQLite database. Run it with ``python -m examples.order_processing``.
"""

from .db import Product, Store
from .graph import build_order_graph
from .nodes import OrderNodes, route_inventory

__all__ = ["OrderNodes", "Product", "Store", "build_order_graph", "route_inventory"]
