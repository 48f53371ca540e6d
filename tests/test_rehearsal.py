"""The GPU path rehearsed without a GPU: emulation, attention kernels, random weights, the GPU check."""

import json
import zipfile
from pathlib import Path

import pytest

from utils.models import emulate, rehearsal
from utils.attention import REPEAT_KV, BackendUnavailable, attention_kernel, force_sdpa
from utils.models.hardware import Hardware

DATA = Path(__file__).with_name("data")


# --- which kernel ran, from names recorded on a real GPU ---------------------------
def test_kernel_families_from_names_recorded_on_an_h100():
    recorded = json.loads((DATA / "profiler_names_h100.json").read_text())["names"]
    assert attention_kernel(recorded["eager/default"]) == "eager (matmul + softmax)"
    assert attention_kernel(recorded["sdpa/default"]) == "cuDNN SDPA"          # Hopper's default
    # PyTorch's own FlashAttention-2 copy (pytorch_flash::) is not the flash-attn package
    assert attention_kernel(recorded["sdpa/FLASH_ATTENTION"]) == "SDPA flash"
    assert attention_kernel(recorded["sdpa/CUDNN_ATTENTION"]) == "cuDNN SDPA"
    assert attention_kernel(recorded["sdpa/MATH"]) == "SDPA math"


def test_kernel_families_for_the_t4_and_the_flash_attn_package():
    t4_efficient = ["aten::_efficient_attention_forward", "aten::_scaled_dot_product_efficient_attention",
                    "fmha_cutlassF_f16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel<"
                    "cutlass::half_t, cutlass::arch::Sm80, true, 64, 128, 128, true, true>::Params)"]
    assert attention_kernel(t4_efficient) == "SDPA memory-efficient"
    package = ["flash_attn::_flash_attn_forward",
               "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 64, 64, 4, false, false, "
               "cutlass::bfloat16_t, Flash_kernel_traits<128, 64, 64, 4, cutlass::bfloat16_t> >>"]
    assert attention_kernel(package) == "flash-attn (FlashAttention-2 package)"
    assert attention_kernel(["aten::mm"]) == "unknown"


def test_forcing_a_backend_the_gpu_lacks_is_refused(hw):
    with pytest.raises(BackendUnavailable, match="sm75"):
        with force_sdpa("FLASH_ATTENTION", hw["T4"]):
            pass
    with pytest.raises(BackendUnavailable, match="CPU"):
        with force_sdpa("EFFICIENT_ATTENTION", hw["none"]):
            pass
    with force_sdpa("MATH", hw["T4"]):    # the math kernel exists everywhere
        pass


def test_sdpa_repeat_kv_computes_what_sdpa_computes(tmp_path, cpu_hw):
    """The kit's T4 attention (KV heads repeated, no enable_gqa) gives the same logits."""
    import torch

    from utils.models.loading import load_model
    cfg = dict(model_type="qwen3", hidden_size=256, intermediate_size=512, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=1, head_dim=64, vocab_size=2048,
               tie_word_embeddings=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    ids = torch.randint(0, 2048, (1, 40))
    logits = {}
    for attn in ("eager", "sdpa", REPEAT_KV):
        loaded = load_model(str(tmp_path), attn_implementation=attn, hw=cpu_hw, random_weights=True)
        with torch.no_grad():
            logits[attn] = loaded.model(input_ids=ids).logits
    assert torch.allclose(logits[REPEAT_KV], logits["sdpa"], atol=1e-4)
    assert torch.allclose(logits[REPEAT_KV], logits["eager"], atol=1e-4)


def test_unknown_attention_name_is_refused_before_loading(cpu_hw):
    from utils.models.loading import ModelLoadError, load_model
    with pytest.raises(ModelLoadError, match="unknown attention"):
        load_model("offline:target", attn_implementation="flash", hw=cpu_hw)


# --- T4 emulation ---------------------------------------------------------------
def test_emulating_a_t4_describes_its_limits_and_imposes_them(hw, monkeypatch):
    applied = []
    monkeypatch.setattr(emulate, "impose", lambda target, total: applied.append((target.name, total)))
    t4 = emulate.emulate(hw["H100"], emulate.TARGETS["t4"])
    assert applied == [("Tesla T4", hw["H100"].vram_gb)]
    assert t4.compute_dtype == "float16" and not t4.bf16
    assert t4.sdpa_backends == ["math", "efficient"] and not t4.flash_attn_usable
    assert t4.vram_gb == 15.0 and t4.emulated == "Tesla T4" and t4.host_gpu == hw["H100"].gpu_name
    assert "EMULATED" in t4.summary()


def test_emulation_refuses_a_cpu_a_smaller_gpu_and_an_unknown_name(hw, monkeypatch):
    with pytest.raises(emulate.EmulationError, match="CUDA GPU"):
        emulate.emulate(hw["none"], emulate.TARGETS["t4"])
    small = Hardware(device="cuda", gpu_name="NVIDIA GeForce GTX 1060", compute_capability=(6, 1), vram_gb=6.0)
    with pytest.raises(emulate.EmulationError, match="at least as large"):
        emulate.emulate(small, emulate.TARGETS["t4"], apply_limits=False)
    monkeypatch.setenv(emulate.ENV, "a100")
    with pytest.raises(emulate.EmulationError, match="known: t4"):
        emulate.requested()


def test_the_t4_profile_under_emulation_refuses_fp16_8b_and_fits_nf4(hw):
    """What the H100 run showed: fp16 Qwen3-8B is refused before loading, NF4 fits."""
    from utils.memory import ModelShape, ModelTooLargeError, check_fits, predict_memory
    from utils.data import model_configs
    t4 = emulate.emulate(hw["H100"], emulate.TARGETS["t4"], apply_limits=False)
    shape = ModelShape.from_config(model_configs()["Qwen/Qwen3-8B"])
    with pytest.raises(ModelTooLargeError):
        check_fits(predict_memory(shape, "float16", context=2048), t4.vram_gb)
    check_fits(predict_memory(shape, "nf4", context=2048), t4.vram_gb)


# --- random-weight rehearsal --------------------------------------------------------
@pytest.mark.parametrize("model", ["Qwen/Qwen3-8B", "Qwen/Qwen3-14B", "Qwen/Qwen3-32B",
                                   "Qwen/Qwen2.5-7B-Instruct", "HuggingFaceTB/SmolLM2-360M"])
def test_reduced_architectures_keep_what_decides_the_code_paths(model):
    from utils.data import model_configs
    full = model_configs()[model]
    small = rehearsal.reduced_config(full)
    assert small["model_type"] == full["model_type"]
    assert small["tie_word_embeddings"] == full["tie_word_embeddings"]
    ratio = lambda c: c["num_attention_heads"] // (c.get("num_key_value_heads") or c["num_attention_heads"])
    assert ratio(small) == ratio(full)                       # grouped-query attention kept
    q, kv = small["num_attention_heads"] * 64, small["num_key_value_heads"] * 64
    assert all(n % 64 == 0 for n in (small["hidden_size"], small["intermediate_size"], q, kv))
    assert small["vocab_size"] >= 2048                       # the offline tokenizer's ids fit
    from transformers import AutoConfig                      # and transformers accepts it
    AutoConfig.for_model(small["model_type"], **{k: v for k, v in small.items()
                                                 if k != "model_type" and not k.startswith("_")})


@pytest.mark.parametrize("model", ["ibm-granite/granite-3.1-3b-a800m-instruct", "allenai/OLMoE-1B-7B-0924",
                                   "Qwen/Qwen3-30B-A3B"])
def test_reduced_mixtures_of_experts_keep_their_routing(model):
    """The GPU profiles' MoE models shrink in width and depth, not in routing: E experts, k per
    token (what notebook 09 measures), and expert widths bitsandbytes on a CPU accepts."""
    from transformers import AutoConfig

    from utils.data import model_configs
    from utils.memory import ModelShape
    full = model_configs()[model]
    small = rehearsal.reduced_config(full)
    big, little = ModelShape.from_config(full), ModelShape.from_config(small)
    assert (little.experts, little.active_experts) == (big.experts, big.active_experts)
    assert little.expert_intermediate % 64 == 0 and little.params < big.params / 100
    AutoConfig.for_model(small["model_type"], **{k: v for k, v in small.items()
                                                 if k != "model_type" and not k.startswith("_")})


def test_reduced_vocabularies_differ_where_the_real_ones_do():
    """The Qwen2.5 0.5B/7B pairing trap survives the shrinking (check_pair must still catch it)."""
    from utils.data import model_configs
    from utils.speculative import check_pair
    cfg = {k: rehearsal.reduced_config(v) for k, v in model_configs().items()}
    with pytest.raises(ValueError):
        check_pair(cfg["Qwen/Qwen2.5-7B-Instruct"], cfg["Qwen/Qwen2.5-0.5B-Instruct"])
    check_pair(cfg["Qwen/Qwen3-8B"], cfg["Qwen/Qwen3-0.6B"])


def test_rehearsal_mode_comes_from_the_environment(monkeypatch):
    from utils.models.profiles import load_profile
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    assert rehearsal.mode() is None
    monkeypatch.setenv(rehearsal.ENV, "reduced")
    t4 = load_profile("t4")
    assert t4.new_tokens <= 12 and max(t4.prompt_tokens) <= 256 and max(t4.batch_sizes) <= 4
    monkeypatch.setenv(rehearsal.ENV, "sometimes")
    with pytest.raises(rehearsal.RehearsalError, match="reduced"):
        rehearsal.mode()


def test_short_runs_keep_everything_that_decides_memory(monkeypatch):
    from utils.models.profiles import get_profile, load_profile
    monkeypatch.setenv(rehearsal.ENV_SHORT, "1")
    full, short = get_profile("t4"), load_profile("t4")
    assert (short.target, short.baseline, short.precisions, short.prompt_tokens, short.batch_sizes) == \
           (full.target, full.baseline, full.precisions, full.prompt_tokens, full.batch_sizes)
    assert short.new_tokens < full.new_tokens and short.repeats < full.repeats


def test_random_checkpoints_are_shared_between_processes_through_the_cache(tmp_path, monkeypatch):
    import utils.models.loading as loading
    from utils.models.profiles import ModelRef
    cfg = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
               num_attention_heads=1, num_key_value_heads=1, vocab_size=2048, tie_word_embeddings=True)
    monkeypatch.setenv(loading.ENV_RANDOM_CACHE, str(tmp_path))
    monkeypatch.setattr(loading, "_RANDOM_CHECKPOINTS", {})
    first = loading.random_source(ModelRef("some/model"), cfg, None)
    assert (first / ".complete").is_file()
    built = []
    monkeypatch.setattr(loading, "_RANDOM_CHECKPOINTS", {})          # as a new process
    monkeypatch.setattr(loading, "random_checkpoint", lambda *a, **k: built.append(a))
    assert loading.random_source(ModelRef("some/model"), cfg, None) == first and not built


# --- the GPU check, dry run on a CPU ----------------------------------------------------
def test_gpu_check_dry_run_records_and_reports(tmp_path, monkeypatch):
    from utils.tools import gpu_check
    monkeypatch.setenv(rehearsal.ENV, "reduced")
    code = gpu_check.main(["--models", "Qwen/Qwen3-8B", "--precisions", "float32", "nf4",
                           "--sections", "precision", "attention", "--attention", "eager", REPEAT_KV,
                           "--out", str(tmp_path)])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    precision = [r for r in rows if r["step"] == "precision"]
    # A, B, A: the first precision again at the end bounds the drift; the profiled section runs last
    assert [(r["settings"]["precision"], r["settings"]["order"]) for r in precision] == \
        [("float32", 0), ("nf4", 1), ("float32", 2)]
    assert max(i for i, r in enumerate(rows) if r["step"] == "precision") < \
        min(i for i, r in enumerate(rows) if r["step"] == "attention")
    assert all(r["settings"]["random_weights"] and r["metrics"]["roofline_fraction"] > 0 for r in precision)
    ran = {r["settings"]["attn_implementation"]: r["metrics"]["kernel"] for r in rows if r["step"] == "attention"}
    assert ran == {"eager": "eager (matmul + softmax)", REPEAT_KV: "SDPA flash"}   # CPU's fused kernel
    text = (tmp_path / "report.md").read_text()
    assert rehearsal.LABEL in text and "| Qwen/Qwen3-8B | nf4 |" in text and "- none" in text


def test_gpu_check_report_names_refusals_and_failures():
    from utils.tools.gpu_report import report
    ctx = dict(hardware=dict(gpu_name="Tesla T4 (emulated)", emulated="Tesla T4", host_gpu="H100"),
               software={}, timestamp="2026-11-23")
    rows = [dict(ctx, step="precision", settings=dict(model="m", precision="float16"),
                 metrics=dict(refused="m at float16 needs about 17.5 GB")),
            dict(ctx, step="batch", settings=dict(model="m", batch=64), metrics=dict(error="OutOfMemoryError: x\ny"))]
    text = report(rows)
    assert "never Tesla T4 figures" in text and "needs about 17.5 GB" in text and "OutOfMemoryError: x" in text


# --- the committed reference figures ------------------------------------------------------
def test_reference_figures_are_labelled_and_complete():
    from utils import reference
    h100 = reference.records("h100_qwen3-8b")
    assert all(r["label"] == rehearsal.LABEL and r["settings"]["random_weights"] for r in h100)
    assert {r["settings"]["precision"] for r in h100 if r["step"] == "precision"} == {"bfloat16", "int8", "nf4"}
    assert "H100" in reference.source(h100) and "driver" in reference.source(h100)
    emulated = reference.records("t4-emulated-on-h100_qwen3")
    assert all(r["settings"]["emulated"] == "Tesla T4" for r in emulated)
    # under T4 rules, no row may claim a kernel a T4 lacks
    kernels = {attention_kernel(r["metrics"]["kernel_names"]) for r in emulated if "kernel_names" in r["metrics"]}
    assert kernels and not kernels & {"SDPA flash", "cuDNN SDPA"}


def test_reference_reports_are_generated_from_the_records():
    from utils import reference
    from utils.tools.gpu_report import report
    for path in sorted(reference.FOLDER.glob("h100_*.jsonl")):
        assert path.with_suffix(".md").read_text() == report(reference.records(path.stem))


def test_every_published_figure_is_cited_and_listed_in_the_datasets_readme():
    import re

    from utils import reference
    from utils.data import gpus
    rows = reference.published()
    assert {r["topic"] for r in rows} == set(reference.TOPICS)
    known_gpus = set(gpus()) | {"GPU", "TPU-v4"}        # "GPU": a figure the source gives for GPUs in general
    for r in rows:
        assert r["source"] and r["url"].startswith("https://") and re.fullmatch(r"\d{4}(-\d{2})?", r["date"]), r
        assert r["gpu"] in known_gpus and r["unit"] and r["metric"] and r["note"], r
        assert r["value_max"] is None or r["value_max"] > r["value"], r
    readme = (reference.FOLDER.parent / "README.md").read_text()
    assert "`reference_gpu.csv`" in readme
    for source in {r["url"] for r in rows}:
        assert source in readme, f"datasets/README.md does not name {source}"


def test_published_ratios_come_from_rows_of_the_same_source_and_setting():
    from utils import reference
    rows = [dict(source="s", gpu="A100-80GB", model="m", metric="decode", configuration=c, versus=v,
                 value=x, value_max=None, unit="tok/s")
            for c, v, x in [("bf16", "", 100.0), ("int4", "bf16", 150.0), ("int8", "fp16", 120.0)]]
    rows.append(dict(rows[1], gpu="T4", value=30.0))          # another GPU: never divided by the A100's bf16
    assert reference._ratios(rows) == ["m decode: int4 is 1.50x bf16 (150 tok/s / 100 tok/s)"]


def test_unknown_topics_are_refused_with_the_known_ones():
    from utils import reference
    with pytest.raises(ValueError, match="published figures cover precision"):
        reference.published("quantisation")
    with pytest.raises(ValueError, match="show_published"):
        reference.show("speculative")


# --- offline wheels -------------------------------------------------------------------------
def test_bitsandbytes_wheel_is_trimmed_to_one_cuda_runtime(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("offline_wheels", Path(__file__).parents[1] / "scripts" / "offline_wheels.py")
    ow = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ow)
    wheel = tmp_path / "in" / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    wheel.parent.mkdir()
    libs = ["cpu", "cuda118", "cuda128", "cuda130", "rocm64"]
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("bitsandbytes/__init__.py", "")
        for lib in libs:
            z.writestr(f"bitsandbytes/libbitsandbytes_{lib}.so", b"\0" * 1000)
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "stale\n")
    (tmp_path / "out").mkdir()
    out = ow.trim_bitsandbytes(wheel, "13.0", tmp_path / "out")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        record = z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert sorted(n for n in names if n.endswith(".so")) == [
        "bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so"]
    assert "libbitsandbytes_cuda130.so,sha256=" in record and "cuda118" not in record
    with pytest.raises(ValueError, match="no library for CUDA 12.1"):
        ow.trim_bitsandbytes(wheel, "12.1", tmp_path / "out")
    with pytest.raises(ValueError, match="like 12.8"):
        ow.runtime_tag("cu130")


# --- whole notebook sequences of the GPU profiles, shrunk, on this CPU ------------------------
@pytest.mark.parametrize("profile", ["t4", "gpu24", "a100-80"])
def test_every_notebook_runs_for_the_gpu_profiles_at_reduced_size(profile, tmp_path):
    """Qwen3 architectures (the GPU profiles' model class) through every notebook, in fresh
    kernels, with random weights shrunk for a CPU: a notebook that breaks on a GPU profile's
    settings (precisions, attention list, batch sizes, draft lengths) fails here first."""
    from utils.tools import rehearse
    code = rehearse.main(["--profile", profile, "--reduced", "--out", str(tmp_path), "--save-notebooks",
                          "--cache", str(tmp_path.parent / "shared-random-checkpoints")])
    rows = [json.loads(line) for line in (tmp_path / "rehearsal.jsonl").read_text().splitlines()]
    failed = {r["notebook"]: r.get("error") for r in rows if not r["ok"]}
    assert code == 0 and not failed, failed
    solved = rehearse.notebook_order((Path(__file__).resolve().parent.parent / "solutions").glob("*.ipynb"))
    assert [r["notebook"] for r in rows] == [p.stem for p in solved] and all(r["peak_gb"] > 0 for r in rows)
    from utils.tools.plan import CORE        # the one-runtime class, with each lesson's peak
    lessons = next(r for r in rows if r["notebook"] == "class_t4")["lessons"]
    assert list(lessons) == list(CORE) and all(gb > 0 for gb in lessons.values())
    assert rehearsal.LABEL in (tmp_path / "rehearsal.md").read_text()
    import nbformat
    curve = nbformat.read(tmp_path / "executed" / "07_cost_curve.ipynb", as_version=4)
    printed = "\n".join(o.get("text", "") for c in curve.cells for o in c.get("outputs", []))
    quantization = nbformat.read(tmp_path / "executed" / "02_quantization.ipynb", as_version=4)
    said = "\n".join(o.get("text", "") for c in quantization.cells for o in c.get("outputs", []))
    if profile == "t4":      # the 8B fits only quantized: 16 bits against 8 and 4 is measured on the small model
        assert all(f"Qwen/Qwen3-1.7B {p}" in said for p in ("float32", "int8", "nf4")), said[-2000:]
    else:
        assert "itself ran unquantized" in said
    if profile == "t4":
        # the 8B does not fit a T4 in 16 bits: 4-bit's factor is taken against the 16-bit model on
        # the cheapest GPU that holds it, and the curve states that basis
        assert "computed start: Qwen/Qwen3-8B, bfloat16" in printed and "does not fit a T4" in printed
        four = next(line for line in printed.splitlines() if line.startswith("+ 4-bit "))
        assert "x vs target (computed)" in four
    else:
        assert "computed start" not in printed
    if profile == "t4":      # no two labels of the t4 rehearsal's curve figure overlap
        assert_curve_labels_apart(tmp_path / "rehearsal_results.jsonl", tmp_path / "curve.png")


def assert_curve_labels_apart(results, png) -> None:
    """Draw the curve of ``results`` and measure every text's rendered extent (matplotlib's renderer)."""
    import matplotlib.pyplot as plt

    from utils.chart import overlapping_labels
    from utils.curve import curve_rows, plot
    from utils.results import ResultsStore
    records = ResultsStore(results).records()
    price = records[-1]["settings"]["price_per_hour"]
    fig = plot(curve_rows(records, price), records, png, price, keep_open=True)
    try:
        assert overlapping_labels(fig) == []
    finally:
        plt.close(fig)


def test_make_gpu_check_dry_run_on_a_cpu(tmp_path):
    """`make gpu-check` without a GPU: every step runs at reduced size and one report says so."""
    from utils.tools import gpu_suite
    assert gpu_suite.main(["--out", str(tmp_path), "--notebooks", "07"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "CPU dry run" in report and "| notebooks-t4 | skipped (no GPU) |" in report
    for step in ("preflight", "reference", "notebooks", "benchmark"):
        assert f"| {step} | ok |" in report
    bench = [json.loads(line) for line in (tmp_path / "benchmark.jsonl").read_text().splitlines()]
    assert bench and all(r["settings"]["random_weights"] for r in bench)


def test_checkpoints_give_no_verdict_in_a_rehearsal(monkeypatch, capsys):
    from utils.session import verdict
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    verdict(False, "fine", "too slow")
    assert capsys.readouterr().out.startswith("CHECK THIS: too slow")
    monkeypatch.setenv(rehearsal.ENV, "1")
    verdict(False, "fine", "too slow")
    assert capsys.readouterr().out.startswith("REHEARSAL (random weights), no verdict")


def test_price_follows_the_detected_gpu(hw):
    from utils.data import price_key
    from utils.models.profiles import get_profile
    a100 = get_profile("a100-80")
    assert price_key(hw["H100"], a100) == "H100-SXM"          # not the A100-80 of its profile
    assert price_key(hw["none"], get_profile("offline")) == "cpu-laptop"
    odd = Hardware(device="cuda", gpu_name="NVIDIA RTX A2000", compute_capability=(8, 6), vram_gb=12.0)
    assert price_key(odd, get_profile("t4")) == "T4"          # unknown GPU: the profile's key
    t4 = emulate.emulate(hw["H100"], emulate.TARGETS["t4"], apply_limits=False)
    assert price_key(t4, a100) == "T4"                        # emulating a T4 prices a T4


def test_a_rehearsal_leaves_the_callers_environment_alone(tmp_path, monkeypatch):
    """Notebook tests after a rehearsal must not inherit its random-weight switches."""
    import os
    from utils.tools import rehearse
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    before = dict(os.environ)
    rehearse.main(["--profile", "t4", "--reduced", "--notebooks", "none-such", "--out", str(tmp_path)])
    assert dict(os.environ) == before


@pytest.mark.parametrize("model", ["offline:target", "offline:draft", "offline:baseline"])
def test_reduced_configs_are_valid_transformers_configs(model):
    from transformers import AutoConfig
    from utils.models.refs import real_config
    from utils.models.profiles import ModelRef
    cfg = rehearsal.reduced_config(real_config(ModelRef(model, "local")))
    AutoConfig.for_model(cfg.pop("model_type"), **{k: v for k, v in cfg.items() if not k.startswith("_")})


def test_headless_notebook_runs_report_a_failing_cell_and_go_on(tmp_path, capsys):
    import nbformat
    from utils.lab import run_notebooks
    folder = tmp_path / "nbs"
    folder.mkdir()
    for name, code in [("a_fails", "raise ValueError('learner typo')"), ("b_runs", "x = 1")]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nbformat.write(nb, folder / f"{name}.ipynb")
    assert run_notebooks(folder, tmp_path / "out") is False
    out = capsys.readouterr().out
    assert "a_fails.ipynb" in out and "FAILED at cell 0: ValueError: learner typo" in out
    assert "ran b_runs.ipynb" in out and (tmp_path / "out" / "b_runs.ipynb").is_file()


def test_plots_are_labelled_in_a_rehearsal_only(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from utils.session import Lab
    lab = Lab.__new__(Lab)
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    fig = plt.figure()
    lab.mark(fig)
    assert fig._suptitle is None
    monkeypatch.setenv(rehearsal.ENV, "reduced")
    lab.mark(fig)
    assert rehearsal.LABEL in fig._suptitle.get_text()
    plt.close(fig)


def test_a_section_records_a_refusal_or_a_failure_frees_the_model_and_goes_on(tmp_path, cpu_hw, monkeypatch):
    from utils.tools import gpu_check
    from utils.memory import ModelTooLargeError
    from utils.models.profiles import ModelRef
    check = gpu_check.GpuCheck(cpu_hw, tmp_path, budget=gpu_check.Budget(600))
    freed = []
    monkeypatch.setattr(gpu_check, "free", freed.append)
    ref = ModelRef("m", "main")

    def refuse(*args):
        raise ModelTooLargeError("m at float16 needs about 17.5 GB")

    def unreachable(loaded):
        raise AssertionError("not reached: the load failed")

    def boom(loaded):
        assert loaded == "model"
        raise RuntimeError("boom")                    # recorded; the run goes on
    monkeypatch.setattr(check, "load", refuse)
    check.with_model("precision", dict(model="m", precision="float16"), ref, "float16", unreachable,
                     refusal_is_finding=True)
    check.with_model("batch", dict(model="m", batch=64), ref, "float16", unreachable)
    monkeypatch.setattr(check, "load", lambda *a: "model")
    check.with_model("compile", dict(model="m", precision="float16"), ref, "float16", boom)
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert rows[0]["metrics"] == {"refused": "m at float16 needs about 17.5 GB"}
    assert rows[1]["metrics"]["error"].startswith("ModelTooLargeError")         # a failure elsewhere
    assert rows[2]["metrics"]["error"] == "RuntimeError: boom"
    assert freed == [None, None, "model"]



# --- what stops a notebook outside its cells is named, and never hangs the run ----------------
RUNNER = r'''
import json, os, signal, sys, threading, time
from pathlib import Path
import nbformat
sys.path.insert(0, {repo!r})
from utils.tools.rehearse import run_notebook
folder = Path({folder!r})
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in {cells!r}])
nbformat.write(nb, folder / "probe.ipynb")
if {signal_me!r}:
    def later():
        while not (folder / "started").exists():
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=later, daemon=True).start()
print(json.dumps(run_notebook(folder / "probe.ipynb", {{}}, {timeout}, False, None)))
'''


def run_probe(tmp_path, cells, timeout=60, signal_me=False) -> tuple[dict, float]:
    import subprocess
    import sys
    import time
    code = RUNNER.format(repo=str(Path(__file__).resolve().parent.parent), folder=str(tmp_path), cells=cells,
                         signal_me=signal_me, timeout=timeout)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def test_a_signal_to_the_rehearsal_is_named_an_interruption_not_an_empty_assertion(tmp_path):
    started = f"open({str(tmp_path / 'started')!r}, 'w').close()"
    row, seconds = run_probe(tmp_path, [f"import time\n{started}\ntime.sleep(60)"], signal_me=True)
    assert not row["ok"] and row.get("interrupted") is True
    assert row["error"].startswith("interrupted: this process received SIGINT or SIGTERM") and seconds < 50


def test_a_kernel_that_dies_is_reported_at_once_instead_of_hanging_the_run(tmp_path):
    row, seconds = run_probe(tmp_path, ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    assert not row["ok"] and "DeadKernelError" in row["error"] and seconds < 50


def test_a_cell_past_its_timeout_is_stopped_and_named(tmp_path):
    row, seconds = run_probe(tmp_path, ["import time\ntime.sleep(30)"], timeout=2)
    assert not row["ok"] and "CellTimeoutError" in row["error"] and seconds < 25
