"""The docs hook's summaries count verdicts from the results files (docs/hooks/repsim_docs.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "repsim_docs.py"


def _hook():
    spec = importlib.util.spec_from_file_location("repsim_docs", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clause(setting, verdicts, iterations=(1000, 3000, 10000), trend=""):
    return {
        "setting": setting,
        "iterations": list(iterations),
        "verdicts": verdicts,
        "trend": trend,
    }


def test_along_summary_counts_holding_clauses_per_iteration_and_verdict_changes(tmp_path):
    hold, fail, untested = "holds", "fails", "not tested here"
    summary = [
        _clause("20w", [fail, hold, hold]),
        _clause("20w", [hold, fail, fail], trend="closing"),
        _clause("20w", [fail, untested, hold]),
        _clause("20w", [untested, untested, untested]),
        _clause("5w", [hold, hold], iterations=(1000, 15000)),
    ]
    path = tmp_path / "claims_along.json"
    path.write_text(json.dumps({"summary": summary}))
    table = _hook().claims_along_summary(path).splitlines()
    assert table[2] == "| `20w` | 1,000: 1 / 3 · 3,000: 1 / 2 · 10,000: 2 / 3 | 2 | 1 | 1 / 0 / 0 |"
    assert table[3] == "| `5w` | 1,000: 1 / 1 · 15,000: 1 / 1 | 0 | 0 | 0 / 0 / 0 |"
    summary.append(_clause("5w", [hold, "maybe"], iterations=(1000, 15000)))
    path.write_text(json.dumps({"summary": summary}))
    with pytest.raises(ValueError, match="unknown verdicts"):
        _hook().claims_along_summary(path)


def test_the_shipped_summaries_count_every_clause_of_the_results_files():
    hook = _hook()
    claims = json.loads(hook.CLAIMS.read_text())["claims"]
    rows = hook.claims_summary().splitlines()[2:]
    assert rows[-1].startswith("| **all** |")
    total = sum(int(n.strip("* ")) for n in rows[-1].split("|")[2:-1])
    assert total == len(claims)
    along = json.loads(hook.CLAIMS_ALONG.read_text())["summary"]
    assert len(hook.claims_along_summary().splitlines()) == 2 + len({c["setting"] for c in along})


def test_the_readme_shows_the_summaries_of_the_shipped_results():
    """The README's two verdict tables are the hook's output on the shipped results files
    (paste `python docs/hooks/repsim_docs.py claims-summary` / `claims-along-summary` after a
    reproduction)."""
    hook = _hook()
    readme = (HOOK.parents[2] / "README.md").read_text(encoding="utf-8")
    assert hook.claims_summary() in readme
    assert hook.claims_along_summary() in readme
