"""The measurement harness: time generation the way the design's rules say.

Rules: synchronize the device before every clock read; warm up; repeat and
report the median with its spread; count only generated tokens for decode and
report prefill separately; peak memory from the framework's counters on GPU
and the process's peak resident memory (sampled) on CPU.

Definitions (after optimum-benchmark and llmperf):

* **prefill**: wall time of ``generate`` with one new token (prompt processing
  plus the first token).
* **TTFT**: time from calling ``generate`` to the first generated token.
* **inter-token latency (ITL)**: gaps between consecutive generated tokens.
* **decode tokens/s**: ``batch * (new_tokens - 1) / (total - prefill)``.
* **end-to-end tokens/s**: ``batch * new_tokens / total``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from .cli import UserError
from .models.hardware import synchronize
from .models.refs import context_limit

GB = 1e9


AGREE_PCT = 10   # repeats whose spread ((max - min) / median) stays within this agree (notebook 01)


@dataclass(frozen=True)
class Stat:
    """Median and spread (min, max) of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        if not values:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent: how much the repeats disagree."""
        return 100 * (self.high - self.low) / self.median if self.median else 0.0

    def __str__(self) -> str:
        return f"{self.median:.4g} [{self.low:.4g}-{self.high:.4g}, n={self.n}]"

    def overlaps(self, other: "Stat") -> bool:
        """Whether the two ranges of repeats overlap: then which is larger is not established."""
        return self.low <= other.high and other.low <= self.high


def versus(a: Stat, b: Stat) -> str:
    """``a`` as a multiple of ``b`` (medians), marked by whether the repeats separate them:
    '1.52x' when the ranges do not overlap, '0.97x (within noise)' when they do."""
    ratio = f"{a.median / b.median:.2f}x" if b.median else "n/a"
    return f"{ratio} (within noise)" if a.overlaps(b) else ratio


@dataclass
class Measurement:
    """One configuration's timing summary; ``as_dict`` goes into the results store."""

    batch: int
    prompt_tokens: int
    new_tokens: int
    prefill_s: Stat
    total_s: Stat
    decode_tok_s: Stat
    e2e_tok_s: Stat
    peak_memory_gb: float
    memory_source: str
    ttft_s: Stat | None = None
    itl_s: Stat | None = None
    raw: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"batch {self.batch}, prompt {self.prompt_tokens} tokens, {self.new_tokens} new tokens",
                 f"  prefill        {self.prefill_s.median * 1e3:8.1f} ms  (spread {self.prefill_s.spread_pct:.0f}%)"]
        if self.ttft_s is not None:
            lines.append(f"  TTFT           {self.ttft_s.median * 1e3:8.1f} ms")
            lines.append(f"  inter-token    {self.itl_s.median * 1e3:8.2f} ms")
        lines += [f"  decode         {self.decode_tok_s.median:8.1f} tokens/s (spread {self.decode_tok_s.spread_pct:.0f}%)",
                  f"  end-to-end     {self.e2e_tok_s.median:8.1f} tokens/s",
                  f"  peak memory    {self.peak_memory_gb:8.3f} GB ({self.memory_source})"]
        return "\n".join(lines)


class TimingStreamer:
    """A generate() streamer that timestamps every generated token (batch 1).

    transformers calls ``put`` once with the prompt, then once per new token.
    The device is synchronized before each timestamp.
    """

    def __init__(self, device: str):
        self.device = device
        self.start = 0.0              # set by the caller just before generate()
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        synchronize(self.device)
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


class PeakMemory:
    """Peak memory over a block: CUDA allocator counters, or sampled process RSS on CPU."""

    def __init__(self, device: str, interval_s: float = 0.01):
        self.device, self.interval = device, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()

    @property
    def source(self) -> str:
        return "torch.cuda.max_memory_allocated" if self.device == "cuda" else "process RSS (sampled)"

    def __enter__(self):
        if self.device == "cuda":
            import torch
            torch.cuda.reset_peak_memory_stats()
        else:
            import psutil
            proc = psutil.Process()
            self.peak_bytes = proc.memory_info().rss

            def sample():
                while not self._stop.wait(self.interval):
                    self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            import torch
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            import psutil
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)
        return False


class ContextTooLongError(UserError, ValueError):
    """A request longer than the model reads (prompt + new tokens past its context): refused before
    it runs, since a model with learned positions fails mid-step (GPT-2: IndexError) and one with
    rotary positions would be timed on a length it was never trained for."""


def check_context(model, prompt_tokens: int, new_tokens: int = 0) -> None:
    """Raise :class:`ContextTooLongError` when ``prompt_tokens + new_tokens`` is more than ``model``
    reads, naming the model, the request, its limit and what to change."""
    config = getattr(model, "config", None)
    limit = context_limit(config) if config is not None else None
    if limit is None or prompt_tokens + new_tokens <= limit:
        return
    name = getattr(config, "_name_or_path", None) or type(model).__name__
    raise ContextTooLongError(
        f"{name} reads at most {limit} tokens, and this request is {prompt_tokens} prompt + {new_tokens} new "
        f"= {prompt_tokens + new_tokens}: nothing was measured. Lower the profile's prompt_tokens to at most "
        f"{max(limit - new_tokens, 0)} (utils/models/profiles.toml, or your own profile file), or choose a "
        f"model with a longer context")


def make_inputs(tokenizer, text: str, prompt_tokens: int, batch: int = 1, device: str = "cpu"):
    """Exactly ``prompt_tokens`` tokens of ``text`` (repeated if short), ``batch`` times."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError("the prompt text produced no tokens")
    while len(ids) < prompt_tokens:
        ids = ids + ids
    row = torch.tensor(ids[:prompt_tokens], dtype=torch.long)
    input_ids = row.unsqueeze(0).repeat(batch, 1).to(device)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def _generate(model, inputs, new_tokens: int, device: str, streamer=None, **kwargs) -> float:
    import torch

    synchronize(device)
    start = time.perf_counter()
    if streamer is not None:
        streamer.start = start
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, streamer=streamer, **kwargs)
    synchronize(device)
    return time.perf_counter() - start


RETRIES = 2    # times a repeat whose 1-token run outlasted its full run is measured again


class ImpossibleTimingError(ValueError):
    """A timing that cannot be a measurement (no decode time left to divide by): refused, never clamped."""


def measure_generation(model, tokenizer, text: str, *, prompt_tokens: int, new_tokens: int,
                       batch: int = 1, warmup: int = 1, repeats: int = 3, device: str = "cpu",
                       **generate_kwargs) -> Measurement:
    """Warm up, then time ``repeats`` greedy generations of exactly ``new_tokens`` tokens.

    Per-token timestamps (TTFT, ITL) are taken at batch 1, where transformers'
    streamers work; larger batches report prefill and throughput.
    """
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2 to separate decode from prefill")
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    check_context(model, prompt_tokens, new_tokens)
    inputs = make_inputs(tokenizer, text, prompt_tokens, batch, device)
    gen = dict(pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **generate_kwargs)
    for _ in range(warmup):              # both calls timed below: a first one-token call can cost more
        _generate(model, inputs, 1, device, **gen)
        _generate(model, inputs, new_tokens, device, **gen)
    prefill, total, ttft, itl = [], [], [], []
    with PeakMemory(device) as mem:
        for _ in range(repeats):
            for _ in range(RETRIES + 1):       # a busy moment can invert one repeat: measure it again
                p = _generate(model, inputs, 1, device, **gen)
                streamer = TimingStreamer(device) if batch == 1 else None
                t = _generate(model, inputs, new_tokens, device, streamer=streamer, **gen)
                if t > p > 0:
                    break
            prefill.append(p)
            total.append(t)
            if streamer is not None and streamer.times:
                ttft.append(streamer.times[0] - streamer.start)
                itl += [b - a for a, b in zip(streamer.times, streamer.times[1:])]
    bad = [i for i, (t, p) in enumerate(zip(total, prefill)) if not t > p > 0]
    if bad:
        raise ImpossibleTimingError(
            f"impossible timing in repeat {bad[0] + 1} ({RETRIES + 1} tries): generating 1 token took "
            f"{prefill[bad[0]]:.4f} s but {new_tokens} tokens took {total[bad[0]]:.4f} s, so there is "
            f"no decode time to divide by. The first runs were probably still warming up (warmup="
            f"{warmup}) or the machine was busy: measure again with warmup >= 1. Nothing was recorded.")
    decode = [batch * (new_tokens - 1) / (t - p) for t, p in zip(total, prefill)]
    e2e = [batch * new_tokens / t for t in total]
    return Measurement(
        batch=batch, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
        prefill_s=Stat.of(prefill), total_s=Stat.of(total), decode_tok_s=Stat.of(decode),
        e2e_tok_s=Stat.of(e2e), peak_memory_gb=mem.peak_bytes / GB, memory_source=mem.source,
        ttft_s=Stat.of(ttft) if ttft else None, itl_s=Stat.of(itl) if itl else None,
        raw=dict(prefill_s=prefill, total_s=total))


def measure_prefill(model, tokenizer, text: str, *, prompt_tokens: int, batch: int = 1,
                    warmup: int = 1, repeats: int = 3, device: str = "cpu") -> tuple[Stat, float]:
    """Time one forward pass over the prompt (prefill alone) and its peak memory in GB. What it was
    asked to time is kept for :func:`prefill_settings`."""
    import torch

    check_context(model, prompt_tokens)
    inputs = make_inputs(tokenizer, text, prompt_tokens, batch, device)
    settings = dict(attn_implementation=getattr(getattr(model, "config", None), "_attn_implementation", None),
                    sdpa_allowed=sdpa_allowed(), prompt_tokens=prompt_tokens, batch=batch)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(**inputs)
        with PeakMemory(device) as mem:
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                model(**inputs)
                synchronize(device)
                times.append(time.perf_counter() - start)
    stat = Stat.of(times)
    _PREFILLS.append((stat, settings))
    return stat, mem.peak_bytes / GB


# What each measure_prefill call of this process timed, newest last (a checkpoint asks how a
# learner's Stat was measured instead of guessing it from the times, which a busy machine moves).
_PREFILLS: collections.deque = collections.deque(maxlen=1000)


def sdpa_allowed() -> list[str]:
    """The SDPA backends PyTorch may dispatch to right now ("flash", "efficient", "math", "cudnn"):
    ``torch.nn.attention.sdpa_kernel`` (and :func:`utils.attention.force_sdpa`) narrow them."""
    import torch
    b = torch.backends.cuda
    return [name for name, on in (("flash", b.flash_sdp_enabled()), ("efficient", b.mem_efficient_sdp_enabled()),
                                  ("math", b.math_sdp_enabled()), ("cudnn", b.cudnn_sdp_enabled())) if on]


def prefill_settings(stat: Stat, tolerance_s: float = 5e-6) -> dict | None:
    """What :func:`measure_prefill` was asked to time when it returned ``stat`` in this process: the
    model's ``attn_implementation``, the SDPA backends allowed (``sdpa_allowed``), ``prompt_tokens``
    and ``batch``; None when no call returned it. Matched on median, low and high within
    ``tolerance_s`` and on n, so a Stat rounded to the 0.01 ms the notebooks print still matches."""
    for logged, settings in reversed(_PREFILLS):
        if logged.n == getattr(stat, "n", None) and all(
                abs(getattr(logged, k) - getattr(stat, k)) <= tolerance_s + 1e-12 for k in ("median", "low", "high")):
            return dict(settings)
    return None


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide what C++ code writes straight to file descriptor 2 (the profiler's start/stop
    lines); Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# parts of operator and kernel names that belong to attention (eager's softmax, SDPA's kernels)
ATTENTION_NAME_PARTS = ("attention", "softmax", "flash", "sdpa", "cudnn", "fmha")


def attention_ops(model, tokenizer, text: str, *, prompt_tokens: int = 32, device: str = "cpu") -> list[str]:
    """The attention-related operators that actually ran in one forward pass (torch.profiler).

    Shows which kernel PyTorch dispatched to: e.g. ``aten::_scaled_dot_product_flash_attention_for_cpu``,
    ``aten::_scaled_dot_product_efficient_attention`` (the T4's SDPA kernel),
    ``aten::_scaled_dot_product_flash_attention``, ``aten::_scaled_dot_product_cudnn_attention``,
    or, for eager attention, ``aten::softmax`` between two matmuls.
    """
    return [k for k in profiled_kernels(model, tokenizer, text, prompt_tokens=prompt_tokens, device=device)
            if any(x in k.lower() for x in ATTENTION_NAME_PARTS)]



def profiled_kernels(model, tokenizer, text: str, *, prompt_tokens: int = 32,
                     device: str = "cpu") -> list[str]:
    """Names of every operator and CUDA kernel that ran in one forward pass (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import warnings

    check_context(model, prompt_tokens)
    inputs = make_inputs(tokenizer, text, prompt_tokens, 1, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with warnings.catch_warnings():
        # "Profiler clears events at the end of each cycle": advice for multi-step schedules
        warnings.filterwarnings("ignore", message=".*Profiler clears events.*")
        with _native_stderr_silenced(), torch.inference_mode(), profile(activities=activities) as prof:
            model(**inputs)
            synchronize(device)
    return sorted({e.key for e in prof.key_averages()})
