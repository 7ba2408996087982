"""The error every ``hydrolink`` command raises for a problem the user can fix."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix (usage, a file); ``hydrolink: <message>``, exit status 2."""
