"""The shipped reference tables in datasets/ (sources and licenses in datasets/README.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

DATASETS = Path(__file__).resolve().parent.parent / "datasets"


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
