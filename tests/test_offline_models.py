"""The offline profile's models make the workshop's comparisons meaningful.

They load through the same load_model() path as hub models; these tests fail if
a rebuild makes the draft useless, the baseline no better than the target, or
4-bit quantization visibly harmful.
"""

import json

import pytest

from utils.models.loading import OFFLINE_DIR, load_model
from utils.measure import make_inputs
from utils.quality import heldout_text, perplexity
from utils.speculative import AcceptanceRecorder, check_pair, set_draft_length

ROLES = ("draft", "target", "baseline")
PPL_TOKENS = None     # the whole held-out text (19.5k tokens): the ordering margins are ~10%


@pytest.fixture(scope="module")
def models(cpu_hw):
    return {role: load_model(f"offline:{role}", "float32", hw=cpu_hw) for role in ROLES}


@pytest.fixture(scope="module")
def ppl(models):
    return {role: perplexity(m.model, m.tokenizer, heldout_text(), max_tokens=PPL_TOKENS).perplexity
            for role, m in models.items()}


def test_models_are_safetensors_llamas_with_bitsandbytes_friendly_sizes():
    for role in ROLES:
        folder = OFFLINE_DIR / role
        assert (folder / "model.safetensors").is_file()
        assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["model_type"] == "llama"
        assert cfg["hidden_size"] % 64 == 0 and cfg["intermediate_size"] % 64 == 0
        assert (folder / "tokenizer.json").is_file()


def test_sizes_draft_at_least_4x_smaller_baseline_larger(models):
    n = {role: m.model.num_parameters() for role, m in models.items()}
    assert n["target"] >= 4 * n["draft"]
    assert n["baseline"] >= 2 * n["target"]
    check_pair(models["target"].model.config, models["draft"].model.config)


def test_perplexity_ordering_baseline_target_draft(ppl):
    assert ppl["baseline"] < ppl["target"] < ppl["draft"]


def test_trained_not_random(ppl):
    # a uniform guess over 2,048 tokens has perplexity 2,048
    assert ppl["draft"] < 200


def test_nf4_costs_only_a_few_percent_of_perplexity(cpu_hw, ppl):
    nf4 = load_model("offline:target", "nf4", hw=cpu_hw)
    assert type(nf4.model.model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    q = perplexity(nf4.model, nf4.tokenizer, heldout_text(), max_tokens=PPL_TOKENS).perplexity
    assert abs(q / ppl["target"] - 1) < 0.05


@pytest.mark.parametrize("draft_length", [1, 4])
def test_greedy_draft_acceptance_well_above_chance(models, draft_length):
    import torch
    target, draft = models["target"], models["draft"]
    set_draft_length(draft.model, draft_length)
    text = heldout_text()
    with AcceptanceRecorder(target.model) as rec, torch.inference_mode():
        for start in (0, 6000, 12000, 18000):
            inputs = make_inputs(target.tokenizer, text[start:start + 2000], 96)
            target.model.generate(**inputs, assistant_model=draft.model, max_new_tokens=48,
                                  do_sample=False, pad_token_id=target.tokenizer.pad_token_id)
    assert rec.stats.steps > 10
    # the fixed draft length is honoured (only a call's last steps are cut short by max_new_tokens)
    assert max(rec.stats.drafted) == draft_length
    assert sum(d == draft_length for d in rec.stats.drafted) >= 0.8 * rec.stats.steps
    # per-token acceptance (Leviathan's alpha); chance would be ~1/2048
    assert rec.stats.alpha >= 0.4
    if draft_length == 1:
        assert rec.stats.acceptance_rate == pytest.approx(rec.stats.alpha)


def test_agreement_reports_the_first_divergence():
    import torch

    from utils.speculative import agreement
    prompt = [7, 8, 9]
    a = torch.tensor([prompt + [1, 2, 3, 4, 5]])
    assert agreement(a, a.clone(), 3).identical and "all 5" in str(agreement(a, a.clone(), 3))
    b = torch.tensor([prompt + [1, 2, 9, 4, 5]])
    found = agreement(a, b, 3)
    assert (found.matching, found.compared, found.first_divergence) == (4, 5, 2)
    assert "first difference is at generated token 2" in str(found)
    assert agreement(a, a[:, :6], 3).first_divergence == 3          # one stopped early


# --- the mixture of experts (notebook 09) --------------------------------------------------------
def test_the_moe_has_the_targets_active_size_and_about_the_baselines_total(cpu_hw):
    """Built as Mixtral: 11 experts, 2 per token, each half the target's MLP width, so a token
    uses the target's parameters and memory holds about the baseline's."""
    from utils.models.loading import model_config
    from utils.memory import ModelShape
    from utils.models.profiles import ModelRef
    folder = OFFLINE_DIR / "moe"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "mixtral" and cfg["hidden_size"] % 64 == 0 and cfg["intermediate_size"] % 64 == 0
    moe, target, baseline = (ModelShape.from_config(model_config(ModelRef(f"offline:{r}", "local")))
                             for r in ("moe", "target", "baseline"))
    assert moe.active_params == target.params + moe.moe_layers * moe.experts * moe.hidden   # + the routers
    assert abs(moe.params / baseline.params - 1) < 0.01
    loaded = load_model("offline:moe", "float32", hw=cpu_hw)
    assert loaded.model.num_parameters() == moe.params


def test_the_moe_is_trained_and_its_router_spreads_the_load(cpu_hw, ppl):
    from utils import moe
    loaded = load_model("offline:moe", "float32", hw=cpu_hw)
    q = perplexity(loaded.model, loaded.tokenizer, heldout_text(), max_tokens=PPL_TOKENS).perplexity
    assert q < 2 * ppl["target"]                         # trained, in the dense models' league
    counts = moe.tokens_per_expert(loaded.model, loaded.tokenizer, heldout_text(), tokens=2048)
    for b in moe.balance(counts):
        assert b.busiest < 3 and b.idlest > 0.05          # every expert gets tokens: the balancing loss worked


def test_the_readme_states_the_offline_models_sizes_as_their_configs_give_them():
    """The README's offline-profile row is typed prose: its parameter counts must be the configs'."""
    from pathlib import Path

    from utils.models.loading import model_config
    from utils.memory import ModelShape
    from utils.models.profiles import ModelRef
    shapes = {r: ModelShape.from_config(model_config(ModelRef(f"offline:{r}", "local")))
              for r in ("target", "draft", "baseline", "moe")}
    m = lambda n: f"{n / 1e6:.1f}M"                                          # noqa: E731
    row = next(line for line in (Path(__file__).parent.parent / "README.md").read_text().splitlines()
               if line.startswith("| `offline` |"))
    assert f"({m(shapes['target'].params)} / {m(shapes['draft'].params)} / {m(shapes['baseline'].params)} parameters)" in row
    assert f"({m(shapes['moe'].params)} total, {m(shapes['moe'].active_params)} active)" in row
