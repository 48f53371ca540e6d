import pytest

from utils.models.hardware import bf16_native, sdpa_backends_for
from utils.models.profiles import ProfileError, auto_profile_name, get_profile, load_profile, profile_names


def test_bf16_by_compute_capability_not_emulation():
    assert not bf16_native((7, 5))      # T4: torch says bf16 "supported" (emulated); we say no
    assert bf16_native((8, 0)) and bf16_native((9, 0))
    assert not bf16_native(None)


def test_sdpa_backends_follow_compute_capability():
    assert sdpa_backends_for((7, 5)) == ["math", "efficient"]
    assert "flash" in sdpa_backends_for((8, 0)) and "cudnn" not in sdpa_backends_for((8, 0))
    assert "cudnn" in sdpa_backends_for((9, 0))


def test_detect_hardware_without_gpu_reports_cpu(cpu_hw):
    assert cpu_hw.device == "cpu" and cpu_hw.compute_dtype == "float32"
    assert cpu_hw.ram_gb > 0 and cpu_hw.free_disk_gb > 0
    assert "CPU only" in cpu_hw.summary()


@pytest.mark.parametrize("name, expected", [("T4", "t4"), ("L4", "gpu24"), ("A100-40", "a100-40"),
                                            ("A100-80", "a100-80"), ("H100", "a100-80"),
                                            ("H200", "h200"), ("none", "offline")])
def test_auto_profile_from_mocked_hardware(hw, name, expected, monkeypatch):
    monkeypatch.delenv("LLMFLATION_PROFILE", raising=False)
    assert auto_profile_name(hw[name]) == expected
    assert load_profile(hw=hw[name]).name == expected


def test_env_variable_overrides_hardware(hw, monkeypatch):
    monkeypatch.setenv("LLMFLATION_PROFILE", "cpu")
    assert load_profile(hw=hw["H100"]).name == "cpu"


def test_unknown_profile_lists_valid_names(monkeypatch):
    monkeypatch.setenv("LLMFLATION_PROFILE", "t5")
    with pytest.raises(ProfileError) as err:
        load_profile()
    for name in ("offline", "t4", "a100-80", "h200"):
        assert name in str(err.value)


def test_every_profile_is_complete():
    for name in profile_names():
        p = get_profile(name)
        assert p.target.id and p.draft.id and p.baseline.id
        assert p.repeats >= 1 and p.new_tokens >= 2


def test_learner_adds_a_profile_without_editing_code(tmp_path, monkeypatch):
    extra = tmp_path / "mine.toml"
    extra.write_text(get_profile_text("offline").replace("[offline]", "[my-laptop]")
                     .replace("repeats        = 3", "repeats        = 7"))
    monkeypatch.setenv("LLMFLATION_PROFILES_FILE", str(extra))
    assert get_profile("my-laptop").repeats == 7


def test_malformed_extra_profile_file_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[x\n")
    monkeypatch.setenv("LLMFLATION_PROFILES_FILE", str(bad))
    with pytest.raises(ProfileError, match="not valid TOML"):
        profile_names()


def get_profile_text(name):
    from utils.models.profiles import PROFILES_FILE
    text = PROFILES_FILE.read_text()
    start = text.index(f"[{name}]")
    end = text.find("\n[", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("name, precision", [("T4", "nf4"), ("L4", "bfloat16"), ("A100-80", "bfloat16")])
def test_target_precision_fits_the_gpu(hw, name, precision, monkeypatch):
    from utils.models.preflight import fitting_precision
    monkeypatch.delenv("LLMFLATION_PROFILE", raising=False)
    assert fitting_precision(load_profile(hw=hw[name]), hw[name]) == precision


def test_preflight_on_a_t4_flags_fp16_8b_and_says_why(hw, monkeypatch):
    from utils.models.preflight import preflight
    monkeypatch.setattr("utils.models.preflight.has_internet", lambda: False)
    checks = {c.name: c for c in preflight(get_profile("t4"), hw["T4"])}
    assert not checks["target Qwen/Qwen3-8B float16"].ok
    assert "needs about" in checks["target Qwen/Qwen3-8B float16"].message
    assert checks["target Qwen/Qwen3-8B nf4"].ok
    assert not any(c.blocking for c in checks.values())   # fp16 not fitting only warns: NF4 does
    assert not checks["internet"].ok and "offline" in checks["internet"].message
    assert "flash" not in hw["T4"].sdpa_backends


def test_gpu_profile_on_a_cpu_is_refused_by_preflight(hw):
    from utils.models.preflight import preflight
    checks = {c.name: c for c in preflight(get_profile("a100-80"), hw["none"])}
    assert not checks["GPU"].ok and checks["GPU"].blocking
    # what fits is judged on the GPU the profile describes (an A100 80GB), not on this machine's RAM
    assert "target fits" not in checks and checks["target Qwen/Qwen3-8B bfloat16"].ok
    assert "A100 80GB SXM this profile describes" in checks["target Qwen/Qwen3-8B bfloat16"].message


def test_hf_token_value_is_never_shown(hw, monkeypatch):
    from utils.models.preflight import network_checks
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    monkeypatch.setattr("utils.models.preflight.has_internet", lambda: True)
    text = "\n".join(str(c) for c in network_checks(get_profile("t4")))
    assert "set (not shown)" in text and "hf_secret" not in text


@pytest.mark.parametrize("name, key", [("Tesla T4", "T4"), ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
                                       ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                       (None, "cpu-laptop")])
def test_gpu_names_map_to_reference_rows(name, key):
    from utils.data import gpu_key_for
    assert gpu_key_for(name) == key


def test_unknown_gpu_asks_for_its_numbers():
    from utils.data import gpu_key_for
    with pytest.raises(KeyError, match="gpus.csv"):
        gpu_key_for("Imaginary GPU 9000")


def test_baseline_precision_falls_back_to_nf4_or_refuses(hw):
    from utils.memory import ModelTooLargeError
    from utils.models.preflight import fitting_precision
    assert fitting_precision(get_profile("t4"), hw["T4"], role="baseline") == "nf4"
    assert fitting_precision(get_profile("a100-80"), hw["A100-80"], role="baseline") == "bfloat16"
    with pytest.raises(ModelTooLargeError, match="Qwen3-14B"):
        fitting_precision(get_profile("t4"), hw["none"], role="baseline")


def _cgroup(tmp_path, files: dict, proc: str):
    for rel, text in files.items():
        f = tmp_path / "fs" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    (tmp_path / "proc").write_text(proc)
    return tmp_path / "fs", tmp_path / "proc"


def test_cgroup_v2_quota_and_memory_limit_are_read(tmp_path):
    from utils.models.hardware import cgroup_limits
    root, proc = _cgroup(tmp_path, {"cgroup.controllers": "cpu memory", "cpu.max": "100000 100000",
                                    "memory.max": str(2 * 1024**3)}, "0::/\n")
    assert cgroup_limits(root, proc) == {"cpu_quota": 1.0, "memory_gb": 2 * 1024**3 / 1e9,
                                         "memory_free_gb": 2 * 1024**3 / 1e9}


def test_cgroup_v2_without_limits_and_tightest_parent_wins(tmp_path):
    from utils.models.hardware import cgroup_limits
    root, proc = _cgroup(tmp_path, {"cgroup.controllers": "", "cpu.max": "max 100000",
                                    "memory.max": "max"}, "0::/\n")
    assert cgroup_limits(root, proc) == {"cpu_quota": None, "memory_gb": None, "memory_free_gb": None}
    root, proc = _cgroup(tmp_path, {"cgroup.controllers": "", "pod/cpu.max": "max 100000",
                                    "cpu.max": "50000 100000", "pod/memory.max": "1000000000",
                                    "pod/memory.current": "400000000"},
                         "0::/pod\n")
    assert cgroup_limits(root, proc) == {"cpu_quota": 0.5, "memory_gb": 1.0,
                                         "memory_free_gb": pytest.approx(0.6)}


def test_cgroup_v1_quota_and_unlimited_memory(tmp_path):
    from utils.models.hardware import cgroup_limits
    root, proc = _cgroup(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "150000",
                                    "cpu,cpuacct/cpu.cfs_period_us": "100000",
                                    "memory/memory.limit_in_bytes": "9223372036854771712"},
                         "3:cpu,cpuacct:/\n4:memory:/box/1\n0::/\n")
    assert cgroup_limits(root, proc) == {"cpu_quota": 1.5, "memory_gb": None, "memory_free_gb": None}


def test_no_cgroup_files_means_no_limits(tmp_path):
    from utils.models.hardware import cgroup_limits
    assert cgroup_limits(tmp_path / "none", tmp_path / "missing") == {
        "cpu_quota": None, "memory_gb": None, "memory_free_gb": None}


def test_a_container_limit_shapes_cpus_ram_and_the_fit_check(monkeypatch):
    import utils.models.hardware as hwmod
    monkeypatch.setattr(hwmod, "cgroup_limits", lambda: {"cpu_quota": 1.0, "memory_gb": 2.1,
                                                         "memory_free_gb": 1.7})
    monkeypatch.setattr(hwmod, "ram_gb", lambda: 23.5)
    monkeypatch.setattr(hwmod.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(hwmod.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    hw = hwmod.detect_hardware()
    assert (hw.cpu_count, hw.host_cpus, hw.ram_gb, hw.host_ram_gb) == (1, 16, 2.1, 23.5)
    assert hw.free_ram_gb == pytest.approx(1.7) and hwmod.available_gb(hw) == pytest.approx(1.7)
    text = hw.summary()
    assert "CPU only (1 of 16 cores usable: cgroup quota 1 CPU)" in text
    assert "RAM 2.1 GB (container limit; the host has 23.5 GB)" in text


def test_torch_threads_follow_the_usable_cpus_and_are_never_raised():
    import torch

    from utils.models.hardware import Hardware, configure_threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        note = configure_threads(Hardware(device="cpu", cpu_count=1, cpu_quota=1.0, host_cpus=16))
        assert torch.get_num_threads() == 1 and note.startswith("1 (lowered from 4")
        assert configure_threads(Hardware(device="cpu", cpu_count=8)) == "1 (8 cores)"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_binder_pins_the_tested_cpu_build_of_torch():
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    text = (repo / "binder" / "requirements.txt").read_text()
    pins = re.findall(r"^torch==(\S+)$", text, re.M)
    assert len(pins) == 1 and pins[0].endswith("+cpu"), "torch must be pinned to a +cpu build"
    tested = re.search(r"^torch==(\S+)$", (repo / "constraints.txt").read_text(), re.M).group(1)
    assert pins[0] == tested + "+cpu", "binder/requirements.txt and the tested set (constraints.txt) disagree"
    assert not re.search(r"^torch\s*(>=|$)", text, re.M), "an unpinned torch falls back to CUDA"


def test_the_cpu_profile_does_not_claim_binder_which_it_does_not_fit():
    from utils.models.hardware import Hardware
    from utils.models.preflight import memory_checks
    # Binder's 2 GiB, less what JupyterLab and a kernel that has imported the kit use (the
    # kernel alone: 0.26 GB RSS after start() and importing transformers, measured on the CPU build)
    binder = Hardware(device="cpu", ram_gb=2 * 1024**3 / 1e9, free_ram_gb=1.75, free_disk_gb=10)
    profile = load_profile("cpu", binder)
    baseline = [c for c in memory_checks(profile, binder)
                if c.name.startswith("baseline") and "download" not in c.name]
    assert baseline and not any(c.ok for c in baseline), \
        "the cpu profile now fits Binder: say so in its description and the README"
    assert "Binder runs the offline profile" in profile.description


def test_an_untested_transformers_stops_with_the_fix(monkeypatch):
    from utils import versions
    assert versions.tested_range() == ">=5.16,<6"         # read from requirements.txt
    real = versions.installed
    monkeypatch.setattr(versions, "installed",
                        lambda name: "5.15.1" if name == "transformers" else real(name))
    with pytest.raises(versions.UntestedVersionError) as err:
        versions.check_versions(allow_untested=False)
    text = str(err.value)
    assert "transformers 5.15.1" in text and "cache crop" in text and "pip install 'transformers>=5.16,<6'" in text
    assert "UNTESTED" in versions.check_versions(allow_untested=True)
    monkeypatch.setattr(versions, "installed",
                        lambda name: "5.23.0" if name == "transformers" else real(name))
    assert "transformers 5.23.0" in versions.check_versions(allow_untested=False)


def test_a_described_t4_is_computed_with_its_own_limits_even_on_a_bigger_gpu(monkeypatch):
    """The timetable computes what fits on a T4 on any machine, an H100 included: a described
    machine's memory is its own figure, never the live GPU's free memory."""
    import torch

    from utils.models.emulate import TARGETS, described
    from utils.models.hardware import available_gb
    from utils.models.preflight import fitting_precision
    t4 = described(TARGETS["t4"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (80 * 10**9, 80 * 10**9))
    assert available_gb(t4) == TARGETS["t4"].usable_gb and t4.compute_dtype == "float16"
    assert fitting_precision(get_profile("t4"), t4) == "nf4"            # fp16 8B does not fit in 15 GB
