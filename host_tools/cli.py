"""The ``hydrolink`` command: one table of subcommands, each with its own argument parser.

Errors end as one line on stderr, ``hydrolink: <what was wrong and what to do>``; bad
input never produces a traceback. One exit-status rule for every command: 0 ok, 1 data
rejected (frames, lines, values refused), 2 bad usage or a bad file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from host_tools.clierror import CliError as CliError  # raised by the commands, printed by main()

# ---------------------------------------------------------------- decode and encode


def cmd_decode(argv: list[str]) -> int:
    """Decode frames from a capture or stdin to JSON Lines."""
    from host_tools.codec_cli import cmd_decode as run  # lazy: the codec, cbor2, the registry

    return run(argv)


def cmd_encode(argv: list[str]) -> int:
    """Encode JSON Lines (SI, or message JSON with --raw) to frames."""
    from host_tools.codec_cli import cmd_encode as run

    return run(argv)


# ---------------------------------------------------------------- demo (placeholder)


def cmd_demo(argv: list[str]) -> int:
    """Six virtual stations, three days with a storm, through gateway, broker and center."""
    from sim.cli import cmd_demo as run  # lazy: the VM, the gateway, the broker

    return run(argv)


def cmd_sim(argv: list[str]) -> int:
    """Run a fleet of virtual stations (real firmware, gateway, broker, center) and report."""
    from sim.cli import cmd_sim as run

    return run(argv)


# ---------------------------------------------------------------- the table

def cmd_gateway(argv: list[str]) -> int:
    """Receive station frames (serial, TCP), spool, ACK, publish to MQTT."""
    from host_tools.gateway.main import cmd_gateway as run  # lazy: asyncio, aiomqtt, sqlite

    return run(argv)


def cmd_command(argv: list[str]) -> int:
    """Queue a command for a station (sent in its next ACK), cancel one, or show them."""
    from host_tools.gateway.command_cli import cmd_command as run

    return run(argv)


def cmd_build(argv: list[str]) -> int:
    """Compile the firmware for a board (esp32, rp2, sim) into build/<board>/."""
    from host_tools.field.build import cmd_build as run

    return run(argv)


def cmd_provision(argv: list[str]) -> int:
    """Make a station's configuration, key and PIN, and add it to the registry."""
    from host_tools.field.provision import cmd_provision as run

    return run(argv)


def cmd_flash(argv: list[str]) -> int:
    """Write the build and a station's configuration to a board (USB REPL) or an image."""
    from host_tools.field.flash import cmd_flash as run

    return run(argv)


def cmd_export(argv: list[str]) -> int:
    """Export a station's readings (CSV, JSON, WaterML 2.0, SL 323 tables)."""
    from host_tools.center.export import cmd_export as run  # lazy: the store, lxml

    return run(argv)


def cmd_plot(argv: list[str]) -> int:
    """Draw hydrograph and hyetograph of one or more stations to a PNG."""
    from host_tools.center.plot import cmd_plot as run  # lazy: matplotlib

    return run(argv)


def cmd_report(argv: list[str]) -> int:
    """The morning report: completeness, gaps, battery, alarms, rain per station."""
    from host_tools.center.report import cmd_report as run

    return run(argv)


def cmd_qc(argv: list[str]) -> int:
    """Review stored readings: approve, mark provisional, or correct with a note."""
    from host_tools.center.qc_cli import cmd_qc as run  # lazy: the store

    return run(argv)


def cmd_dashboard(argv: list[str]) -> int:
    """Serve the web dashboard (overview, station pages, alarms) over the center database."""
    from host_tools.dashboard.main import cmd_dashboard as run  # lazy: starlette, uvicorn

    return run(argv)


def cmd_users(argv: list[str]) -> int:
    """Add, remove or list the dashboard's users (viewer / operator)."""
    from host_tools.dashboard.main import cmd_users as run

    return run(argv)


def cmd_console(argv: list[str]) -> int:
    """A station's technician console over its console port (interactive, or -c COMMAND)."""
    from host_tools.field.console import cmd_console as run  # lazy: pyserial, readline

    return run(argv)


def cmd_pull(argv: list[str]) -> int:
    """Pull a station's queued readings over its console into a CSV (hydrolink center import)."""
    from host_tools.field.pull import cmd_pull as run

    return run(argv)


def cmd_center(argv: list[str]) -> int:
    """Receive the gateway's MQTT messages into the center store (SQLite or PostgreSQL)."""
    if argv[:1] == ["import"]:  # hydrolink center import FILE.csv (a pulled CSV)
        from host_tools.field.pull import cmd_import

        return cmd_import(argv[1:])
    from host_tools.center.main import cmd_center as run  # lazy: paho, psycopg

    return run(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "decode": cmd_decode,
    "encode": cmd_encode,
    "demo": cmd_demo,
    "sim": cmd_sim,
    "gateway": cmd_gateway,
    "command": cmd_command,
    "qc": cmd_qc,
    "center": cmd_center,
    "export": cmd_export,
    "plot": cmd_plot,
    "report": cmd_report,
    "build": cmd_build,
    "provision": cmd_provision,
    "flash": cmd_flash,
    "console": cmd_console,
    "pull": cmd_pull,
    "dashboard": cmd_dashboard,
    "users": cmd_users,
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {(fn.__doc__ or '').strip()}" for name, fn in COMMANDS.items()]
    return ("usage: hydrolink COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)
            + "\n\n'hydrolink COMMAND --help' describes a command.")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(_usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"hydrolink: unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        return command(args[1:])
    except CliError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `hydrolink decode | head`): stop quietly, and keep
        # the interpreter's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
