"""What a row's numbers were measured under, said in its notes and in the board's warnings.

A run records the machine's load over each timed window and the other harness runs that trained beside it
(``RunResult.load``, written by ``run.runner``); a run measured on a busy machine keeps its quality figures
but its latency, throughput and training time say more about the machine than the model. Runs stored before
the load was recorded have no ``load`` and get no note.

Each kind of note is one function of a run's result returning its text or None; :func:`run_notes` lists them,
and :func:`row_notes` joins them over a row's seeds.
"""

from __future__ import annotations

from harness.core.escape import escape
from harness.store.results import RunResult

# What a busy window makes incomparable, in the order the notes say them.
WINDOW_FIGURES = {"latency": "latency", "throughput": "eval samples/s", "training": "training time"}


def busy_windows(result: RunResult) -> dict[str, str]:
    """The timed windows of a run measured on a busy machine: window -> why."""
    windows = result.load.windows if result.load is not None else {}
    return {name: w.busy for name in WINDOW_FIGURES if (w := windows.get(name)) is not None and w.busy}


def busy_note(result: RunResult) -> str | None:
    """"measured while the machine was busy: load 3.9 on 2 cores; latency not comparable", or None."""
    busy = busy_windows(result)
    if not busy:
        return None
    reasons = list(dict.fromkeys(busy.values()))
    figures = [WINDOW_FIGURES[name] for name in busy]
    incomparable = figures[0] if len(figures) == 1 else f"{', '.join(figures[:-1])} and {figures[-1]}"
    return f"measured while the machine was busy: {'; '.join(reasons)}; {incomparable} not comparable"


def others_note(result: RunResult) -> str | None:
    """"another run, pid 4242 (sst5 minilm-l6 seed 0), trained at the same time", or None."""
    others = result.load.others if result.load is not None else []
    if not others:
        return None
    named = ", ".join(f"pid {o.pid} ({o.run})" for o in others)
    return f"{'another run' if len(others) == 1 else 'other runs'}, {named}, trained at the same time"


def run_notes(result: RunResult) -> list[str]:
    """Every condition note of one run (plain text)."""
    return [note for note in (busy_note(result), others_note(result)) if note]


def row_notes(results: list[RunResult]) -> list[str]:
    """The notes of a row's runs, escaped for a table cell; the seeds are named when not every run has it."""
    seeds: dict[str, list[int]] = {}
    for result in results:
        for note in run_notes(result):
            seeds.setdefault(note, []).append(result.seed)
    out = []
    for note, which in seeds.items():
        prefix = "" if len(which) == len(results) else f"seed{'s' if len(which) > 1 else ''} {', '.join(map(str, which))}: "
        out.append(escape(prefix + note))
    return out


def busy_warning(results: list[RunResult]) -> str | None:
    """One line naming the runs measured on a busy machine (their cost figures are not comparable), or None."""
    busy = [(r, busy_windows(r)) for r in results]
    named = [f"{r.model}/seed {r.seed} ({'; '.join(dict.fromkeys(b.values()))})" for r, b in busy if b]
    if not named:
        return None
    return (f"measured while the machine was busy: {', '.join(named)}; their latency, throughput or training time "
            "are not comparable with the other rows (rerun them on a quiet machine)")
