"""How fast each built-in instrument is scored, against fhirpath.js in the same run: python -m bench.scoring.

For every instrument under questionnaires/, a fixed-seed set of realistic completed responses is
generated, then measured on one core:

- responses/s: ``score_response``, the entry point submissions use (recompute every calculated item,
  bands, safety flags);
- evaluations/s: the Questionnaire's scoring expressions (variables, calculatedExpressions, safety-flag
  conditions, in document order) evaluated over each response by the service's engine;
- the same two with ``interpreted()``, i.e. fhirpathpy's interpreter alone (what the engine did before it
  compiled expressions), on a subset of the responses;
- fhirpath.js evaluations/s: the same expressions over the same responses, in Node (bench/fhirpath_node.js,
  the npm ``fhirpath`` package of tests/node, R4 model, its own weight() reading ``%questionnaire``).

Each expression runs over the response root with ``%resource``, ``%questionnaire`` and the variables
computed before it, in both engines, and the values both give are compared. Every figure is the median
of several timed runs after a warm-up; on a busy machine read the ratios, which are taken in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from service.config import PROJECT_ROOT
from service.scoring import score_response
from service.scoring.definition import FHIRPATH, definition_for
from service.scoring.extensions import CALCULATED_EXPRESSION, SAFETY_FLAG, json_copy
from service.scoring.fhirpath import CompiledExpression, evaluate, interpreted, plain
from service.scoring.weights import AnswerWeights, Terminology

LIBRARY = PROJECT_ROOT / "questionnaires"
NODE_SCRIPT = Path(__file__).resolve().parent / "fhirpath_node.js"
FHIRPATH_JS = PROJECT_ROOT / "tests" / "node" / "node_modules" / "fhirpath"
SCORING_KINDS = ("variable", "calculatedExpression", "safety-flag")
PHRASES = ("to sleep better", "to go back to work", "to see my friends more", "to feel less anxious")
Json = dict[str, Any]


# ---- realistic responses ---------------------------------------------------------------------------------


def _is(element: Mapping[str, Any], url: str) -> bool:
    return any(extension.get("url") == url for extension in element.get("extension", []))


def _answers(q_items: Sequence[Mapping[str, Any]], severity: float, rng: random.Random) -> list[Json]:
    items: list[Json] = []
    for q_item in q_items:
        kind = q_item.get("type")
        if kind == "display" or q_item.get("readOnly") or _is(q_item, CALCULATED_EXPRESSION):
            continue
        if kind == "group":
            if q_item.get("required") or rng.random() < 0.6:  # e.g. a second or third goal
                children = _answers(q_item.get("item", []), severity, rng)
                if children:
                    items.append({"linkId": q_item["linkId"], "text": q_item.get("text", ""), "item": children})
            continue
        if not q_item.get("required") and rng.random() < (0.3 if kind in ("string", "text") else 0.03):
            continue  # the odd question left unanswered
        options = q_item.get("answerOption")
        if options:
            if _is(q_item, SAFETY_FLAG):
                index = 0 if rng.random() < 0.95 else 1
            else:
                index = round(rng.gauss(severity * (len(options) - 1), 0.8))
            option = options[min(len(options) - 1, max(0, index))]
            answer = {key: value for key, value in option.items() if key.startswith("value")}
        elif kind in ("string", "text"):
            answer = {"valueString": rng.choice(PHRASES)}
        else:
            continue
        items.append({"linkId": q_item["linkId"], "text": q_item.get("text", ""), "answer": [answer]})
    return items


def realistic_response(questionnaire: Mapping[str, Any], number: int, rng: random.Random) -> Json:
    """A completed response as a form filler sends it: item texts, mostly plausible answers, a few missing."""
    severity = min(1.0, max(0.0, rng.betavariate(2, 3)))
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"bench-{number}",
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/bench-{number % 17}"},
        "authored": f"2026-0{1 + number % 9}-{10 + number % 18}T09:30:00Z",
        "item": _answers(questionnaire["item"], severity, rng),
    }


# ---- timing ----------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Runs of ``repeat`` passes each; a pass does ``per_pass`` things (responses or evaluations)."""

    per_pass: int
    repeat: int
    seconds: list[float] = field(default_factory=list)

    @property
    def pass_seconds(self) -> float:
        return statistics.median(self.seconds) / self.repeat

    @property
    def rate(self) -> float:
        return self.per_pass / self.pass_seconds


def timed(work: Callable[[], None], per_pass: int, runs: int, warmup: float, min_run: float) -> Timing:
    start, passes = time.perf_counter(), 0
    while passes == 0 or time.perf_counter() - start < warmup:
        work()
        passes += 1
    repeat = max(1, math.ceil(min_run / ((time.perf_counter() - start) / passes)))
    timing = Timing(per_pass, repeat)
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(repeat):
            work()
        timing.seconds.append(time.perf_counter() - started)
    return timing


# ---- the service's side ----------------------------------------------------------------------------------


@dataclass
class Instrument:
    slug: str
    questionnaire: Json
    responses: list[Json]
    steps: list[tuple[str | None, str]]  # (variable name or None, expression)


def load(count: int, seed: int, only: Sequence[str]) -> list[Instrument]:
    instruments = []
    for path in sorted(LIBRARY.glob("*/questionnaire.json")):
        slug = path.parent.name
        if only and slug not in only:
            continue
        questionnaire = json.loads(path.read_text(encoding="utf-8"))
        rng = random.Random(f"{seed}:{slug}")
        responses = [realistic_response(questionnaire, number, rng) for number in range(count)]
        steps = [
            (expression.name if expression.kind == "variable" else None, expression.text)
            for expression in definition_for(questionnaire).expressions
            if expression.kind in SCORING_KINDS and expression.language == FHIRPATH and expression.compiled
        ]
        instruments.append(Instrument(slug, questionnaire, responses, steps))
    return instruments


def _prepared(instrument: Instrument, responses: Sequence[Json]) -> Iterator[tuple[Json, AnswerWeights]]:
    definition = definition_for(instrument.questionnaire)
    for response in responses:
        copy = json_copy(response)
        sdc = AnswerWeights(copy, definition.q_items, definition.contained, Terminology(()), options=definition.options)
        yield copy, sdc


def evaluations(instrument: Instrument, responses: Sequence[Json]) -> tuple[Callable[[], None], list[list[Any]]]:
    """A pass over ``responses`` evaluating every step, and where the pass leaves each step's value."""
    source = definition_for(instrument.questionnaire).source
    prepared = list(_prepared(instrument, responses))
    steps: list[tuple[str | None, CompiledExpression]] = []
    for name, text in instrument.steps:
        found = next(e.compiled for e in definition_for(instrument.questionnaire).expressions if e.text == text)
        assert found is not None
        steps.append((name, found))
    values: list[list[Any]] = [[] for _ in prepared]

    def run() -> None:
        for number, (copy, sdc) in enumerate(prepared):
            env: dict[str, Any] = {"resource": copy, "questionnaire": source}
            found = values[number] = []
            for name, compiled in steps:
                value = evaluate(compiled, copy, env, sdc)
                found.append(value)
                if name:
                    env[name] = value

    return run, values


def scorings(instrument: Instrument, responses: Sequence[Json]) -> Callable[[], None]:
    def run() -> None:
        for response in responses:
            score_response(instrument.questionnaire, response)

    return run


def interpreted_only(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with interpreted():
            work()

    return run


# ---- fhirpath.js ------------------------------------------------------------------------------------------


def node_timings(instruments: Sequence[Instrument], runs: int, warmup: float, min_run: float) -> Json | None:
    node = shutil.which("node")
    if node is None or not FHIRPATH_JS.is_dir():
        return None
    payload = {
        "runs": runs,
        "warmupSeconds": warmup,
        "minRunSeconds": min_run,
        "instruments": [
            {
                "name": instrument.slug,
                "questionnaire": instrument.questionnaire,
                "responses": instrument.responses,
                "steps": [{"name": name, "expression": text} for name, text in instrument.steps],
            }
            for instrument in instruments
        ],
    }
    completed = subprocess.run(
        [node, str(NODE_SCRIPT)], input=json.dumps(payload), capture_output=True, text=True, check=True
    )
    result: Json = json.loads(completed.stdout)
    return result


def _comparable(values: Sequence[Any]) -> list[Any]:
    return [float(v) if isinstance(v, int | float | Decimal) and not isinstance(v, bool) else v for v in values]


def disagreements(python: list[list[Any]], javascript: list[list[Any]]) -> list[tuple[int, int, Any, Any]]:
    """(response, step, service value, fhirpath.js value) wherever the two engines differ."""
    found = []
    for number, (ours, theirs) in enumerate(zip(python, javascript, strict=True)):
        for step, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            a, b = _comparable(plain(mine)), _comparable(other)
            same = len(a) == len(b) and all(
                math.isclose(x, y, rel_tol=1e-12) if isinstance(x, float) and isinstance(y, float) else x == y
                for x, y in zip(a, b, strict=True)
            )
            if not same:
                found.append((number, step, a, b))
    return found


# ---- the table -------------------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(widths: Sequence[int], name: str, steps: str, rates: Mapping[str, float | None]) -> None:
    js, ours, interpreted_rate = rates["js"], rates["eval"], rates["eval_i"]
    cells = (
        name,
        steps,
        _rate(rates["score"]),
        _rate(rates["score_i"]),
        _rate(ours),
        _rate(interpreted_rate),
        _rate(js),
        _ratio(None if js is None or ours is None else ours / js),
        _ratio(None if js is None or interpreted_rate is None else interpreted_rate / js),
    )
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100, help="responses per instrument")
    parser.add_argument("--interpreted-responses", type=int, default=20, help="of those, timed interpreted")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (the median is shown)")
    parser.add_argument("--warmup", type=float, default=0.2, help="seconds of warm-up before each figure")
    parser.add_argument("--min-run", type=float, default=0.1, help="seconds a timed run lasts at least")
    parser.add_argument("--seed", type=int, default=20260315)
    parser.add_argument("--no-node", action="store_true", help="leave out fhirpath.js")
    parser.add_argument("instruments", nargs="*", help="slugs (default: every built-in instrument)")
    arguments = parser.parse_args()
    timing = {"runs": arguments.runs, "warmup": arguments.warmup, "min_run": arguments.min_run}

    instruments = load(arguments.responses, arguments.seed, arguments.instruments)
    print(
        f"{len(instruments)} instruments, {arguments.responses} responses each (seed {arguments.seed}), "
        f"{arguments.interpreted_responses} of them timed with fhirpathpy only; median of {arguments.runs} runs"
    )
    use_node = not arguments.no_node and shutil.which("node") is not None and FHIRPATH_JS.is_dir()
    if not use_node and not arguments.no_node:
        print("node or tests/node/node_modules/fhirpath not found: no fhirpath.js figures (npm ci in tests/node)")

    header = (
        "instrument",
        "exprs",
        "responses/s",
        "responses/s fhirpathpy",
        "evals/s",
        "evals/s fhirpathpy",
        "evals/s fhirpath.js",
        "service/js",
        "fhirpathpy/js",
    )
    widths = (12, 5, 11, 22, 9, 18, 19, 10, 13)
    print()
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    # Overall figures: all instruments' work (one pass over every response) over the time it takes.
    work_done: dict[str, float] = {key: 0.0 for key in ("score", "score_i", "eval", "eval_i", "js")}
    time_taken: dict[str, float] = dict(work_done)
    problems: list[str] = []
    for instrument in instruments:
        subset = instrument.responses[: arguments.interpreted_responses]
        steps = len(instrument.steps)
        work, values = evaluations(instrument, instrument.responses)
        work_i, _ = evaluations(instrument, subset)
        rates: dict[str, float | None] = {
            "score": timed(scorings(instrument, instrument.responses), len(instrument.responses), **timing).rate,
            "score_i": timed(interpreted_only(scorings(instrument, subset)), len(subset), **timing).rate,
            "eval_i": timed(interpreted_only(work_i), len(subset) * steps, **timing).rate,
            "eval": timed(work, len(instrument.responses) * steps, **timing).rate,
            "js": None,
        }
        # fhirpath.js right after the service's engine on the same instrument, so both meet the same load.
        javascript = node_timings([instrument], **timing) if use_node else None
        if javascript is not None:
            found = javascript[instrument.slug]
            rates["js"] = Timing(found["evaluations"], 1, found["seconds"]).rate
            for number, step, ours, theirs in disagreements(values, found["results"])[:3]:
                problems.append(f"{instrument.slug} response {number} step {step}: {ours} != fhirpath.js {theirs}")
        for key, rate in rates.items():
            amount = len(instrument.responses) * (1 if key.startswith("score") else steps)
            if rate:
                work_done[key] += amount
                time_taken[key] += amount / rate
        _row(widths, instrument.slug, str(steps), rates)
    _row(widths, "all", "", {key: work_done[key] / time_taken[key] if time_taken[key] else None for key in work_done})
    print(
        "\nresponses/s: score_response per second on one core; evals/s: expression evaluations per second; "
        "fhirpathpy: with interpreted(); service/js: the engine's evals/s over fhirpath.js's (1.00 = parity)"
    )
    if use_node:
        print("values: " + ("the same as fhirpath.js's for every evaluation" if not problems else "DIFFERENT"))
        for problem in problems:
            print("  " + problem)


if __name__ == "__main__":
    main()
