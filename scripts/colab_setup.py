"""What the notebooks' setup cell runs on Colab, once per runtime.

Adds what Colab lacks (bitsandbytes, accelerate) and, when Colab's preinstalled
transformers is outside the range the kit is tested with (requirements.txt; see
utils/versions.py for why), installs a tested one. Colab's torch is never
touched. Writes ``.colab-ready`` only when every install succeeded, so a failed
or interrupted install is retried the next time a notebook's setup cell runs.

The version ranges come from requirements.txt through utils.versions (which needs only
``packaging``, present on Colab).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = REPO / ".colab-ready"
sys.path.insert(0, str(REPO))
from utils.versions import tested_range  # noqa: E402  (the repository root is not installed)


def requirement(package: str) -> str:
    """``package`` with its version range as written in requirements.txt."""
    return package + tested_range(package)


def outside(package: str) -> str | None:
    """Why ``package`` must be (re)installed: missing, or its version outside the range; None if fine."""
    from packaging.requirements import Requirement
    try:
        have = metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
    spec = Requirement(requirement(package)).specifier
    return None if spec.contains(have, prereleases=True) else f"{have} is outside {spec}"


def main() -> int:
    wanted = []
    for package in ("transformers", "bitsandbytes", "accelerate"):
        reason = outside(package)
        if reason:
            print(f"{package}: {reason}: installing {requirement(package)}", flush=True)
            wanted.append(requirement(package))
    if wanted:
        subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                        "--progress-bar", "on", *wanted], check=True)
    MARKER.write_text("setup done; delete this file to run scripts/colab_setup.py again\n")
    print("Colab setup done (torch untouched)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
