"""The ``repsim`` command: a thin layer over the Python API.

Each subcommand lives in ``repsim/commands/<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` whose parser sets ``func`` (args -> int).
Command modules are imported when the parser is built; heavy imports (torch, matplotlib)
happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order shown in ``repsim --help``.
COMMANDS = [
    "similarity",
    "compare",
    "freeze_sweep",
    "probe",
    "train",
    "evaluate",
    "reproduce",
    "data",
]


def build_parser() -> argparse.ArgumentParser:
    import repsim

    parser = argparse.ArgumentParser(
        prog="repsim",
        description=(
            "Rapid learning or feature reuse? Measure how much each layer of a meta-learned "
            "network changes in MAML's inner loop (Raghu et al., ICLR 2020)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"repsim {repsim.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"repsim.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name == f"repsim.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _set_threads(requested: int | None) -> int:
    """Pick torch's CPU thread count deliberately, once for every command: ``--threads``, else
    ``$REPSIM_THREADS``, else 1. On a shared 2-core machine a second-order MAML step ran 12x
    slower with 2 threads than with 1 while another process was busy; raise it on an idle
    many-core machine. Returns the count (``repsim train`` records it in its config)."""
    import os

    from repsim.errors import InputError

    text = os.environ.get("REPSIM_THREADS", "") or "1"
    try:
        n = requested if requested is not None else int(text)
    except ValueError:
        raise InputError(f"$REPSIM_THREADS={text!r} is not a number: set it to e.g. 1") from None
    if n < 1:
        raise InputError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)
    return n


def main(argv: list[str] | None = None) -> int:
    from repsim.errors import RepsimError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if argv is not None or len(sys.argv) > 1 else 2
    try:
        args.threads = _set_threads(args.threads)
        return int(args.func(args) or 0)
    except RepsimError as exc:
        print(f"repsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a trainer's Stopped says where the run was saved
        print(f"repsim {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)
    except BrokenPipeError:  # `repsim evaluate ... | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
