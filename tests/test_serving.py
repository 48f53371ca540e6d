"""Serving (notebook 08): the trace, the KV-cache layouts, and both engines on a tiny model."""

import types

import pytest

from utils import serving


def fake_tokenizer(n=400):
    return lambda text, add_special_tokens=False: {"input_ids": list(range(n))}


def test_the_trace_is_seeded_bounded_and_ordered():
    tok = fake_tokenizer()
    a = serving.make_trace(tok, "", n=20, seed=3, prompt=(8, 64), new=(2, 16))
    assert a == serving.make_trace(tok, "", n=20, seed=3, prompt=(8, 64), new=(2, 16))
    assert a != serving.make_trace(tok, "", n=20, seed=4, prompt=(8, 64), new=(2, 16))
    assert all(8 <= len(r.prompt_ids) <= 64 and 2 <= r.new_tokens <= 16 for r in a)
    assert [r.arrival_s for r in a] == sorted(r.arrival_s for r in a) and a[0].arrival_s == 0
    shared = serving.make_trace(tok, "", n=5, seed=3, shared_prefix=10)
    assert all(r.prompt_ids[:10] == tuple(range(10)) for r in shared)
    with pytest.raises(ValueError):
        serving.make_trace(tok, "", n=5, new=(1, 4))           # one token is no decode


def test_kv_layouts_by_hand():
    req = lambda p, n: serving.Request("r", 0.0, tuple(range(p)), n)   # noqa: E731
    trace = [req(10, 5), req(30, 2), req(4, 20)]                 # used 15, 32, 24 = 71
    rows = {r["layout"].split(" ")[0]: r for r in serving.kv_layouts(trace, page_size=16, batch=2, max_length=64)}
    assert rows["reserved"]["reserved_tokens"] == 3 * 64
    assert rows["padded"]["reserved_tokens"] == 2 * (30 + 5) + (4 + 20)       # batches [0, 1] and [2]
    assert rows["paged,"]["reserved_tokens"] == 16 + 32 + 32
    assert rows["paged,"]["wasted"] == pytest.approx(1 - 71 / 80)


def test_percentiles_and_latencies():
    assert serving.percentile([1, 2, 3, 4, 5], 50) == 3 and serving.percentile([1, 2, 3, 4, 5], 90) == 4.6
    s = serving.Served(serving.Request("r", 1.0, (1,), 3), [1.5, 1.7, 2.0])
    assert s.ttft_s == 0.5 and s.itl_s == pytest.approx([0.2, 0.3])


def test_both_engines_serve_every_request_its_tokens(tiny_checkpoint, cpu_hw):
    from utils.models.loading import load_model
    loaded = load_model(str(tiny_checkpoint), "float32", hw=cpu_hw)
    trace = serving.make_trace(loaded.tokenizer, "def f(x):\n    return x + 1\n" * 40, n=5, seed=1,
                               rate_per_s=1000.0, prompt=(8, 40), new=(2, 12), shared_prefix=32)
    static = serving.run_static(loaded.model, loaded.tokenizer, trace, batch=2)
    shared = serving.run_continuous(loaded.model, trace, prefix_sharing=True)
    for run in (static, shared):
        assert [len(s.token_times) for s in run.served] == [r.new_tokens for r in trace]
        assert all(s.ttft_s > 0 for s in run.served) and run.tokens_per_s > 0
    padded = serving.kv_layouts(trace, 16, 2, 64)[1]
    held, used = static.extra["kv_held_bytes"], static.extra["kv_used_bytes"]
    # the cache holds every slot but the last token's: one slot per row fewer than predicted
    per_token = serving.kv_bytes_per_token(loaded.model)
    assert held == (padded["reserved_tokens"] - len(trace)) * per_token
    assert used == padded["used_tokens"] * per_token
    assert static.extra["generated_tokens"] == sum(len(trace[i:i + 2]) * max(r.new_tokens for r in trace[i:i + 2])
                                                   for i in range(0, 5, 2))
    assert shared.extra["prefix_tokens_reused"] % 16 == 0          # whole pages only


def test_the_curve_step_needs_a_warm_up_and_builds_on_batching():
    from utils.steps import BUILDS_ON, STEP_ORDER
    with pytest.raises(ValueError, match="warmup >= 1"):
        serving.measure_continuous(types.SimpleNamespace(), fake_tokenizer(), "", prompt_tokens=8,
                                   new_tokens=4, requests=2, warmup=0)
    assert STEP_ORDER[-1] == "+ continuous batching" and "+ batching" in BUILDS_ON["+ continuous batching"]
