"""GPU reference measurements at real size with random weights, and their report.

    python -m utils.tools.gpu_check --models Qwen/Qwen3-8B Qwen/Qwen3-14B --out results/gpu_check
    LLMFLATION_EMULATE=t4 python -m utils.tools.gpu_check --models Qwen/Qwen3-8B    # under a T4's limits
    LLMFLATION_RANDOM_WEIGHTS=reduced python -m utils.tools.gpu_check               # CPU dry run

For each model, built from its config with random weights (no download):

* ``precision``: decode tokens/s at the compute dtype, int8 and NF4, with the
  fraction of the bandwidth roofline (datasheet bandwidth, and the copy
  bandwidth measured on this GPU), peak memory, weights measured vs predicted;
* ``attention``: prefill time per attention implementation and per forced SDPA
  backend at each prompt length, with the kernel that ran (profiler names);
* ``batch``: throughput across batch sizes;
* ``compile``: a static KV cache (which transformers compiles on a GPU) against
  the default dynamic cache.

Each measurement is appended to ``records.jsonl`` as it is made and the report
``report.md`` is rewritten after each, so a run stopped at its time budget
(``--budget-s``) keeps what it measured. A failure is recorded with its error
and the run goes on. Every figure is labelled "random weights: speed and memory
real, quality not"; under emulation, timings are the host GPU's.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import time
import traceback
from pathlib import Path

from .. import cli
from ..cost import roofline_tokens_per_s
from ..data import gpu, gpu_key_for
from ..models.hardware import Hardware, detect_hardware, synchronize
from ..models.loading import free, load_model, model_config
from ..attention import REPEAT_KV, BackendUnavailable, attention_kernel, force_sdpa
from ..measure import ATTENTION_NAME_PARTS, measure_generation, measure_prefill, profiled_kernels
from ..memory import ModelShape, ModelTooLargeError, measured_weight_bytes
from ..models.profiles import ModelRef
from ..quality import heldout_text
from ..quiet import quiet_transformers
from .gpu_report import report, write_report  # noqa: F401 - report re-exported
from ..models.rehearsal import LABEL
from ..results import ResultsStore, run_context

SECTIONS = ("precision", "attention", "batch", "compile")
SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def copy_bandwidth_gbs(device: str, gb: float = 2.0, repeats: int = 10) -> float | None:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written (GPU only)."""
    if device != "cuda":
        return None
    import torch
    n = int(gb * 1e9 / 2)
    src = torch.empty(n, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * 2 / seconds / 1e9


class Budget:
    """A wall-clock budget: steps that would start too late are skipped and recorded as such."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


class GpuCheck:
    """Runs the sections for one model after another, recording as it goes."""

    def __init__(self, hw: Hardware, out: Path, *, budget: Budget, prompt_tokens: int = 128,
                 new_tokens: int = 64, warmup: int = 1, repeats: int = 3,
                 prefill_tokens=(512, 2048, 4096), batch_sizes=(1, 4, 16, 64), log=print):
        self.hw, self.out, self.budget, self.log = hw, out, budget, log
        self.prompt_tokens, self.new_tokens = prompt_tokens, new_tokens
        self.warmup, self.repeats = warmup, repeats
        self.prefill_tokens, self.batch_sizes = list(prefill_tokens), list(batch_sizes)
        self.store = ResultsStore(out / "records.jsonl")
        self.context = dict(run_context(hw), driver=driver_version(), label=LABEL)
        self.text = heldout_text()
        self.gpu_key = gpu_key_for(hw.host_gpu or hw.gpu_name, hw.vram_gb) if hw.device == "cuda" \
            else "cpu-laptop"
        self.bandwidth = gpu(self.gpu_key)["bandwidth_gbs"]
        self.copy_bw = copy_bandwidth_gbs(hw.device)

    # --- bookkeeping ---------------------------------------------------------
    def record(self, section: str, settings: dict, metrics: dict) -> None:
        settings = dict(settings, random_weights=True, emulated=self.hw.emulated)
        self.store.append("gpu_check", step=section, settings=settings, metrics=metrics,
                          context=self.context)
        write_report(self.out)

    def failed(self, section: str, settings: dict, err: BaseException) -> None:
        self.log(f"[{section}] FAILED {settings}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
        self.record(section, settings, dict(error=f"{type(err).__name__}: {err}"[:2000],
                                            traceback=traceback.format_exc()[-4000:]))

    def time_left(self, section: str, settings: dict, need_s: float) -> bool:
        if self.budget.left() >= need_s:
            return True
        self.log(f"[{section}] skipped {settings}: time budget spent")
        self.record(section, settings, dict(skipped="time budget spent"))
        return False

    def load(self, ref: ModelRef, precision: str, attn: str = "sdpa"):
        return load_model(ref, precision, attn_implementation=attn, hw=self.hw, random_weights=True)

    def with_model(self, section: str, settings: dict, ref: ModelRef, precision: str, work,
                   attn: str = "sdpa", refusal_is_finding: bool = False) -> None:
        """Load ``ref`` and run ``work(loaded)``; whatever fails (the load included) is recorded
        and the run goes on, and the model is freed either way. With ``refusal_is_finding``, the
        kit's refusal before loading (ModelTooLargeError) is recorded as a finding, not a failure."""
        loaded = None
        try:
            loaded = self.load(ref, precision, attn)
            work(loaded)
        except ModelTooLargeError as err:
            if not refusal_is_finding:
                self.failed(section, settings, err)
            else:
                self.record(section, settings, dict(refused=str(err)))
                self.log(f"[{section}] {ref.id} {precision}: refused before loading: {err}")
        except Exception as err:    # noqa: BLE001 - recorded, and the run goes on
            self.failed(section, settings, err)
        finally:
            free(loaded)

    def generation(self, loaded, *, batch: int = 1, prompt_tokens: int | None = None, warmup=None,
                   **kwargs):
        return measure_generation(loaded.model, loaded.tokenizer, self.text,
                                  prompt_tokens=prompt_tokens or self.prompt_tokens,
                                  new_tokens=self.new_tokens, batch=batch,
                                  warmup=self.warmup if warmup is None else warmup,
                                  repeats=self.repeats, device=self.hw.device, **kwargs)

    # --- sections ------------------------------------------------------------
    def precision(self, ref: ModelRef, precisions: list[str]) -> None:
        shape = ModelShape.from_config(model_config(ref))
        context = self.prompt_tokens + self.new_tokens
        for order, precision in enumerate(precisions):
            settings = dict(model=ref.id, precision=precision, attn_implementation="sdpa",
                            prompt_tokens=self.prompt_tokens, new_tokens=self.new_tokens, order=order)
            if not self.time_left("precision", settings, 90):
                continue

            def work(loaded):
                m = self.generation(loaded)
                roof = roofline_tokens_per_s(shape, precision, self.bandwidth, context=context,
                                             compute_dtype=self.hw.compute_dtype)
                copy_roof = (roofline_tokens_per_s(shape, precision, self.copy_bw, context=context,
                                                   compute_dtype=self.hw.compute_dtype)
                             if self.copy_bw else None)
                metrics = dict(m.as_dict(), roofline_tok_s=roof, roofline_fraction=m.decode_tok_s.median / roof,
                               bandwidth_gbs=self.bandwidth, gpu_key=self.gpu_key,
                               copy_bandwidth_gbs=self.copy_bw,
                               copy_roofline_fraction=m.decode_tok_s.median / copy_roof if copy_roof else None,
                               weights_gb=measured_weight_bytes(loaded.model) / 1e9,
                               predicted_weights_gb=loaded.predicted.weights_gb,
                               load_s=loaded.load_seconds)
                self.record("precision", settings, metrics)
                self.log(f"[precision] {ref.id} {precision}: {m.decode_tok_s.median:.1f} decode tok/s "
                         f"({metrics['roofline_fraction']:.0%} of the {roof:.0f} tok/s roofline), "
                         f"peak {m.peak_memory_gb:.2f} GB, load {loaded.load_seconds:.0f}s")
            self.with_model("precision", settings, ref, precision, work, refusal_is_finding=True)

    def work_precision(self, ref: ModelRef) -> str:
        """The precision the attention, batch and compile sections run at: the compute dtype
        where the model fits (as on a big GPU), else NF4 (as the notebooks do on a T4)."""
        from ..models.hardware import available_gb
        from ..memory import check_fits, predict_memory
        shape = ModelShape.from_config(model_config(ref))
        try:
            check_fits(predict_memory(shape, self.hw.compute_dtype, context=2048,
                                      compute_dtype=self.hw.compute_dtype), available_gb(self.hw))
            return self.hw.compute_dtype
        except ModelTooLargeError:
            return "nf4"

    def attention(self, ref: ModelRef, implementations: list[str]) -> None:
        precision = self.work_precision(ref)
        for attn in implementations:
            settings = dict(model=ref.id, precision=precision, attn_implementation=attn)
            if not self.time_left("attention", settings, 60):
                continue

            def work(loaded):
                forceable = attn in ("sdpa", REPEAT_KV) and self.hw.device == "cuda"
                variants = [None] + (list(SDPA_BACKENDS) if forceable else [])
                for backend in variants:
                    for n in self.prefill_tokens:
                        self.prefill_one(loaded, dict(settings, sdpa_backend=backend, prompt_tokens=n))
            self.with_model("attention", settings, ref, precision, work, attn)

    def prefill_one(self, loaded, settings: dict) -> None:
        backend, n = settings["sdpa_backend"], settings["prompt_tokens"]
        if not self.time_left("attention", settings, 10):
            return
        forced = force_sdpa(backend, self.hw) if backend else contextlib.nullcontext()
        try:
            with forced:
                names = profiled_kernels(loaded.model, loaded.tokenizer, self.text, prompt_tokens=n,
                                         device=self.hw.device)
                stat, peak = measure_prefill(loaded.model, loaded.tokenizer, self.text, prompt_tokens=n,
                                             warmup=self.warmup, repeats=self.repeats, device=self.hw.device)
        except (BackendUnavailable, RuntimeError) as err:   # a backend this GPU or model cannot use
            self.record("attention", settings, dict(unavailable=str(err).splitlines()[0][:500]))
            self.log(f"[attention] {settings['attn_implementation']} {backend or 'default'} {n}: "
                     f"unavailable ({str(err).splitlines()[0][:80]})")
            return
        kernel = attention_kernel(names)
        keys = ATTENTION_NAME_PARTS + ("bmm", "gemm")    # and the matmuls around eager/math attention
        self.record("attention", settings, dict(prefill_s=stat, peak_memory_gb=peak, kernel=kernel,
                                                kernel_names=[k for k in names
                                                              if any(x in k.lower() for x in keys)]))
        self.log(f"[attention] {settings['attn_implementation']} {backend or 'default'} {n}: "
                 f"{stat.median * 1e3:.1f} ms, ran {kernel}")

    def batch(self, ref: ModelRef) -> None:
        precision = self.work_precision(ref)
        shape = ModelShape.from_config(model_config(ref))
        settings = dict(model=ref.id, precision=precision, attn_implementation="sdpa")
        if not self.time_left("batch", settings, 60):
            return

        def work(loaded):
            for b in self.batch_sizes:
                one = dict(settings, batch=b, prompt_tokens=self.prompt_tokens, new_tokens=self.new_tokens)
                if not self.time_left("batch", one, 20):
                    continue
                try:
                    m = self.generation(loaded, batch=b)
                except Exception as err:    # noqa: BLE001 - e.g. out of memory at a large batch
                    self.failed("batch", one, err)
                    continue
                roof = roofline_tokens_per_s(shape, precision, self.bandwidth, batch=b,
                                             context=self.prompt_tokens + self.new_tokens,
                                             compute_dtype=self.hw.compute_dtype)
                self.record("batch", one, dict(m.as_dict(), roofline_tok_s=roof,
                                               roofline_fraction=m.decode_tok_s.median / roof))
                self.log(f"[batch] {b}: {m.e2e_tok_s.median:.1f} tok/s end to end, "
                         f"{m.decode_tok_s.median:.1f} decode, peak {m.peak_memory_gb:.2f} GB")
        self.with_model("batch", settings, ref, precision, work)

    def compile(self, ref: ModelRef) -> None:
        precision = self.work_precision(ref)
        settings = dict(model=ref.id, precision=precision, attn_implementation="sdpa")
        if not self.time_left("compile", settings, 120):
            return

        def work(loaded):
            import torch
            default = self.generation(loaded)
            self.record("compile", dict(settings, cache_implementation="dynamic", compiled=False),
                        default.as_dict())
            torch._dynamo.reset()
            before = sum(torch._dynamo.utils.counters["stats"].values())
            static = self.generation(loaded, warmup=self.warmup + 2, cache_implementation="static")
            compiled = sum(torch._dynamo.utils.counters["stats"].values()) > before
            self.record("compile", dict(settings, cache_implementation="static", compiled=compiled),
                        dict(static.as_dict(), speedup_vs_dynamic=static.decode_tok_s.median
                             / default.decode_tok_s.median))
            self.log(f"[compile] dynamic {default.decode_tok_s.median:.1f} -> static "
                     f"{'compiled' if compiled else 'not compiled'} {static.decode_tok_s.median:.1f} decode tok/s")
        self.with_model("compile", settings, ref, precision, work)

    def run(self, models: list[str], sections: list[str], precisions: list[str],
            attention: list[str]) -> None:
        """Every model's unprofiled sections first, the profiled attention section last: the
        profiler's CUDA tracing is not torn down and slows later work in the same process. The
        precision section measures its first precision again at its end (A, B, ..., A), so the
        report shows how far the machine drifted while the others ran."""
        for model in models:
            ref = ModelRef(model, "main")
            if "precision" in sections:
                self.precision(ref, precisions + precisions[:1] if len(precisions) > 1 else precisions)
            if "batch" in sections:
                self.batch(ref)
            if "compile" in sections:
                self.compile(ref)
        if "attention" in sections:
            for model in models:
                self.attention(ModelRef(model, "main"), attention)


@cli.command
def main(argv=None) -> int:
    from ..models import rehearsal

    parser = argparse.ArgumentParser(description="GPU reference measurements with random weights.")
    parser.add_argument("--models", nargs="+", default=["Qwen/Qwen3-8B"])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--precisions", nargs="+", help="default: compute dtype, nf4, int8")
    parser.add_argument("--attention", nargs="+", default=["eager", "sdpa", REPEAT_KV])
    parser.add_argument("--prefill-tokens", nargs="+", type=int, default=[512, 2048, 4096])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=3600, help="stop starting new steps after this")
    parser.add_argument("--out", default="results/gpu_check")
    args = parser.parse_args(argv)

    quiet_transformers()
    hw = detect_hardware()
    reduced = rehearsal.mode() == "reduced"
    prefill = [min(n, 256) for n in args.prefill_tokens] if reduced else args.prefill_tokens
    batches = [b for b in args.batch_sizes if b <= 4] if reduced else args.batch_sizes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check = GpuCheck(hw, out, budget=Budget(args.budget_s), new_tokens=12 if reduced else args.new_tokens,
                     repeats=2 if reduced else args.repeats, prefill_tokens=sorted(set(prefill)),
                     batch_sizes=batches)
    print(f"hardware: {hw.summary()}\n{LABEL.upper()}\nrecords:  {check.store.path}", flush=True)
    precisions = args.precisions or [hw.compute_dtype, "nf4", "int8"]
    check.run(args.models, args.sections, precisions, args.attention)
    print(f"report:   {write_report(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
