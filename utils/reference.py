"""What a GPU shows, for learners without one: the kit's own GPU figures and published ones.

    python -m utils.reference          # rewrite the Markdown reports from the records

Two sources, never mixed up:

* the kit's own runs (``datasets/reference/*.jsonl``), measured by ``python -m utils.gpu_check``
  and ``python -m utils.rehearse`` on a GPU (commands in datasets/reference/README.md). They are
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

from .rehearsal import LABEL

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


def show_published(topic: str) -> None:
    """Print one topic's published figures, each with what it measured and its source."""
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


def show(topic: str) -> None:
    """Print the kit's own GPU figures for ``topic``: "precision", "attention", "attention-t4",
    "batch" or "compile", each with a computed one-line reading. Published figures on the same
    lessons: :func:`show_published`."""
    from .attention import attention_kernel
    name = "t4-emulated-on-h100_qwen3" if topic == "attention-t4" else "h100_qwen3-8b"
    rows = records(name)
    print(f"What a GPU shows ({LABEL}; the kit's own run on {source(rows)}):")
    if topic == "precision":
        rows += records("h100_qwen3-14b")
        print(f"{'model':<10} {'precision':<9} {'decode tok/s':>12} {'roofline':>9} {'of roofline':>11} {'peak GB':>8}")
        for r in _ok(rows, "precision"):
            s, m = r["settings"], r["metrics"]
            print(f"{s['model'].split('/')[-1]:<10} {s['precision']:<9} {m['decode_tok_s']['median']:>12.1f} "
                  f"{m['roofline_tok_s']:>9.0f} {m['roofline_fraction']:>11.0%} {m['peak_memory_gb']:>8.2f}")
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
        print(f"{'batch':>5} {'tokens/s':>9} {'peak GB':>8}")
        sweep = _ok(rows, "batch")
        for r in sweep:
            print(f"{r['settings']['batch']:>5} {r['metrics']['e2e_tok_s']['median']:>9.1f} "
                  f"{r['metrics']['peak_memory_gb']:>8.2f}")
        last = sweep[-1]
        ones = [r["metrics"]["e2e_tok_s"]["median"] for r in _ok(rows, "batch") + _ok(rows, "precision")
                if r["settings"].get("batch", 1) == 1 and r["settings"]["precision"] == last["settings"]["precision"]]
        gains = sorted(last["metrics"]["e2e_tok_s"]["median"] / one for one in ones)
        print(f"batch 1 in the same configuration was measured {len(ones)} times in this run "
              f"({', '.join(f'{one:.1f}' for one in ones)} tok/s: the host's noise), so batch "
              f"{last['settings']['batch']} produced {gains[0]:.0f}x to {gains[-1]:.0f}x the tokens/s of batch 1 "
              f"for {last['metrics']['peak_memory_gb'] / sweep[0]['metrics']['peak_memory_gb']:.2f}x the memory.")
    elif topic == "compile":
        runs = {r["settings"]["cache_implementation"]: r for r in _ok(rows, "compile")}
        for cache, r in runs.items():
            print(f"{cache:<8} cache, {'compiled' if r['settings']['compiled'] else 'not compiled':<12} "
                  f"{r['metrics']['decode_tok_s']['median']:6.1f} decode tok/s")
        print(f"the compiled static cache decoded {runs['static']['metrics']['decode_tok_s']['median'] / runs['dynamic']['metrics']['decode_tok_s']['median']:.1f}x "
              f"faster than the default dynamic cache at batch 1.")
    else:
        raise ValueError(f"unknown reference topic {topic!r}; choose precision, attention, attention-t4, "
                         f"batch or compile (published figures: show_published)")


def main() -> int:
    from .gpu_check import report
    from .rehearse import report as rehearsal_report

    for path in sorted(FOLDER.glob("*.jsonl")):
        rows = records(path.stem)
        if "notebook" in rows[0]:
            meta = dict(rows[0])
            text = rehearsal_report(rows, meta)
        else:
            text = report(rows)
        path.with_suffix(".md").write_text(text, encoding="utf-8")
        print(f"wrote {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
