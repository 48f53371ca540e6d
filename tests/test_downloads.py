"""Download sizes from one computation, and downloads that show their progress."""

import pytest

from utils.models.downloads import download_gb, fetch, notebook_models, plan
from utils.models.profiles import ModelRef, get_profile


def test_sizes_are_the_16bit_checkpoint_even_for_a_4bit_run():
    # 16.4 GB: the bf16 safetensors of Qwen3-8B as listed on the hub (issue 9); a T4 runs it
    # in NF4 but bitsandbytes quantizes on load, so all of it is downloaded
    assert download_gb(ModelRef("Qwen/Qwen3-8B", "main")) == pytest.approx(16.4, abs=0.1)
    assert download_gb(ModelRef("Qwen/Qwen3-14B", "main")) == pytest.approx(29.5, abs=0.2)
    assert download_gb(ModelRef("offline:target", "local")) == 0.0


def test_a_notebooks_plan_names_each_download_and_its_size(monkeypatch):
    import utils.models.downloads as downloads
    monkeypatch.setattr(downloads, "cached", lambda ref: False)
    t4 = get_profile("t4")
    assert [r.id for r in notebook_models("06 larger baseline", t4)] == ["Qwen/Qwen3-8B", "Qwen/Qwen3-14B"]
    lines = plan("06 larger baseline", t4)
    assert len(lines) == 2 and "29.5 GB" in lines[1] and "not in the cache yet" in lines[1]
    assert plan("07 cost curve", t4) == [] and plan("01 measuring cost", get_profile("offline")) == []


def test_fetch_shows_progress_for_the_download_only_and_never_asks_for_pickles(monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    import sys
    hub_tqdm = sys.modules["huggingface_hub.utils.tqdm"]
    # the tests set $HF_HUB_DISABLE_PROGRESS_BARS (quiet kernels); a learner's session does not
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    disable_progress_bars()
    calls = []

    def fake_snapshot(repo_id, revision=None, allow_patterns=None, local_files_only=False):
        calls.append(dict(local=local_files_only, bars_off=are_progress_bars_disabled(),
                          patterns=allow_patterns))
        if local_files_only:
            raise FileNotFoundError("not cached")
        return "/cache/qwen3-8b"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    said = []
    assert fetch(ModelRef("Qwen/Qwen3-8B", "main"), log=said.append) == "/cache/qwen3-8b"
    assert "16.4 GB" in said[0] and "progress below" in said[0]
    download = calls[-1]
    assert not download["local"] and download["bars_off"] is False       # bars on while downloading
    assert are_progress_bars_disabled()                                   # and off again afterwards
    assert all(not p.endswith((".bin", ".pt", ".pth", ".ckpt")) for p in download["patterns"])
    assert fetch(ModelRef("offline:target", "local")) is None


def test_the_class_table_counts_repeat_downloads_in_fresh_runtimes():
    from utils.models.downloads import table
    lines = table(get_profile("t4"))
    assert lines[0].startswith("01  Qwen/Qwen3-8B 16.4 GB") and "29.5 GB" in lines[5]
    fresh, once = [float(x) for x in __import__("re").findall(r"([\d.]+) GB", lines[-1])]
    assert lines[7].startswith("09  ") and "6.6 GB" in lines[7]       # 09 adds the MoE
    assert once == pytest.approx(16.4 + 3.4 + 1.2 + 29.5 + 6.6, abs=0.2)     # each model once (02's small: 3.4)
    # the target in each of 01-06, 08 and 09; the baseline in 06 and 09; the small 16-bit model in 02
    assert fresh == pytest.approx(8 * 16.4 + 3.4 + 1.2 + 2 * 29.5 + 6.6, abs=0.5)


@pytest.fixture
def hub_stand_in(tmp_path, monkeypatch):
    """A local stand-in for the hub: serves a model's files slowly into a cache folder under tmp_path,
    so the background download, its progress and the wait are real and no network is used."""
    import threading
    from utils.models import downloads
    monkeypatch.setattr(downloads, "_JOBS", {})
    monkeypatch.setattr(downloads, "_QUEUE", [])
    monkeypatch.setattr(downloads, "_WORKER", {"running": False})
    monkeypatch.setattr(downloads, "cached", lambda ref: False)
    monkeypatch.setattr(downloads, "download_gb", lambda ref: 0.001)            # 1 MB expected
    monkeypatch.setattr(downloads, "cache_folder", lambda ref: tmp_path / ref.id.replace("/", "--"))
    release, served = threading.Event(), []

    def serve(ref, fail=None):
        blobs = tmp_path / ref.id.replace("/", "--") / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        release.wait(10)                                  # the test says when the "network" answers
        with open(blobs / "model.safetensors.incomplete", "wb") as f:
            for _ in range(10):
                f.write(b"x" * 100_000)
                f.flush()
        if fail:
            raise fail
        served.append(ref.id)
        return str(tmp_path / "snapshot" / ref.id)
    return serve, release, served


def test_a_notebooks_downloads_start_in_the_background_and_a_load_waits_for_them(hub_stand_in):
    from utils.models import downloads
    serve, release, served = hub_stand_in
    target, draft = ModelRef("Qwen/Qwen3-8B", "main"), ModelRef("Qwen/Qwen3-0.6B", "main")
    said = []
    assert downloads.start_background([target, draft, target], download=serve, log=said.append) == [target, draft]
    assert "started in the background: Qwen/Qwen3-8B (0.0 GB), Qwen/Qwen3-0.6B" in said[0]
    assert downloads.start_background([target], download=serve, log=said.append) == []     # once per runtime
    assert served == []                                   # nothing has blocked the notebook so far
    release.set()
    assert downloads.fetch(draft, log=said.append) == downloads.wait(draft) == f"{downloads.cache_folder(draft).parent}/snapshot/{draft.id}"
    assert served == [target.id, draft.id]                # in order, one at a time
    assert downloads.arrived_bytes(target) == 1_000_000


def test_a_failed_background_download_is_raised_where_the_model_is_needed(hub_stand_in):
    from utils.models import downloads
    serve, release, _ = hub_stand_in
    target = ModelRef("Qwen/Qwen3-8B", "main")
    downloads.start_background([target], download=lambda ref: serve(ref, fail=OSError("connection reset")),
                               log=lambda m: None)
    release.set()
    with pytest.raises(OSError, match="connection reset"):
        downloads.wait(target, log=lambda m: None)
    assert downloads.wait(target) is None                 # forgotten: the next load starts it again


def test_the_first_cell_starts_only_what_no_copy_serves(tmp_path, monkeypatch, hw):
    """notebook 02 always downloads the 16-bit checkpoint it quantizes; the others skip a model the
    class's copy serves; the offline models download nothing."""
    import json
    from utils.models import kept
    from utils.models.preflight import to_download
    from utils.models.profiles import get_profile
    t4, profile = hw["T4"], get_profile("t4")
    monkeypatch.setenv(kept.ENV_KEEP, "off")
    monkeypatch.setenv(kept.ENV_CLASS, str(tmp_path / "class"))
    assert to_download("06 larger baseline", profile, t4) == [profile.target, profile.baseline]
    copy = kept.folder(tmp_path / "class", profile.target, "nf4")
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"x" * 64)
    (copy / kept.MANIFEST).write_text(json.dumps(dict(
        kept.wanted(profile.target, "nf4", "float16"), files={"model.safetensors": 64}, saved="2026-11-23")))
    assert to_download("06 larger baseline", profile, t4) == [profile.baseline]
    assert to_download("02 quantization", profile, t4) == [profile.target, profile.small]   # 16-bit: it quantizes
    assert to_download("04", profile, t4) == [profile.draft]
    assert to_download("07", profile, t4) == []
    assert to_download("01", get_profile("offline"), t4) == []


def test_a_notebooks_first_cell_starts_its_downloads(hub_stand_in, monkeypatch, capsys):
    from utils import session
    from utils.models import downloads, preflight
    serve, release, served = hub_stand_in
    draft = ModelRef("Qwen/Qwen3-0.6B", "main")
    monkeypatch.setattr(preflight, "to_download", lambda notebook, profile, hw: [draft])
    monkeypatch.setattr(downloads, "snapshot", serve)
    session.start("04 speculative decoding")
    assert "download : started in the background: Qwen/Qwen3-0.6B" in capsys.readouterr().out
    release.set()
    downloads.wait(draft, log=lambda m: None)
    assert served == [draft.id]


def test_a_lesson_resumed_after_a_lost_runtime_moves_its_models_ahead_of_the_queue(hub_stand_in):
    """The class queues every lesson's downloads in lesson order; a learner who reconnects and resumes
    at a later lesson needs that lesson's model before the earlier lessons'."""
    from utils.models import downloads
    serve, release, served = hub_stand_in
    big, small, draft = (ModelRef(m, "main") for m in ("Qwen/Qwen3-8B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-0.6B"))
    import time
    downloads.start_background([big, small, draft], download=serve, log=lambda m: None)
    while len(downloads._QUEUE) > 2:                      # the first is under way (held by the stand-in)
        time.sleep(0.01)
    assert downloads.hurry([draft]) == [draft]            # the draft goes next
    release.set()
    for ref in (big, small, draft):
        downloads.wait(ref, log=lambda m: None)
    assert served == ["Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B"]
    assert downloads.hurry([draft]) == []                   # nothing left to move
