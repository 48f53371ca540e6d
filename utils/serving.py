"""Serving economics: one request trace through static and continuous batching.

A provider does not serve one request of a fixed length: requests of mixed prompt and output
lengths arrive over time. This module makes such a trace (seeded, so it is the same for every
learner), replays it in real time through two engines and times every token:

* **static batching**: requests are grouped in arrival order into padded batches of ``batch``
  and each batch runs one ``generate`` call, which lasts until its longest request is done
  (shorter ones sit idle in their slot, and the next batch waits);
* **continuous batching**: transformers' continuous-batching manager
  (``model.init_continuous_batching``) with its paged KV cache: a request joins the running
  batch as soon as it arrives and leaves it as soon as it is done.

Per request: time to first token (TTFT, from its arrival) and inter-token latency (ITL).
Per run: useful output tokens per second (tokens a request asked for, over the time from the
first arrival to the last token) and, with a price, $/1M tokens.

KV-cache memory is computed from the trace for three layouts (the formulas are in
:func:`kv_layouts`) and, for static batches, measured from the cache tensors ``generate``
returns. Prefix caching is measured as the prompt tokens the manager found already cached.
"""

from __future__ import annotations

import math
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field

from .cost import cost_per_million
from .models.refs import ModelLoadError


@dataclass(frozen=True)
class Request:
    id: str
    arrival_s: float              # seconds after the trace starts
    prompt_ids: tuple[int, ...]
    new_tokens: int


def make_trace(tokenizer, text: str, n: int = 12, *, seed: int = 0, rate_per_s: float = 20.0,
               prompt: tuple[int, int] = (16, 128), new: tuple[int, int] = (4, 48),
               shared_prefix: int = 0) -> list[Request]:
    """``n`` requests with seeded, mixed lengths, arriving as a Poisson process.

    Prompt and output lengths are drawn log-uniformly between the bounds (many short requests,
    a few long ones, as in chat traffic); gaps between arrivals are exponential with mean
    ``1 / rate_per_s``. Prompts are windows of ``text`` at seeded offsets. ``shared_prefix``
    tokens (a system prompt) are put before every prompt, the same for all."""
    if n < 1 or rate_per_s <= 0 or not (1 <= prompt[0] <= prompt[1]) or not (2 <= new[0] <= new[1]):
        raise ValueError("a trace needs n >= 1, a positive rate, and bounds 1 <= low <= high "
                         "(outputs of at least 2 tokens)")
    rng = random.Random(seed)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    system = ids[:shared_prefix]
    body = ids[shared_prefix:]

    def log_uniform(low, high):
        return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))

    trace, clock = [], 0.0
    for i in range(n):
        length, out = log_uniform(*prompt), log_uniform(*new)
        start = rng.randrange(0, max(1, len(body) - length))
        trace.append(Request(f"r{i:02d}", round(clock, 4), tuple(system + body[start:start + length]), out))
        clock += rng.expovariate(rate_per_s)
    return trace


@dataclass
class Served:
    """One request as served: when it arrived and when each of its tokens came out (seconds
    after the trace started)."""

    request: Request
    token_times: list[float]

    @property
    def ttft_s(self) -> float:
        return self.token_times[0] - self.request.arrival_s

    @property
    def itl_s(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the nearest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Run:
    """An engine's pass over a trace."""

    engine: str
    served: list[Served]
    extra: dict = field(default_factory=dict)

    @property
    def output_tokens(self) -> int:
        return sum(s.request.new_tokens for s in self.served)

    @property
    def span_s(self) -> float:
        """From the first arrival to the last token out."""
        return max(s.token_times[-1] for s in self.served) - min(s.request.arrival_s for s in self.served)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.span_s

    def summary(self) -> dict:
        ttft = [s.ttft_s for s in self.served]
        itl = [x for s in self.served for x in s.itl_s]
        return dict(engine=self.engine, requests=len(self.served), output_tokens=self.output_tokens,
                    span_s=self.span_s, tokens_per_s=self.tokens_per_s,
                    ttft_p50_s=percentile(ttft, 50), ttft_p90_s=percentile(ttft, 90),
                    itl_p50_s=percentile(itl, 50), itl_p90_s=percentile(itl, 90), **self.extra)

    def usd_per_million(self, price_per_hour: float) -> float:
        return cost_per_million(price_per_hour, self.tokens_per_s)


def _wait_until(t0: float, at: float) -> None:
    delay = t0 + at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def run_static(model, tokenizer, trace: list[Request], batch: int, device: str = "cpu") -> Run:
    """Serve ``trace`` in padded batches of ``batch`` in arrival order, in real time: a batch
    starts when its last request has arrived and the previous batch is done, and generates
    until its longest request has all its tokens. Also measures the KV-cache bytes each batch
    held (``kv_held_bytes``: the tensors ``generate`` returns, which hold no slot for a row's final
    token), computes the bytes its requests use (``kv_used_bytes``: every prompt and output token,
    the last included, times :func:`kv_bytes_per_token`), and counts the tokens it generated
    (every row runs to its batch's longest request)."""
    import torch

    from .measure import TimingStreamer, synchronize

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    served, held, used, generated = [], 0, 0, 0
    t0 = time.perf_counter()
    for first in range(0, len(trace), batch):
        group = trace[first:first + batch]
        _wait_until(t0, max(r.arrival_s for r in group))
        width = max(len(r.prompt_ids) for r in group)
        rows = [[pad] * (width - len(r.prompt_ids)) + list(r.prompt_ids) for r in group]   # left padding
        mask = [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in group]
        longest = max(r.new_tokens for r in group)
        streamer = TimingStreamer(device)
        synchronize(device)
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor(rows, device=device),
                                 attention_mask=torch.tensor(mask, device=device),
                                 max_new_tokens=longest, min_new_tokens=longest, do_sample=False,
                                 pad_token_id=pad, streamer=streamer, return_dict_in_generate=True)
        times = [t - t0 for t in streamer.times]
        served += [Served(r, times[:r.new_tokens]) for r in group]
        held += kv_cache_bytes(out.past_key_values)
        generated += out.sequences.shape[0] * (out.sequences.shape[1] - width)
        used += sum(len(r.prompt_ids) + r.new_tokens for r in group) * kv_bytes_per_token(model)
    return Run(f"static, batch {batch}", served,
               dict(kv_held_bytes=held, kv_used_bytes=used, generated_tokens=generated))


def kv_cache_bytes(cache) -> int:
    """Bytes of the key and value tensors a transformers cache holds (measured, not predicted)."""
    import torch

    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def kv_bytes_per_token(model) -> int:
    """Key and value bytes one token takes in every layer, in the model's dtype."""
    from .memory import ModelShape
    dtype = str(model.dtype).removeprefix("torch.")
    return int(ModelShape.from_config(model.config).kv_bytes_per_token(dtype))


def cb_config(page_size: int, pages: int, max_batch_tokens: int, prefix_sharing: bool):
    """transformers' ContinuousBatchingConfig with the sizes given (on a CPU nothing can be
    inferred from GPU memory), prefix sharing on or off."""
    import dataclasses

    from transformers import ContinuousBatchingConfig
    names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    size = {"page_size": page_size} if "page_size" in names else {"block_size": page_size}   # < 5.17
    return ContinuousBatchingConfig(num_blocks=pages, max_batch_tokens=max_batch_tokens,
                                    allow_block_sharing=prefix_sharing, **size)


def _paged_cache_class():
    from transformers.generation.continuous_batching.cache import PagedAttentionCache
    return PagedAttentionCache


class PagedCacheUnsupported(ModelLoadError):
    """transformers' paged cache cannot serve this architecture: a limitation of the installed
    transformers, not of the model or the machine. The benchmark skips the step with this one line
    (utils.benchmark.STEP_SKIPS: not a stop, no traceback); a notebook shows the line."""

    def __init__(self, model, why: str):
        import transformers
        super().__init__(f"transformers {transformers.__version__} cannot run "
                         f"its paged cache for {model.config.model_type} ({why}); Llama, Qwen3 and GPT-2 "
                         f"models serve with it, or try another transformers version")


# the paged cache's update needs the attention's kwargs; an attention that calls it without them
# fails inside the engine's thread on the first request (GPT-NeoX under transformers 5.24.0)
NO_KWARGS = "its attention calls the cache's update without the kwargs the paged cache needs"
# the engine's report of that failure, to recognise it where the check up front could not see it
NO_KWARGS_ERROR = re.compile(r"PagedAttentionCache\.update\(\) missing \d+ required positional argument")


def paged_cache_problem(model) -> str | None:
    """Why transformers' paged cache cannot serve ``model``, checked before the engine starts
    (None: nothing found). The paged cache's ``update`` needs the attention's ``kwargs``; the
    model's own modeling code says whether its attention passes them."""
    import inspect
    update = inspect.signature(_paged_cache_class().update).parameters.get("kwargs")
    if update is None or update.default is not inspect.Parameter.empty:
        return None                       # a transformers whose paged cache needs nothing more
    try:
        source = inspect.getsource(sys.modules[type(model).__module__])
    except (KeyError, OSError, TypeError):
        return None                       # no source to read: the failure is recognised if it comes
    calls = re.findall(r"\.update\(([^()]*layer_idx[^()]*)\)", source)   # the cache updates, per layer
    return NO_KWARGS if any("kwargs" not in args for args in calls) else None


def run_continuous(model, trace: list[Request], *, page_size: int = 16, pages: int = 256,
                   max_batch_tokens: int = 256, prefix_sharing: bool = False) -> Run:
    """Serve ``trace`` with transformers' continuous batching, in real time: each request is
    added to the running manager when it arrives; every token is timestamped by transformers.
    ``prefix_sharing`` lets requests reuse cached pages of a prompt prefix another request
    already computed; ``extra["prefix_tokens_reused"]`` counts those prompt tokens. transformers
    runs its paged variant of the model's attention; the kit's ``sdpa_repeat_kv`` has none, so
    such a model serves with paged SDPA (``extra["attention"]`` says which ran)."""
    from .attention import REPEAT_KV
    problem = paged_cache_problem(model)
    if problem:                           # said before the engine starts, not found in its thread
        raise PagedCacheUnsupported(model, problem)
    attn = model.config._attn_implementation
    if attn == REPEAT_KV:                # the kit's own kernel has no paged variant: plain SDPA here
        model.set_attn_implementation("sdpa")
    try:
        run = _run_continuous(model, trace, page_size, pages, max_batch_tokens, prefix_sharing)
    finally:
        if attn == REPEAT_KV:
            model.set_attn_implementation(attn)
    run.extra["attention"] = "sdpa (paged)" if attn == REPEAT_KV else f"{attn} (paged)"
    return run


def _run_continuous(model, trace, page_size, pages, max_batch_tokens, prefix_sharing) -> Run:
    from transformers import GenerationConfig

    longest = max(r.new_tokens for r in trace)
    config = GenerationConfig(max_new_tokens=longest, do_sample=False, eos_token_id=-1)
    manager = model.init_continuous_batching(
        generation_config=config,
        continuous_batching_config=cb_config(page_size, pages, max_batch_tokens, prefix_sharing))
    reused: list[int] = []
    cache_class = _paged_cache_class()
    search = cache_class.search_prefix_match

    def counted(cache, request_id, prompt_ids):       # count what the engine itself reports reusing
        n = search(cache, request_id, prompt_ids)
        reused.append(n)
        return n
    cache_class.search_prefix_match = counted
    manager.start()
    try:
        added: dict[str, float] = {}
        t0 = time.perf_counter()

        def feed():
            for r in trace:
                _wait_until(t0, r.arrival_s)
                manager.add_request(list(r.prompt_ids), request_id=r.id, max_new_tokens=r.new_tokens,
                                    record_timestamps=True, eos_token_id=-1)
                added[r.id] = time.perf_counter() - t0
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        results = {}
        while len(results) < len(trace):
            out = manager.get_result(timeout=60)
            if out is None:
                raise RuntimeError("continuous batching stopped before every request finished "
                                   f"({len(results)} of {len(trace)}); see the log above")
            if out.is_finished():
                if out.error and NO_KWARGS_ERROR.search(str(out.error)):
                    raise PagedCacheUnsupported(model, NO_KWARGS)
                if out.error:
                    raise RuntimeError(f"request {out.request_id} failed: {out.error}")
                results[out.request_id] = out
        feeder.join()
    finally:
        cache_class.search_prefix_match = search
        manager.stop(block=True)
        if hasattr(model, "destroy_cached_continuous_batching_manager"):
            model.destroy_cached_continuous_batching_manager()
    served = [Served(r, [t - t0 for t in results[r.id].timestamps][:r.new_tokens]) for r in trace]
    for s in served:
        if len(s.token_times) != s.request.new_tokens:
            raise RuntimeError(f"request {s.request.id} got {len(s.token_times)} tokens, asked "
                               f"{s.request.new_tokens}: not a comparable run")
    label = "continuous" + (" + prefix sharing" if prefix_sharing else "")
    return Run(label, served, dict(prefix_tokens_reused=sum(reused), page_size=page_size))


def kv_layouts(trace: list[Request], page_size: int, batch: int, max_length: int) -> list[dict]:
    """KV-cache tokens used and reserved by the trace's requests under three layouts, and the
    fraction wasted (1 - used / reserved). A request uses ``prompt + new`` token slots.

    * reserved for the maximum length: every request holds ``max_length`` slots from the start
      (a server that cannot grow a cache preallocates the model's context);
    * padded static batch: every request holds its batch's longest prompt + longest output;
    * paged: every request holds whole pages, ``ceil(used / page_size) * page_size``.
    """
    used = [len(r.prompt_ids) + r.new_tokens for r in trace]
    padded = []
    for first in range(0, len(trace), batch):
        group = trace[first:first + batch]
        width = max(len(r.prompt_ids) for r in group) + max(r.new_tokens for r in group)
        padded += [width] * len(group)
    paged = [math.ceil(u / page_size) * page_size for u in used]
    rows = []
    for name, reserved in ((f"reserved for the maximum length ({max_length})", [max_length] * len(used)),
                           (f"padded static batch of {batch}", padded),
                           (f"paged, {page_size}-token pages", paged)):
        rows.append(dict(layout=name, used_tokens=sum(used), reserved_tokens=sum(reserved),
                         wasted=1 - sum(used) / sum(reserved)))
    return rows


def stat(values: list[float]) -> dict:
    """Median and range of repeated figures, as utils.measure and the results store keep them."""
    from dataclasses import asdict

    from .measure import Stat
    return asdict(Stat.of(values))


def standard_trace(tokenizer, text: str, prompt_tokens: int, new_tokens: int, requests: int) -> list[Request]:
    """``requests`` copies of the standard request, all arriving at once: the workload the cost
    curve prices every step on (utils.steps), so continuous batching compares with static batches."""
    from .measure import make_inputs
    ids = tuple(make_inputs(tokenizer, text, prompt_tokens)["input_ids"][0].tolist())
    return [Request(f"s{i:02d}", 0.0, ids, new_tokens) for i in range(requests)]


def measure_continuous(model, tokenizer, text: str, *, prompt_tokens: int, new_tokens: int,
                       requests: int, warmup: int = 1, repeats: int = 3, **engine) -> dict:
    """Throughput of continuous batching on ``requests`` standard requests at once, repeated:
    metrics shaped like utils.measure's (``e2e_tok_s`` with its spread, the workload, and the
    number of requests served together as ``batch``), ready for the results store."""
    if repeats < 1 or warmup < 1:
        raise ValueError("continuous batching needs warmup >= 1 (its first run builds the cache) "
                         "and repeats >= 1")
    trace = standard_trace(tokenizer, text, prompt_tokens, new_tokens, requests)
    for _ in range(warmup):
        run_continuous(model, trace, **engine)
    runs = [run_continuous(model, trace, **engine) for _ in range(repeats)]
    rates = [r.tokens_per_s for r in runs]
    ttft = [s.ttft_s for r in runs for s in r.served]
    itl = [x for r in runs for s in r.served for x in s.itl_s]
    return dict(batch=requests, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                e2e_tok_s=stat(rates), ttft_s=stat(ttft), itl_s=stat(itl))
