"""Host codec for hydrolink frames v1 (SPEC.md): encode, deframe, verify, decode.

Sans-IO: nothing here reads or writes a port. The gateway, the CLI and the tests
feed bytes to a :class:`Deframer` and pass the raw frames to :func:`decode_frame`.

This module is the codec's public face; the work is done in one module a concern:

* :mod:`protocol.model`: sizes, type ids, status keys, the decoded records, times;
* :mod:`protocol.deframer`: COBS and the 0x00 delimiter (``wrap``, ``Deframer``);
* :mod:`protocol.frames`: header, tag and CRC (``encode_frame``, ``decode_frame``);
* :mod:`protocol.body`: bodies to and from CBOR, with each frame type's schema;
* :mod:`protocol.cbor_subset`, :mod:`protocol.values`: the CBOR subset check and the
  values codec, pure-Python references of protocol/_speedups.c and their compiled twins;
* :mod:`protocol.replay`: ``ReplayWindow``;
* :mod:`protocol.message`: the message JSON of the vectors.

The body decoder looks ``check_cbor`` and ``decode_values`` up in :mod:`protocol.body`:
to run the references instead of the compiled twins, patch them there.
"""

from __future__ import annotations

from protocol.body import body_item, decode_body, encode_body
from protocol.cbor_subset import check_cbor, check_cbor_py
from protocol.deframer import Deframer, wrap
from protocol.elements import NO_VALUE
from protocol.errors import (
    BadCrc,
    BadTag,
    FrameError,
    Malformed,
    Oversize,
    Replay,
    Truncated,
    UnknownVersion,
)
from protocol.frames import check_raw, decode_frame, decode_unverified, encode_frame, tag
from protocol.message import encode_message, frame_to_message, message_to_frame
from protocol.model import (
    ACK,
    ALARM,
    COMMAND,
    CRC_SIZE,
    DATA,
    EPOCH,
    EPOCH_UNIX,
    HEADER,
    HEADER_SIZE,
    MAX_DEPTH,
    MAX_FRAME,
    MAX_STATION,
    MAX_VALUES,
    MAX_WIRE,
    MIN_FRAME,
    REPLAY_WINDOW,
    REPORT_TYPES,
    RESULT,
    STATUS,
    STATUS_KEYS,
    STATUS_NAMES,
    STATUS_TYPES,
    TAG_SIZE,
    TEST,
    TYPE_IDS,
    TYPE_NAMES,
    UPLINK_TYPES,
    VERSION,
    WINDOW_ALARMS,
    Ack,
    Alarm,
    Body,
    Command,
    Commands,
    Frame,
    Report,
    Result,
    Results,
    Series,
    Status,
    from_datetime,
    to_datetime,
)
from protocol.replay import ReplayWindow
from protocol.values import decode_values, decode_values_py, encode_values, fill_no_value, quality_runs

__all__ = [
    "ACK", "ALARM", "COMMAND", "CRC_SIZE", "DATA", "EPOCH", "EPOCH_UNIX", "HEADER", "HEADER_SIZE",
    "MAX_DEPTH", "MAX_FRAME", "MAX_STATION", "MAX_VALUES", "MAX_WIRE", "MIN_FRAME", "NO_VALUE",
    "REPLAY_WINDOW", "REPORT_TYPES", "RESULT", "STATUS", "STATUS_KEYS", "STATUS_NAMES", "STATUS_TYPES",
    "TAG_SIZE", "TEST", "TYPE_IDS", "TYPE_NAMES", "UPLINK_TYPES", "VERSION", "WINDOW_ALARMS",
    "Ack", "Alarm", "BadCrc", "BadTag", "Body", "Command", "Commands", "Deframer", "Frame",
    "FrameError", "Malformed", "Oversize", "Replay", "ReplayWindow", "Report", "Result", "Results",
    "Series", "Status", "Truncated", "UnknownVersion",
    "body_item", "check_cbor", "check_cbor_py", "check_raw", "decode_body", "decode_frame",
    "decode_unverified", "decode_values", "decode_values_py", "encode_body", "encode_frame",
    "encode_message", "encode_values", "fill_no_value", "frame_to_message", "from_datetime",
    "message_to_frame", "quality_runs", "tag", "to_datetime", "wrap",
]
