"""The options every command shares, declared once, and the one way a command is opened.

``--threads`` and ``--data-dir`` live in :func:`shared_options`, a parent parser that
:func:`add_command` gives to every command; ``repsim.cli.main`` applies ``--threads`` once,
before any command runs.
"""

from __future__ import annotations

import argparse
import functools


@functools.cache
def shared_options() -> argparse.ArgumentParser:
    """The parent parser of every command: ``--threads`` and ``--data-dir``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("shared options")
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default $REPSIM_THREADS, else 1: fastest on a shared 2-core "
        "machine; raise it on an idle many-core one)",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="dataset folder (default $REPSIM_DATA, else ~/.cache/repsim/data/DATASET; "
        "similarity and compare use the shipped probe set when neither is there)",
    )
    return parent


def add_command(subparsers, name: str, help: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: ``help`` in ``repsim --help``, the module docstring ``doc`` (after its
    first paragraph) as the description, and the shared options."""
    return subparsers.add_parser(
        name,
        help=help,
        description=doc.split("\n\n", 1)[1] if doc and "\n\n" in doc else doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[shared_options()],
    )


def add_measures(parser: argparse.ArgumentParser, default: str = "cca,cka") -> None:
    """``--measures``; the names are checked against ``repsim.similarity.MEASURES`` when the
    command runs (``repsim.commands._sources.parse_measures``), so ``--help`` needs no torch."""
    parser.add_argument(
        "--measures",
        default=default,
        help=f"comma-separated: cca, svcca, pwcca, cka, cka_debiased, rbf_cka (default {default})",
    )
