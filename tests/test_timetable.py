"""The instructor's timetable: every figure from a measurement, a computation or a stated assumption."""

import json

import pytest

from utils.tools import timetable


def test_the_committed_page_is_the_generated_one():
    assert timetable.PAGE.read_text() == timetable.build(), "run: python -m utils.tools.timetable --write"


def test_cpu_times_are_a_measured_run_of_every_notebook_on_a_named_machine():
    cpu = timetable.cpu_timings()
    assert set(cpu["seconds"]) == set(timetable.PLAN) | {"class_t4"}
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
            expected = (timetable.class_header(f"{folder}/{path.name}") if path.stem == "class_t4"
                        else timetable.header_table(path.stem))
            assert expected in head, f"{folder}/{path.name}: run scripts/make_exercises.py"
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


def test_the_core_track_keeps_its_slack_at_15_mb_s_and_a_t4_half_again_slower_with_the_cuts_it_prints():
    rate, slow = timetable.HELD_AT
    assert (rate, slow) == (15, 1.5)
    plan = timetable.class_plan(rate, slow, "one")
    assert list(plan) == list(timetable.CORE)
    cuts, left = timetable.cuts_needed(plan)
    assert left >= timetable.SLACK_MIN, (
        f"one runtime at {rate} MB/s and {slow}x the T4 estimate leaves {left} min even after every cut: "
        "cut talk or exercises in CORE, or add a cut to LATE_CUTS")
    assert left == timetable.SESSION_MIN - timetable.class_total(plan) + sum(m for _, m in cuts)
    page = timetable.build()
    said = f"**At {rate:g} MB/s and {slow:g}x the estimate, in one runtime:** "
    assert (said + (f"cut {'; '.join(w for w, _ in cuts)}: {left} min to spare." if cuts
                    else f"no cut needed, {left} min to spare.")) in page
    # the rule can fail: at a tenth of the rate no cut brings it back
    assert timetable.cuts_needed(timetable.class_plan(1, 2.0, "one"))[1] < timetable.SLACK_MIN


def test_the_sensitivity_table_prints_every_cell_and_one_runtime_is_never_slower():
    one, each = timetable.sensitivity("one"), timetable.sensitivity("each")
    assert set(one) == {(r, s) for r in timetable.RATES_MB_S for s in timetable.SLOWDOWNS} == set(each)
    assert {10, 25, 50} <= set(timetable.RATES_MB_S) and set(timetable.SLOWDOWNS) == {1.0, 1.5, 2.0}
    page = timetable.build()
    for r in timetable.RATES_MB_S:
        assert f"| {r:g} MB/s | " + " | ".join(f"{one[r, s]} / {each[r, s]}" for s in timetable.SLOWDOWNS) + " |" in page
    for cell in one:
        assert one[cell] >= each[cell]
        # slower downloads or a slower T4 never leave more time
    assert one[10, 1.0] <= one[50, 1.0] and one[25, 2.0] < one[25, 1.0]


def test_setup_is_counted_per_runtime_the_install_measured_the_rest_cited():
    measured = timetable.install_measured()
    assert measured["seconds"] and all(s > 0 for s in measured["seconds"]) and measured["machine"]
    assert set(measured["preinstalled"]) == {"torch", "transformers"} and "bitsandbytes" in measured["installed"]
    setup = timetable.setup_minutes()
    assert setup["install"] == timetable.minutes(max(measured["seconds"]))
    for part in ("connect", "mount"):
        assert "assumption" in timetable.ASSUMED_SETUP[part][1] and setup[part] == timetable.ASSUMED_SETUP[part][0]
    each, one = timetable.class_plan(path="each"), timetable.class_plan(path="one")
    per_runtime = sum(setup.values())
    assert all(row["setup_min"] == per_runtime for row in each.values())
    assert [row["setup_min"] for row in one.values()] == [per_runtime] + [0] * (len(one) - 1)
    assert timetable.class_total(each) - timetable.class_total(one) >= per_runtime * (len(each) - 1)
    page = timetable.build()
    measured_s = " and ".join(f"{s:.0f} s" for s in measured["seconds"])
    assert (f"**Setup per runtime, {per_runtime} min:** the install **measured** at {measured_s} (two tries), "
            f"planned as {setup['install']} min") in page
    with pytest.raises(ValueError, match="path must be one of"):
        timetable.class_plan(path="two")


def test_each_runtime_moves_its_models_again_one_runtime_moves_each_once():
    fresh, _ = timetable.downloads("t4")
    each, one = timetable.class_plan(25, path="each"), timetable.class_plan(25, path="one")
    assert each["02_quantization"]["class_gb"] == 0 and each["02_quantization"]["hub_gb"] == fresh["02_quantization"]
    assert 5 < each["01_measuring_cost"]["class_gb"] < 8 and each["01_measuring_cost"]["hub_gb"] == 0  # NF4 copy
    for nb in ("03_attention_kernels", "05_batching"):          # the target again in each runtime, not in one
        assert each[nb]["class_gb"] == each["01_measuring_cost"]["class_gb"] and one[nb]["class_gb"] == 0
    assert one["06_larger_baseline"]["class_gb"] < each["06_larger_baseline"]["class_gb"]   # the baseline only
    for plan in (each, one):
        for row in plan.values():
            assert row["read_min"] == timetable.download_minutes(row["class_gb"], 25)
            assert row["total"] == (row["setup_min"] + row["talk"] + row["exercises"] + row["wait_min"]
                                    + row["read_min"] + row["run_min"])
    # a runtime of its own waits for its hub downloads behind its talk
    quantize = each["02_quantization"]
    assert quantize["wait_min"] == max(0, timetable.download_minutes(quantize["hub_gb"], 25) - quantize["talk"])
    run, how = timetable.t4_estimate()
    rehearsed = timetable.gpu_rehearsal()
    assert set(run) == set(rehearsed) and all(run[nb] > rehearsed[nb] for nb in run)    # full runs take longer
    assert one["02_quantization"]["run_min"] == timetable.minutes(run["02_quantization"])
    assert timetable.class_plan(25, 1.5, "one")["02_quantization"]["run_min"] == timetable.minutes(run["02_quantization"] * 1.5)
    assert "estimate" in timetable.build() and "x 5.33 for the t4 profile's full runs" in how


def test_one_runtime_never_holds_more_than_a_t4_and_frees_where_a_lesson_needs_it():
    rows = {r["notebook"]: r for r in timetable.residency()}
    assert list(rows) == list(timetable.CORE)
    for r in rows.values():
        assert r["peak_gb"] <= r["usable_gb"] == 15.0
    assert rows["01_measuring_cost"]["resident"] == ["Qwen/Qwen3-8B nf4"]
    assert rows["02_quantization"]["freed"] == ["Qwen/Qwen3-8B nf4"]       # it measures each precision alone
    assert rows["06_larger_baseline"]["freed"] == ["Qwen/Qwen3-8B nf4"]    # the 14B needs the room
    assert rows["04_speculative_decoding"]["peak_gb"] > rows["05_batching"]["peak_gb"]   # the draft beside it
    assert "### One runtime: what is in GPU memory, lesson by lesson" in timetable.build()


def test_a_late_class_is_told_what_to_cut_first():
    plan = timetable.class_plan()
    cuts = timetable.late_cuts(plan)
    assert cuts[0] == ("set 06's exercise as homework", plan["06_larger_baseline"]["exercises"])
    run = next(m for what, m in cuts if what.startswith("show 06"))
    six = plan["06_larger_baseline"]
    assert run == six["run_min"] + six["wait_min"] + six["read_min"]
    rate, slow = timetable.HELD_AT
    assert (f"cut in this order (the minutes each saves at {rate:g} MB/s and {slow:g}x the estimate, in one runtime): "
            "set 06's exercise as homework") in timetable.build()


def test_one_t4_memory_figure_in_the_profile_the_emulation_and_the_timetable():
    from utils.models.emulate import TARGETS, described
    from utils.models.profiles import get_profile
    t4 = TARGETS["t4"]
    assert described(t4).vram_gb == t4.usable_gb < 15.84        # torch's total on a Colab T4, less the CUDA context
    assert f"{t4.usable_gb:g} GB usable" in get_profile("t4").description
    assert f"the kit plans with {t4.usable_gb:.1f} GB of a T4" in timetable.build()
