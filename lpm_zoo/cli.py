"""The `lpm` command line: a host whose subcommands come from the `lpm_zoo.commands` entry points.

Each entry point names a `Command`. Command modules import nothing heavy at module level (only
inside `run`), so `lpm --help` stays fast however many packages contribute commands. A user error
(`LpmError`) is printed as one line with exit code 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version

from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.hardware import check_environment
from lpm_zoo.notes import NOTES
from lpm_zoo.registry import Registry

GROUP = "lpm_zoo.commands"


@dataclass(frozen=True)
class Command:
    """A subcommand: one-line help, a function that adds its arguments, and one that runs it."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str | None = None
    #: every value `run` would use checked, nothing created or run (`lpm sweep` checks its steps with it)
    check: Callable[[argparse.Namespace], None] | None = None


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


_COMMANDS: Registry[Command] = Registry("command", group=GROUP, accepts=Command)


def discover_commands() -> dict[str, Command]:
    """Every installed `lpm` subcommand by name; a broken or duplicate plugin is reported, not fatal."""
    return dict(_COMMANDS.items())


def check_threads(threads: int, flag: str = "--threads") -> None:
    """Refuse a CPU thread count below 1 or above the CPUs here (`os.cpu_count()`), before any work."""

    cpus = os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise LpmError(f"{flag} must be between 1 and {cpus} (os.cpu_count(), the CPUs here), got {threads}")


def int_list(text: str, flag: str, lo: int, hi: int) -> list[int]:
    """A flag's comma-separated integers, each in [lo, hi]; at most 100 of them (or a one-line refusal)."""
    parts = [v for v in text.split(",") if v.strip()]
    try:
        vals = [int(v) for v in parts if len(v) <= 20]  # longer is no size (and int() of 5000 digits is refused)
    except ValueError:
        vals = []
    if not 1 <= len(parts) <= 100 or len(vals) != len(parts):
        raise LpmError(f"{flag} {clip(text)}: expected 1 to 100 comma-separated integers, e.g. 1000,2000,5000")
    bad = [v for v in vals if not lo <= v <= hi]
    if bad:
        raise LpmError(f"{flag}: {clip(bad[0])} is out of range; each value must be in [{lo}, {hi}]")
    return vals


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Refuse a seed outside [0, 2^32) (what numpy's and torch's generators all take), before any work."""

    if not 0 <= seed < 2**32:
        raise LpmError(f"{flag} must be in [0, 2^32), got {clip(seed)}")


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = OneLineParser(
        prog="lpm", allow_abbrev=False,
        description="Latency prediction modules per device backend, and latency-aware DARTS search.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description or cmd.help, allow_abbrev=False)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lpm` console script."""
    parser = build_parser(discover_commands())
    args = parser.parse_args(argv)
    if args.version:
        print(f"lpm-zoo {version('lpm-zoo')}")
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    NOTES.hold(args.command)  # notes wait until the command's input is valid: a failure prints one line
    try:
        check_environment()  # LPM_HOST_IDENTITY, ISA caps: before anything (torch) reads them
        code = int(args._run(args) or 0)
        NOTES.release()
        return code
    except LpmError as e:
        NOTES.discard()
        print(f"lpm {args.command}: error: {printable(e)}", file=sys.stderr)  # file text in it is escaped
        return 2
    except KeyboardInterrupt:
        NOTES.release()
        print(f"lpm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        NOTES.close()  # main() called in-process (tests, scripts): later library notes are warnings again
