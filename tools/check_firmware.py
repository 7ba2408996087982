#!/usr/bin/env python3
"""Firmware lint (``make lint``): is every file in firmware/ MicroPython for the board?

Three checks, each problem printed as one ``path:line: error: message [check]`` line;
exit status 1 when there is any problem, 0 when there is none:

1. ``mpy-cross`` compiles each file for the ESP32 (``-march=xtensawin``, so
   ``@micropython.native``/``viper`` functions compile as they will on the board).
2. mypy checks the files against the MicroPython stubs: a typeshed assembled from
   ``micropython-stdlib-stubs`` and ``micropython-esp32-stubs`` replaces CPython's,
   so a module or function that exists only in CPython (``dataclasses``,
   ``time.monotonic``...) is an error. Settings: ``tools/mypy-firmware.ini``.
   The typeshed is corrected where the stubs and the board disagree: what the stubs
   copy from CPython but MicroPython lacks (``os.getpid``, ``int.bit_length``...,
   found by asking the MicroPython unix port) is marked ``@deprecated``, which mypy
   reports as a ``[deprecated]`` error; ``asyncio.core`` is added.
3. Modules that exist in that typeshed only for the sake of the stubs (``typing``,
   ``abc``, ``__future__``...) and that the board does not have may be imported only
   under ``if TYPE_CHECKING:`` (with ``TYPE_CHECKING = False`` defined in the module).

Usage: ``check_firmware.py [PATH ...]`` (default: firmware/). A directory is a
firmware root: its ``*.py`` files are checked, and imports resolve from it.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MYPY_CONFIG = ROOT / "tools" / "mypy-firmware.ini"
CACHE = ROOT / "build" / "firmware-lint"
ARCH = "xtensawin"  # ESP32, the reference board

# Stub distributions, in the order they are laid down: later ones win.
STUB_DISTS = ("micropython-stdlib-stubs", "micropython-esp32-stubs")
TYPESHED_LAYOUT = 5  # bump when the way the typeshed is assembled changes

# micropython-stdlib-stubs copies these modules from CPython's typeshed and adds
# MicroPython's functions, so they also declare much that the board lacks
# (os.getpid, re.findall, sys.getsizeof...). The typeshed hides those: each
# public function or class of theirs is asked for on the MicroPython unix port
# (hasattr), and what it lacks is marked @deprecated in the stub, which mypy
# reports (error code `deprecated`) wherever firmware uses it.
PROBED_MODULES = ("array", "collections", "io", "json", "os", "re", "struct", "sys")
# Classes probed the same way, for methods: (stub file, class) -> a VM expression.
PROBED_CLASSES = {
    ("builtins.pyi", "int"): "1",
    ("builtins.pyi", "float"): "1.5",
    ("builtins.pyi", "str"): "''",
    ("builtins.pyi", "bytes"): "b''",
    ("builtins.pyi", "bytearray"): "bytearray()",
    ("builtins.pyi", "memoryview"): "memoryview(b'')",
    ("builtins.pyi", "list"): "[]",
    ("builtins.pyi", "tuple"): "()",
    ("builtins.pyi", "dict"): "{}",
    ("builtins.pyi", "set"): "set()",
    ("builtins.pyi", "frozenset"): "frozenset()",
    ("builtins.pyi", "range"): "range(1)",
    ("_mpy_shed/__init__.pyi", "_Hash"): "__import__('hashlib').sha256()",
}
# On the ESP32 but not on the unix port: never hidden.
ESP32_ONLY = {"os": frozenset({"dupterm", "dupterm_notify", "sync", "uname"})}

# Modules the board has and the stubs lack, added to the typeshed as partial stubs
# (any attribute is Any). asyncio.core: MicroPython's asyncio is a package whose
# scheduler lives in asyncio/core.py, on every port.
EXTRA_STUBS = {
    "asyncio/core.pyi": "from typing import Any\n\ndef __getattr__(name: str) -> Any: ...\n",
}

# Modules the stubs' typeshed has but MicroPython v1.29 does not (each one raises
# ImportError on the unix port; none is on the ESP32 either).
TYPING_ONLY = frozenset({
    "__future__", "_ast", "_codecs", "_collections_abc", "_decimal", "_mpy_shed",
    "_typeshed", "abc", "collections.abc", "enum", "mypy_extensions", "sre_compile",
    "sre_constants", "sre_parse", "types", "typing", "typing_extensions",
})


class LintError(Exception):
    """The lint itself cannot run (a tool or stub package is missing)."""


def shown(path: Path) -> str:
    """``path`` as mypy prints it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def tool(name: str) -> str:
    """A command installed next to this Python (the venv's bin/), else on PATH."""
    here = Path(sys.executable).with_name(name)
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise LintError(f"{name} not found: run make setup")
    return found


def collect(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The .py files to check and the firmware roots their imports resolve from."""
    files: list[Path] = []
    roots: list[Path] = []
    for path in paths:
        if path.is_dir():
            roots.append(path)
            files += sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            roots.append(path.parent)
            files.append(path)
        else:
            raise LintError(f"{path}: no such file or directory")
    return files, list(dict.fromkeys(roots))


# ------------------------------------------------------------------ mpy-cross

_MPY_WHERE = re.compile(r'File "(?P<file>[^"]*)", line (?P<line>\d+)')


def compile_problems(files: Iterable[Path]) -> list[str]:
    """Compile each file with mpy-cross; one line per file that does not compile."""
    mpy_cross = tool("mpy-cross")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mpy-") as out:
        for i, path in enumerate(files):
            p = subprocess.run(
                [mpy_cross, f"-march={ARCH}", "-o", os.path.join(out, f"{i}.mpy"), str(path)],
                capture_output=True, text=True, check=False)
            if p.returncode == 0:
                continue
            text = (p.stderr + p.stdout).strip()
            where = _MPY_WHERE.search(text)
            line = where["line"] if where else "1"
            message = text.splitlines()[-1] if text else f"exit status {p.returncode}"
            problems.append(f"{shown(path)}:{line}: error: {message}  [mpy-cross]")
    return problems


# ----------------------------------------------------------------------- mypy


def _stub_files(dist_name: str) -> tuple[str, list[tuple[str, Path]]]:
    """The version of a stub distribution and its .pyi files (relative name, path)."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        raise LintError(f"{dist_name} is not installed: run make setup") from None
    files = [(f.as_posix(), Path(str(dist.locate_file(f))))
             for f in dist.files or () if f.suffix == ".pyi"]
    return dist.version, files


def typeshed(cache: Path) -> Path:
    """A typeshed directory for the board, built once per stub version.

    Layout: ``stdlib/`` from micropython-stdlib-stubs (its reduced typeshed), then
    ``_mpy_shed`` and every module of micropython-esp32-stubs (``machine``, ``time``,
    ``binascii``...) laid into ``stdlib/``, and a ``stdlib/VERSIONS`` that lists exactly
    the modules present, so that mypy finds no other standard library module.
    """
    parts = [_stub_files(d) for d in STUB_DISTS]
    key = "-".join([f"layout{TYPESHED_LAYOUT}"] + [v for v, _ in parts])
    target = cache / f"typeshed-{key}"
    if (target / "stdlib" / "VERSIONS").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        for _, files in parts:
            for rel, src in files:
                top = rel.split("/", 1)[0]
                if top == "__builtins__.pyi":  # pyright's; mypy has micropython.const
                    continue
                # Every module of the board is part of its standard library.
                dest = work / rel if top in ("stdlib", "stubs") else work / "stdlib" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
        stdlib = work / "stdlib"
        for rel, text in EXTRA_STUBS.items():
            if not (stdlib / rel).exists():
                (stdlib / rel).write_text(text)
        hide_missing(stdlib)
        modules = sorted(p.stem if p.suffix == ".pyi" else p.name for p in stdlib.iterdir()
                         if p.suffix == ".pyi" or p.is_dir())
        (stdlib / "VERSIONS").write_text("".join(f"{m}: 3.0-\n" for m in modules))
        try:
            work.rename(target)
        except OSError:  # another run built it at the same time
            if not (target / "stdlib" / "VERSIONS").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _public_defs(body: Iterable[ast.stmt], classes: bool) -> list[ast.FunctionDef | ast.ClassDef]:
    """Public functions (and classes) of a stub body, looking into ``if`` blocks."""
    out: list[ast.FunctionDef | ast.ClassDef] = []
    for node in body:
        if isinstance(node, ast.If):
            out += _public_defs(node.body + node.orelse, classes)
        elif (isinstance(node, ast.FunctionDef) or (classes and isinstance(node, ast.ClassDef))
              ) and not node.name.startswith("_"):
            out.append(node)
    return out


def hide_missing(stdlib: Path) -> None:
    """Mark, in the stubs, what PROBED_MODULES and PROBED_CLASSES lack on the VM."""
    targets: list[tuple[Path, str, str, list[ast.FunctionDef | ast.ClassDef]]] = []
    for module in PROBED_MODULES:
        path = stdlib / f"{module}.pyi"
        if not path.exists():
            path = stdlib / module / "__init__.pyi"
        tree = ast.parse(path.read_text(), str(path))
        targets.append((path, module, f"__import__({module!r})", _public_defs(tree.body, True)))
    for (rel, cls), expr in PROBED_CLASSES.items():
        path = stdlib / rel
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == cls:
                targets.append((path, cls, expr, _public_defs(node.body, False)))
    probe = "".join(
        f"o = {expr}\nfor n in {sorted({d.name for d in defs})!r}:\n"
        f"    if not hasattr(o, n): print({tag!r}, n)\n"
        for _, tag, expr, defs in targets)
    p = subprocess.run([tool("micropython"), "-c", probe], capture_output=True, text=True,
                       timeout=60, check=False)
    if p.returncode != 0:
        raise LintError(f"probing the MicroPython VM failed: {(p.stderr or p.stdout).strip()}")
    missing: dict[str, set[str]] = {}
    for line in p.stdout.splitlines():
        tag, name = line.split()
        missing.setdefault(tag, set()).add(name)
    hide: dict[Path, list[tuple[str, ast.FunctionDef | ast.ClassDef]]] = {}
    for path, tag, _, defs in targets:
        hide.setdefault(path, []).extend(
            (tag, d) for d in defs
            if d.name in missing.get(tag, ()) and d.name not in ESP32_ONLY.get(tag, ()))
    for path, owned in hide.items():
        if owned:
            _deprecate(path, owned)


def _deprecate(path: Path, owned: Sequence[tuple[str, ast.FunctionDef | ast.ClassDef]]) -> None:
    """Mark each (owner, definition) in the stub at ``path`` ``@deprecated`` (PEP 702):
    mypy then reports each use as a ``[deprecated]`` error, and the stubs stay whole."""
    lines = path.read_text().splitlines(keepends=True)
    for owner, d in sorted(owned, key=lambda od: od[1].lineno, reverse=True):
        first = min([d.lineno] + [x.lineno for x in d.decorator_list]) - 1
        indent = " " * d.col_offset
        lines.insert(first, f'{indent}@_not_on_board("MicroPython has no {owner}.{d.name}")\n')
    tree = ast.parse(path.read_text())
    future = [n.end_lineno or n.lineno for n in tree.body
              if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    lines.insert(max(future, default=0),
                 "from typing_extensions import deprecated as _not_on_board\n")
    path.write_text("".join(lines))


def mypy_command(files: Sequence[Path], roots: Sequence[Path], cache: Path) -> tuple[
        list[str], dict[str, str]]:
    """The mypy command line and environment for the firmware check."""
    stubs = typeshed(cache)
    cmd = [sys.executable, "-m", "mypy",
           "--config-file", str(MYPY_CONFIG),
           "--custom-typeshed-dir", str(stubs),
           # mypy's cache does not notice a changed typeshed: one cache per typeshed
           "--cache-dir", str(stubs.with_name(f"{stubs.name}.mypy-cache")),
           "--no-error-summary", "--no-pretty", "--no-color-output", "--hide-error-context",
           *map(shown, files)]
    env = dict(os.environ, MYPYPATH=os.pathsep.join(map(str, roots)))
    env.pop("MYPY_FORCE_COLOR", None)
    return cmd, env


def mypy_problems(files: Sequence[Path], roots: Sequence[Path], cache: Path) -> list[str]:
    """Type-check the files against the board's stubs; one line per mypy error."""
    cmd, env = mypy_command(files, roots, cache)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    problems = [line for line in p.stdout.splitlines() if ": error:" in line]
    # Exit 2 with errors is a blocking error (e.g. two files with one module name).
    if p.returncode != 0 and not problems:
        detail = (p.stderr or p.stdout).strip().splitlines()
        raise LintError(f"mypy failed (exit {p.returncode}): {detail[-1] if detail else ''}")
    return problems


# ------------------------------------------------------- typing-only imports


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Constant):
        return test.value is False
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _typing_only(module: str) -> bool:
    return module in TYPING_ONLY or module.split(".", 1)[0] in TYPING_ONLY


def _catches_import_error(node: ast.Try) -> bool:
    def names(t: ast.expr | None) -> list[str]:
        if t is None:
            return ["ImportError"]  # a bare except
        if isinstance(t, ast.Tuple):
            return [n for e in t.elts for n in names(e)]
        return [t.id] if isinstance(t, ast.Name) else []
    caught = {n for h in node.handlers for n in names(h.type)}
    return bool(caught & {"ImportError", "Exception", "BaseException"})


def import_problems(path: Path) -> list[str]:
    """Imports of modules the board lacks, unless under ``if TYPE_CHECKING:`` or in a
    ``try`` that catches the ImportError."""
    tree = ast.parse(path.read_bytes(), str(path))
    problems: list[str] = []

    def visit(nodes: Iterable[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)  # the body runs only under a type checker
                continue
            if isinstance(node, ast.Try) and _catches_import_error(node):
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse + node.finalbody)
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            problems.extend(
                f"{shown(path)}:{node.lineno}: error: the board has no module {name!r}: import "
                "it only under 'if TYPE_CHECKING:'  [board-import]"
                for name in names if _typing_only(name))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
                elif isinstance(child, ast.ExceptHandler):
                    visit(child.body)

    visit(tree.body)
    return problems


# ----------------------------------------------------------------------- main


def check(paths: Sequence[Path], cache: Path = CACHE) -> list[str]:
    """Every problem found in the firmware at ``paths``, one line each."""
    files, roots = collect(paths)
    if not files:
        return []
    problems = compile_problems(files)
    parsed = []
    for path in files:
        try:
            ast.parse(path.read_bytes(), str(path))
        except SyntaxError:
            continue  # mpy-cross reports it; mypy would stop at it
        parsed.append(path)
        problems += import_problems(path)
    if parsed:
        problems += mypy_problems(parsed, roots, cache)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="*", type=Path, default=[FIRMWARE],
                        help="firmware roots or files (default: firmware/)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE,
                        help=f"where the board typeshed and mypy's cache live (default: {CACHE})")
    parser.add_argument("--print-mypy-command", action="store_true",
                        help="print the mypy command line that the check runs, and exit")
    args = parser.parse_args(argv)
    try:
        if args.print_mypy_command:
            files, roots = collect(args.paths)
            cmd, env = mypy_command(files, roots, args.cache_dir)
            print(f"MYPYPATH={env['MYPYPATH']} " + " ".join(cmd))
            return 0
        problems = check(args.paths, args.cache_dir)
    except LintError as e:
        print(f"check_firmware: {e}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    if problems:
        print(f"check_firmware: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
