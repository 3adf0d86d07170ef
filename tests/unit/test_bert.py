"""The from-scratch BERT against transformers.BertModel and sentence-transformers, same weights."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from course_lib import artifacts, inspection
from course_lib import bert as B
from course_lib.data import read_raw_corpus
from course_lib.models import packaged_model_dir
from course_lib.multihead import MultiHeadAttention
from course_lib.tokenizer import WordPieceTokenizer

ATOL = 1e-5


@pytest.fixture(scope="module")
def folder():
    return packaged_model_dir()


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer.from_pretrained("minilm")


@pytest.fixture(scope="module")
def ours():
    return B.BertModel.from_pretrained("minilm")


@pytest.fixture(scope="module")
def hf(folder):
    from transformers import BertModel

    # "eager" attention: the default SDPA path cannot return the attention weights.
    return BertModel.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def batch(tok):
    """A padded batch: 12 tweets of different lengths, plus a sentence pair (token types 0
    and 1)."""
    texts = [t.text for t in read_raw_corpus()[:12]]
    texts[3] = "ok"
    firsts = texts + ["Is this the question?"]
    seconds = [None] * len(texts) + ["Yes, and this is the second segment."]
    rows = [tok.encode(a, b) for a, b in zip(firsts, seconds)]
    width = max(len(r["input_ids"]) for r in rows)
    out = {k: torch.tensor([r[k] + [0] * (width - len(r[k])) for r in rows]) for k in rows[0]}
    assert (out["attention_mask"] == 0).any() and (out["token_type_ids"] == 1).any()
    return out


@pytest.fixture(scope="module")
def outputs(ours, hf, batch):
    with torch.no_grad():
        return (
            ours(**batch, output_hidden_states=True, output_attentions=True),
            hf(**batch, output_hidden_states=True, output_attentions=True),
        )


def test_config_is_read_from_config_json(folder):
    cfg = B.BertConfig.from_json(folder)
    raw = json.loads((folder / "config.json").read_text())
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (384, 6, 12)
    assert cfg.intermediate_size == raw["intermediate_size"] and cfg.head_dim == 32


def test_parameter_count_equals_hugging_face(ours, hf):
    assert (
        sum(p.numel() for p in ours.parameters())
        == sum(p.numel() for p in hf.parameters())
        == 22_713_216
    )


def test_self_attention_is_course_lib_multihead(ours):
    assert all(isinstance(layer.attention, MultiHeadAttention) for layer in ours.layers)


def test_every_layer_matches_hugging_face_on_a_padded_batch(outputs, batch):
    """Float32, real tokens of every layer and all attention weights within 1e-5.

    Measured on this batch: 6.0e-6 (hidden states) and 2.4e-6 (weights), the same with 1, 2 or 4
    threads. The whole gap is rounding: course_lib.attention's hand-written softmax and
    torch.softmax differ in the last bit, and six layers amplify it (over 20 random 16-tweet
    batches the worst was 1.1e-5 / 1.2e-5). With torch.softmax swapped in, the two models agree
    bit for bit; in float64 they agree to 1e-13 (next test).
    """
    o, h = outputs
    real = batch["attention_mask"].bool()
    assert len(o.hidden_states) == len(h.hidden_states) == 7
    assert len(o.attentions) == len(h.attentions) == 6
    for i, (a, b) in enumerate(zip(o.hidden_states, h.hidden_states)):
        assert a.shape == b.shape
        diff = (a - b)[real].abs().max().item()  # every real token of every layer
        assert diff <= ATOL, f"hidden state {i}: max abs diff {diff:.2e}"
    for i, (a, b) in enumerate(zip(o.attentions, h.attentions)):
        n, length = batch["input_ids"].shape
        assert a.shape == b.shape == (n, 12, length, length)
        diff = (a - b).abs().max().item()  # all positions, padding included
        assert diff <= ATOL, f"attention weights of layer {i}: max abs diff {diff:.2e}"
    assert (o.pooler_output - h.pooler_output).abs().max().item() <= ATOL
    assert torch.equal(o.last_hidden_state, o.hidden_states[-1])


def test_padding_positions_are_equal_too_in_float64(ours, hf, batch):
    # In float32 the hidden states AT padding positions (which no real token attends to and no
    # pooling reads) agree to about 2e-5 only: rounding differences between two softmax
    # implementations grow there; HF's own "sdpa" and "eager" paths differ by as much. In
    # float64 the rounding is gone and every position of every layer agrees.
    o64, h64 = copy.deepcopy(ours).double(), copy.deepcopy(hf).double()
    with torch.no_grad():
        o = o64(**batch, output_hidden_states=True, output_attentions=True)
        h = h64(**batch, output_hidden_states=True, output_attentions=True)
    for a, b in zip(o.hidden_states + o.attentions, h.hidden_states + h.attentions):
        assert (a - b).abs().max().item() <= 1e-10


def test_mean_pooled_embeddings_equal_sentence_transformers(ours, tok, folder):
    from sentence_transformers import SentenceTransformer

    texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The new movie is awesome",
        "héllo wörld 😀 我爱",
        "",
        "@united thanks for nothing... #fail " * 20,
    ]
    st = SentenceTransformer(str(folder), device="cpu")  # loads offline from the packaged folder
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    expected = st.encode(texts, convert_to_tensor=True, batch_size=4)
    got = B.sentence_embeddings(ours, tok, texts, batch_size=4)
    assert got.shape == expected.shape == (6, 384)
    assert (got - expected).abs().max().item() <= ATOL
    assert torch.allclose(got.norm(dim=-1), torch.ones(6))


def test_mean_pooling_ignores_padding(ours, tok):
    texts = ["short", "a much longer sentence that forces padding on the short one"]
    together = B.sentence_embeddings(ours, tok, texts)
    alone = B.sentence_embeddings(ours, tok, texts[:1])
    assert (together[0] - alone[0]).abs().max().item() <= ATOL
    sim = B.cosine_similarity_matrix(together)
    assert sim.shape == (2, 2) and torch.allclose(sim.diagonal(), torch.ones(2))


def test_name_map_covers_every_hugging_face_parameter_once(hf, ours):
    mapped = [B.hf_to_ours(name) for name in hf.state_dict()]
    ours_names = set(ours.state_dict())
    assert None not in mapped and len(set(mapped)) == len(mapped) and set(mapped) == ours_names
    assert B.hf_to_ours("bert.encoder.layer.3.output.LayerNorm.gamma") == "layers.3.ffn_norm.weight"
    assert B.hf_to_ours("embeddings.position_ids") is None
    with pytest.raises(KeyError):
        B.hf_to_ours("classifier.weight")


def test_loading_fails_loudly_naming_missing_unexpected_and_misshaped(folder, ours):
    good = load_file(str(folder / "model.safetensors"))
    assert len(B.convert_hf_state_dict(good, ours)) == len(ours.state_dict())

    broken = dict(good)
    del broken["encoder.layer.2.attention.self.key.bias"]
    broken["classifier.weight"] = torch.zeros(3, 384)
    broken["pooler.dense.bias"] = torch.zeros(7)
    with pytest.raises(B.WeightLoadingError) as info:
        B.convert_hf_state_dict(broken, ours)
    message = str(info.value)
    assert "layers.2.attention.k_proj.bias" in message and "missing" in message
    assert "classifier.weight" in message and "unexpected" in message
    assert "pooler.dense.bias (7,)" in message and "shape mismatch" in message


def _tiny_config(**changes):
    """A 2-layer, 4-head tiny BERT with dropout on (as Hugging Face's defaults have it)."""
    dropout = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    base = artifacts.tiny_bert_settings(
        vocab_size=50, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=20
    )
    return {**base, **dropout, **changes}


@pytest.mark.parametrize("act", ["gelu", "relu", "gelu_new"])
def test_random_tiny_bert_round_trip_through_safetensors(tmp_path, act):
    """Any config: a random HF BertModel saved as safetensors loads into ours and agrees."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    raw = _tiny_config(hidden_act=act)
    theirs = BertModel(BertConfig(**raw, attn_implementation="eager")).eval()
    (tmp_path / "config.json").write_text(json.dumps({**raw, "model_type": "bert"}))
    save_file(
        {k: v.contiguous() for k, v in theirs.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    mine = B.BertModel.from_pretrained(tmp_path)
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])
    types = torch.randint(0, 2, (3, 9))
    with torch.no_grad():
        a = mine(ids, mask, types, output_hidden_states=True, output_attentions=True)
        b = theirs(
            input_ids=ids,
            attention_mask=mask,
            token_type_ids=types,
            output_hidden_states=True,
            output_attentions=True,
        )
    for x, y in zip(a.hidden_states + a.attentions, b.hidden_states + b.attentions):
        assert (x - y).abs().max().item() <= ATOL


def test_pickle_checkpoints_are_refused(tmp_path):
    model = B.BertModel(B.BertConfig(**_tiny_config()))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(ValueError, match="pickle"):
        B.load_pretrained_weights(model, tmp_path / "pytorch_model.bin")


def test_bad_configs_and_inputs_raise_clear_errors(ours, tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        B.BertConfig(hidden_size=10, num_attention_heads=3)
    with pytest.raises(ValueError, match="hidden_act"):
        B.BertConfig(hidden_act="swish")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="gpt2"):
        B.BertConfig.from_json(tmp_path)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        ours(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="attention_mask"):
        ours(torch.ones(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="positions 0..511"):
        ours(torch.ones(1, 513, dtype=torch.long))


def test_train_mode_uses_dropout_and_eval_mode_is_deterministic(tok):
    model = B.BertModel(B.BertConfig(**_tiny_config(vocab_size=30522)))
    ids = torch.tensor([[101, 7592, 2088, 102]])
    model.train()
    assert not torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)
    model.eval()
    assert torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


def test_attention_maps_and_explorer(ours, tok):
    tokens, maps = inspection.attention_maps(ours, tok, "The cat sat on the mat.")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert maps.shape == (6, 12, len(tokens), len(tokens))
    assert torch.allclose(maps.sum(-1), torch.ones(6, 12, len(tokens)), atol=1e-5)
    import matplotlib

    matplotlib.use("Agg")
    widget = inspection.attention_explorer(ours, tok, "hello world")
    assert type(widget).__name__ == "VBox"
    text_box, sliders, _ = widget.children
    layer, head = sliders.children
    assert (layer.max, head.max, layer.value) == (5, 11, 5)
    text_box.value, head.value = "a different text", 3  # redraws without error


def test_checkers_report_correct_wrong_and_unsolved(capsys):
    def right(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def plain_mean(hidden, mask):  # the classic mistake: padding counted
        return hidden.mean(1)

    def unsolved(*args):
        raise NotImplementedError

    assert B.check_mean_pooling(right) is right
    assert "[correct]" in capsys.readouterr().out
    assert B.check_mean_pooling(plain_mean) is B.mean_pooling
    assert "REAL tokens" in capsys.readouterr().out
    assert B.check_mean_pooling(unsolved) is B.mean_pooling
    assert "[skipped]" in capsys.readouterr().out


def test_parameter_count_formula_equals_the_modules():
    for raw in (
        _tiny_config(),
        _tiny_config(num_hidden_layers=3, num_attention_heads=8, intermediate_size=48),
        _tiny_config(vocab_size=7, max_position_embeddings=3, type_vocab_size=1),
    ):
        config = B.BertConfig(**raw)
        counted = sum(p.numel() for p in B.BertModel(config).parameters())
        assert B.parameter_count(config) == counted
    minilm = B.BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    )
    assert B.parameter_count(minilm) == 22_713_216
    assert B.parameter_count(B.BertConfig()) == 109_482_240  # bert-base-uncased's BertModel


def test_parameter_count_checker_reports_correct_wrong_and_unsolved(capsys):
    def right(config):
        return B.parameter_count(config)

    def no_layernorms(config):  # a classic slip: LayerNorms hold parameters too
        D = config.hidden_size
        return B.parameter_count(config) - 2 * D * (1 + 2 * config.num_hidden_layers)

    def per_head(config):  # another: counting the projections once per head
        D = config.hidden_size
        return B.parameter_count(config) + 4 * D * D * (config.num_attention_heads - 1)

    def unsolved(config):
        raise NotImplementedError

    assert B.check_parameter_count(right) is right
    assert "[correct]" in capsys.readouterr().out
    assert B.check_parameter_count(no_layernorms) is B.parameter_count
    out = capsys.readouterr().out
    assert "[not yet]" in out and "LayerNorm" in out
    assert B.check_parameter_count(per_head) is B.parameter_count
    assert "more heads changes no matrix size" in capsys.readouterr().out
    assert B.check_parameter_count(unsolved) is B.parameter_count
    assert "[skipped]" in capsys.readouterr().out


def test_attention_patterns_on_hand_made_maps():
    L = 5
    previous = torch.zeros(L, L)
    previous[0, 0] = 1.0
    previous[torch.arange(1, L), torch.arange(L - 1)] = 1.0
    uniform = torch.full((L, L), 1.0 / L)
    to_first = torch.zeros(L, L)
    to_first[:, 0] = 1.0
    maps = torch.stack([torch.stack([previous, uniform]), torch.stack([to_first, torch.eye(L)])])
    found = inspection.attention_patterns(maps)
    assert list(found) == list(inspection.ATTENTION_PATTERNS)
    assert all(v.shape == (2, 2) for v in found.values())
    assert found["the previous token"][0, 0] == 1.0 and found["the next token"][0, 0] == 0.0
    assert torch.allclose(found["itself"][0, 1], torch.tensor(0.2))
    assert found["[CLS]"][1, 0] == 1.0 and found["[SEP]"][1, 0] == 0.0
    assert found["itself"][1, 1] == 1.0 and found["[SEP]"][1, 1] == 0.2
    with pytest.raises(ValueError, match=r"\(layers, heads, L, L\)"):
        inspection.attention_patterns(torch.zeros(2, 3, 4))


def test_attention_grid_and_similarity_figures(ours, tok):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens, maps = inspection.attention_maps(ours, tok, "The cat sat on the mat.")
    fig = inspection.plot_attention_grid(maps, title="all heads")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6 * 12
    assert panels[0].get_title() == "head 0" and panels[11].get_title() == "head 11"
    assert panels[0].get_ylabel() == "layer 0" and panels[12 * 5].get_ylabel() == "layer 5"
    assert all(ax.images[0].get_clim() == (0, 1) for ax in panels)  # one shared scale
    bars = [ax for ax in fig.axes if not ax.images]
    assert len(bars) == 1 and bars[0].get_ylabel() == "attention weight"  # one colourbar
    assert fig.get_size_inches()[0] <= 11  # fits a notebook's width
    plt.close(fig)

    texts = ["a", "b", "a rather long sentence that the axis labels have to shorten"]
    sim = B.cosine_similarity_matrix(B.sentence_embeddings(ours, tok, texts))
    ax = inspection.plot_similarity_matrix(sim, texts)
    assert ax.images[0].get_clim() == (0, 1) and len(ax.texts) == 9
    assert ax.get_xticklabels()[2].get_text().endswith("…")
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="N = len"):
        inspection.plot_similarity_matrix(sim, texts[:2])
