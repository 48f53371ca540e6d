"""The personal cost curve holds the learner's own figures: the solved notebooks 01-06 and 08 run
on an empty results store, then 07, and every step of the curve is the figure its notebook
recorded in that run (utils.steps: the latest run of each step, never the best of all runs)."""

from pathlib import Path

import nbformat
import pytest

from utils.curve import curve_rows, format_row
from utils.rehearse import run_notebook
from utils.results import ResultsStore
from utils.steps import curve_step, rate, run_of, standard_workload, step_records, workload_of

REPO = Path(__file__).resolve().parent.parent
SEQUENCE = ["01", "02", "03", "04", "05", "06", "08", "07"]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequence")
    store = folder / "my_results.jsonl"
    env = {"LLMFLATION_RESULTS": str(store), "LLMFLATION_PROFILE": "offline"}
    ran = {}
    for number in SEQUENCE:
        path = next((REPO / "solutions").glob(f"{number}_*.ipynb"))
        row = run_notebook(path, env, timeout=900, gpu=False, save=folder / "executed")
        assert row["ok"], f"{path.name} failed at cell {row.get('cell')}: {row.get('error')}"
        ran[number] = nbformat.read(folder / "executed" / path.name, as_version=4)
    return ResultsStore(store), ran


def outputs(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_every_curve_step_is_the_figure_its_notebook_recorded(sequence):
    store, ran = sequence
    records = store.records()
    # one run id per notebook session that measured something (07 only reads)
    assert len({run_of(r) for r in records}) == len(SEQUENCE) - 1
    rows = curve_rows(records, records[-1]["settings"]["price_per_hour"])    # 07 priced at the same default
    steps = {r["step"] for r in rows}
    assert {"larger baseline", "target", "+ 4-bit", "+ attention", "+ speculative", "+ compile",
            "+ batching", "+ continuous batching"} <= steps
    candidates = step_records(records)
    workload = standard_workload(candidates)
    for row in rows:
        same_step = [r for r in candidates if curve_step(r) == row["step"] and workload_of(r) == workload]
        newest_run = run_of(same_step[-1])
        mine = [r for r in same_step if run_of(r) == newest_run]
        # the step is priced from the notebook that measured it last, at its best configuration there
        assert row["run"] == newest_run and row["tokens_per_s"] == round(max(map(rate, mine)), 3), row["step"]
        assert row["source"].startswith(mine[-1]["settings"]["notebook"])
    # and notebook 07 printed exactly these lines
    printed = outputs(ran["07"])
    for row in rows:
        assert format_row(row) in printed, row["step"]


def test_the_07_run_draws_the_time_panel_and_fits_a_decline(sequence):
    store, ran = sequence
    printed = outputs(ran["07"])
    assert "became usable" in printed and "kept techniques by then" in printed
    assert "your decline:" in printed and "PLAUSIBLE: " in printed
    assert (Path(store.path).parent / "cost_curve.png").stat().st_size > 50_000
    assert "CHECK THIS" not in printed
