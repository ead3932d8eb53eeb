"""Order tables shaped like the demo's, for tests (shared by source and pipeline tests)."""

from tests.integration.test_source import insert, orders_table, row

__all__ = ["insert", "orders_table", "row"]
