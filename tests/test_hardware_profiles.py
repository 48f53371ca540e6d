import pytest

from utils.hardware import bf16_native, detect_hardware, sdpa_backends_for
from utils.profiles import ProfileError, auto_profile_name, get_profile, load_profile, profile_names


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
    from utils.profiles import PROFILES_FILE
    text = PROFILES_FILE.read_text()
    start = text.index(f"[{name}]")
    end = text.find("\n[", start + 1)
    return text[start:end if end > 0 else None]
