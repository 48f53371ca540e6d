"""The shipped reference tables in datasets/ (sources and licenses in datasets/README.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"


def _rows(name: str) -> list[dict]:
    with open(DATASETS / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def gpus() -> dict[str, dict]:
    """GPU specs and default $/hour, keyed by short name (T4, A100-80GB, ..., cpu-laptop)."""
    out = {}
    for row in _rows("gpus.csv"):
        for key in ("memory_gb", "bandwidth_gbs", "fp16_tflops", "price_per_hour_usd"):
            row[key] = float(row[key])
        out[row["key"]] = row
    return out


def gpu(key: str) -> dict:
    table = gpus()
    if key not in table:
        raise KeyError(f"unknown GPU '{key}'; known: {', '.join(table)}")
    return table[key]


def historical_prices() -> list[dict]:
    """Cited $/1M-token points of the LLMflation curve, with their series and source."""
    rows = _rows("historical_prices.csv")
    for row in rows:
        row["usd_per_million_tokens"] = float(row["usd_per_million_tokens"])
    return rows


def model_configs() -> dict[str, dict]:
    """config.json values of the hub models the profiles use (no download needed)."""
    return {k: v for k, v in json.loads((DATASETS / "model_configs.json").read_text()).items()
            if not k.startswith("_")}


def gpu_key_for(gpu_name: str | None, vram_gb: float | None = None) -> str:
    """The gpus.csv key for a detected GPU name ('cpu-laptop' when there is none).

    torch reports names such as 'Tesla T4', 'NVIDIA A100-SXM4-80GB',
    'NVIDIA H100 80GB HBM3' or 'NVIDIA H100 PCIe'; an unknown GPU raises KeyError
    so the learner is asked for their own bandwidth and price instead of a guess.
    """
    if not gpu_name:
        return "cpu-laptop"
    name = gpu_name.upper().replace("-", " ")
    rules = [("H200", "H200"), ("H100", "H100-PCIe" if "PCIE" in name else "H100-SXM"),
             ("A100", "A100-80GB" if "80" in name or (vram_gb or 0) > 60 else "A100-40GB"),
             ("A10G", "A10G"), ("L40S", "L40S"), ("L4", "L4"), ("T4", "T4"),
             ("4090", "RTX4090"), ("3090", "RTX3090")]
    for needle, key in rules:
        if needle in name.split() or needle in name:
            return key
    raise KeyError(f"GPU '{gpu_name}' is not in datasets/gpus.csv: add a row with its bandwidth "
                   f"and your $/hour")


def price_key(hw, profile) -> str:
    """The gpus.csv row to price a run with: the detected GPU's (the emulated one's under
    emulation), else the profile's ``gpu_price_key`` (no GPU, or a GPU not in the table).
    An H100 is priced as an H100, not as the A100-80 its profile is named after."""
    name = hw.emulated or hw.gpu_name
    if hw.device != "cuda" or not name:
        return profile.gpu_price_key
    try:
        return gpu_key_for(name, hw.vram_gb)
    except KeyError:
        return profile.gpu_price_key


def real_questions() -> list[dict]:
    """Short general-knowledge questions with their expected one-word answers, for a real chat model
    (datasets/real_questions.csv, written for the kit)."""
    return _rows("real_questions.csv")
