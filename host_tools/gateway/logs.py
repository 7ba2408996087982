"""Structured logs: one line per event, ``key=value`` fields (or JSON with --log-format json).

Modules log with ``log.info("event name", extra={"fields": {...}})``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
            f".{int(record.msecs):03d}Z")
        if self.as_json:
            return json.dumps({"ts": ts, "level": record.levelname.lower(),
                               "event": record.getMessage(), **fields}, default=str)
        parts = [ts, record.levelname.lower(), record.getMessage()]
        for k, v in fields.items():
            if v is None:
                continue
            text = str(v)
            parts.append(f"{k}={json.dumps(text) if (' ' in text or not text) else text}")
        return " ".join(parts)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt == "json"))
    root = logging.getLogger("hydrolink")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("hydrolink.mqtt").setLevel(logging.WARNING)  # paho: problems only
