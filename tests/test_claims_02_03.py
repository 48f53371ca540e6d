"""Notebooks 02 and 03: their checkpoints pass a right answer (rounded as printed) and fail plausible
wrong ones, and what their prose and printed lines say holds against the kit's own data.

Each checkpoint cell is executed from the solution notebook with the names it needs, as
tests/test_timeline.py does for notebook 07."""

import contextlib
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from utils import reference
from utils.attention import attention_kernel
from utils.measure import Stat, versus
from utils.quality import Perplexity

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def real_weights(monkeypatch):
    monkeypatch.delenv("LLMFLATION_RANDOM_WEIGHTS", raising=False)     # a verdict, not a rehearsal's note


def notebook(name: str):
    return nbformat.read(REPO / "solutions" / f"{name}.ipynb", as_version=4)


def cell(name: str, start: str):
    return next(c for c in notebook(name).cells if c.source.startswith(start))


def run_checkpoint(name: str, number: int, **names) -> tuple[str, str]:
    """("PLAUSIBLE" / "CHECK THIS" for each verdict, everything the cell printed)."""
    said = []

    def verdict(ok, good, bad):
        said.append("PLAUSIBLE" if ok else "CHECK THIS")
        print(("PLAUSIBLE: " + good) if ok else ("CHECK THIS: " + bad))

    from utils.session import finding
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(cell(name, f"# Checkpoint for exercise {number}").source,
             dict(verdict=verdict, finding=finding, math=math, **names))
    return " ".join(said), out.getvalue()


def said(c) -> str:
    return "".join(o.get("text", "") for o in c.get("outputs", []))


# --- 02, cell 24: the 8B on a T4 ----------------------------------------------------------------
def test_02_says_the_8b_fits_a_t4_in_int8_and_4_bit_but_not_16_bits():
    from utils.data import model_configs
    from utils.memory import ModelShape, predict_memory
    from utils.models import TARGETS
    usable = TARGETS["t4"].usable_gb
    shape = ModelShape.from_config(model_configs()["Qwen/Qwen3-8B"])
    assert predict_memory(shape, "bfloat16").weights_gb > usable
    assert predict_memory(shape, "int8").weights_gb < usable and predict_memory(shape, "nf4").weights_gb < usable
    loaded = {r["settings"]["precision"]: r["metrics"]["peak_memory_gb"]
              for r in reference.records("t4-emulated-on-h100_qwen3") if r["step"] == "precision"
              and r["settings"]["model"] == "Qwen/Qwen3-8B" and "peak_memory_gb" in r["metrics"]}
    assert loaded["int8"] < usable and loaded["nf4"] < usable and "float16" not in loaded
    text = cell("02_quantization", "Published figures on the same lesson").source
    assert "only in 4-bit" not in text
    assert "does not fit a T4 in 16 bits, but it fits in int8 as well as in 4-bit" in text


# --- 02, exercise 2: NF4 or FP4 --------------------------------------------------------------------
def quality(nll: list[float]) -> Perplexity:
    return Perplexity(perplexity=math.exp(sum(nll) / len(nll)), bits_per_byte=0.0, tokens=len(nll),
                      token_nll=tuple(nll))


def by_name(nf4_nll, fp4_nll, nf4_em=0.10, fp4_em=0.15):
    rows = {"float32": dict(perplexity=36.46, exact_match=0.15)}
    for k, nll, em in (("nf4", nf4_nll, nf4_em), ("fp4", fp4_nll, fp4_em)):
        q = quality(nll)
        rows[k] = dict(perplexity=q.perplexity, quality=q, exact_match=em)
    return rows


# like the stored run: FP4 a little higher in perplexity, within the noise of the per-token differences
# (the same tokens scored by both, each token's loss moved by its own quantization error: a mean of
# 0.005 nats against a spread of 1), and exact match pointing the other way
BASE = [3.6 + 0.5 * ((7 * i) % 5 - 2) for i in range(4000)]
FP4_CLOSE = [x + 0.005 + (1 if i % 2 else -1) for i, x in enumerate(BASE)]
QUESTIONS = list(range(40))
SHAPE = SimpleNamespace(params=1_967_808)


def ex2(rows, answer):
    return run_checkpoint("02_quantization", 2, by_name=rows, nf4_vs_fp4=answer, questions=QUESTIONS, shape=SHAPE)


def test_02_exercise_2_passes_the_ratio_and_the_ratio_rounded_as_printed():
    rows = by_name(BASE, FP4_CLOSE)
    right = rows["fp4"]["perplexity"] / rows["nf4"]["perplexity"]
    assert ex2(rows, right)[0] == "PLAUSIBLE"
    assert ex2(rows, round(right, 4))[0] == "PLAUSIBLE"


def test_02_exercise_2_fails_plausible_wrong_answers():
    rows = by_name(BASE, FP4_CLOSE)
    right = rows["fp4"]["perplexity"] / rows["nf4"]["perplexity"]
    wrong = {"the inverse": 1 / right, "fp4 over float32": rows["fp4"]["perplexity"] / rows["float32"]["perplexity"],
             "the difference": rows["fp4"]["perplexity"] - rows["nf4"]["perplexity"],
             "the neighbouring value": round(right, 4) + 0.0001, "exact match instead": 0.10 / 0.15}
    for why, answer in wrong.items():
        verdicts, text = ex2(rows, answer)
        assert verdicts == "CHECK THIS", why
    assert "yours is the inverse" in ex2(rows, 1 / right)[1]


def test_02_exercise_2_says_a_small_gap_and_40_questions_do_not_separate_them():
    rows = by_name(BASE, FP4_CLOSE)
    verdicts, text = ex2(rows, rows["fp4"]["perplexity"] / rows["nf4"]["perplexity"])
    assert verdicts == "PLAUSIBLE"
    assert "NF4 4 of 40 questions, FP4 6 of 40: a difference of 2" in text and "(within 2)" in text
    assert "do not tell NF4 and FP4 apart" in text and "point opposite ways" in text
    assert "cited here, not reproduced" in text and "as the QLoRA paper found" not in text


def test_02_exercise_2_says_when_perplexity_does_separate_them():
    rows = by_name(BASE, [x + 0.3 for x in BASE], nf4_em=0.15, fp4_em=0.15)      # FP4 worse on every token
    verdicts, text = ex2(rows, rows["fp4"]["perplexity"] / rows["nf4"]["perplexity"])
    assert verdicts == "PLAUSIBLE"
    assert "perplexity puts NF4 ahead beyond 2 standard errors" in text and "exact match does not tell them apart" in text


def test_02_exercise_2_stored_output_matches_the_stored_run():
    nb = notebook("02_quantization")
    table = said(next(c for c in nb.cells if c.source.startswith("# NBVAL_IGNORE_OUTPUT\nfrom utils.models import free")))
    em = {line.split()[0]: int(line.rsplit("exact match", 1)[1].strip().rstrip("%"))
          for line in table.splitlines() if "exact match" in line}
    out = said(cell("02_quantization", "# Checkpoint for exercise 2"))
    assert f"NF4 {em['nf4'] * 40 // 100} of 40 questions, FP4 {em['fp4'] * 40 // 100} of 40" in out
    assert "CHECK THIS" not in out and "as the QLoRA paper found" not in out and "cited here, not reproduced" in out


# --- 03, exercise 1: the math backend --------------------------------------------------------------
LONGEST = 256
P = SimpleNamespace(repeats=3, prompt_tokens=[64, 128, LONGEST])


@pytest.fixture
def timed(monkeypatch):
    """measure_prefill's record of what it timed, filled as the notebook's loop and a solution would."""
    from collections import deque

    from utils import measure
    monkeypatch.setattr(measure, "_PREFILLS", deque(maxlen=1000))

    def add(median, attn="sdpa", allowed=("flash", "efficient", "math", "cudnn"), tokens=LONGEST):
        stat = Stat(median, median * 0.99, median * 1.01, 3)
        measure._PREFILLS.append((stat, dict(attn_implementation=attn, sdpa_allowed=list(allowed),
                                              prompt_tokens=tokens, batch=1)))
        return stat
    return add


def loop(timed, default_kernel_ms):
    """The notebook's loop: eager and default SDPA at every prompt length."""
    prefill = {}
    for attn, scale in (("eager", 1.15), ("sdpa", 1.0)):
        for n in P.prompt_tokens:
            prefill[attn, n] = (timed(default_kernel_ms * scale * n / LONGEST * 1e-3, attn=attn, tokens=n), 0.43)
    return prefill


def ex1(answer, prefill, ran_sdpa):
    return run_checkpoint("03_attention_kernels", 1, math_prefill=answer, p=P, longest=LONGEST, prefill=prefill,
                          ran={"eager": "eager (matmul + softmax)", "sdpa": ran_sdpa}, versus=versus)


@pytest.mark.parametrize("ran_sdpa", ["SDPA flash", "SDPA math"])     # a CPU; a T4, where plain sdpa runs math
def test_03_exercise_1_passes_the_forced_math_timing_and_it_rounded_as_printed(timed, ran_sdpa):
    prefill = loop(timed, 6.95)
    right = timed(0.00863, allowed=["math"])
    assert ex1(right, prefill, ran_sdpa)[0] == "PLAUSIBLE"
    rounded = Stat(round(right.median, 5), round(right.low, 5), round(right.high, 5), right.n)   # 0.01 ms
    assert ex1(rounded, prefill, ran_sdpa)[0] == "PLAUSIBLE"
    repeat_kv = timed(0.00702, attn="sdpa_repeat_kv", allowed=["math"])    # the T4's other SDPA model: still SDPA
    assert ex1(repeat_kv, prefill, ran_sdpa)[0] == "PLAUSIBLE"


@pytest.mark.parametrize("ran_sdpa", ["SDPA flash", "SDPA math"])
def test_03_exercise_1_fails_a_wrong_backend_a_wrong_length_and_a_unit_slip(timed, ran_sdpa):
    prefill = loop(timed, 6.95)
    right = timed(0.00863, allowed=["math"])
    wrong = {
        "the loop's default SDPA": (prefill["sdpa", LONGEST][0], "free to choose"),
        "the loop's eager": (prefill["eager", LONGEST][0], "timed the eager model"),
        "eager under force_sdpa": (timed(0.0081, attn="eager", allowed=["math"]), "timed the eager model"),
        "not forced (a T4's default backends)": (timed(0.0086, allowed=["efficient", "math"]), "free to choose"),
        "math at the neighbouring length": (timed(0.0056, allowed=["math"], tokens=128), "128-token prompt"),
        "the loop's default at the shortest": (prefill["sdpa", 64][0], "64-token prompt"),
        "milliseconds": (Stat(right.median * 1e3, right.low * 1e3, right.high * 1e3, 3), "in milliseconds"),
        "typed in": (Stat(0.0087, 0.0086, 0.0088, 3), "no timing measure_prefill returned"),
        "the median only": (right.median, "the Stat measure_prefill returns first"),
        "other repeats": (Stat(right.median, right.low, right.high, 5), "the Stat measure_prefill returns first"),
    }
    for why, (answer, words) in wrong.items():
        verdicts, text = ex1(answer, prefill, ran_sdpa)
        assert verdicts == "CHECK THIS", why
        assert words in text, (why, text)
        assert "PLAUSIBLE" not in text and "Math is slower" not in text, why      # no message contradicts it


def test_03_exercise_1_names_the_same_kernel_on_a_t4_and_a_finding_where_math_is_not_slower(timed):
    prefill = loop(timed, 6.95)
    right = timed(0.00863, allowed=["math"])
    _, text = ex1(right, prefill, "SDPA math")
    assert "measure the same kernel" in text and "Math is slower" not in text
    close = timed(0.00696, allowed=["math"])              # overlaps the fused default's repeats
    verdicts, text = ex1(close, prefill, "SDPA flash")
    assert verdicts == "PLAUSIBLE" and "FINDING: math was not slower" in text


def test_03_measure_prefill_keeps_what_it_timed(tiny_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.attention import force_sdpa
    from utils.measure import measure_prefill, prefill_settings
    from utils.models.hardware import detect_hardware
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    text = "def f(x):\n    return x\n" * 40
    with force_sdpa("MATH", detect_hardware()):
        forced = measure_prefill(model, tokenizer, text, prompt_tokens=32, warmup=0, repeats=2)[0]
    free = measure_prefill(model, tokenizer, text, prompt_tokens=16, warmup=0, repeats=2)[0]
    assert prefill_settings(forced) == dict(attn_implementation="sdpa", sdpa_allowed=["math"], prompt_tokens=32, batch=1)
    assert "math" in prefill_settings(free)["sdpa_allowed"] and prefill_settings(free)["sdpa_allowed"] != ["math"]
    assert prefill_settings(free)["prompt_tokens"] == 16
    assert prefill_settings(Stat(forced.median * 1e3, forced.low * 1e3, forced.high * 1e3, 2)) is None


# --- 03, exercise 2: memory ---------------------------------------------------------------------------
def h100_peaks():
    rows = [r for r in reference.records("h100_qwen3-8b") if r["step"] == "attention"
            and "peak_memory_gb" in r["metrics"] and not r["settings"].get("sdpa_backend")]
    return {(r["settings"]["attn_implementation"], r["settings"]["prompt_tokens"]): r["metrics"] for r in rows}


def ex2_03(answer, device="cpu"):
    prefill = {("eager", LONGEST): (None, 0.4262), ("sdpa", LONGEST): (None, 0.4309),
               ("eager", 64): (None, 0.4220), ("sdpa", 64): (None, 0.4300)}
    return run_checkpoint("03_attention_kernels", 2, memory_ratio=answer, prefill=prefill, longest=LONGEST, p=P,
                          lab=SimpleNamespace(device=device), attention_kernel=attention_kernel)


def test_03_exercise_2_passes_the_ratio_rounded_as_printed_and_fails_wrong_ones():
    right = 0.4262 / 0.4309
    assert ex2_03(right)[0] == "PLAUSIBLE" and ex2_03(round(right, 3))[0] == "PLAUSIBLE"
    for why, answer in {"inverse": 1 / right, "neighbouring value": round(right, 3) + 0.001,
                        "shortest prompt": 0.4220 / 0.4300, "a difference in GB": 0.4262 - 0.4309,
                        "percent": right * 100}.items():
        assert ex2_03(answer)[0] == "CHECK THIS", why
    assert "yours is SDPA over eager" in ex2_03(1 / right)[1]


def test_03_exercise_2_says_eager_uses_more_memory_on_a_gpu_at_long_prompts():
    peaks = h100_peaks()
    longest = max(n for _, n in peaks)
    eager, sdpa = peaks["eager", longest]["peak_memory_gb"], peaks["sdpa", longest]["peak_memory_gb"]
    assert eager > sdpa                                    # what the kit's H100 run shows
    _, text = ex2_03(0.4262 / 0.4309)
    assert "resident memory" in text                      # a CPU's peak, said as such
    assert f"eager's memory is higher: {eager:.2f} GB at {longest:,} tokens against {sdpa:.2f} GB" in text
    assert f"{eager / sdpa:.2f}x at {longest:,} tokens" in text
    assert "resident memory" not in ex2_03(0.4262 / 0.4309, device="cuda")[1]
    stored = said(cell("03_attention_kernels", "# Checkpoint for exercise 2"))
    assert f"eager's memory is higher: {eager:.2f} GB" in stored and "CHECK THIS" not in stored


# --- 03, cell 21: the emulated T4's timings, commented ---------------------------------------------
def test_03_the_t4_panel_says_its_timings_contradict_each_other_and_prints_what_it_runs():
    rows = [r for r in reference.records("t4-emulated-on-h100_qwen3") if r["step"] == "attention"
            and "prefill_s" in r["metrics"]]
    rows = [r for r in rows if r["timestamp"] == rows[-1]["timestamp"]]
    t = {(r["settings"]["attn_implementation"], r["settings"].get("sdpa_backend"), r["settings"]["prompt_tokens"]):
         r["metrics"] for r in rows}
    default, forced = t["sdpa", None, 512], t["sdpa", "MATH", 512]
    assert attention_kernel(default["kernel_names"]) == attention_kernel(forced["kernel_names"]) == "SDPA math"
    assert default["prefill_s"]["high"] < forced["prefill_s"]["low"]             # one kernel, repeats apart
    assert t["sdpa", "MATH", 1024]["prefill_s"]["median"] < forced["prefill_s"]["median"]   # longer, yet faster
    c = cell("03_attention_kernels", "# NBVAL_CHECK_OUTPUT\nfrom utils import reference")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(c.source, {})
    assert out.getvalue() == said(c)                       # the stored output is what the cell prints
    assert "timings are unsteady" in said(c) and "not established by these timings" in said(c)
    assert "sdpa ran SDPA math, sdpa_repeat_kv SDPA memory-efficient" in said(c)


# --- 03, cell 25: the summary against the curve's rule -------------------------------------------------
def test_03_summary_says_what_the_curve_does_with_the_attention_step(tmp_path):
    from utils.curve import curve_rows
    from utils.results import ResultsStore
    text = cell("03_attention_kernels", "## Summary").source
    assert "so your earlier steps had the fused kernel" not in text
    assert "plain `sdpa` runs the unfused math kernel" in text and "shown as not kept" in text

    def rows(step_rates):
        store = ResultsStore(tmp_path / f"r{len(list(tmp_path.iterdir()))}.jsonl")
        for step, run, attn, rate, spread in step_rates:
            store.append("benchmark", step=step, run=run,
                         settings=dict(model="m", precision="bfloat16", attn_implementation=attn, profile="offline"),
                         metrics={"e2e_tok_s": {"median": rate, "low": rate * (1 - spread), "high": rate * (1 + spread)},
                                  "prompt_tokens": 64, "new_tokens": 32, "batch": 1},
                         context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": {"gpu_name": None}})
        return {r["step"]: r for r in curve_rows(store.records(), 1.0)}

    start = ("target", "01", "sdpa", 100.0, 0.01)
    # the step is the fastest configuration other than its base (default SDPA), against the base of its own run
    dearer = rows([start, ("+ attention", "03", "sdpa", 110.0, 0.01), ("+ attention", "03", "eager", 90.0, 0.01)])
    assert dearer["+ attention"]["status"] == "dearer"
    assert dearer["+ attention"]["factor"] == pytest.approx(90 / 110)
    noise = rows([start, ("+ attention", "03", "sdpa", 100.0, 0.05), ("+ attention", "03", "eager", 102.0, 0.05)])
    assert noise["+ attention"]["status"] == "noise"
    kept = rows([start, ("+ attention", "03", "sdpa", 100.0, 0.01), ("+ attention", "03", "sdpa_repeat_kv", 130.0, 0.01)])
    assert kept["+ attention"]["status"] == "on the chain"
