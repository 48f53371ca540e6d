import pytest

from utils.classroom import merge
from utils.cost import what_if
from utils.curve import curve_rows, write_curve
from utils.results import ResultsStore


def add(store, step, rate, gpu_name=None, precision="nf4", batch=1, **settings):
    hw = {"gpu_name": gpu_name, "vram_gb": 15.0 if gpu_name else None, "device": "cuda" if gpu_name else "cpu"}
    store.append("benchmark", step=step, settings=dict(model="m", precision=precision, **settings),
                 metrics={"e2e_tok_s": {"median": rate}, "batch": batch},
                 context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": hw})


def test_curve_takes_the_best_config_per_step_in_workshop_order(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "+ batching", 400.0, batch=8)
    add(store, "target", 100.0, precision="float16")
    add(store, "+ 4-bit", 150.0)
    add(store, "+ 4-bit", 200.0)
    rows = curve_rows(store.records(), price_per_hour=3.6)
    assert [r["step"] for r in rows] == ["target", "+ 4-bit", "+ batching"]
    # $3.6/h at 100 tok/s = 3.6 / 360000 * 1e6 = $10 per 1M tokens
    assert rows[0]["usd_per_million"] == pytest.approx(10.0)
    assert rows[1]["factor"] == pytest.approx(2.0) and rows[1]["builds_on"] == "target"
    assert rows[2]["builds_on"] == "+ 4-bit" and rows[2]["vs_start"] == pytest.approx(4.0)
    assert rows[2]["kept"] and rows[2]["configuration"] == "m, nf4, batch 8"


def test_one_call_writes_png_and_csv(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, precision="float16", random_weights=True)
    add(store, "+ 4-bit", 300.0, random_weights=True)
    csv_path, png_path = write_curve(store, tmp_path / "out", 1.0)
    assert png_path.stat().st_size > 10_000 and png_path.read_bytes()[:4] == b"\x89PNG"
    text = csv_path.read_text()
    assert "RANDOM WEIGHTS" in text and text.count("\n") == 3


def test_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no benchmark measurements"):
        write_curve(ResultsStore(tmp_path / "none.jsonl"), tmp_path, 1.0)


def test_class_merge_mixes_hardware_and_skips_a_malformed_file(tmp_path):
    add(ResultsStore(tmp_path / "alice.jsonl"), "target", 100.0, gpu_name="Tesla T4")
    add(ResultsStore(tmp_path / "bob.jsonl"), "target", 1000.0, gpu_name="NVIDIA H100 80GB HBM3")
    add(ResultsStore(tmp_path / "carol.jsonl"), "target", 20.0)                    # CPU
    (tmp_path / "dave.jsonl").write_text("{broken\n")
    messages = []
    rows = merge(sorted(tmp_path.glob("*.jsonl")), log=messages.append)
    assert {r["learner"]: r["gpu"] for r in rows} == {"alice": "T4", "bob": "H100-SXM", "carol": "cpu-laptop"}
    assert len(messages) == 2 and all("dave.jsonl" in m for m in messages)
    assert "line 1: not JSON" in messages[0] and "no cost measurements" in messages[1]
    alice = next(r for r in rows if r["learner"] == "alice")
    assert alice["usd_per_million"] == pytest.approx(0.35 / (100 * 3600) * 1e6)


def test_what_if_is_labelled_a_prediction():
    w = what_if(measured_tok_s=50, roofline_here=100, roofline_there=400, price_there=2.0)
    assert w["label"] == "prediction" and w["predicted_tok_s"] == pytest.approx(200)
    assert w["predicted_usd_per_million"] == pytest.approx(2.0 / (200 * 3600) * 1e6)


def test_what_if_refuses_an_overhead_bound_measurement_but_keeps_the_bound():
    # the offline model on a CPU reached ~6% of its roofline: scaled to an H100 it once "predicted"
    # 26,749 tok/s; below a quarter of the roofline no prediction is made
    w = what_if(measured_tok_s=6, roofline_here=100, roofline_there=400, price_there=2.0)
    assert w["predicted_tok_s"] is None and "overhead-bound" in w["reason"] and "6.0%" in w["reason"]
    assert w["ceiling_tok_s"] == 400 and w["floor_usd_per_million"] == pytest.approx(2.0 / (400 * 3600) * 1e6)
    assert what_if(measured_tok_s=25, roofline_here=100, roofline_there=400, price_there=2.0)["predicted_tok_s"] == 100


def test_curve_command_on_a_corrupt_store_names_the_line_and_changes_nothing(tmp_path, capsys):
    from utils.curve import main
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    with open(store.path, "a") as f:
        f.write("{torn line\n")
    before = store.path.read_bytes()
    assert main(["--results", str(store.path), "--price", "1.0"]) == 2         # a user's to fix (README)
    assert "line 2" in capsys.readouterr().err and store.path.read_bytes() == before
    with pytest.warns(UserWarning, match="line 2"):
        assert main(["--results", str(store.path), "--price", "1.0", "--skip-corrupt"]) == 0
    assert (tmp_path / "cost_curve.png").exists() and store.path.read_bytes() == before


def test_class_command_writes_table_and_chart_and_fails_on_nothing_readable(tmp_path, capsys):
    from utils.classroom import main
    alice = ResultsStore(tmp_path / "alice.jsonl")
    add(alice, "target", 100.0, precision="float16", gpu_name="Tesla T4")
    add(alice, "+ 4-bit", 80.0, gpu_name="Tesla T4")                                 # not kept
    add(alice, "+ batching", 400.0, precision="float16", batch=8, gpu_name="Tesla T4")
    add(ResultsStore(tmp_path / "bob.jsonl"), "target", 20.0)
    out = tmp_path / "class"
    assert main([str(tmp_path / "alice.jsonl"), str(tmp_path / "bob.jsonl"), "--out", str(out)]) == 0
    table = (out / "class_costs.csv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("learner,gpu,learner_price_per_hour,decline_per_year,rate_words,step")
    assert (out / "class_costs.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "eve.jsonl").write_text("not json\n")
    assert main([str(tmp_path / "eve.jsonl"), "--out", str(out)]) == 1


def test_only_the_seed_posts_series_is_modelled_and_the_chart_says_so():
    from utils.chart import modelled
    from utils.data import historical_prices
    kinds = {p["series"]: modelled(p["source"]) for p in historical_prices()}
    assert [s for s, m in kinds.items() if m] == ["10x per year (seed posts)"]


def test_reference_labels_are_spread_apart_but_stay_centred_on_their_points():
    from utils.chart import spread
    ys = [0.55, 0.59, 0.61, 1.5]
    out = spread(ys, 0.12)
    assert all(b - a >= 0.12 - 1e-9 for a, b in zip(out, out[1:]))
    assert sum(out) == pytest.approx(sum(ys))
    assert spread([0.0, 1.0], 0.12) == [0.0, 1.0]          # far apart: left where they are


def test_gpu_references_are_priced_from_their_figures_and_gpus_csv():
    from utils import reference
    from utils.data import gpu
    rows = reference.priced()
    llama = next(r for r in rows if r["label"] == "Llama-2-7B bf16 on A100-80GB")
    assert llama["tok_s"] == 104.9 and not llama["random_weights"]
    assert llama["usd_per_million"] == pytest.approx(gpu("A100-80GB")["price_per_hour_usd"] / (104.9 * 3600) * 1e6)
    kit = [r for r in rows if r["random_weights"]]
    assert kit and all("random weights" in r["label"] and r["gpu"] == "H100-SXM" for r in kit)
