"""``hydrolink flash``: write a build and a station's configuration to a board or an image."""

from __future__ import annotations


def cmd_flash(argv: list[str]) -> int:
    """``hydrolink flash``: returns the exit status (being written)."""
    from host_tools.cli import CliError
    raise CliError("flash: not ready yet")
