"""``livecommerce bench [names] [--quick]``: run the micro-benchmarks of ``loadtests/`` and print
one table of ratios against their baselines.

Each ``loadtests/bench_<name>.py`` exposes ``main(argv)`` (or ``main()`` reading ``sys.argv``)
and measures its own baseline in the same run (design.md §7). A bench returns or prints (as a
JSON object) a dict — one measurement, several under ``rows``/``results``/``benchmarks`` or
keyed by case, each with ``value``, ``unit``, ``baseline``, ``ratio``, ``target``, ``met`` when
it has them, or ``{"ratios": {"<case>_vs_<baseline>": x}, …}`` — or prints a Markdown table whose
ratio column is headed ``× <baseline>`` or ``ratio``; either way its rows land in the one table.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import logging
import os
import platform
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, TextIO

from livecommerce.loadrunner import checkout_root

LIST_KEYS = ("rows", "results", "benchmarks", "metrics")
FIGURE_KEYS = ("value", "unit", "baseline", "target")
MET_KEYS = ("met", "target_met", "passed", "ok")


@dataclass
class Row:
    """One line of the table: a case of a bench, its ratio against its baseline."""

    bench: str
    case: str
    ratio: str = "-"
    against: str = ""
    met: bool | None = None
    figures: list[str] = field(default_factory=list)


def available() -> list[str]:
    root = checkout_root()
    if root is None:
        return []
    return sorted(path.stem.removeprefix("bench_") for path in root.glob("loadtests/bench_*.py"))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _row(bench: str, case: str, data: dict[str, Any]) -> Row:
    met = next((data[key] for key in MET_KEYS if isinstance(data.get(key), bool)), None)
    ratio = data.get("ratio")
    figures = [f"{key} {_cell(data[key])}" for key in FIGURE_KEYS if data.get(key) is not None]
    figures += [
        f"{key} {_cell(value)}"
        for key, value in data.items()
        if key not in (*FIGURE_KEYS, "ratio", "met", "name", "metric")
        and isinstance(value, int | float | str)
        and not isinstance(value, bool)
    ]
    return Row(
        bench=bench,
        case=str(data.get("metric") or data.get("name") or case),
        ratio=_cell(ratio) if ratio is not None else "-",
        against=str(data.get("baseline_name") or ("baseline" if ratio is not None else "")),
        met=met if isinstance(met, bool) else None,
        figures=figures,
    )


def rows_of(bench: str, result: dict[str, Any]) -> list[Row]:
    """A returned dict, whatever its shape, as table rows."""
    ratios = result.get("ratios")
    if isinstance(ratios, dict) and ratios:
        return _ratio_rows(bench, result, ratios)
    for key in LIST_KEYS:
        items = result.get(key)
        if isinstance(items, list):
            return [
                _row(bench, f"{key}[{i}]", item)
                for i, item in enumerate(items)
                if isinstance(item, dict)
            ]
        if isinstance(items, dict):
            return rows_of(bench, items)
    if "ratio" in result or "value" in result:
        return [_row(bench, bench, result)]
    nested = [_row(bench, key, value) for key, value in result.items() if isinstance(value, dict)]
    return nested or [_row(bench, bench, result)]


def _ratio_rows(bench: str, result: dict[str, Any], ratios: dict[str, Any]) -> list[Row]:
    """``{"ratios": {"http_vs_naive": 2.3, …}, "<figures>": {…}}``: one row per ratio; the
    flat numeric figures beside them go on the first row."""
    figures = [f"{name} {_cell(value)}" for key, group in result.items() if key != "ratios"
               and isinstance(group, dict) for name, value in group.items()
               if isinstance(value, int | float) and not isinstance(value, bool)]  # fmt: skip
    rows: list[Row] = []
    for name, value in ratios.items():
        case, _, against = name.partition("_vs_")
        rows.append(Row(bench, case if against else name, _cell(value), against,
                        figures=figures if not rows else []))  # fmt: skip
    return rows


def json_report(text: str) -> dict[str, Any] | None:
    """The first JSON object a bench printed on a line of its own, if any."""
    decoder = json.JSONDecoder()
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                found, _ = decoder.raw_decode(text, offset)
            except ValueError:
                found = None
            if isinstance(found, dict):
                return found
        offset += len(line)
    return None


def rows_from_markdown(bench: str, text: str) -> list[Row]:
    """The rows of every Markdown table a bench printed; the ratio is the column headed
    ``× …`` or ``ratio``, the first column names the case."""
    rows: list[Row] = []
    header: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(set(cell) <= set("-: ") for cell in cells) or len(cells) != len(header):
            continue
        ratio_at = next(
            (i for i, name in enumerate(header) if name.startswith("×") or "ratio" in name.lower()),
            None,
        )
        named = enumerate(zip(header, cells, strict=True))
        figures = [f"{name} {cell}" for i, (name, cell) in named if i not in (0, ratio_at)]
        rows.append(
            Row(
                bench=bench,
                case=cells[0],
                ratio=cells[ratio_at] if ratio_at is not None else "-",
                against=header[ratio_at].lstrip("× ").strip() if ratio_at is not None else "",
                figures=figures,
            )
        )
    return rows


class Tee(io.StringIO):
    """Keeps what a bench prints while still showing it."""

    def __init__(self, shown: TextIO) -> None:
        super().__init__()
        self.shown = shown

    def write(self, text: str) -> int:
        self.shown.write(text)
        return super().write(text)

    def flush(self) -> None:
        self.shown.flush()


def run_one(name: str, quick: bool) -> list[Row]:
    tee = Tee(sys.stdout)
    argv = ["--quick"] if quick else []
    saved_argv = sys.argv
    try:
        module = importlib.import_module(f"loadtests.bench_{name}")
        takes_argv = bool(inspect.signature(module.main).parameters)
        sys.argv = [f"bench_{name}", *argv]  # for a main() that parses sys.argv itself
        with contextlib.redirect_stdout(tee):
            result = module.main(argv) if takes_argv else module.main()
    except SystemExit as exc:
        result = exc.code
    except Exception as exc:
        traceback.print_exc()
        return [Row(name, "error", figures=[f"{type(exc).__name__}: {exc}"])]
    finally:
        sys.argv = saved_argv
    if not isinstance(result, dict):
        result = json_report(tee.getvalue()) or result
    if isinstance(result, dict):
        return rows_of(name, result)
    if isinstance(result, int) and result != 0:
        return [Row(name, "error", figures=[f"exit code {result}"])]
    return rows_from_markdown(name, tee.getvalue()) or [
        Row(name, "ran", figures=["no table printed"])
    ]


def print_table(rows: list[Row]) -> None:
    header = ["bench", "case", "ratio", "against", "met", "figures"]
    lines = [header] + [
        [
            row.bench,
            row.case,
            row.ratio,
            row.against,
            {True: "yes", False: "MISSED", None: "-"}[row.met],
            "; ".join(row.figures),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    print(
        f"\nmachine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}; load generators share these CPUs with the servers"
    )
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))


def run_benchmarks(names: list[str], quick: bool) -> int:
    """Run the named benchmarks (all when empty); 0 when each ran, 1 when one failed."""
    root = checkout_root()
    found = available()
    if root is None or not found:
        print(
            "livecommerce bench: no loadtests/bench_*.py beside the package; run it from a "
            "checkout",
            file=sys.stderr,
        )
        return 2
    unknown = [name for name in names if name not in found]
    if unknown:
        print(f"livecommerce bench: unknown {unknown}; have {found}", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    rows: list[Row] = []
    for name in names or found:
        print(f"== bench {name}{' (quick)' if quick else ''}", flush=True)
        rows.extend(run_one(name, quick))
    print_table(rows)
    return 1 if any(row.case == "error" for row in rows) else 0
