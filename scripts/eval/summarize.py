"""Summary table of StreamForest evaluation results (lmms-eval results JSONs).

    python scripts/eval/summarize.py results/<ckpt-name>            # table over the benchmarks found
    python scripts/eval/summarize.py results/<ckpt-name> --check odvbench   # exit 1 unless it has results

Reads ``configs/eval/benchmarks.yaml`` for each benchmark's lmms-eval task/group name and metric key, and
the newest ``*_results.json`` under ``<dir>/<benchmark>/``. Prints the reference metric (comparable with the
paper; empty answers excluded where the reference excludes them) and the strict one (empty = wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS_FILE = REPO / "configs" / "eval" / "benchmarks.yaml"


def load_benchmarks(path: Path = BENCHMARKS_FILE) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` from benchmarks.yaml, in file order."""
    entries = yaml.safe_load(path.read_text())["benchmarks"]
    return {entry["name"]: entry for entry in entries}


def newest_results(bench_dir: Path) -> Path | None:
    """The most recent ``*_results.json`` below ``bench_dir`` (lmms-eval writes ``<model>/<date>_results.json``)."""
    files = sorted(bench_dir.rglob("*_results.json"), key=lambda p: p.stat().st_mtime) if bench_dir.is_dir() else []
    return files[-1] if files else None


def read_scores(results_file: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """``{"reference", "strict", "n"}`` for one benchmark from its results JSON (KeyError if absent)."""
    data = json.loads(results_file.read_text())
    row = data["results"][entry["tasks"]]
    metric = entry["metric"]
    n_samples = data.get("n-samples", {})
    subtasks = data.get("group_subtasks", {}).get(entry["tasks"]) or [entry["tasks"]]
    n = sum(int(n_samples.get(t, {}).get("effective", 0)) for t in subtasks)
    return {"reference": row[f"{metric},none"], "strict": row[f"{metric}_strict,none"], "n": n}


def summarize(root: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per benchmark (``status`` = ok / missing / incomplete)."""
    rows = []
    for name, entry in load_benchmarks().items():
        if names and name not in names:
            continue
        results_file = newest_results(root / name)
        row: dict[str, Any] = {"benchmark": name, "metric": entry["metric"], "file": results_file}
        if results_file is None:
            row["status"] = "missing"
        else:
            try:
                row.update(read_scores(results_file, entry), status="ok")
            except (KeyError, json.JSONDecodeError, TypeError) as err:
                row["status"] = f"incomplete ({err})"
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table; PerceptionTest stays a fraction as in the reference."""
    lines = [f"{'benchmark':<24}{'metric':<28}{'reference':>10}{'strict':>10}{'n':>7}  status"]
    for row in rows:
        if row["status"] == "ok":
            lines.append(
                f"{row['benchmark']:<24}{row['metric']:<28}{row['reference']:>10.2f}{row['strict']:>10.2f}"
                f"{row['n']:>7}  ok"
            )
        else:
            lines.append(f"{row['benchmark']:<24}{row['metric']:<28}{'-':>10}{'-':>10}{'-':>7}  {row['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="results/<ckpt-name> (one sub-folder per benchmark)")
    parser.add_argument("--check", metavar="BENCHMARK", help="exit 1 unless BENCHMARK has a complete results JSON")
    parser.add_argument("--only", nargs="*", help="benchmarks to show (default: all found in benchmarks.yaml)")
    args = parser.parse_args(argv)
    if args.check:
        if args.check not in load_benchmarks():
            print(f"unknown benchmark {args.check!r}; see {BENCHMARKS_FILE}", file=sys.stderr)
            return 2
        row = summarize(args.root, [args.check])[0]
        if row["status"] != "ok":
            print(f"{args.check}: {row['status']} results under {args.root / args.check}", file=sys.stderr)
            return 1
        return 0
    print(format_table(summarize(args.root, args.only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
