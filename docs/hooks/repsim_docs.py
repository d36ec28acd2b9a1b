"""MkDocs build hook: the pages read the repository's own files instead of copies that drift.

Markers a page may hold (each on a line of its own; invisible on GitHub):

- ``<!-- repsim-help [COMMAND [ACTION]] -->``: the ``repsim [COMMAND [ACTION]] --help`` text, from
  the parser itself (``repsim.cli.build_parser``), at a fixed width of 100 columns.
- ``<!-- claims-summary -->``: a table of verdicts per setting, counted from
  ``results/claims.json``.
- ``<!-- claims-along-summary -->``: per setting, how many clauses hold at each iteration along
  training, how many changed verdict between the first and the last, and where those failing
  at the end are heading, counted from ``results/claims_along.json``.
- ``<!-- claims-table -->``: the clause-by-clause table of ``results/report.md`` (its
  ``## Claims`` section).
- ``<!-- presets-table -->`` / ``<!-- rl-presets-table -->``: the training presets, from
  ``repsim.train_config.PRESETS`` and ``repsim.rl.train.PRESETS``.

It also mounts ``results/report.md`` and the figures it shows (``figures/**.png``,
``results/rl/*.png``) into the site at their repository paths, so the report's own relative
links work, and adds the tutorial notebook to the nav when ``docs/tutorial.ipynb`` exists.

Run as a script it prints either summary, for the README:
``python docs/hooks/repsim_docs.py claims-summary`` (or ``claims-along-summary``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "results" / "report.md"
CLAIMS = ROOT / "results" / "claims.json"
CLAIMS_ALONG = ROOT / "results" / "claims_along.json"
VERDICTS = ("holds", "fails", "not tested here")
HELP_WIDTH = 100

_HELP = re.compile(r"^<!-- repsim-help(?: ([\w-]+))?(?: ([\w-]+))? -->$", re.MULTILINE)


# --- the markers -----------------------------------------------------------------------------


def claims_summary(path: Path = CLAIMS) -> str:
    """A markdown table: per setting, how many clauses hold, fail and were not tested."""
    claims = json.loads(path.read_text(encoding="utf-8"))["claims"]
    counts = Counter((c["setting"], c["verdict"]) for c in claims)
    settings = list(dict.fromkeys(c["setting"] for c in claims))
    unknown = {v for _, v in counts} - set(VERDICTS)
    if unknown:
        raise ValueError(f"{path}: unknown verdicts {sorted(unknown)}; expected {VERDICTS}")
    lines = ["| setting | hold | fail | not tested |", "|---|---:|---:|---:|"]
    for s in settings:
        lines.append(f"| `{s}` | " + " | ".join(str(counts[s, v]) for v in VERDICTS) + " |")
    total = [sum(counts[s, v] for s in settings) for v in VERDICTS]
    lines.append("| **all** | " + " | ".join(f"**{n}**" for n in total) + " |")
    return "\n".join(lines)


def claims_along_summary(path: Path = CLAIMS_ALONG) -> str:
    """A markdown table: per setting, the clauses that hold at each iteration along training
    (out of those tested there), how many went from failing at the first iteration to holding
    at the last or the other way, and how many of those failing at the end are closing on
    their band, widening or mixed (``trend``)."""
    along = json.loads(path.read_text(encoding="utf-8"))["summary"]
    unknown = {v for c in along for v in c["verdicts"]} - set(VERDICTS)
    if unknown:
        raise ValueError(f"{path}: unknown verdicts {sorted(unknown)}; expected {VERDICTS}")
    lines = [
        "| setting | clauses holding / tested, by iteration | fails → holds | holds → fails "
        "| failing at the end: closing / widening / mixed |",
        "|---|---|---:|---:|---|",
    ]
    for setting in dict.fromkeys(c["setting"] for c in along):
        clauses = [c for c in along if c["setting"] == setting]
        iterations = clauses[0]["iterations"]
        if any(c["iterations"] != iterations for c in clauses):
            raise ValueError(f"{path}: the clauses of {setting} are at different iterations")
        counts = []
        for i, it in enumerate(iterations):
            tested = [c["verdicts"][i] for c in clauses if c["verdicts"][i] != VERDICTS[2]]
            counts.append(f"{it:,}: {tested.count(VERDICTS[0])} / {len(tested)}")
        ends = Counter((c["verdicts"][0], c["verdicts"][-1]) for c in clauses)
        trends = Counter(c.get("trend", "") for c in clauses)
        lines.append(
            f"| `{setting}` | {' · '.join(counts)} | {ends[VERDICTS[1], VERDICTS[0]]} "
            f"| {ends[VERDICTS[0], VERDICTS[1]]} "
            f"| {trends['closing']} / {trends['widening']} / {trends['mixed']} |"
        )
    return "\n".join(lines)


def claims_table(path: Path = REPORT) -> str:
    """The body of the report's ``## Claims`` section (the table and its closing note)."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^## Claims\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError(f"{path} has no '## Claims' section followed by another '## ' section")
    return match.group(1).strip()


def presets_table(presets: dict[str, dict]) -> str:
    """A markdown table of presets: one row each, a column per setting any of them sets."""
    columns = list(dict.fromkeys(k for settings in presets.values() for k in settings))
    lines = [
        "| preset | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, settings in presets.items():
        cells = [str(settings[c]) if c in settings else "" for c in columns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _presets(which: str) -> str:
    if which == "rl":
        from repsim.rl.train import PRESETS
    else:
        from repsim.train_config import PRESETS
    return presets_table(PRESETS)


def _parsers():
    import argparse

    from repsim.cli import build_parser

    def children(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices
        return {}

    return build_parser(), children


def command_help(command: str | None = None, action: str | None = None) -> str:
    """``repsim [COMMAND [ACTION]] --help`` as the terminal shows it at 100 columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        parser, children = _parsers()
        for name in (command, action):
            if name is None:
                continue
            choices = children(parser)
            if name not in choices:
                raise ValueError(f"repsim has no command {name!r} (it has {', '.join(choices)})")
            parser = choices[name]
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def expand(markdown: str) -> str:
    """The page with every marker replaced by what it stands for."""

    def help_block(m: re.Match) -> str:
        return "```text\n" + command_help(m.group(1), m.group(2)) + "\n```"

    markdown = _HELP.sub(help_block, markdown)
    if "<!-- claims-summary -->" in markdown:
        markdown = markdown.replace("<!-- claims-summary -->", claims_summary())
    if "<!-- claims-along-summary -->" in markdown:
        markdown = markdown.replace("<!-- claims-along-summary -->", claims_along_summary())
    if "<!-- claims-table -->" in markdown:
        markdown = markdown.replace("<!-- claims-table -->", claims_table())
    for marker, which in (("<!-- presets-table -->", ""), ("<!-- rl-presets-table -->", "rl")):
        if marker in markdown:
            markdown = markdown.replace(marker, _presets(which))
    return markdown


# --- MkDocs events ---------------------------------------------------------------------------


def on_config(config, **kwargs):
    """Add the tutorial notebook to the nav, after Getting started, when it exists."""
    nav = config.get("nav")
    notebook = Path(config["docs_dir"]) / "tutorial.ipynb"
    if nav and notebook.is_file() and not any("Tutorial" in item for item in nav):
        at = next((i + 1 for i, item in enumerate(nav) if "Getting started" in item), 1)
        nav.insert(at, {"Tutorial": "tutorial.ipynb"})
    return config


def on_files(files, config, **kwargs):
    """Mount the report and its figures at their repository paths."""
    from mkdocs.structure.files import File

    sources = [REPORT, *sorted((ROOT / "figures").rglob("*.png"))]
    sources += sorted((ROOT / "results" / "rl").glob("*.png"))
    for path in sources:
        uri = path.relative_to(ROOT).as_posix()
        if path.is_file() and files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    return expand(markdown)


if __name__ == "__main__":
    summaries = {"claims-summary": claims_summary, "claims-along-summary": claims_along_summary}
    if len(sys.argv) != 2 or sys.argv[1] not in summaries:
        sys.exit("usage: python docs/hooks/repsim_docs.py claims-summary|claims-along-summary")
    print(summaries[sys.argv[1]]())
