"""A simulated order stream of a SIM-card distribution platform, with injectable incidents.

Pure and seeded: `generate` is a function of simulated time only (no I/O, no wall clock).
`watchdog.demo_db` writes it into a database.
"""

from .incidents import (
    CarrierOutage,
    DistributorAbuse,
    Incident,
    NumberPoolExhausted,
    OpsBulkCancel,
    PolicyChange,
    ProductTakedown,
    RegionalPause,
    UpstreamSignatureBreak,
    UpstreamSilence,
)
from .people import distributor_id, is_valid_id_number
from .records import NEGATIVE_STATUSES, ORDER_COLUMNS, Order, OrderWrite
from .stream import generate

__all__ = [
    "NEGATIVE_STATUSES",
    "ORDER_COLUMNS",
    "CarrierOutage",
    "DistributorAbuse",
    "Incident",
    "NumberPoolExhausted",
    "OpsBulkCancel",
    "Order",
    "OrderWrite",
    "PolicyChange",
    "ProductTakedown",
    "RegionalPause",
    "UpstreamSignatureBreak",
    "UpstreamSilence",
    "distributor_id",
    "generate",
    "is_valid_id_number",
]
