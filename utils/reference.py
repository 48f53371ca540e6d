"""What a GPU shows, for learners without one: the kit's own GPU figures and published ones.

    python -m utils.tools.gpu_report   # rewrite the Markdown reports from the records

Two sources, never mixed up:

* the kit's own runs (``datasets/reference/*.jsonl``), measured by ``python -m utils.tools.gpu_check``
  and ``python -m utils.tools.rehearse`` on a GPU (commands in datasets/reference/README.md). They are
  random-weight runs: speed and memory real, quality not;
* published figures (``datasets/reference_gpu.csv``): each row one figure with its GPU, model,
  configuration, source, address and date, cited as published (sources in datasets/README.md).

Notebooks show them with :func:`show`, always with the label, the GPU, the versions or the source,
and the date.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .cost import roofline_of
from .models.rehearsal import LABEL

FOLDER = Path(__file__).resolve().parent.parent / "datasets" / "reference"
PUBLISHED = FOLDER.parent / "reference_gpu.csv"
TOPICS = ("precision", "attention", "speculative", "serving", "moe")


def published(topic: str | None = None) -> list[dict]:
    """The published figures of ``datasets/reference_gpu.csv`` (all, or one topic's), values as floats."""
    with open(PUBLISHED, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["value"] = float(r["value"])
        r["value_max"] = float(r["value_max"]) if r["value_max"] else None
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; published figures cover {', '.join(TOPICS)}")
    return [r for r in rows if topic is None or r["topic"] == topic]


def figure(row: dict) -> str:
    """A published row's value as text: '2.2x', '50-73%', '104.9 tok/s'."""
    value = f"{row['value']:g}" + (f"-{row['value_max']:g}" if row["value_max"] is not None else "")
    return value + ("" if row["unit"] in ("x", "%") else " ") + row["unit"]


def published_table(topic: str) -> str:
    """One topic's published figures as a Markdown table: what was measured, the figure, what it
    does and does not show, and the source with its address."""
    rows = published(topic)
    cell = lambda text: str(text).replace("|", "/")                     # noqa: E731
    lines = [f"**Published ({topic})**: `datasets/reference_gpu.csv`, cited as published.", "",
             "| GPU | model, configuration | metric | figure | note | source |", "|---|---|---|---|---|---|"]
    for r in rows:
        versus = f" vs {r['versus']}" if r["versus"] else ""
        lines.append(f"| {r['gpu']} | {cell(r['model'])}, {cell(r['configuration'])} | {cell(r['metric'])} | "
                     f"{figure(r)}{cell(versus)} | {cell(r['note'])} | [{cell(r['source'])}, {r['date']}]({r['url']}) |")
    lines += ["", *(f"- computed from the rows above: {text}" for text in _ratios(rows))]
    return "\n".join(lines).rstrip() + "\n"


def show_published(topic: str) -> None:
    """Show one topic's published figures: a rendered table in a notebook (long notes and addresses
    wrap inside their cells, never mid-word across the page), plain text elsewhere."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
        from IPython.display import Markdown, display
        display(Markdown(published_table(topic)))
        return
    rows = published(topic)
    print(f"Published ({topic}; datasets/reference_gpu.csv, cited as published):")
    for r in rows:
        versus = f" vs {r['versus']}" if r["versus"] else ""
        print(f"  {r['gpu']:<10} {r['model']}, {r['configuration']}: {r['metric']} {figure(r)}{versus}")
        print(f"             {r['note']}. [{r['source']}, {r['date']}, {r['url']}]")
    for text in _ratios(rows):
        print(f"  computed from the rows above: {text}")


def priced() -> list[dict]:
    """Batch-1 decode figures on a GPU, published and the kit's own, priced at that GPU's default
    $/hour in datasets/gpus.csv: $/1M = $/h / (tok/s x 3600) x 1e6. Batch 1 is the dearest way to
    run a GPU; notebook 07 draws these beside the learner's steps."""
    from .cost import cost_per_million
    from .data import gpu

    out = []
    for r in published():
        if r["unit"] == "tok/s" and r["metric"] == "decode at batch 1":
            out.append(dict(label=f"{r['model']} {r['configuration'].split(' (')[0]} on {r['gpu']}",
                            gpu=r["gpu"], tok_s=r["value"], source=f"{r['source']}, {r['date']}",
                            random_weights=False))
    kit = records("h100_qwen3-8b")
    for step, match, what in [("precision", dict(precision="bfloat16"), "bf16"),
                              ("compile", dict(cache_implementation="static"), "bf16, compiled static cache")]:
        m = _median(kit, step, **match)
        out.append(dict(label=f"Qwen3-8B {what} on H100-SXM (kit, {LABEL.split(':')[0]})", gpu="H100-SXM",
                        tok_s=m["decode_tok_s"]["median"], source=f"the kit's run, {source(kit)}",
                        random_weights=True))
    for r in out:
        r["price_per_hour"] = gpu(r["gpu"])["price_per_hour_usd"]
        r["usd_per_million"] = cost_per_million(r["price_per_hour"], r["tok_s"])
    return out


def _ratios(rows: list[dict]) -> list[str]:
    """Each row measured 'versus' another row of the same source, GPU, model and metric, as a ratio."""
    out = []
    for r in rows:
        base = next((b for b in rows if r["versus"] and b["configuration"] == r["versus"]
                     and (b["source"], b["gpu"], b["model"], b["metric"]) ==
                     (r["source"], r["gpu"], r["model"], r["metric"])), None)
        if base is not None and r["value_max"] is None and base["value"]:
            out.append(f"{r['model']} {r['metric']}: {r['configuration']} is {r['value'] / base['value']:.2f}x "
                       f"{base['configuration']} ({figure(r)} / {figure(base)})")
    return out


def records(name: str) -> list[dict]:
    """The records of one reference file (``h100_qwen3-8b`` etc.)."""
    path = FOLDER / f"{name}.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


GPU_CHECK_STEPS = {"precision": None, "batch": "+ batching", "compile": "+ compile"}


def curve_records(name: str) -> list[dict]:
    """A reference GPU-check file's records as cost-curve records (utils.chain reads them as it
    reads a learner's): its precision section gives the start and the 8-/4-bit steps, its batch
    section the batch sweep with its batch 1, its compile section the compiled static cache with
    the default cache beside it. Each section is its own run (A and B measured together); the
    attention section times prefill only and has no end-to-end figure, so it is not a step."""
    from .steps import curve_step
    out = []
    for r in records(name):
        section = r.get("step")
        if section not in GPU_CHECK_STEPS or not (r.get("metrics") or {}).get("e2e_tok_s"):
            continue
        step = GPU_CHECK_STEPS[section] or "target"
        hw = r.get("hardware") or {}
        out.append(dict(r, step=step, run=f"{name}:{section}",
                        settings=dict(r.get("settings") or {}, profile=f"reference:{name}",
                                      notebook=f"the kit's {hw.get('gpu_name') or 'GPU'} run, {section}")))
    return [r for r in out if curve_step(r)]


def source(rows: list[dict]) -> str:
    """One line naming where and when a reference file's figures were measured."""
    r = rows[0]
    hw, sw = r.get("hardware") or {}, r.get("software") or {}
    return (f"{hw.get('gpu_name')}, driver {r.get('driver')}, torch {sw.get('torch')}, "
            f"transformers {sw.get('transformers')}, bitsandbytes {sw.get('bitsandbytes')}, "
            f"{r['timestamp'][:10]}")


def _ok(rows, step):
    return [r for r in rows if r["step"] == step and "decode_tok_s" in r["metrics"]]


def _median(rows, step, **match) -> dict:
    for r in _ok(rows, step):
        if all(r["settings"].get(k) == v for k, v in match.items()):
            return r["metrics"]
    raise KeyError(f"no {step} record with {match}")


def batch1_decode(model: str = "Qwen/Qwen3-8B", precision: str = "bfloat16") -> float:
    """The kit's H100 run: decode tokens/s of ``model`` in ``precision`` in generate() at batch 1."""
    rows = records("h100_qwen3-8b") + records("h100_qwen3-14b")
    return _median(rows, "precision", model=model, precision=precision)["decode_tok_s"]["median"]


def show(topic: str) -> None:
    """Print the kit's own GPU figures for ``topic``: "precision", "attention", "attention-t4",
    "batch" or "compile", each with a computed one-line reading. Published figures on the same
    lessons: :func:`show_published`."""
    from .attention import attention_kernel
    name = "t4-emulated-on-h100_qwen3" if topic == "attention-t4" else "h100_qwen3-8b"
    rows = records(name)
    print(f"What a GPU shows: the kit's own run ({LABEL})\non {source(rows)}:")
    if topic == "precision":
        rows += records("h100_qwen3-14b")
        print(f"{'model':<10} {'precision':<9} {'decode tok/s':>12} {'roofline':>9} {'of roofline':>11} {'peak GB':>8}")
        for r in _ok(rows, "precision"):
            s, m = r["settings"], r["metrics"]
            roof = roofline_of(r)
            print(f"{s['model'].split('/')[-1]:<10} {s['precision']:<9} {m['decode_tok_s']['median']:>12.1f} "
                  f"{roof:>9.0f} {m['decode_tok_s']['median'] / roof:>11.0%} {m['peak_memory_gb']:>8.2f}")
        bf16 = _median(rows, "precision", model="Qwen/Qwen3-8B", precision="bfloat16")
        nf4 = _median(rows, "precision", model="Qwen/Qwen3-8B", precision="nf4")
        print(f"Qwen3-8B in NF4: {nf4['decode_tok_s']['median'] / bf16['decode_tok_s']['median']:.2f}x the decode "
              f"speed of bf16 in {nf4['peak_memory_gb'] / bf16['peak_memory_gb']:.2f}x the memory.")
    elif topic in ("attention", "attention-t4"):
        rows = [r for r in rows if r["timestamp"] == rows[-1]["timestamp"]]    # one run's figures
        print(f"{'implementation':<15} {'SDPA backend':<20} {'prompt':>6} {'prefill ms':>10}  ran")
        for r in rows:
            s, m = r["settings"], r["metrics"]
            if r["step"] != "attention" or "prefill_s" not in m:
                continue
            print(f"{s['attn_implementation']:<15} {s.get('sdpa_backend') or 'default':<20} "
                  f"{s['prompt_tokens']:>6} {m['prefill_s']['median'] * 1e3:>10.1f}  "
                  f"{attention_kernel(m['kernel_names'])}")
        default = {r["settings"]["attn_implementation"]: r["metrics"] for r in rows
                   if r["step"] == "attention" and "prefill_s" in r["metrics"]
                   and not r["settings"].get("sdpa_backend")
                   and r["settings"]["prompt_tokens"] == max(x["settings"].get("prompt_tokens", 0) for x in rows)}
        for impl, m in default.items():
            print(f"at the longest prompt, default dispatch of {impl} ran {attention_kernel(m['kernel_names'])}")
    elif topic == "batch":
        print(f"{'batch':>5} {'tokens/s':>9} {'ms per step':>11} {'peak GB':>8}")
        sweep = _ok(rows, "batch")
        for r in sweep:
            m = r["metrics"]
            print(f"{r['settings']['batch']:>5} {m['e2e_tok_s']['median']:>9.1f} "
                  f"{step_ms(m, r['settings']['batch']):>11.1f} {m['peak_memory_gb']:>8.2f}")
        last = sweep[-1]
        ones = [r for r in _ok(rows, "batch") + _ok(rows, "precision") + _ok(rows, "compile")
                if r["settings"].get("batch", 1) == 1 and r["settings"]["precision"] == last["settings"]["precision"]
                and not r["settings"].get("compiled")]
        b = last["settings"]["batch"]
        big = step_ms(last["metrics"], b)
        steps = sorted(step_ms(r["metrics"], 1) for r in ones)
        print(f"A step of batch {b} took {big:.1f} ms; batch 1 in the same configuration was measured {len(steps)} "
              f"times in this run, at {', '.join(f'{t:.1f}' for t in steps)} ms per step.")
        faults = [t for t in steps if t > big]
        if faults:
            print(f"A batch-1 step slower than a batch-{b} step ({', '.join(f'{t:.1f}' for t in faults)} ms) is a "
                  f"timing fault (a batch-{b} step does all of its work and more): the host was busy, so this sweep's own "
                  f"gain is not established. Against the fastest batch-1 step, which another section of the run measured "
                  f"(a ratio across sections, labelled as such: the best this run offers), batch {b} produced "
                  f"{b * steps[0] / big:.0f}x the decode tokens per second (at most {b}x is possible) for "
                  f"{last['metrics']['peak_memory_gb'] / sweep[0]['metrics']['peak_memory_gb']:.2f}x the memory.")
        else:
            print(f"Batch {b} produced {b * steps[0] / big:.0f}x the decode tokens per second of batch 1 (at most {b}x is "
                  f"possible) for {last['metrics']['peak_memory_gb'] / sweep[0]['metrics']['peak_memory_gb']:.2f}x the memory.")
    elif topic == "compile":
        runs = {r["settings"]["cache_implementation"]: r for r in _ok(rows, "compile")}
        for cache, r in runs.items():
            roof = roofline_of(dict(r, settings=dict(r["settings"], prompt_tokens=r["metrics"]["prompt_tokens"],
                                                     new_tokens=r["metrics"]["new_tokens"])))
            print(f"{cache:<8} cache, {'compiled' if r['settings']['compiled'] else 'not compiled':<12} "
                  f"{r['metrics']['decode_tok_s']['median']:6.1f} decode tok/s, "
                  f"{step_ms(r['metrics'], 1):5.1f} ms per step, {r['metrics']['decode_tok_s']['median'] / roof:.0%} "
                  f"of the {roof:.0f} tok/s roofline")
        e2e = runs["static"]["metrics"]["e2e_tok_s"]["median"] / runs["dynamic"]["metrics"]["e2e_tok_s"]["median"]
        print(f"the compiled static cache decoded {runs['static']['metrics']['decode_tok_s']['median'] / runs['dynamic']['metrics']['decode_tok_s']['median']:.1f}x "
              f"faster than the default dynamic cache at batch 1 ({e2e:.2f}x end to end, prefill included: the factor "
              f"a cost curve takes).")
    elif topic == "baseline":
        from .cost import cost_per_million
        from .data import gpu
        price = gpu("H100-SXM")["price_per_hour_usd"]
        rows = _ok(rows + records("h100_qwen3-14b"), "precision")
        print(f"{'model':<10} {'precision':<9} {'decode tok/s':>12} {'cost per 1M':>12} {'peak GB':>8}   at ${price}/h, "
              f"priced from decode tok/s; the two models in two runs of the kit (compare with care)")
        for r in rows:
            s, m = r["settings"], r["metrics"]
            print(f"{s['model'].split('/')[-1]:<10} {s['precision']:<9} {m['decode_tok_s']['median']:>12.1f} "
                  f"{'$' + format(cost_per_million(price, m['decode_tok_s']['median']), '.2f'):>12} {m['peak_memory_gb']:>8.2f}")
        small, large = (_median(rows, "precision", model=f"Qwen/Qwen3-{n}", precision="bfloat16") for n in ("8B", "14B"))
        from .measure import Stat
        spread = lambda r: Stat(**{k: r["decode_tok_s"][k] for k in ("median", "low", "high", "n")})  # noqa: E731
        noisy = spread(small).overlaps(spread(large))
        print(f"At batch 1 in generate(), Qwen3-14B in bf16 costs {small['decode_tok_s']['median'] / large['decode_tok_s']['median']:.2f}x "
              + ("(within noise: the repeats overlap) " if noisy else "") +
              f"what Qwen3-8B costs per token on this GPU, in {large['peak_memory_gb'] / small['peak_memory_gb']:.2f}x the memory.")
    elif topic == "host-bound":
        host_bound(rows + records("h100_qwen3-14b"))
    elif topic == "bnb-host":
        bnb_host_time(rows + records("h100_qwen3-14b"))
    else:
        raise ValueError(f"unknown reference topic {topic!r}; choose {', '.join(SHOW_TOPICS)} "
                         f"(published figures: show_published)")


SHOW_TOPICS = ("precision", "attention", "attention-t4", "batch", "compile", "baseline", "host-bound", "bnb-host")


def step_ms(metrics: dict, batch: int) -> float:
    """Milliseconds per decode step: batch / decode tokens per second."""
    return 1000 * batch / metrics["decode_tok_s"]["median"]


def host_bound(rows: list[dict]) -> None:
    """Batch-1 decode in generate() on the kit's H100: each model's step time against the bytes it
    reads, and the compiled static cache, each as a share of its bandwidth roofline."""
    from .data import model_configs
    from .memory import ModelShape, decode_read_bytes
    steps = {}
    for model in ("Qwen/Qwen3-8B", "Qwen/Qwen3-14B"):
        r = next(x for x in _ok(rows, "precision") if x["settings"]["model"] == model
                 and x["settings"]["precision"] == "bfloat16")
        roof = roofline_of(r)
        gb = decode_read_bytes(ModelShape.from_config(model_configs()[model]), "bfloat16") / 1e9
        steps[model] = (step_ms(r["metrics"], 1), gb)
        print(f"{model.split('/')[-1]:<9} bf16, generate() at batch 1: {r['metrics']['decode_tok_s']['median']:5.1f} "
              f"tok/s, {steps[model][0]:5.1f} ms per step, reads {gb:5.2f} GB per step: "
              f"{r['metrics']['decode_tok_s']['median'] / roof:.0%} of its {roof:.0f} tok/s roofline")
    (t8, b8), (t14, b14) = steps.values()
    print(f"Qwen3-14B reads {b14 / b8:.2f}x the bytes of Qwen3-8B per step, and its step takes {t14 / t8:.2f}x "
          f"the time (two runs of the kit; the 14B's repeats spread widely, so read it as 'about the same'): far "
          f"below both rooflines, the step time is the host's (Python, kernel launches), not the memory's.")
    c = next(x for x in _ok(rows, "compile") if x["settings"].get("compiled"))
    c = dict(c, settings=dict(c["settings"], prompt_tokens=c["metrics"]["prompt_tokens"],
                              new_tokens=c["metrics"]["new_tokens"]))
    roof = roofline_of(c)
    print(f"Qwen3-8B bf16, static cache compiled by transformers: {c['metrics']['decode_tok_s']['median']:.1f} tok/s, "
          f"{step_ms(c['metrics'], 1):.1f} ms per step: {c['metrics']['decode_tok_s']['median'] / roof:.0%} of the "
          f"roofline. Compiling the step removes most of the host's waiting.")


def bnb_host_time(rows: list[dict]) -> None:
    """What NF4 adds to a batch-1 decode step on the kit's H100, per bitsandbytes linear call."""
    from .data import model_configs
    from .memory import ModelShape
    for model in ("Qwen/Qwen3-8B", "Qwen/Qwen3-14B"):
        shape = ModelShape.from_config(model_configs()[model])
        calls = shape.layers * shape.linear_layers_per_layer
        bf16, nf4 = (step_ms(_median(rows, "precision", model=model, precision=p), 1) for p in ("bfloat16", "nf4"))
        print(f"{model.split('/')[-1]:<9} NF4 {nf4:5.1f} ms per step vs bf16 {bf16:5.1f} ms: +{nf4 - bf16:4.1f} ms over "
              f"{calls} quantized linear calls ({shape.layers} layers x {shape.linear_layers_per_layer}) = "
              f"{(nf4 - bf16) / calls:.3f} ms added per call")
    print("(medians of two runs of the kit, one per model: the per-call figure is an order of magnitude, not a "
          "measurement to two digits; the kit's run under a T4's rules on the same H100 timed NF4 differently)")
