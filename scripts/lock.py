"""The tested set of versions: `make install` and CI install exactly these; Colab keeps its own.

requirements.txt holds lower bounds (Colab's preinstalled torch and transformers stay); constraints.txt
pins every package of one environment in which `make test` passed, and is updated on purpose:

    make lock                              # after `make test` passed here with newer versions
    python scripts/lock.py --pip-args      # what `make install` adds to pip: "-c constraints.txt"
    python scripts/lock.py --torch         # the torch requirement scripts/install_torch.py installs

A lock is made for one Python minor version (the header says which); on another, the pins may not
exist, so `make install` installs the newest versions requirements.txt allows and says so.
`make compat` tests the transformers range's ends. Standard library only: it runs before anything
else is installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "constraints.txt"
REQUIREMENTS = REPO / "requirements.txt"
HEADER = re.compile(r"^# python (\d+\.\d+)$", re.M)


def python_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def locked_python(text: str) -> str | None:
    """The Python minor version a lock's header names, or None."""
    found = HEADER.search(text)
    return found.group(1) if found else None


def pins(text: str) -> dict[str, str]:
    """Package name (lower case) -> pinned version, from a lock's text."""
    out = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def applies(lock: Path | None = None) -> bool:
    """Whether the lock was made for this Python (else the newest allowed versions are installed)."""
    lock = lock or LOCK
    return lock.is_file() and locked_python(lock.read_text(encoding="utf-8")) == python_minor()


def torch_requirement(lock: Path | None = None) -> str:
    """The torch to install: the tested set's (``torch==...``) where the lock applies to this Python,
    else requirements.txt's lower bound."""
    lock = lock or LOCK
    if applies(lock):
        return f"torch=={pins(lock.read_text(encoding='utf-8'))['torch']}"
    return re.search(r"^torch\b.*$", REQUIREMENTS.read_text(encoding="utf-8"), re.M).group(0).strip()


def write(lock: Path | None = None) -> Path:
    """Pin this environment's packages (local build labels such as +cpu dropped: the same version
    serves a CPU or a CUDA machine)."""
    lock = lock or LOCK
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable",
                             "--disable-pip-version-check"], capture_output=True, text=True, check=True).stdout
    lines = sorted({re.sub(r"\+[\w.]+$", "", l.strip()) for l in frozen.splitlines()
                    if "==" in l and not l.startswith("-")}, key=str.lower)
    lock.write_text("\n".join([
        "# The tested set: `make install` and CI install exactly these (scripts/lock.py; update with `make lock`",
        "# after `make test` passes). requirements.txt keeps the lower bounds Colab installs against.",
        f"# python {python_minor()}",
        f"# made {date.today().isoformat()}",
        *lines]) + "\n", encoding="utf-8")
    return lock


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"pin this environment into {LOCK.name}")
    action.add_argument("--pip-args", action="store_true", help="the constraint argument for pip, if it applies")
    action.add_argument("--torch", action="store_true", help="the torch requirement to install")
    args = parser.parse_args(argv)
    if args.write:
        print(f"wrote {write().relative_to(REPO)}")
        return 0
    if not applies():
        made = locked_python(LOCK.read_text(encoding="utf-8")) if LOCK.is_file() else None
        print(f"note: {LOCK.name} was made for Python {made}, this is {python_minor()}: installing the newest "
              f"versions requirements.txt allows (not the tested set)", file=sys.stderr)
        print(torch_requirement() if args.torch else "")
        return 0
    print(torch_requirement() if args.torch else f"-c {LOCK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
