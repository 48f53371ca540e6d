"""Which library versions the kit is tested with, and a clear stop on an untested one.

The tested range of transformers is written once, in ``requirements.txt``; the
Colab setup (``scripts/colab_setup.py``) reads the same line. Versions outside it
are excluded for a measured reason (``make compat`` re-checks them):

* 5.15.x: the first assisted ``generate()`` fails in the draft's cache crop
  ("cannot reshape tensor of 0 elements"), fixed in 5.16.0;
* 5.0.0: ``min_new_tokens`` together with ``assistant_model`` is refused, and the kit
  times a fixed number of new tokens with it (utils.measure);
* the versions between are not tested: the lowest tested is the range's lower bound.

    python -m utils.versions       # the versions here, and whether they are tested
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from .cli import UserError

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
ALLOW_ENV = "LLMFLATION_ALLOW_UNTESTED"     # "1": warn instead of stopping (make compat uses it)
KNOWN_FAILURES = {
    "5.15": "assisted generate() fails in the draft's cache crop (fixed in 5.16.0)",
    "5.0": "min_new_tokens together with assistant_model is refused",
}


class UntestedVersionError(UserError, RuntimeError):
    """A library version outside the range the kit is tested with; the message says the fix."""


def tested_range(package: str = "transformers", requirements: Path = REQUIREMENTS) -> str:
    """The version specifier of ``package`` in requirements.txt, e.g. ``>=5.16,<6``."""
    from packaging.requirements import Requirement
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            if req.name == package:
                return line[len(req.name):].replace(" ", "")      # as written, e.g. >=5.16,<6
    raise KeyError(f"{package} is not in {requirements}")


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def why_excluded(version: str) -> str:
    """The measured reason a version is outside the range, if the kit knows one."""
    from packaging.version import Version
    v = Version(version)
    return KNOWN_FAILURES.get(f"{v.major}.{v.minor}", "not tested with this kit")


def check_versions(allow_untested: bool | None = None) -> str:
    """One line naming torch, transformers and bitsandbytes; raises UntestedVersionError with
    the fix when transformers is outside the tested range (or warns, with ``allow_untested``
    or $LLMFLATION_ALLOW_UNTESTED=1)."""
    from packaging.specifiers import SpecifierSet
    if allow_untested is None:
        allow_untested = os.environ.get(ALLOW_ENV) == "1"
    spec = tested_range()
    have = {name: installed(name) for name in ("torch", "transformers", "bitsandbytes")}
    line = ", ".join(f"{name} {version or 'not installed'}" for name, version in have.items())
    version = have["transformers"]
    if version is not None and version not in SpecifierSet(spec):
        message = (f"transformers {version} is outside the range this kit is tested with ({spec}): "
                   f"{why_excluded(version)}. Fix: pip install 'transformers{spec}', then restart the "
                   f"kernel (on Colab: Runtime > Restart session) and run this notebook again.")
        if not allow_untested:
            raise UntestedVersionError(message)
        line += f"  [UNTESTED: {message}]"
    return line


if __name__ == "__main__":
    print(check_versions(allow_untested=True))
