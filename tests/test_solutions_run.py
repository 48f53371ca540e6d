"""The solved notebooks run as a learner runs them, and what they teach holds.

One module-scoped run executes every solved notebook in a live kernel, in the order a learner
goes (00-06, 08, 09, then 07, which reads everyone's records) on one empty results store. Then:

* every curve step in 07 is the figure its notebook recorded in that run (utils.chain: the
  start is 01's, the swap 06's, the MoE's 09's, and each technique's factor the ratio of two
  figures of its own notebook's run), 07 printed exactly those lines, and no two labels of the
  curve figure overlap;
* every exercise checkpoint passes the solution's answer and fails plausible wrong answers
  (an inverted ratio, a wrong unit, a neighbouring value, a sign flip), fed into the same
  kernel after the notebook ran.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from utils.curve import curve_rows, format_row
from utils.tools.rehearse import is_class, notebook_order
from utils.results import ResultsStore
from utils.steps import curve_step, rate, run_of, standard_workload, step_records, workload_of

REPO = Path(__file__).resolve().parent.parent

# notebook -> [(checkpoint cell's first line, wrong answers as statements, whether the right
# answer's verdict is deterministic)]: each wrong statement runs after the solution cell again.
PROBES = {
    "00_setup_preflight": [
        ("# Checkpoint for exercise 1", [
            "estimate_14b = predict_memory(shapes['Qwen/Qwen3-14B'], 'nf4', batch=4, context=4096)",
            "estimate_14b = predict_memory(shapes['Qwen/Qwen3-14B'], 'nf4', batch=1, context=8192)",
            "estimate_14b = predict_memory(shapes['Qwen/Qwen3-14B'], 'bfloat16', batch=4, context=8192)"], True),
        ("# Checkpoint for exercise 2", [
            "batch8 = roofline_tokens_per_s(s8b, 'bfloat16', gpu('H100-SXM')['bandwidth_gbs'], context=2048)",
            "batch8 = batch8 / 8",
            "batch8 = roofline_tokens_per_s(s8b, 'bfloat16', gpu('H100-SXM')['bandwidth_gbs'], batch=8)"], True),
    ],
    "01_measuring_cost": [
        ("# Checkpoint for exercise 1", [
            "my_cost = cost_per_million(lab.price_per_hour, m.e2e_tok_s.median)",
            "my_cost = cost_per_million(gpu('T4')['price_per_hour_usd'], m.decode_tok_s.median)",
            "my_cost = my_cost * 1000"], True),
        ("# Checkpoint for exercise 2", ["long_run = m"], False),
    ],
    "02_quantization": [
        ("# Checkpoint for exercise 1", ["saved_bits = saved_bits / 8", "saved_bits = -saved_bits",
                                         "saved_bits = saved_bits * 1e6"], True),
        ("# Checkpoint for exercise 2", ["nf4_vs_fp4 = 1 / nf4_vs_fp4",
                                         "nf4_vs_fp4 = by_name['fp4']['perplexity'] / by_name['float32']['perplexity']",
                                         "nf4_vs_fp4 = by_name['fp4']['perplexity'] - by_name['nf4']['perplexity']",
                                         "nf4_vs_fp4 = round(nf4_vs_fp4, 4) + 0.0001"], True),
        ("# Checkpoint for exercise 3", ["priced = {k: v * 2 for k, v in priced.items()}",
                                         "priced = dict(list(priced.items())[1:])"], True),
        ("# Checkpoint for exercise 4", ["outlier_gain = 1 / outlier_gain", "outlier_gain = 1.5",
                                         "outlier_gain = scaled.error_int8 / int8_decomposition(x, w, threshold).error_decomposed",
                                         "big = big * 1.0; big[:, :] = x * (20 * d.largest_other / x.abs().max()); "
                                         "outlier_gain = int8_decomposition(big, w, threshold).error_int8 / "
                                         "int8_decomposition(big, w, threshold).error_decomposed"], True),
    ],
    "03_attention_kernels": [
        ("# Checkpoint for exercise 1", ["math_prefill = math_prefill.median",
                                         "math_prefill = prefill['sdpa', longest][0]",
                                         "math_prefill = prefill['eager', longest][0]",
                                         "math_prefill = measure_prefill(sdpa.model, sdpa.tokenizer, lab.text, prompt_tokens=longest, "
                                         "warmup=p.warmup, repeats=p.repeats, device=lab.device)[0]",
                                         "with force_sdpa('MATH', lab.hw):\n"
                                         "    math_prefill = measure_prefill(sdpa.model, sdpa.tokenizer, lab.text, "
                                         "prompt_tokens=p.prompt_tokens[-2], warmup=p.warmup, repeats=p.repeats, device=lab.device)[0]",
                                         "math_prefill = Stat(math_prefill.median * 1e3, math_prefill.low * 1e3, "
                                         "math_prefill.high * 1e3, math_prefill.n)"], True),
        ("# Checkpoint for exercise 2", ["memory_ratio = 1 / memory_ratio",
                                         "memory_ratio = prefill['eager', p.prompt_tokens[0]][1] / prefill['sdpa', p.prompt_tokens[0]][1] + 1",
                                         "memory_ratio = round(memory_ratio, 3) + 0.001"], True),
    ],
    "04_speculative_decoding": [
        ("# Checkpoint for exercise 1", ["expected = leviathan_speedup(0.7, 4, 1.0)",
                                         "tokens_per_step = expected_tokens_per_step(0.7, 5)",
                                         "expected = 1 / expected", "tokens_per_step = round(tokens_per_step, 2) + 0.01"], True),
        ("# Checkpoint for exercise 2", ["set_draft_length(draft.model, 4, schedule='heuristic', confidence_threshold=0.4)",
                                         "heuristic_rate = 1000 / heuristic_rate",
                                         "heuristic_rate = run(target.model, target.tokenizer, assistant_model=draft.model)"], True),
    ],
    "05_batching": [
        ("# Checkpoint for exercise 1", ["wait_ratio = 1 / wait_ratio", "wait_ratio = gain", "wait_ratio = 1.0"], True),
        ("# Checkpoint for exercise 2", ["max_batch = max_batch + 1", "max_batch = max_batch // 2",
                                         "max_batch = int((memory_gb - one.weights_gb) // one.kv_cache_gb)",
                                         "one = predict_memory(shape, target.precision, context=context); "
                                         "max_batch = int((memory_gb - 0.8 - one.weights_gb) // one.kv_cache_gb)",
                                         "one = predict_memory(shape, target.precision, context=2048, compute_dtype=lab.hw.compute_dtype); "
                                         "max_batch = int((memory_gb - 0.8 - one.weights_gb) // one.kv_cache_gb)"], True),
    ],
    "06_larger_baseline": [
        ("# Checkpoint for exercise 1", ["usd_per_bit_saved = -usd_per_bit_saved",
                                         "usd_per_bit_saved = usd_per_bit_saved * 100"], True),
        ("# Checkpoint for exercise 2", ["results['target nf4'] = dict(results['target nf4'], settings=dict(results['target nf4']['settings'], precision='float32'))",
                                         "results['target nf4'] = dict(results['target nf4'], usd=results['target nf4']['usd'] / 1000)",
                                         "results['target nf4'] = dict(results['target nf4'], settings=dict(results['target nf4']['settings'], model=results['baseline']['settings']['model']))",
                                         "results['target nf4'] = dict(results['target nf4'], usd=cost_per_million(lab.price_per_hour, "
                                         "results['target nf4']['measurement'].decode_tok_s.median))"], True),
    ],
    "07_cost_curve": [
        ("# Checkpoint for exercise 1", ["my_years = math.log(t['techniques'])", "my_years = -my_years",
                                         "my_years = t['techniques']", "my_years = round(my_years, 2) + 0.01"], True),
        ("# Checkpoint for exercise 2", ["n_learners = 1", "n_learners = 3", "n_learners = len(class_rows)",
                                         "n_learners = len(list(folder.glob('*.jsonl')))"], True),
    ],
    "09_mixture_of_experts": [
        ("# Checkpoint for exercise 1", ["touched_8 = 64.0", "touched_8 = 64 * (1 - (8 / 64) ** 8)",
                                         "touched_8 = touched_8 / 64"], True),
        ("# Checkpoint for exercise 2", ["read_share = qwen.active_params / qwen.params",
                                         "read_share = 1 / read_share"], True),
    ],
    "08_serving": [
        ("# Checkpoint for exercise 1", ["idle = 1 - idle", "idle = idle * 100"], True),
        ("# Checkpoint for exercise 2", ["gain_by_load = {k: 1 / v for k, v in gain_by_load.items()}",
                                         "gain_by_load = {k: v * 1.1 for k, v in gain_by_load.items()}"], True),
    ],
}


# notebook -> [(checkpoint cell's first line, right answers rounded as the notebook prints numbers)]: each must pass.
ROUNDED = {
    "01_measuring_cost": [("# Checkpoint for exercise 1", ["my_cost = round(my_cost, 4)"])],
    "02_quantization": [("# Checkpoint for exercise 2", ["nf4_vs_fp4 = round(nf4_vs_fp4, 4)"]),
                        ("# Checkpoint for exercise 4", ["outlier_gain = round(outlier_gain, 1)"])],
    "03_attention_kernels": [("# Checkpoint for exercise 1", ["math_prefill = Stat(round(math_prefill.median, 5), "
                                                              "round(math_prefill.low, 5), round(math_prefill.high, 5), "
                                                              "math_prefill.n)"]),
                             ("# Checkpoint for exercise 2", ["memory_ratio = round(memory_ratio, 3)"])],
    "04_speculative_decoding": [("# Checkpoint for exercise 1",
                                 ["tokens_per_step, expected = round(tokens_per_step, 2), round(expected, 2)"])],
    "07_cost_curve": [("# Checkpoint for exercise 1", ["my_years = round(my_years, 2)"])],
    "09_mixture_of_experts": [("# Checkpoint for exercise 1", ["touched_8 = round(touched_8)"]),
                              ("# Checkpoint for exercise 2", ["read_share = round(read_share, 4)", "read_share = round(read_share, 3)"])],
    "06_larger_baseline": [("# Checkpoint for exercise 1", ["usd_per_bit_saved = round(usd_per_bit_saved, 4)"])],
    "08_serving": [("# Checkpoint for exercise 1", ["idle = round(idle, 3)"]),
                   ("# Checkpoint for exercise 2", ["gain_by_load = {k: round(v, 2) for k, v in gain_by_load.items()}"])],
}


def said(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def probe(client, nb, marker: str, wrong: list[str]) -> dict:
    """Run one exercise's checkpoint as solved, then after each wrong answer; their outputs. Called
    right after the checkpoint cell ran, so the state it reads is the notebook's at that point."""
    at = next(i for i, c in enumerate(nb.cells) if c.source.startswith(marker))
    solution = next(i for i in range(at - 1, -1, -1) if "### BEGIN SOLUTION" in nb.cells[i].source)
    out = {}

    def run(source: str) -> str:
        cell = new_code_cell(source)
        nb.cells.append(cell)                    # nbclient writes a cell back at its index
        try:
            client.execute_cell(cell, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
        return said(cell)

    out["right"] = run(nb.cells[at].source)
    for statement in wrong:
        run(nb.cells[solution].source)
        run(statement)
        out[statement] = run(nb.cells[at].source)
    run(nb.cells[solution].source)               # the notebook's own answer back, for what follows
    return out


@pytest.fixture(scope="module")
def sequence(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("sequence")
    store = folder / "my_results.jsonl"
    monkeypatch_module.setenv("LLMFLATION_RESULTS", str(store))
    monkeypatch_module.setenv("LLMFLATION_PROFILE", "offline")
    ran, probed = {}, {}
    for path in notebook_order(p for p in (REPO / "solutions").glob("*.ipynb") if not is_class(p)):
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        probes = {marker: wrong for marker, wrong, _ in PROBES.get(path.stem, [])}
        for marker, rounded in ROUNDED.get(path.stem, []):
            probes[marker] = probes.get(marker, []) + [f"# rounded\n{r}" for r in rounded]
        probed[path.stem] = {}
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                client.execute_cell(cell, i)
                marker = next((m for m in probes if cell.source.startswith(m)), None)
                if marker:          # probed at once, while the notebook's models are still loaded
                    probed[path.stem][marker] = probe(client, nb, marker, probes[marker])
        ran[path.stem] = nb
    return ResultsStore(store), ran, probed


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def outputs(nb) -> str:
    return "\n".join(said(c) for c in nb.cells if c.cell_type == "code")


def test_every_curve_step_is_the_figure_its_notebook_recorded(sequence):
    store, ran, _ = sequence
    records = store.records()
    # one run id per notebook session that measured something (07 only reads)
    assert len({run_of(r) for r in records}) == len(ran) - 1
    price = records[-1]["settings"]["price_per_hour"]                       # 07 priced at the same default
    rows = {r["step"]: r for r in curve_rows(records, price)}
    assert {"larger baseline", "target", "+ 4-bit", "+ attention", "+ speculative", "+ compile",
            "+ batching", "+ continuous batching", "mixture of experts"} <= set(rows)
    workload = standard_workload(step_records(records))
    mine = [r for r in step_records(records) if workload_of(r) == workload]
    in_run = lambda notebook: [r for r in mine if r["settings"]["notebook"].startswith(notebook)]  # noqa: E731
    # the start is 01's figure, though 02, 06 and 09 measured the target again afterwards
    first = max((r for r in in_run("01") if curve_step(r) == "target"), key=rate)
    assert rows["target"]["tokens_per_s"] == round(rate(first), 3) and rows["target"]["source"].startswith("01")
    # the swap is 06's own ratio, the MoE's 09's
    six = {curve_step(r): r for r in in_run("06")}
    assert rows["larger baseline"]["swap_factor"] == pytest.approx(rate(six["target"]) / rate(six["larger baseline"]))
    nine = {curve_step(r): r for r in in_run("09")}
    assert rows["mixture of experts"]["swap_factor"] == pytest.approx(
        rate(nine["mixture of experts"]) / rate(nine["larger baseline"]))
    # each technique: its own notebook's latest run, its factor the ratio of two figures of that run
    for step, notebook in [("+ 8-bit", "02"), ("+ 4-bit", "02"), ("+ attention", "03"), ("+ speculative", "04"),
                           ("+ compile", "05"), ("+ batching", "05"), ("+ continuous batching", "08")]:
        row = rows[step]
        run = in_run(notebook)
        assert row["source"].startswith(notebook) and row["base_from"] == "same run", step
        assert row["run"] == run_of(run[-1]), step
        assert row["base_tokens_per_s"] in [rate(r) for r in run], step          # its base from the same run
        assert row["factor"] == pytest.approx(row["tokens_per_s"] / row["base_tokens_per_s"], rel=1e-3), step
    printed = outputs(ran["07_cost_curve"])
    for row in rows.values():                         # and notebook 07 printed exactly these lines
        assert format_row(row) in printed, row["step"]
    assert "became usable" in printed and "your rate per year:" in printed and "the kit's H100-SXM run" in printed
    png = Path(store.path).parent / "cost_curve.png"
    assert png.stat().st_size > 50_000
    from test_rehearsal import assert_curve_labels_apart
    assert_curve_labels_apart(store.path, png.with_name("curve_again.png"))


@pytest.mark.parametrize("notebook, marker", [(nb, m) for nb, probes in PROBES.items() for m, _, _ in probes])
def test_each_checkpoint_passes_the_answer_and_fails_wrong_ones(sequence, notebook, marker):
    _, _, probed = sequence
    outs = probed[notebook][marker]
    deterministic = next(d for m, _, d in PROBES[notebook] if m == marker)
    if deterministic:
        assert "PLAUSIBLE" in outs["right"] and "CHECK THIS" not in outs["right"], outs["right"]
    for statement, text in outs.items():
        if statement.startswith("# rounded"):
            assert "PLAUSIBLE" in text and "CHECK THIS" not in text, f"{notebook} {marker}: '{statement}' failed: {text}"
        elif statement != "right":
            assert "CHECK THIS" in text, f"{notebook} {marker}: '{statement}' passed: {text}"


@pytest.mark.parametrize("notebook, marker", [(nb, m) for nb, cases in ROUNDED.items() for m, _ in cases])
def test_a_right_answer_rounded_as_printed_passes(sequence, notebook, marker):
    _, _, probed = sequence
    rounded = [s for s in probed[notebook][marker] if s.startswith("# rounded")]
    assert rounded and all("PLAUSIBLE" in probed[notebook][marker][s] for s in rounded)
