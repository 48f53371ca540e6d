"""The main job: preflight, the benchmark on this machine's profile, your cost curve.

    python -m utils.lab                       # what `make lab` runs
    python -m utils.lab --profile offline     # force the embedded CPU profile
    python -m utils.lab --notebooks           # also execute every solved notebook headless

Writes results/my_results.jsonl (appended), results/cost_curve.csv and
results/cost_curve.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import benchmark, cli, curve
from .models import preflight
from .data import gpu, price_key
from .models.hardware import detect_hardware
from .models.profiles import load_profile
from .results import ResultsStore

REPO = Path(__file__).resolve().parent.parent


def run_notebooks(folder: Path, out: Path, gpu: bool = False) -> bool:
    """Execute every notebook in ``folder`` top to bottom in its own kernel, saving executed
    copies in ``out``; says how each went and returns False if any failed."""
    from .tools.rehearse import notebook_order, run_notebook

    ok = True
    for path in notebook_order(folder.glob("*.ipynb")):
        row = run_notebook(path, {}, timeout=1200, gpu=gpu, save=out)
        ok &= row["ok"]
        print(f"ran {path.name} in {row['seconds']:.0f}s" + ("" if row["ok"] else
              f": FAILED at cell {row.get('cell')}: {row.get('error')}"), flush=True)
    return ok


def real_model_line(store, profile, price: float) -> str | None:
    """The real pretrained model's cost, from its latest record on this profile, said apart from the
    chain (it is another model, not a technique); None when the profile has none or it was not measured."""
    from .cost import cost_per_million
    from .models import describe
    from .steps import rate
    if profile.real is None:
        return None
    mine = [r for r in store.records(skip_corrupt=True) if r.get("step") == benchmark.REAL_STEP
            and (r.get("settings") or {}).get("profile") == profile.name and rate(r)]
    if not mine:
        return None
    latest = mine[-1]
    return (f"real model beside the chain, not on it: {describe(profile.real)}; "
            f"{rate(latest):.1f} tok/s end to end, ${cost_per_million(price, rate(latest)):.4f} per 1M tokens at ${price}/h")


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile")
    parser.add_argument("--results")
    parser.add_argument("--notebooks", action="store_true")
    args = parser.parse_args(argv)

    hw = detect_hardware()
    profile = load_profile(args.profile, hw)
    store = ResultsStore(args.results)
    checks = preflight.preflight(profile, hw, results=store.path)
    for check in checks:
        print(check)
    if any(c.blocking for c in checks):
        print("preflight failed: see the lines marked 'this blocks the run' above", file=sys.stderr)
        return 1
    argv_bench = ["--profile", profile.name, "--results", str(store.path)]
    measured = benchmark.main(argv_bench) == 0
    key = price_key(hw, profile)
    price = gpu(key)["price_per_hour_usd"]
    # bad lines (a torn last line after a crash) were reported once, by the benchmark's first read;
    # the curve is drawn from the sound records and the file is left as it is
    try:
        csv_path, png_path = curve.write_curve(store, store.path.parent, price, skip_corrupt=True, log=print)
    except ValueError as err:             # nothing measured at all
        print(f"no cost curve written: {err}", file=sys.stderr)
        return 1
    print(f"cost curve at ${price}/h ({key} default): {csv_path}, {png_path}")
    line = real_model_line(store, profile, price)
    if line:
        print(line)
    if not measured:
        print("the benchmark did not measure everything (see above); the curve shows what it did",
              file=sys.stderr)
        return 1
    if args.notebooks and not run_notebooks(REPO / "solutions", REPO / "results" / "executed",
                                              gpu=hw.device == "cuda"):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
