"""The hydrology center: receive the gateway's MQTT messages and store every reading once.

Public API: :func:`open_store` (``sqlite:///PATH`` or ``postgresql://...``) and the
records in :mod:`host_tools.center.model`.
"""

from __future__ import annotations

from .db import StoreError
from .model import Batch, CenterAlarm, Event, Gap, Obs, ObsRow, Revision, StationMeta, UpsertResult
from .schema import SchemaError
from .store import Store, open_store

__all__ = [
    "Batch", "CenterAlarm", "Event", "Gap", "Obs", "ObsRow", "Revision", "SchemaError",
    "StationMeta", "Store", "StoreError", "UpsertResult", "open_store",
]
