"""Kept copies (utils.models.kept): a quantized model saved once and read back in a later runtime."""

import json
from collections import namedtuple

import pytest

from utils.models import kept
from utils.models.loading import load_model
from utils.models.profiles import ModelRef

HUB = ModelRef("Qwen/Qwen3-8B", "main")


@pytest.fixture
def keep_dir(tmp_path, monkeypatch):
    """Copies kept in a temporary folder, and the tiny local checkpoint treated as worth keeping
    (a hub model would be; the tests have no hub)."""
    monkeypatch.setenv(kept.ENV_KEEP, str(tmp_path / "kept"))
    monkeypatch.setattr(kept, "worth_keeping", lambda ref, precision: True)
    return tmp_path / "kept"


def logits(loaded, model=None, text="The cost of a token fell"):
    """``loaded``'s logits on a short text (with ``model`` in place of its own, if given)."""
    import torch
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return (model or loaded.model)(ids).logits


def test_where_copies_are_kept(tmp_path, monkeypatch):
    monkeypatch.delenv(kept.ENV_KEEP, raising=False)
    drive = tmp_path / "MyDrive"
    assert kept.root(in_colab=False, drive=drive) is None               # a local hub cache lasts
    assert kept.root(in_colab=True, drive=drive) is None                # Colab, Drive not mounted
    drive.mkdir()
    assert kept.root(in_colab=True, drive=drive) == drive / "llmflation-lab" / "models"
    monkeypatch.setenv(kept.ENV_KEEP, "off")
    assert kept.root(in_colab=True, drive=drive) is None
    monkeypatch.setenv(kept.ENV_KEEP, str(tmp_path / "mine"))
    assert kept.root(in_colab=False, drive=drive) == tmp_path / "mine"


def test_only_a_quantized_hub_model_is_worth_a_copy():
    assert kept.worth_keeping(HUB, "nf4") and kept.worth_keeping(HUB, "int8")
    assert not kept.worth_keeping(HUB, "float16")                       # the download again
    assert not kept.worth_keeping(ModelRef("offline:target", "local"), "nf4")   # on disk already


@pytest.mark.parametrize("precision", ["nf4", "int8"])
def test_a_kept_copy_reads_back_the_same_model_without_quantizing_again(
        tiny_checkpoint, cpu_hw, keep_dir, precision):
    import torch
    from utils.memory import GB, ModelShape, predict_memory

    first = load_model(str(tiny_checkpoint), precision, hw=cpu_hw, keep=True, log=lambda m: None)
    assert first.kept_copy is None
    copy = kept.folder(keep_dir, first.ref, precision)
    manifest = json.loads((copy / kept.MANIFEST).read_text())
    assert manifest["precision"] == precision and manifest["model"] == str(tiny_checkpoint)
    assert any(name.endswith(".safetensors") for name in manifest["files"])
    assert not list(copy.glob("*.bin"))

    said = []
    again = load_model(str(tiny_checkpoint), precision, hw=cpu_hw, keep=True, log=said.append)
    assert again.kept_copy == copy and "no download" in said[0]
    assert torch.equal(logits(first), logits(again))
    # the size the timetable states for a copy is the predicted weight memory
    stored = sum(p.stat().st_size for p in copy.glob("*.safetensors")) / GB
    shape = ModelShape.from_config(json.loads((tiny_checkpoint / "config.json").read_text()))
    predicted = predict_memory(shape, precision, compute_dtype="float32").weights_gb   # as loaded on a CPU
    assert stored == pytest.approx(predicted, rel=0.03)    # + safetensors headers


def test_without_keep_a_copy_is_neither_written_nor_read(tiny_checkpoint, cpu_hw, keep_dir):
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, log=lambda m: None)
    assert loaded.kept_copy is None and not keep_dir.exists()
    load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, keep=True, log=lambda m: None)
    assert load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, log=lambda m: None).kept_copy is None


def repacked_for_this_cpu(model) -> bool:
    """Whether bitsandbytes repacked ``model``'s 4-bit weights into its CPU layout at a forward
    pass. bitsandbytes does that only on CPUs with AVX-512 BF16 (``has_avx512bf16``); elsewhere
    (an AVX2-only AMD EPYC, say) the weights stay as loaded."""
    return any(getattr(getattr(getattr(m, "weight", None), "quant_state", None),
                       "packing_format_for_cpu", False) for m in model.modules())


def test_a_copy_saved_after_a_forward_pass_on_a_cpu_reads_back_wrong(tiny_checkpoint, cpu_hw, tmp_path):
    """Why utils.models.kept saves right after loading: on a CPU with AVX-512 BF16, bitsandbytes
    repacks 4-bit weights at the first forward pass, and save_pretrained then writes the repacked
    bytes. Where this CPU does not repack, there is nothing to show (the copy the kit saves reads
    back exactly on every CPU: test_a_kept_copy_reads_back_the_same_model_without_quantizing_again)."""
    import torch
    from transformers import AutoModelForCausalLM
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw)
    before = logits(loaded)
    if not repacked_for_this_cpu(loaded.model):
        pytest.skip("bitsandbytes does not repack 4-bit weights on this CPU (no AVX-512 BF16)")
    loaded.model.save_pretrained(tmp_path / "late")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "late", dtype=torch.float32, device_map="cpu")
    assert not torch.allclose(before, logits(loaded, back), atol=1e-3)


def test_the_repack_check_sees_a_repacked_layer_and_a_plain_one(tiny_checkpoint, cpu_hw):
    """The skip above can only hide the upstream behaviour where it really is absent."""
    from types import SimpleNamespace
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw)
    assert not repacked_for_this_cpu(loaded.model)                  # before any forward pass
    layer = next(m for m in loaded.model.modules() if hasattr(getattr(m, "weight", None), "quant_state"))
    state = layer.weight.quant_state
    layer.weight.quant_state = SimpleNamespace(packing_format_for_cpu=True)
    assert repacked_for_this_cpu(loaded.model)
    layer.weight.quant_state = state


@pytest.fixture
def saved(tiny_checkpoint, cpu_hw, keep_dir):
    load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, keep=True, log=lambda m: None)
    ref = ModelRef(str(tiny_checkpoint), "main")
    return ref, kept.folder(keep_dir, ref, "nf4")


@pytest.mark.parametrize("damage, reason", [
    (lambda copy: (copy / kept.MANIFEST).write_text("{not json"), "damaged"),
    (lambda copy: (copy / kept.MANIFEST).unlink(), "damaged"),
    (lambda copy: next(copy.glob("*.safetensors")).write_bytes(b"short"), "incomplete"),
    (lambda copy: _edit(copy, bitsandbytes="0.0.1"), "bitsandbytes '0.0.1'"),
    (lambda copy: _edit(copy, revision="0123abc"), "revision '0123abc'"),
])
def test_a_copy_that_does_not_match_is_not_used_and_says_why(saved, damage, reason):
    ref, copy = saved
    damage(copy)
    said = []
    assert kept.find(copy.parent, ref, "nf4", "float32", log=said.append) is None
    assert len(said) == 1 and reason in said[0] and str(copy) in said[0]


def _edit(copy, **fields):
    manifest = json.loads((copy / kept.MANIFEST).read_text())
    (copy / kept.MANIFEST).write_text(json.dumps({**manifest, **fields}))


def test_another_precision_or_compute_dtype_is_another_copy(saved):
    ref, copy = saved
    assert kept.find(copy.parent, ref, "nf4", "float32").path == copy
    assert kept.find(copy.parent, ref, "fp4", "float32") is None                    # not there: silent
    said = []
    assert kept.find(copy.parent, ref, "nf4", "float16", log=said.append) is None
    assert "compute_dtype 'float32' (now 'float16')" in said[0]


def test_no_room_for_a_copy_is_said_and_the_model_still_loads(tiny_checkpoint, cpu_hw, keep_dir, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(kept.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**5))
    said = []
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, keep=True, log=said.append)
    assert loaded.model is not None
    assert any(m.startswith("not kept:") and "GB free" in m for m in said)
    assert not list(keep_dir.glob("*")) if keep_dir.exists() else True


def test_an_interrupted_save_leaves_no_copy_behind(tiny_checkpoint, cpu_hw, keep_dir, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    def broken(self, folder, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", broken)
    said = []
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw, keep=True, log=said.append)
    assert loaded.model is not None and "No space left on device" in said[-1]
    assert list(keep_dir.iterdir()) == []           # neither a copy nor a .partial folder
    assert kept.find(keep_dir, loaded.ref, "nf4", "float32") is None


def test_a_copy_on_drive_is_read_over_the_network_once_per_runtime(saved, tmp_path, monkeypatch):
    ref, copy = saved

    def found():
        return kept.find(copy.parent, ref, "nf4", "float32")
    monkeypatch.setattr(kept, "STAGE_DIR", tmp_path / "local")
    assert kept.staged(found()) == copy                                  # a local folder: used in place
    monkeypatch.setattr(kept, "REMOTE", copy.parent)                     # as if it were on Drive
    local = kept.staged(found())
    assert local.parent == tmp_path / "local" and kept.find(local.parent, ref, "nf4", "float32").path == local
    weights = next(local.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())                            # untouched by a second call:
    before = weights.stat().st_mtime_ns
    assert kept.staged(found()) == local and weights.stat().st_mtime_ns == before
    _edit(copy, saved="2027-01-01T00:00:00+00:00")                       # a newer copy on Drive: staged again
    assert kept.staged(found()) == local and weights.stat().st_mtime_ns != before


def test_no_room_on_the_local_disk_reads_the_copy_where_it_is(saved, tmp_path, monkeypatch):
    ref, copy = saved
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(kept, "STAGE_DIR", tmp_path / "local")
    monkeypatch.setattr(kept, "REMOTE", copy.parent)
    found = kept.find(copy.parent, ref, "nf4", "float32")
    monkeypatch.setattr(kept.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**5))
    said = []
    assert kept.staged(found, log=said.append) == copy and "directly" in said[0]


def test_preflight_says_whether_the_targets_copy_is_there_or_has_room(tmp_path, monkeypatch, hw):
    from utils.models.preflight import kept_checks
    from utils.models.profiles import get_profile
    t4, profile = hw["T4"], get_profile("t4")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setenv(kept.ENV_KEEP, str(tmp_path / "drive" / "models"))
    monkeypatch.setattr(kept.shutil, "disk_usage", lambda path: usage(15 * 10**9, 12 * 10**9, 3 * 10**9))
    (check,) = kept_checks(profile, t4)
    assert not check.ok and "needs 6.4 GB" in check.message and "16.4 GB again" in check.message
    monkeypatch.setattr(kept.shutil, "disk_usage", lambda path: usage(15 * 10**9, 0, 15 * 10**9))
    (check,) = kept_checks(profile, t4)
    assert check.ok and "notebook 01 saves Qwen/Qwen3-8B in nf4" in check.message
    copy = kept.folder(tmp_path / "drive" / "models", profile.target, "nf4")    # as notebook 01 leaves it
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"x" * 64)
    (copy / kept.MANIFEST).write_text(json.dumps(dict(
        kept.wanted(profile.target, "nf4", "float16"), files={"model.safetensors": 64}, saved="2026-11-23")))
    (check,) = kept_checks(profile, t4)
    assert check.ok and "no download" in check.message
    _edit(copy, bitsandbytes="0.0.1")
    (check,) = kept_checks(profile, t4)
    assert check.ok and "none yet (the kept copy" in check.message and "bitsandbytes '0.0.1'" in check.message
    monkeypatch.setenv(kept.ENV_KEEP, "off")
    assert kept_checks(profile, t4) == []
    assert kept_checks(get_profile("offline"), hw["none"]) == []


def test_where_the_class_copies_are_seen(tmp_path, monkeypatch):
    monkeypatch.delenv(kept.ENV_CLASS, raising=False)
    drive = tmp_path / "MyDrive"
    assert kept.class_root(in_colab=True, drive=drive) is None            # Drive not mounted
    (drive / kept.CLASS_FOLDER / "models").mkdir(parents=True)            # the instructor's folder, added
    assert kept.class_root(in_colab=True, drive=drive) == drive / kept.CLASS_FOLDER / "models"
    assert kept.class_root(in_colab=False, drive=drive) is None
    monkeypatch.setenv(kept.ENV_CLASS, str(tmp_path / "class"))
    assert kept.class_root(in_colab=True, drive=drive) == tmp_path / "class"
    monkeypatch.setenv(kept.ENV_CLASS, "off")
    assert kept.class_root(in_colab=True, drive=drive) is None


def test_a_class_copy_is_prepared_once_and_read_instead_of_quantizing(tmp_path, monkeypatch, cpu_hw):
    """End to end on the offline profile, a local folder standing in for the shared Drive folder:
    the instructor shares, a learner's runtime checks and reads it, notebook 02 (shared=False) does not,
    and a copy made with another bitsandbytes is refused with the reason."""
    import torch
    from utils.tools import class_copy
    from utils.models.profiles import get_profile
    profile, folder, said = get_profile("offline"), tmp_path / "class", []
    monkeypatch.delenv(kept.ENV_CLASS, raising=False)
    monkeypatch.setenv(kept.ENV_KEEP, "off")
    assert class_copy.share(folder, profile, cpu_hw, "nf4", log=said.append)
    assert [line.split(":")[0] for line in said if line.startswith("[")] == ["[ok] target", "[ok] baseline", "[ok] moe"]
    monkeypatch.setenv(kept.ENV_CLASS, str(folder))
    said.clear()
    assert class_copy.main(["check", "--profile", "offline", "--precision", "nf4"]) == 0
    read = load_model(profile.target, "nf4", hw=cpu_hw, log=said.append)
    assert read.kept_copy == kept.folder(folder, profile.target, "nf4") and "no download" in said[0]
    quantized = load_model(profile.target, "nf4", hw=cpu_hw, shared=False, log=said.append)     # notebook 02
    assert quantized.kept_copy is None
    assert torch.equal(logits(read), logits(quantized))
    _edit(kept.folder(folder, profile.target, "nf4"), bitsandbytes="0.0.1")
    said.clear()
    assert load_model(profile.target, "nf4", hw=cpu_hw, log=said.append).kept_copy is None
    assert said[0].startswith("the class copy at") and "bitsandbytes '0.0.1'" in said[0]
    said.clear()
    assert not class_copy.check(None, profile, cpu_hw, "nf4", log=said.append)
    assert said[0].startswith("[!!] target") and "downloads its 16-bit checkpoint instead" in said[0]
    assert class_copy.main(["check", "--profile", "offline", "--precision", "nf4"]) == 1


def test_sharing_what_fits_in_16_bits_or_without_a_folder_says_why(tmp_path, monkeypatch, cpu_hw, capsys):
    from utils.tools import class_copy
    from utils.models.profiles import get_profile
    said = []
    assert not class_copy.share(tmp_path / "c", get_profile("offline"), cpu_hw, "float32", log=said.append)
    assert "nothing to share" in said[0] and not (tmp_path / "c").exists()
    monkeypatch.delenv(kept.ENV_CLASS, raising=False)
    assert not class_copy.check(None, get_profile("offline"), cpu_hw, "nf4", log=said.append)
    assert f"MyDrive/{kept.CLASS_FOLDER}" in said[-1]
    with pytest.raises(SystemExit):
        class_copy.main(["share", str(tmp_path / "c"), "--precision", "nf5"])
    assert "unknown precision 'nf5'" in capsys.readouterr().err


def test_preflight_says_which_class_copies_this_runtime_can_use(tmp_path, monkeypatch, hw):
    from utils.models.preflight import class_checks
    from utils.models.profiles import get_profile
    t4, profile = hw["T4"], get_profile("t4")
    monkeypatch.delenv(kept.ENV_CLASS, raising=False)
    assert class_checks(profile, t4) == []                      # no class folder: nothing said
    monkeypatch.setenv(kept.ENV_CLASS, str(tmp_path / "class"))
    checks = {c.name: c for c in class_checks(profile, t4)}
    assert set(checks) == {"class copy (target)", "class copy (baseline)"}     # the MoE fits in fp16 on a T4
    assert not checks["class copy (target)"].ok and "downloads its 16.4 GB instead" in checks["class copy (target)"].message
    copy = kept.folder(tmp_path / "class", profile.target, "nf4")
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"x" * 64)
    (copy / kept.MANIFEST).write_text(json.dumps(dict(
        kept.wanted(profile.target, "nf4", "float16"), files={"model.safetensors": 64}, saved="2026-11-23")))
    assert class_checks(profile, t4)[0].ok and "no download" in class_checks(profile, t4)[0].message


def test_a_learner_whose_cheapest_precision_the_class_does_not_share_is_told(tmp_path, monkeypatch, hw, capsys):
    from utils import session
    from utils.models.profiles import get_profile
    monkeypatch.setenv(kept.ENV_CLASS, str(tmp_path / "class"))
    copy = kept.folder(tmp_path / "class", get_profile("t4").target, "nf4")
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"x" * 64)
    (copy / kept.MANIFEST).write_text(json.dumps(dict(
        kept.wanted(get_profile("t4").target, "nf4", "float16"), files={"model.safetensors": 64}, saved="2026-11-23")))
    lab = session.Lab(notebook="05", hw=hw["T4"], profile=get_profile("t4"), store=None, price_per_hour=0.35, text="")
    monkeypatch.delenv("LLMFLATION_RANDOM_WEIGHTS", raising=False)
    assert lab._class_copy_precision() == "nf4"               # the class shares the target in nf4
    import shutil
    shutil.rmtree(copy)
    assert lab._class_copy_precision() is None                 # no usable copy: nothing to prefer


def test_a_4_bit_variant_that_won_by_noise_alone_gives_way_to_the_class_copys(monkeypatch):
    from utils import chain

    def record(precision, median, low, high):
        return dict(step="+ 4-bit", run="r1", settings=dict(profile="t4", precision=precision),
                    hardware=dict(gpu_name="Tesla T4"), metrics=dict(e2e_tok_s=dict(median=median, low=low, high=high)))
    fp4, nf4 = record("fp4", 10.0, 9.0, 11.0), record("nf4", 9.5, 9.0, 10.5)
    monkeypatch.setattr(chain, "base_for", lambda step, records, group: fp4)
    base = dict(precision="fp4", attn_implementation="sdpa", builds_on="+ 4-bit", tokens_per_s=10.0, batch=1)
    group = ("t4", "Tesla T4", False)
    chosen = chain.prefer(base, [nf4, fp4], group, "+ attention", "nf4")
    assert chosen["precision"] == "nf4" and chosen["within_noise_of"] == "fp4" and chosen["tokens_per_s"] == 9.5
    slower = record("nf4", 5.0, 4.5, 5.5)                      # beyond the noise: the faster one stays
    assert chain.prefer(base, [slower, fp4], group, "+ attention", "nf4") == base
    other_run = dict(nf4, run="r0")                           # another run's nf4 is no like-for-like rival
    assert chain.prefer(base, [other_run, fp4], group, "+ attention", "nf4") == base
