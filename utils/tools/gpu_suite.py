"""`make gpu-check`: the whole GPU path in one command, with one report.

    python -m utils.tools.gpu_suite                 # on a CUDA machine: real sizes, random weights
    python -m utils.tools.gpu_suite                 # on a CPU: the same steps as a dry run (reduced sizes)

Steps, each a separate process (a failure is recorded and the next step runs):

1. ``preflight``      what fits here (python -m utils.models.preflight)
2. ``reference``      decode per precision with roofline fraction, prefill per attention
                      kernel and which kernel ran, batch sweep, static cache + compile
                      (python -m utils.tools.gpu_check)
3. ``notebooks``      every solved notebook with this machine's profile (python -m utils.tools.rehearse)
4. ``notebooks-t4``   the t4 profile's notebooks under a T4's limits (GPU only)
5. ``benchmark``      the headless benchmark with random weights (python -m utils.benchmark)

Everything lands in ``--out`` (default results/gpu_check/): ``REPORT.md`` and each
step's records. Without a GPU every model is shrunk (LLMFLATION_RANDOM_WEIGHTS=reduced)
and the t4 profile stands in for this machine's: the dry run checks the plumbing,
not the figures. Exit status 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..models.rehearsal import ENV, LABEL

REPO = Path(__file__).resolve().parent.parent.parent


def run_step(name: str, args: list[str], env: dict, log: Path, expected: tuple[int, ...] = (0,)) -> dict:
    """Run one step; an exit status in ``expected`` counts as 0 (ok)."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=f,
                              stderr=subprocess.STDOUT).returncode
    code = 0 if code in expected else code
    seconds = time.perf_counter() - start
    print(f"[{name}] {'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f}s; log {log}", flush=True)
    return dict(name=name, code=code, seconds=seconds, log=log)


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "results" / "gpu_check"))
    parser.add_argument("--notebooks", nargs="*", help="only these notebooks (stems or prefixes)")
    parser.add_argument("--budget-s", type=float, default=1800, help="time for the reference step")
    args = parser.parse_args(argv)

    gpu = torch.cuda.is_available()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               LLMFLATION_RANDOM_CACHE=str(out / "random-checkpoints"))
    env[ENV] = "1" if gpu else "reduced"
    profile = [] if gpu else ["--profile", "t4"]
    pick = ["--notebooks", *args.notebooks] if args.notebooks else []
    cache = ["--cache", env["LLMFLATION_RANDOM_CACHE"]]
    steps = [("preflight", ["utils.models.preflight", *profile]),
             ("reference", ["utils.tools.gpu_check", "--out", str(out / "reference"), "--budget-s", str(args.budget_s)]),
             ("notebooks", ["utils.tools.rehearse", *profile, *(["--reduced"] if not gpu else []),
                            "--out", str(out / "notebooks"), *pick, *cache]),
             ("notebooks-t4", ["utils.tools.rehearse", "--profile", "t4", "--emulate", "t4", "--short",
                               "--out", str(out / "notebooks-t4"), *pick, *cache] if gpu else None),
             ("benchmark", ["utils.benchmark", *profile, "--random-weights",
                            "--results", str(out / "benchmark.jsonl")])]
    print(f"{LABEL.upper()}\n{'GPU run' if gpu else 'CPU dry run: reduced sizes, the t4 profile'}; "
          f"report in {out / 'REPORT.md'}", flush=True)
    done = []
    for name, step in steps:
        if step is None:
            print(f"[{name}] skipped: needs a CUDA GPU to impose a T4's limits on", flush=True)
            done.append(dict(name=name, code=None, seconds=0.0, log=None))
            continue
        # on a CPU the t4 profile's preflight must block (no GPU): that exit is the expected one
        expected = (0, 1) if name == "preflight" and not gpu else (0,)
        done.append(run_step(name, step, env, out / f"{name}.log", expected))

    lines = ["# GPU check", "", f"**{LABEL}.** " + ("Real sizes on this GPU." if gpu else
             "CPU dry run: every model shrunk (LLMFLATION_RANDOM_WEIGHTS=reduced), the t4 profile; "
             "it checks the plumbing, its figures are not GPU figures."),
             f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}.", "",
             "| step | result | time s | log |", "|---|---|---|---|"]
    for d in done:
        result = "skipped (no GPU)" if d["code"] is None else "ok" if d["code"] == 0 else f"FAILED (exit {d['code']})"
        lines.append(f"| {d['name']} | {result} | {d['seconds']:.0f} | {d['log'].name if d['log'] else ''} |")
    for title, path in [("Reference figures", out / "reference" / "report.md"),
                        ("Notebooks", out / "notebooks" / "rehearsal.md"),
                        ("Notebooks under a T4's limits", out / "notebooks-t4" / "rehearsal.md")]:
        if path.is_file():
            body = path.read_text(encoding="utf-8").split("\n", 1)[1]   # drop the part's own title
            lines += ["", f"## {title}", body.replace("\n## ", "\n### ")]
    (out / "REPORT.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"report: {out / 'REPORT.md'}")
    return 0 if all(d["code"] in (0, None) for d in done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
