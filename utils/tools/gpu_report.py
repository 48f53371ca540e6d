"""The report of a GPU check (utils.tools.gpu_check): its records as Markdown, one table per section.

Kept apart from the measuring so that what reads the kit's reference figures (utils.reference,
the notebooks' "What a GPU shows" cells) needs none of the measuring code.
"""

from __future__ import annotations

from pathlib import Path

from ..attention import attention_kernel
from ..cost import roofline_of
from ..models.rehearsal import LABEL
from ..results import ResultsStore


def _ms(stat: dict) -> str:
    return f"{stat['median'] * 1e3:.1f}"


def _rate(stat: dict) -> str:
    return f"{stat['median']:.1f} [{stat['low']:.1f}-{stat['high']:.1f}]"


def _table(columns: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: its header, the rule under it (one cell per column), one line per row."""
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def report(records: list[dict]) -> str:
    """The Markdown report of a gpu_check records file."""
    if not records:
        return "# GPU check\n\nNo records yet.\n"
    ctx = records[0]
    hw, sw = ctx.get("hardware") or {}, ctx.get("software") or {}
    lines = ["# GPU check: reference figures", "",
             f"**{ctx.get('label', LABEL)}.**" + (f" Emulated {hw.get('emulated')}: limits imposed, "
                                                    f"timings are the host GPU's ({hw.get('host_gpu')}), "
                                                    f"never {hw.get('emulated')} figures." if hw.get("emulated") else ""), "",
             f"- GPU: {hw.get('gpu_name') or 'none (CPU dry run)'}; driver {ctx.get('driver') or 'n/a'}; "
             f"compute dtype {'bfloat16' if hw.get('bf16') else 'float16' if hw.get('device') == 'cuda' else 'float32'}",
             "- software: " + ", ".join(f"{k} {v}" for k, v in sw.items() if v),
             f"- date: {ctx.get('timestamp')}; kit commit {ctx.get('kit_commit')}", ""]
    by = {}
    for r in records:
        by.setdefault(r["step"], []).append(r)

    rows = [r for r in by.get("precision", []) if "decode_tok_s" in r["metrics"]]
    if rows:
        lines += ["## Decode at batch 1, per precision", "",
                  f"Prompt {rows[0]['settings']['prompt_tokens']} tokens, {rows[0]['settings']['new_tokens']} "
                  f"new tokens, greedy, SDPA. Roofline: bandwidth / bytes read per step (weights once, "
                  f"one input-embedding row, KV cache), computed from each record by utils.cost.roofline_of. "
                  + (f"Order: the precisions in turn and the first again at the end (A, B, A: the two A rows "
                     f"bound the drift), before any profiled section (the profiler's tracing slows later work in "
                     f"the same process, so the attention section ran last)."
                     if any("order" in r["settings"] for r in rows) else
                     f"Order: this run predates the kit's interleaved order: each precision once, in one process "
                     f"with the profiled attention section before the batch and compile sections, whose figures "
                     f"the profiler's lasting tracing may have slowed."), ""]
        table = []
        for r in rows:
            s, m = r["settings"], r["metrics"]
            roof = roofline_of(r)
            copy_bw = m.get("copy_bandwidth_gbs")
            copy = f"{m['decode_tok_s']['median'] / (roof * copy_bw / m['bandwidth_gbs']):.0%}" if copy_bw else "n/a"
            table.append([s["model"], s["precision"], _rate(m["decode_tok_s"]), f"{roof:.0f}",
                          f"{m['decode_tok_s']['median'] / roof:.0%}", copy, f"{m['peak_memory_gb']:.2f}",
                          f"{m['weights_gb']:.2f} / {m['predicted_weights_gb']:.2f}", f"{m['load_s']:.0f}"])
        lines += _table(["model", "precision", "decode tok/s [min-max]", "roofline tok/s", "of roofline (datasheet)",
                         "of roofline (measured copy bw)", "peak GB", "weights GB measured / predicted", "load s"],
                        table)
        bw = rows[0]["metrics"]
        lines += ["", f"Bandwidth: {bw['bandwidth_gbs']:.0f} GB/s datasheet ({bw['gpu_key']}, datasets/gpus.csv)"
                  + (f"; {bw['copy_bandwidth_gbs']:.0f} GB/s measured by a device-to-device copy "
                     f"(bytes read + written)" if bw.get("copy_bandwidth_gbs") else ""), ""]

    att = by.get("attention", [])
    if att:
        lengths = sorted({r["settings"]["prompt_tokens"] for r in att if "prompt_tokens" in r["settings"]})
        lines += ["## Prefill per attention kernel", "",
                  "One forward pass over the prompt (ms, median). *Ran* is read from the profiler's "
                  "kernel names, not assumed.", ""]
        groups = {}
        for r in att:
            s = r["settings"]
            if "prompt_tokens" not in s:
                continue
            groups.setdefault((s["model"], s["attn_implementation"], s.get("sdpa_backend")), {})[
                s["prompt_tokens"]] = r["metrics"]
        table = []
        for (model, impl, backend), cells in groups.items():
            # classified again from the recorded names, so a corrected classifier corrects old runs
            ran = sorted({attention_kernel(m["kernel_names"]) if m.get("kernel_names") else m.get("kernel")
                          for m in cells.values() if m.get("kernel_names") or m.get("kernel")})
            unavailable = next((m["unavailable"] for m in cells.values() if "unavailable" in m), None)
            longest = cells.get(lengths[-1], {})
            table.append([model, impl, backend or "default dispatch"]
                         + [_ms(cells[n]["prefill_s"]) if n in cells and "prefill_s" in cells[n]
                            else ("n/a" if n in cells else "") for n in lengths]
                         + [", ".join(ran) or ("unavailable: " + unavailable[:90] if unavailable else ""),
                            f"{longest['peak_memory_gb']:.2f}" if "peak_memory_gb" in longest else ""])
        lines += _table(["model", "implementation", "SDPA backend", *(f"{n} tokens ms" for n in lengths), "ran",
                         "peak GB (longest)"], table) + [""]

    rows = [r for r in by.get("batch", []) if "e2e_tok_s" in r["metrics"]]
    if rows:
        table = []
        for r in rows:
            s, m = r["settings"], r["metrics"]
            table.append([s["model"], s["precision"], s["batch"], _rate(m["e2e_tok_s"]), _rate(m["decode_tok_s"]),
                          f"{m['decode_tok_s']['median'] / roofline_of(r):.0%}", f"{m['peak_memory_gb']:.2f}"])
        lines += ["## Batch sweep", ""] + _table(["model", "precision", "batch", "end-to-end tok/s", "decode tok/s",
                                                  "of roofline", "peak GB"], table) + [""]

    rows = [r for r in by.get("compile", []) if "decode_tok_s" in r["metrics"]]
    if rows:
        table = []
        for r in rows:
            s, m = r["settings"], r["metrics"]
            table.append([s["model"], s["precision"], s["cache_implementation"], "yes" if s["compiled"] else "no",
                          _rate(m["decode_tok_s"]), f"{m['peak_memory_gb']:.2f}"])
        lines += ["## Static KV cache (compiled by transformers on a GPU) vs the default dynamic cache", ""] + _table(
            ["model", "precision", "cache", "compiled", "decode tok/s", "peak GB"], table) + [""]

    refused = [r for r in records if "refused" in r["metrics"]]
    if refused:
        lines += ["## Refused before loading (predicted not to fit)", ""]
        lines += [f"- {r['settings']['model']} {r['settings']['precision']}: {r['metrics']['refused']}"
                  for r in refused] + [""]
    problems = [r for r in records if "error" in r["metrics"] or "skipped" in r["metrics"]]
    lines += ["## Failures and skips", ""]
    lines += [f"- {r['step']} {r['settings']}: {(r['metrics'].get('error') or r['metrics'].get('skipped')).splitlines()[0][:300]}"
              for r in problems] or ["- none"]
    return "\n".join(lines) + "\n"


def write_report(out: Path) -> Path:
    path = out / "report.md"
    path.write_text(report(ResultsStore(out / "records.jsonl").records(skip_corrupt=True)))
    return path


def main() -> int:
    """Rewrite every Markdown report in datasets/reference/ from its records (a GPU check's, or a
    notebook rehearsal's)."""
    from ..reference import FOLDER, records
    from .rehearse import report as rehearsal_report
    for path in sorted(FOLDER.glob("*.jsonl")):
        rows = records(path.stem)
        text = rehearsal_report(rows, dict(rows[0])) if "notebook" in rows[0] else report(rows)
        path.with_suffix(".md").write_text(text, encoding="utf-8")
        print(f"wrote {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
