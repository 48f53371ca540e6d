"""Cost arithmetic, each function one stated formula.

* $/1M tokens = $/hour / (tokens/s * 3600) * 1e6
* blended $/1M = $/hour * (input/prefill_rate + output/decode_rate) / 3600
  / (input + output) * 1e6, for a stated input:output token ratio
* roofline (bandwidth-bound decode): tokens/s <= batch * bandwidth / bytes read
  per step, bytes = weights read (all once, but one input-embedding row per
  sequence: utils.memory.decode_read_bytes) + KV cache of the whole batch
* Leviathan et al. (2023): expected tokens per target call
  (1 - a^(g+1)) / (1 - a); wall-time speedup (1 - a^(g+1)) / ((1 - a)(g*c + 1))
* annual decline: least-squares fit of log10(price) on years; factor per year
  = 10^(-slope)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from .memory import GB, ModelShape, decode_read_bytes, predict_memory


def _number(name: str, value, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def cost_per_million(price_per_hour: float, tokens_per_s: float) -> float:
    """Dollars per 1M tokens at ``price_per_hour`` producing ``tokens_per_s``."""
    price = _number("price per hour", price_per_hour)
    rate = _number("tokens per second", tokens_per_s, allow_zero=False)
    return price / (rate * 3600) * 1e6


def blended_cost_per_million(price_per_hour: float, prefill_tok_s: float, decode_tok_s: float,
                             input_tokens: int = 3, output_tokens: int = 1) -> float:
    """Dollars per 1M tokens (input + output) for a stated input:output ratio (default 3:1)."""
    price = _number("price per hour", price_per_hour)
    p = _number("prefill tokens per second", prefill_tok_s, allow_zero=False)
    d = _number("decode tokens per second", decode_tok_s, allow_zero=False)
    i = _number("input tokens", input_tokens)
    o = _number("output tokens", output_tokens)
    if i + o == 0:
        raise ValueError("input and output tokens cannot both be zero")
    seconds = i / p + o / d
    return price * seconds / 3600 / (i + o) * 1e6


def bytes_per_decode_step(shape: ModelShape, precision: str, *, batch: int = 1,
                          context: int = 0, compute_dtype: str = "float16") -> float:
    """Bytes read from memory per decode step: the weights a step reads (all once, one input-embedding
    row per sequence), plus every sequence's KV cache."""
    kv = predict_memory(shape, precision, batch=batch, context=context, compute_dtype=compute_dtype).kv_cache_gb
    return decode_read_bytes(shape, precision, batch=batch, compute_dtype=compute_dtype) + kv * GB


def roofline_tokens_per_s(shape: ModelShape, precision: str, bandwidth_gbs: float, *,
                          batch: int = 1, context: int = 0, compute_dtype: str = "float16") -> float:
    """Upper bound on decode tokens/s when memory bandwidth is the limit."""
    bw = _number("bandwidth (GB/s)", bandwidth_gbs, allow_zero=False)
    return batch * bw * 1e9 / bytes_per_decode_step(shape, precision, batch=batch, context=context,
                                                     compute_dtype=compute_dtype)


def roofline_of(record: dict) -> float:
    """The bandwidth roofline of a recorded GPU run (utils.tools.gpu_check, datasets/reference/),
    computed again with today's formula from what the record says: model (a shipped config),
    precision, batch, prompt and new tokens, and the bandwidth it was measured against. Stored
    rooflines of older runs counted the whole input-embedding table; this one does not."""
    from .data import gpu, model_configs
    s, m = record["settings"], record["metrics"]
    shape = ModelShape.from_config(model_configs()[s["model"]])
    bandwidth = m.get("bandwidth_gbs") or gpu(m.get("gpu_key") or "H100-SXM")["bandwidth_gbs"]
    context = (s.get("prompt_tokens") or m["prompt_tokens"]) + (s.get("new_tokens") or m["new_tokens"])
    return roofline_tokens_per_s(shape, s["precision"], bandwidth, batch=s.get("batch") or m.get("batch") or 1,
                                 context=context, compute_dtype="bfloat16")


def compute_roof_tokens_per_s(shape: ModelShape, tflops: float) -> float:
    """Upper bound on decode tokens/s when compute is the limit: 2 FLOPs per multiplied parameter
    per token at the GPU's peak (the input embedding is looked up, not multiplied; attention's
    FLOPs over the KV cache are left out: small at short contexts)."""
    return _number("peak TFLOP/s", tflops, allow_zero=False) * 1e12 / (2 * shape.matmul_params)


RIDGE_MAX_BATCH = 65536     # ridge_batch looks no further: no GPU holds that many sequences


def ridge_batch(shape: ModelShape, precision: str, bandwidth_gbs: float, tflops: float, *,
                context: int = 0, compute_dtype: str = "float16",
                max_batch: int = RIDGE_MAX_BATCH) -> int | None:
    """The smallest batch at which decode's bandwidth roofline reaches the compute roof: below it
    a larger batch raises tokens/s almost for free, beyond it it cannot. None when the KV cache
    keeps decode bandwidth-bound up to ``max_batch`` (long contexts)."""
    roof = compute_roof_tokens_per_s(shape, tflops)
    batch = 1
    while batch <= max_batch:                  # doubling, then bisection: the roofline rises with batch
        if roofline_tokens_per_s(shape, precision, bandwidth_gbs, batch=batch, context=context,
                                 compute_dtype=compute_dtype) >= roof:
            break
        batch *= 2
    else:
        return None
    low, high = batch // 2, batch
    while high - low > 1:
        mid = (low + high) // 2
        if roofline_tokens_per_s(shape, precision, bandwidth_gbs, batch=mid, context=context,
                                 compute_dtype=compute_dtype) >= roof:
            high = mid
        else:
            low = mid
    return high


def roofline_fraction(measured_tok_s: float, roofline_tok_s: float) -> float:
    """Measured decode rate as a fraction of the bandwidth roofline."""
    return _number("measured tokens/s", measured_tok_s) / _number(
        "roofline tokens/s", roofline_tok_s, allow_zero=False)


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Leviathan et al.: expected tokens produced per target forward pass."""
    a = _number("acceptance rate", alpha)
    if a > 1:
        raise ValueError("acceptance rate must be <= 1")
    if gamma < 1:
        raise ValueError("draft length must be >= 1")
    if a == 1:
        return gamma + 1.0
    return (1 - a ** (gamma + 1)) / (1 - a)


def leviathan_speedup(alpha: float, gamma: int, cost_ratio: float) -> float:
    """Leviathan et al.: expected wall-time speedup, with ``cost_ratio`` c = draft/target step time."""
    c = _number("draft/target cost ratio", cost_ratio)
    return expected_tokens_per_step(alpha, gamma) / (gamma * c + 1)


def years_since(d: date | str, origin: date = date(2021, 1, 1)) -> float:
    if isinstance(d, str):
        d = date.fromisoformat(d[:10])
    return (d - origin).days / 365.25


def annual_decline(points: list[tuple[date | str, float]]) -> float:
    """Factor by which price falls per year, from a least-squares fit of log10(price) on time.

    ``points`` are (date, price) pairs; a result of 10 means 10x cheaper each year.
    """
    if len(points) < 2:
        raise ValueError("need at least two (date, price) points")
    xs = [years_since(d) for d, _ in points]
    ys = [math.log10(_number("price", p, allow_zero=False)) for _, p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("points need at least two different dates")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return 10 ** (-slope)


@dataclass(frozen=True)
class Rate:
    """A decline per year with what it rests on: how many points, over what span."""

    per_year: float | None        # None with fewer than two dates
    points: int
    span_years: float

    def words(self) -> str:
        """The rate with its method, points and span, as every view prints it."""
        if self.per_year is None:
            return (f"no rate: {self.points} point{'' if self.points == 1 else 's'} "
                    f"(a cost that never changed between dates has no decline to fit)")
        how = ("the ratio of its two ends" if self.points == 2 else
               f"least-squares fit of log10(cost) on time")
        return (f"{self.per_year:.3g}x per year ({how}; {self.points} points over "
                f"{self.span_years:.1f} years)")


def rate_per_year(points: list[tuple[date | str, float]]) -> Rate:
    """The one method the kit gives every series, historical or yours: the least-squares fit of
    log10(cost) on time over ``points`` (:func:`annual_decline`; with two points that is exactly
    the ratio of the ends per year). Fewer than two dates: no rate."""
    whens = sorted(years_since(d) for d, _ in points)
    span = whens[-1] - whens[0] if whens else 0.0
    if len(set(whens)) < 2:
        return Rate(None, len(points), span)
    return Rate(annual_decline(points), len(points), span)


# Below this fraction of its bandwidth roofline, a decode's time is mostly not spent reading
# weights (Python, kernel launches, small matmuls), so scaling it by another GPU's bandwidth
# predicts nothing. A stated rule of the kit, not a cited figure.
MIN_EFFICIENCY = 0.25


def what_if(measured_tok_s: float, roofline_here: float, roofline_there: float,
            price_there: float, *, min_efficiency: float = MIN_EFFICIENCY) -> dict:
    """PREDICTION for the same model on another GPU: keep the fraction of roofline you
    measured here, apply it to the other GPU's roofline, price it at that GPU's $/hour.

    predicted tok/s = measured / roofline_here * roofline_there

    Only for a bandwidth-bound measurement: below ``min_efficiency`` of the roofline here the
    decode is overhead-bound, and ``predicted_tok_s`` is None with the ``reason``. The bound
    that always holds is returned either way: ``ceiling_tok_s`` (the roofline there) and the
    lowest $/1M it allows, ``floor_usd_per_million``.
    """
    efficiency = roofline_fraction(measured_tok_s, roofline_here)
    ceiling = _number("roofline tokens/s there", roofline_there, allow_zero=False)
    out = dict(efficiency=efficiency, ceiling_tok_s=ceiling,
               floor_usd_per_million=cost_per_million(price_there, ceiling), label="prediction")
    if efficiency < min_efficiency:
        return dict(out, predicted_tok_s=None, predicted_usd_per_million=None,
                    reason=f"overhead-bound: the decode reached {efficiency:.1%} of the roofline here (below "
                           f"{min_efficiency:.0%}), so its time is mostly not spent reading weights and "
                           f"does not scale with another GPU's bandwidth")
    predicted = efficiency * ceiling
    return dict(out, predicted_tok_s=predicted, reason=None,
                predicted_usd_per_million=cost_per_million(price_there, predicted))
