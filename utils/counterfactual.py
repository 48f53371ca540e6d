"""The 16-bit start where 16-bit cannot run: a stated computation, never a measurement.

On a T4 the 8B target does not fit in 16 bits, so nobody measures it there and
the quantized model is where a T4 learner starts. Quantization still earned
something: it is what lets a cheaper GPU run the model at all. So the curve's
``+ 4-bit`` (or ``+ 8-bit``) step is taken against the 16-bit model on the
cheapest GPU in ``datasets/gpus.csv`` that holds it, at that GPU's default
$/hour, with its speed computed from the learner's own run:

* **same fraction of the roofline**: when the quantized run reached between
  :data:`utils.cost.MIN_EFFICIENCY` and 100% of its bandwidth roofline here, the
  16-bit run there is put at the same fraction of *its* roofline:
  ``tokens/s there = tokens/s here * roofline(16-bit, there) / roofline(quantized, here)``;
* **overhead-bound**: below that (or beyond the roofline: a shrunk rehearsal
  model), the step time is the host's, not the memory's, so the 16-bit run is
  put at the learner's own tokens/s, at most its roofline there.

"Cheapest" is the lowest $/1M on that basis. "Holds it": predicted weights and
KV cache at the run's context plus :func:`utils.memory.check_fits`'s headroom
within the GPU's memory in gpus.csv. The row says which basis it used.
"""

from __future__ import annotations

from .cost import MIN_EFFICIENCY, cost_per_million, roofline_tokens_per_s
from .data import gpu, gpus
from .memory import BYTES_16, ModelShape, ModelTooLargeError, check_fits, predict_memory
from .steps import QUANTIZED_STEPS, TECHNIQUE_START, rate, workload_of


def sixteen_bit(cc: str) -> str:
    """The 16-bit dtype a GPU of compute capability ``cc`` ("7.5") computes in: bf16 from sm80."""
    try:
        return "bfloat16" if float(cc) >= 8.0 else "float16"
    except ValueError:
        return "float16"


def fits(shape: ModelShape, precision: str, key: str, context: int) -> bool:
    """Whether ``shape`` in ``precision`` fits GPU ``key``'s memory (gpus.csv) at ``context``."""
    row = gpu(key)
    if row["memory_gb"] <= 0:
        return True                          # a CPU: RAM, not the table, decides
    try:
        check_fits(predict_memory(shape, precision, context=context, compute_dtype="float16"),
                   row["memory_gb"])
    except ModelTooLargeError:
        return False
    return True


def shape_of(model_id: str) -> ModelShape | None:
    """The real (never shrunk) shape of a model the kit knows, or None."""
    from .models.refs import real_config
    from .models.profiles import ModelRef
    try:
        return ModelShape.from_config(real_config(ModelRef(model_id)))
    except Exception:            # noqa: BLE001 - an unknown or unreachable model: no computation
        return None


def sixteen_bit_start(latest: dict[str, dict], here_key: str, price_per_hour: float) -> dict | None:
    """A computed ``target`` record for the chain (utils.steps.chain's ``start``), or None.

    Only where no 16-bit target was measured, a quantized one was (``latest``: the curve's
    records by step), and the 16-bit model does not fit GPU ``here_key`` (where it ran, or the
    profile's GPU). ``price_per_hour`` prices the quantized run here."""
    if TECHNIQUE_START in latest:
        return None
    quantized = next((latest[s] for s in reversed(QUANTIZED_STEPS) if s in latest), None)
    if quantized is None:
        return None
    settings, metrics = quantized["settings"], quantized["metrics"]
    shape = shape_of(settings.get("model", ""))
    prompt, new = workload_of(quantized)
    context = (prompt or 0) + (new or 0)
    here = gpu(here_key)
    if shape is None or here["memory_gb"] <= 0 or fits(shape, "float16", here_key, context):
        return None
    measured_e2e = rate(quantized)
    decode = (metrics.get("decode_tok_s") or {}).get("median") or measured_e2e
    roof_here = roofline_tokens_per_s(shape, settings["precision"], here["bandwidth_gbs"], context=context)
    efficiency = decode / roof_here
    options = []
    for key, row in gpus().items():
        dtype = sixteen_bit(row["compute_capability"])
        if row["memory_gb"] <= 0 or not fits(shape, dtype, key, context):
            continue
        roof_there = roofline_tokens_per_s(shape, dtype, row["bandwidth_gbs"], context=context)
        if MIN_EFFICIENCY <= efficiency <= 1:
            speed = measured_e2e * roof_there / roof_here
            basis = (f"computed: the same {efficiency:.0%} of the bandwidth roofline as your "
                     f"{settings['precision']} run")
        else:
            speed = min(measured_e2e, roof_there)
            why = (f"overhead-bound ({efficiency:.0%} of its roofline)" if efficiency < MIN_EFFICIENCY else
                   f"faster than the real model's roofline ({efficiency:.0%}: a shrunk rehearsal model)")
            basis = (f"computed: your run is {why}, so the 16-bit run is put at your tokens/s, at most "
                     f"its roofline there")
        options.append((cost_per_million(row["price_per_hour_usd"], speed), key, row, dtype, speed, basis))
    if not options:
        return None
    usd, key, row, dtype, speed, basis = min(options, key=lambda o: o[0])
    return dict(step=TECHNIQUE_START, kind="computed", run=f"computed from {quantized.get('run') or 'your run'}",
                timestamp=quantized.get("timestamp"), hardware={"gpu_name": row["name"]},
                settings=dict(model=settings.get("model"), precision=dtype, attn_implementation=None,
                              profile=settings.get("profile"), random_weights=settings.get("random_weights"),
                              computed=True, gpu_key=key, price_per_hour=row["price_per_hour_usd"],
                              basis=f"{basis}; {settings.get('model')} in 16 bits does not fit a "
                                    f"{here_key} ({here['memory_gb']:g} GB), so on the cheapest GPU in "
                                    f"gpus.csv that holds it: {key} at ${row['price_per_hour_usd']}/h"),
                metrics=dict(e2e_tok_s=dict(median=speed), prompt_tokens=prompt, new_tokens=new, batch=1))
