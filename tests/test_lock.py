"""The tested set of versions (constraints.txt): what `make install` and CI install."""

import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import lock  # noqa: E402


def requirements() -> list[Requirement]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def test_the_tested_set_pins_every_requirement_within_its_bounds():
    text = lock.LOCK.read_text()
    pins = lock.pins(text)
    assert lock.locked_python(text), "constraints.txt names no Python version: run make lock"
    for req in requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not in the tested set: run make lock"
        assert Version(pins[name]) in req.specifier, f"{req.name}=={pins[name]} is outside {req.specifier}"
    assert not any("+" in v for v in pins.values())           # a CPU build's +cpu label is dropped


def test_this_environment_is_the_tested_set_where_it_applies():
    """CI runs `make install`: it must have installed exactly the pinned versions."""
    if not lock.applies():
        pytest.skip(f"constraints.txt is for Python {lock.locked_python(lock.LOCK.read_text())}")
    pins = lock.pins(lock.LOCK.read_text())
    for req in requirements():
        installed = Version(metadata.version(req.name)).public       # 2.13.0+cpu -> 2.13.0
        assert installed == pins[req.name.lower().replace("_", "-")], (
            f"{req.name} {installed} is installed but the tested set says {pins[req.name.lower()]}: "
            f"make install, or make lock after make test passed")


def test_another_python_gets_no_constraint_and_is_told(tmp_path, monkeypatch, capsys):
    other = tmp_path / "constraints.txt"
    other.write_text("# python 2.7\ntorch==1.0\n")
    assert not lock.applies(other)
    monkeypatch.setattr(lock, "LOCK", other)
    assert lock.main(["--pip-args"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "" and "made for Python 2.7" in err and "not the tested set" in err
    assert lock.main(["--torch"]) == 0 and capsys.readouterr().out.strip() == "torch>=2.4"
    here = tmp_path / "here.txt"
    here.write_text(f"# python {lock.python_minor()}\ntorch==2.13.0\n")
    monkeypatch.setattr(lock, "LOCK", here)
    assert lock.main(["--pip-args"]) == 0 and capsys.readouterr().out.strip() == f"-c {here}"
    assert lock.main(["--torch"]) == 0 and capsys.readouterr().out.strip() == "torch==2.13.0"
