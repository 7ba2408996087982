"""Why a frame was rejected: one exception class per reason of SPEC §9."""

from __future__ import annotations


class FrameError(Exception):
    """A frame was rejected. ``reason`` is the class's short name, for counters."""

    reason = "frame_error"


class Malformed(FrameError):
    """COBS, header fields or body do not follow the spec."""

    reason = "malformed"


class Truncated(FrameError):
    """Shorter than the smallest frame (26 bytes)."""

    reason = "truncated"


class Oversize(FrameError):
    """Longer than MAX_FRAME, or a byte stream ran past MAX_WIRE without a delimiter."""

    reason = "oversize"


class BadCrc(FrameError):
    """The CRC-32 does not match: a line error."""

    reason = "bad_crc"


class UnknownVersion(FrameError):
    """The version nibble is not 1."""

    reason = "unknown_version"


class BadTag(FrameError):
    """Unknown station key, or the HMAC tag does not match: forged or altered."""

    reason = "bad_tag"


class Replay(FrameError):
    """The sequence number is older than the replay window."""

    reason = "replay"


ERRORS: dict[str, type[FrameError]] = {
    cls.__name__: cls
    for cls in (Malformed, Truncated, Oversize, BadCrc, UnknownVersion, BadTag, Replay)
}
