import json

import pytest

from utils.results import CorruptResultsError, ResultsStore, run_context


def add(store, step="target", rate=10.0):
    return store.append("benchmark", step=step, settings={"model": "m", "precision": "nf4"},
                        metrics={"e2e_tok_s": {"median": rate}})


def test_records_carry_full_context_and_survive_reopening(tmp_path):
    path = tmp_path / "r.jsonl"
    add(ResultsStore(path))
    add(ResultsStore(path), step="+ 4-bit")
    records = ResultsStore(path).records()          # a new object, as after a kernel restart
    assert [r["step"] for r in records] == ["target", "+ 4-bit"]
    for key in ("timestamp", "software", "hardware", "settings", "metrics", "schema"):
        assert key in records[0]
    assert records[0]["software"]["torch"]


def test_env_variable_chooses_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLATION_RESULTS", str(tmp_path / "x.jsonl"))
    assert ResultsStore().path == tmp_path / "x.jsonl"


def test_corrupt_file_is_reported_and_never_overwritten(tmp_path):
    path = tmp_path / "r.jsonl"
    add(ResultsStore(path))
    with open(path, "a") as f:
        f.write("{not json\n")
    before = path.read_bytes()
    with pytest.raises(CorruptResultsError, match=r"r.jsonl, line 2"):
        ResultsStore(path).records()
    assert path.read_bytes() == before
    with pytest.warns(UserWarning, match="line 2"):
        assert len(ResultsStore(path).records(skip_corrupt=True)) == 1


def test_append_after_a_torn_last_line_keeps_the_new_record_readable(tmp_path):
    path = tmp_path / "r.jsonl"
    add(ResultsStore(path))
    with open(path, "a") as f:
        f.write('{"kind": "bench')                   # a crash mid-write
    add(ResultsStore(path), step="+ 4-bit")
    with pytest.warns(UserWarning):
        steps = [r["step"] for r in ResultsStore(path).records(skip_corrupt=True)]
    assert steps == ["target", "+ 4-bit"]


def test_records_that_are_not_results_are_corrupt(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps([1, 2]) + "\n")
    with pytest.raises(CorruptResultsError):
        ResultsStore(path).records()


def test_missing_file_reads_as_empty_and_step_name_is_required(tmp_path):
    store = ResultsStore(tmp_path / "none.jsonl")
    assert store.records() == [] and store.latest("target") is None
    with pytest.raises(ValueError):
        store.append("benchmark", step="", settings={}, metrics={})


def test_nan_metrics_are_refused(tmp_path):
    with pytest.raises(ValueError):
        ResultsStore(tmp_path / "r.jsonl").append("b", step="s", settings={},
                                                  metrics={"x": float("nan")})
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""


def test_context_has_versions_and_utc_timestamp():
    ctx = run_context()
    assert ctx["timestamp"].endswith("+00:00")
    assert set(ctx["software"]) >= {"python", "torch", "transformers", "bitsandbytes"}


def test_on_colab_results_go_to_a_mounted_drive_or_the_learner_is_told_they_will_vanish(tmp_path, monkeypatch):
    from utils.results import DEFAULT_PATH, ENV_PATH, default_path
    monkeypatch.delenv(ENV_PATH, raising=False)
    assert default_path(in_colab=False) == (DEFAULT_PATH, None)
    drive = tmp_path / "MyDrive"
    path, warning = default_path(in_colab=True, drive=drive)            # Drive not mounted
    assert path == DEFAULT_PATH and "vanish" in warning and "drive.mount" in warning
    drive.mkdir()
    path, warning = default_path(in_colab=True, drive=drive)            # mounted
    assert path == drive / "llmflation-lab" / "my_results.jsonl" and warning is None
    monkeypatch.setenv(ENV_PATH, str(tmp_path / "mine.jsonl"))
    assert default_path(in_colab=True, drive=drive) == (tmp_path / "mine.jsonl", None)
