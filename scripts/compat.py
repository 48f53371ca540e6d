"""`make compat`: the unit tests and notebook 04 under other versions of transformers.

By default the range's ends and Colab's: the lowest the kit supports (the lower
bound of the transformers line in requirements.txt), the newest release the range
allows (from the package index: what a fresh install without the tested set would
get) and the one Colab shipped when last checked (COLAB_SEEN below: update it when
Colab moves). `make install` itself installs the tested set (constraints.txt). Each is installed with
its own dependencies into .compat/transformers-<version> (pip --target) and put
first on PYTHONPATH; torch and bitsandbytes stay those of .venv. An excluded
version still runs (LLMFLATION_ALLOW_UNTESTED=1), so the report shows how it
fails, beside the kit's refusal that a learner would see.

    python scripts/compat.py                       # the range's ends and Colab's
    python scripts/compat.py 5.16.0 5.23.0         # any versions
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from utils.versions import tested_range  # noqa: E402  (the repository root is not installed)

COLAB_SEEN = "5.15.1"          # transformers preinstalled on Colab when last checked (2026-11)


def lowest_supported() -> str:
    return re.search(r">=([\d.]+)", tested_range("transformers")).group(1)


def newest_allowed() -> str | None:
    """The newest transformers release the tested range allows, from the package index (None when
    the index cannot be asked)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "transformers",
                           "--disable-pip-version-check"], capture_output=True, text=True)
    found = re.search(r"Available versions: (.+)", done.stdout)
    if not found:
        return None
    allowed = SpecifierSet(tested_range("transformers"))
    versions = [Version(v.strip()) for v in found.group(1).split(",")]
    fitting = sorted(v for v in versions if not v.is_prerelease and v in allowed)
    return str(fitting[-1]) if fitting else None


def install(version: str) -> Path:
    target = REPO / ".compat" / f"transformers-{version}"
    if not (target / "transformers").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--target", str(target), f"transformers=={version}"], check=True)
    return target


def run(cmd: list[str], env: dict) -> tuple[bool, str]:
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    out = (done.stdout + done.stderr).strip().splitlines()
    summary = next((l for l in reversed(out) if re.search(r"passed|failed|error", l)), out[-1] if out else "")
    failed = [l for l in out if l.startswith(("FAILED", "ERROR"))]
    return done.returncode == 0, "; ".join([summary.strip("= "), *failed[:3]])


def check(version: str) -> dict:
    site = install(version)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    kit = subprocess.run([sys.executable, "-c", "from utils.versions import check_versions as c; print(c())"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    refusal = "tested" if kit.returncode == 0 else kit.stderr.strip().splitlines()[-1]
    env["LLMFLATION_ALLOW_UNTESTED"] = "1"
    start = time.perf_counter()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
    units = run(pytest + ["tests"], env)
    nb04 = run(pytest + ["solutions/04_speculative_decoding.ipynb"], env)
    return dict(version=version, kit=refusal, units=units, nb04=nb04,
                seconds=round(time.perf_counter() - start))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*")
    args = parser.parse_args(argv)
    versions = args.versions or list(dict.fromkeys(v for v in (lowest_supported(), newest_allowed(), COLAB_SEEN) if v))
    rows = []
    for version in versions:
        print(f"transformers {version}: installing and testing ...", flush=True)
        row = check(version)
        rows.append(row)
        print(f"  kit's version check: {row['kit']}\n"
              f"  unit tests  : {'pass' if row['units'][0] else 'FAIL'} ({row['units'][1]})\n"
              f"  notebook 04 : {'pass' if row['nb04'][0] else 'FAIL'} ({row['nb04'][1]})\n"
              f"  {row['seconds']} s", flush=True)
    # a supported version must pass; an excluded one must be refused by the kit
    bad = [r["version"] for r in rows
           if (r["kit"] == "tested") != (r["units"][0] and r["nb04"][0])]
    if bad:
        print("the tested range in requirements.txt disagrees with these results: " + ", ".join(bad),
              file=sys.stderr)
        return 1
    print("the tested range agrees with every result above")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
