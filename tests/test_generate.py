"""Sampling: the KV cache changes speed, not results; the sampling rules do what they say."""

import dataclasses

import pytest
import torch

from sml.generate import TextStream, complete, generate, pick, prompt_ids
from sml.kvcache import KVCache
from sml.model import GPT
from sml.tokenizer import Tokenizer
from tests.conftest import MIXED, SONNET
from tests.test_model import TINY, VARIANTS


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(SONNET + MIXED, 300, "gpt4")


@pytest.mark.parametrize("positions, norm, mlp", VARIANTS[::2])
@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_cached_and_uncached_generation_agree_past_the_context(positions, norm, mlp, attention):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions=positions, norm=norm, mlp=mlp, attention=attention), 50)
    prompt = [1, 2, 3]
    for settings in ({"temperature": 0.0}, {"temperature": 1.0, "top_k": 10, "top_p": 0.9, "seed": 3}):
        cached = list(generate(model, prompt, 60, use_cache=True, **settings))  # block_size is 16
        uncached = list(generate(model, prompt, 60, use_cache=False, **settings))
        assert cached == uncached and len(cached) == 60


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_cached_logits_equal_full_forward_logits(positions):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions=positions), 50).eval()
    x = torch.randint(0, 50, (2, 16))
    full = model(x)[0]
    cache = KVCache(model, 2, "cpu")
    parts = [model(x[:, :5], cache=cache)[0]] + [model(x[:, i : i + 1], cache=cache)[0] for i in range(5, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 16


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_one_captured_graph_serves_the_decode_step_at_every_position(positions):
    # What torch.compile and CUDA graphs need: the one-token step has the same shapes, and no
    # Python number that changes, at every position, so it is traced once and then reused.
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, positions=positions), 50).eval()
    graphs = []

    def backend(graph, example_inputs):  # torch.compile hands each traced graph to its backend
        graphs.append(graph)
        return graph.forward  # ...and runs it as it is, uncompiled

    step = torch.compile(model, backend=backend, dynamic=False, fullgraph=True)
    cache, want = KVCache(model, 1, "cpu"), KVCache(model, 1, "cpu")
    x = torch.randint(0, 50, (1, 12))
    with torch.inference_mode():
        for i in range(12):
            got = step(x[:, i : i + 1], cache=cache)[0]
            torch.testing.assert_close(got, model(x[:, i : i + 1], cache=want)[0])
    assert len(graphs) == 1  # traced at position 0, reused at positions 1 .. 11
    assert int(cache.length) == 12


def test_sampling_rules():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([1.0, 3.0, 2.0, -1.0])
    assert pick(logits, 0.0, 0, 1.0, g) == 1  # greedy
    assert {pick(logits, 1.0, 2, 1.0, g) for _ in range(200)} == {1, 2}  # top-2
    # top-p 0.5: the first token alone holds 0.66 of the mass, so it is the only candidate.
    assert {pick(logits, 1.0, 0, 0.5, g) for _ in range(100)} == {1}
    draws = [pick(logits, 5.0, 0, 1.0, g) for _ in range(400)]  # a hot temperature flattens
    assert len(set(draws)) == 4


def test_a_seed_makes_samples_reproducible():
    torch.manual_seed(0)
    model = GPT(TINY, 50)
    a = list(generate(model, [1], 30, temperature=1.0, seed=7))
    assert a == list(generate(model, [1], 30, temperature=1.0, seed=7))
    assert a != list(generate(model, [1], 30, temperature=1.0, seed=8))


def test_prompts_empty_or_too_long(tok):
    eot = tok.special_tokens["<|endoftext|>"]
    assert prompt_ids(tok, "", 16) == ([eot], "empty prompt: starting from <|endoftext|>")
    long = SONNET[:400]
    ids, note = prompt_ids(tok, long, 16)
    assert ids == tok.encode(long)[-16:] and "cut to its last 16" in note
    assert prompt_ids(tok, "ROMEO:", 16) == (tok.encode("ROMEO:"), "")


def test_text_stream_never_splits_a_character(tok):
    ids = tok.encode("東京 👩‍👩‍👧 é", special="text")
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == "東京 👩‍👩‍👧 é"
    assert "\ufffd" not in "".join(pieces)


def test_complete_streams_text_that_matches_the_tokens(tok):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, block_size=32), tok.vocab_size)
    pieces, note = complete(model, tok, "ROMEO:", 40, temperature=0.0)
    text = "".join(pieces)
    ids, _ = prompt_ids(tok, "ROMEO:", 32)
    assert text == tok.decode(list(generate(model, ids, 40, temperature=0.0))) and note == ""


def test_a_prompt_with_a_lone_surrogate_makes_a_page_utf8_can_hold(tok):
    from sml.generate import samples_markdown

    torch.manual_seed(0)
    model = GPT(TINY, tok.vocab_size)
    page = samples_markdown(model, tok, ["ROMEO\udcff:"], {"max_new_tokens": 3, "temperature": 1.0, "top_k": 0,
                                                           "top_p": 1.0, "seed": 0}, "t")
    page.encode("utf-8")  # would raise on a lone surrogate
    assert "ROMEO\ufffd:" in page


def test_decode_steps_run_without_onednn_on_a_cpu_and_give_the_setting_back():
    # oneDNN's setup per call costs more than a one-row step (docs/benchmarks.md): generate turns
    # it off around each model call only, so the caller's code between two tokens never sees it off.
    torch.manual_seed(0)
    model = GPT(TINY, 50)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.backends.mkldnn.enabled))
    assert torch.backends.mkldnn.enabled
    tokens = generate(model, [1, 2], 5)
    first = next(tokens)
    assert torch.backends.mkldnn.enabled  # suspended between two tokens
    assert [first, *tokens] == list(generate(model, [1, 2], 5)) and seen == [False] * 10
    assert torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # off already: left off
    try:
        list(generate(model, [1, 2], 2))
        assert not torch.backends.mkldnn.enabled
    finally:
        torch.backends.mkldnn.enabled = True


def test_small_ops_puts_onednn_back_after_an_error():
    from sml.run.device import small_ops

    with pytest.raises(KeyboardInterrupt), small_ops(torch.device("cpu")):
        assert not torch.backends.mkldnn.enabled
        raise KeyboardInterrupt
    assert torch.backends.mkldnn.enabled
