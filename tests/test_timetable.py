"""The instructor's timetable: every figure from a measurement, a computation or a stated assumption."""

import json

import pytest

from utils.tools import timetable


def test_the_committed_page_is_the_generated_one():
    assert timetable.PAGE.read_text() == timetable.build(), "run: python -m utils.tools.timetable --write"


def test_cpu_times_are_a_measured_run_of_every_notebook_on_a_named_machine():
    cpu = timetable.cpu_timings()
    assert set(cpu["seconds"]) == set(timetable.PLAN)
    assert all(s > 0 for s in cpu["seconds"].values()) and cpu["machine"] and cpu["date"]


def test_the_cpu_room_is_told_whether_the_plan_fits_and_what_to_leave_out():
    cpu = timetable.cpu_timings()["seconds"]
    used = sum(t + e + timetable.minutes(cpu[nb]) for nb, (t, e) in timetable.PLAN.items()) + timetable.BREAK_MIN
    assert timetable.clock().endswith(f"{used // 60}:{used % 60:02d}.")
    line = next(x for x in timetable.build().splitlines() if x.startswith("- **CPU room"))
    assert f"**{used} min** of {timetable.SESSION_MIN}" in line
    if used <= timetable.SESSION_MIN:
        assert f"the plan fits, {timetable.SESSION_MIN - used} min to spare" in line
    else:       # the optional notebooks, from the end of the sequence, bring it back within the session
        left, dropped = used, []
        for nb in timetable.OPTIONAL:
            if left > timetable.SESSION_MIN:
                dropped.append(nb[:2])
                left -= sum(timetable.PLAN[nb]) + timetable.minutes(cpu[nb])   # its talk, exercises and run
        assert left <= timetable.SESSION_MIN
        s = "s" if len(dropped) > 1 else ""
        assert (f"the plan is {used - timetable.SESSION_MIN} min over: leave out notebook{s} {' and '.join(dropped)} "
                f"(saves {used - left} min)") in line
    assert timetable.fits(timetable.SESSION_MIN) == "the plan fits, 0 min to spare"


def test_downloads_follow_the_rate_and_name_it_an_assumption():
    slow, fast = timetable.build(10), timetable.build(100)
    assert "at **10 MB/s, an assumption**" in slow and "at **100 MB/s, an assumption**" in fast
    per_nb, once = timetable.downloads("t4")
    assert per_nb["04_speculative_decoding"] > per_nb["01_measuring_cost"] > 0 == per_nb["07_cost_curve"]
    assert once < sum(per_nb.values())


def test_a_missing_or_bad_input_is_a_clear_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="positive number of MB/s"):
        timetable.build(-5)
    short = tmp_path / "t.json"
    data = timetable.cpu_timings()
    del data["seconds"]["08_serving"]
    short.write_text(json.dumps(data))
    from utils.tools import plan
    monkeypatch.setattr(plan, "CPU_TIMINGS", short)
    assert timetable.main([]) == 2
    assert "no run time for 08_serving" in capsys.readouterr().err


def test_a_gpu_room_over_the_session_is_told_what_to_leave_out():
    teaching = timetable.SESSION_MIN - 20
    first, second = timetable.OPTIONAL[:2]
    talk = sum(timetable.PLAN[first])
    text = timetable.gpu_room(teaching, {"fresh runtimes": (25, {}), "a kept cache": (17, {})}, gpu_min=0)
    assert f"with fresh runtimes the plan is 5 min over: leave out notebook {first[:2]} (saves {talk} min)" in text
    assert "with a kept cache the plan fits, 3 min to spare" in text
    # a left-out notebook also saves its own downloads in that room: without them, two must go
    over = talk + 4
    text = timetable.gpu_room(teaching, {"fresh runtimes": (20 + over, {first: 5})}, gpu_min=0)
    assert f"leave out notebook {first[:2]} (saves {talk + 5} min)" in text
    text = timetable.gpu_room(teaching, {"fresh runtimes": (20 + over, {})}, gpu_min=0)
    assert f"leave out notebooks {first[:2]} and {second[:2]}" in text
    assert "two sessions" in timetable.gpu_room(teaching, {"fresh runtimes": (500, {})}, gpu_min=0)


def test_a_target_kept_on_drive_replaces_its_download_after_the_first_notebook():
    precision, copy_gb, per = timetable.kept()
    fresh, _ = timetable.downloads("t4")
    assert precision == "nf4" and 5 < copy_gb < fresh["01_measuring_cost"] / 2    # 4-bit: a third of 16-bit
    writers = [nb for nb, t in per.items() if t.writes_copy]
    assert writers == ["01_measuring_cost"]
    assert per["01_measuring_cost"].download_gb == fresh["01_measuring_cost"]
    assert per["02_quantization"].download_gb == fresh["02_quantization"]     # the 16-bit checkpoints it quantizes
    assert per["02_quantization"].drive_gb == 0              # it needs the 16-bit checkpoint: no copy to read too
    for nb in ("03_attention_kernels", "05_batching", "08_serving"):
        assert per[nb] == (0.0, copy_gb, False)
    assert per["06_larger_baseline"].download_gb == pytest.approx(fresh["06_larger_baseline"] - fresh["05_batching"])
    page = timetable.build()
    moved = sum(t.download_gb + t.drive_gb for t in per.values())
    assert moved < sum(fresh.values())
    assert f"needs {copy_gb:.1f} GB free there" in page and "with the target kept on Drive the plan is" in page


def test_every_notebook_header_states_the_timetables_figures_not_typed_ones():
    import re

    import nbformat
    for folder in ("solutions", "notebooks"):
        for path in sorted((timetable.REPO / folder).glob("*.ipynb")):
            head = nbformat.read(path, as_version=4).cells[0].source
            assert timetable.header_table(path.stem) in head, f"{folder}/{path.name}: run scripts/make_exercises.py"
    cpu, (talk, ex) = timetable.cpu_timings()["seconds"], timetable.PLAN["06_larger_baseline"]
    table = timetable.header_table("06_larger_baseline", download_mb_s=25)
    gb = timetable.downloads("t4")[0]["06_larger_baseline"]
    assert f"| {talk + ex + timetable.minutes(cpu['06_larger_baseline'])} min: {talk} talk, {ex} exercises" in table
    assert f"plus {timetable.download_minutes(gb, 25)} min to download {gb:.1f} GB" in table
    assert "25 MB/s, an assumption" in table and re.search(r"at least \d+ min to run", table)
    assert "nothing to download" in timetable.header_table("07_cost_curve")


def test_a_header_without_the_table_or_a_notebook_outside_the_plan_is_refused():
    with pytest.raises(ValueError, match="no estimated-time table"):
        timetable.with_header_table("# 02 · Quantization\n\nno table here\n", "02_quantization")
    with pytest.raises(ValueError, match="not in the timetable's plan"):
        timetable.header_table("09_moe")
    with pytest.raises(ValueError, match="positive number of MB/s"):
        timetable.header_table("02_quantization", download_mb_s=-5)     # the page's rule, in the headers too


def test_the_core_track_fits_a_colab_t4_class_with_its_slack_at_25_mb_s():
    plan = timetable.class_plan(timetable.CLASS_RATE_MB_S)
    assert timetable.CLASS_RATE_MB_S == 25 and list(plan) == list(timetable.CORE)
    total = timetable.class_total(plan)
    assert timetable.SESSION_MIN - total >= timetable.SLACK_MIN, (
        f"the core track takes {total} min: cut talk or exercises in CORE, or a notebook's run")
    page = timetable.build()
    assert f"= {total} min of {timetable.SESSION_MIN}: {timetable.SESSION_MIN - total} min to spare.**" in page
    # the same plan at a slow rate no longer fits: the check can fail
    assert timetable.SESSION_MIN - timetable.class_total(timetable.class_plan(5)) < timetable.SLACK_MIN


def test_the_core_track_counts_each_runtimes_transfers_behind_the_talk_and_a_t4_estimate():
    plan = timetable.class_plan(25)
    fresh, _ = timetable.downloads("t4")
    quantize = plan["02_quantization"]
    assert quantize["class_gb"] == 0 and quantize["hub_gb"] == fresh["02_quantization"] > fresh["01_measuring_cost"]  # + its 16-bit model
    assert plan["01_measuring_cost"]["hub_gb"] == 0 and 5 < plan["01_measuring_cost"]["class_gb"] < 8   # NF4, not 16.4 GB
    for row in plan.values():
        transfer = timetable.download_minutes(row["hub_gb"] + row["class_gb"], 25)
        assert row["transfer_min"] == transfer and row["wait_min"] == max(0, transfer - row["talk"])
        assert row["total"] == row["talk"] + row["exercises"] + row["wait_min"] + row["run_min"]
    run, how = timetable.t4_estimate()
    rehearsed = timetable.gpu_rehearsal()
    assert set(run) == set(rehearsed) and all(run[nb] > rehearsed[nb] for nb in run)    # full runs take longer
    assert "estimate" in timetable.build() and "x 5.33 for the t4 profile's full runs" in how


def test_a_late_class_is_told_what_to_cut_first():
    plan = timetable.class_plan()
    cuts = timetable.late_cuts(plan)
    assert cuts[0] == ("set 06's exercise as homework", plan["06_larger_baseline"]["exercises"])
    run = next(m for what, m in cuts if what.startswith("show 06"))
    assert run == plan["06_larger_baseline"]["run_min"] + plan["06_larger_baseline"]["wait_min"]
    assert "cut in this order: set 06's exercise as homework" in timetable.build()


def test_one_t4_memory_figure_in_the_profile_the_emulation_and_the_timetable():
    from utils.models.emulate import TARGETS, described
    from utils.models.profiles import get_profile
    t4 = TARGETS["t4"]
    assert described(t4).vram_gb == t4.usable_gb < 15.84        # torch's total on a Colab T4, less the CUDA context
    assert f"{t4.usable_gb:g} GB usable" in get_profile("t4").description
    assert f"the kit plans with {t4.usable_gb:.1f} GB of a T4" in timetable.build()
