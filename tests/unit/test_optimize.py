"""course_lib.optimize on a tiny random BERT classifier (built in a second, exported once per
session)."""

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import tiny_classifier

from course_lib import artifacts, measuring, metrics
from course_lib import inference as I
from course_lib import optimize as O
from course_lib import settings as course_settings

TEXTS = [
    "what a great flight",
    "they lost my bag again!!",
    "ok",
    "the crew was friendly but the seat broke",
    "@united delayed 3 hours #fail",
    "fine.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def onnx_paths(tiny, out_dir):
    return I.onnx_files(tiny, out_dir)


@pytest.fixture(scope="module")
def reference(tiny):
    """The Hugging Face model itself, the reference every variant is compared with."""
    model, tokenizer = artifacts.load_classifier(tiny)
    return model, tokenizer


def hf_logits(reference, texts):
    model, tokenizer = reference
    enc = tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=course_settings.MAX_TOKENS,
        return_tensors="pt",
    )
    with torch.no_grad():
        return model(**enc).logits.numpy()


def test_softmax_rows_sum_to_one_and_match_torch():
    z = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32) * 30
    p = I.softmax_rows(z)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(z), -1).numpy(), atol=1e-6)


def test_tokenize_shapes_and_bad_input(reference):
    batch = I.tokenize(reference[1], TEXTS)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[0] == len(TEXTS) and batch["input_ids"].dtype == np.int64
    long = I.tokenize(reference[1], ["word " * 500])
    assert long["input_ids"].shape[1] == course_settings.MAX_TOKENS
    for bad in ([], "a bare string"):
        with pytest.raises(ValueError, match="non-empty list"):
            I.tokenize(reference[1], bad)


def test_labels_of_reads_id2label(tiny, tmp_path):
    assert artifacts.labels_of(tiny) == ["negative", "neutral", "positive"]
    with pytest.raises(ValueError, match="save_pretrained"):
        artifacts.labels_of(tmp_path)


def test_eager_fp32_matches_hugging_face(tiny, reference):
    v = I.eager_fp32(tiny)
    np.testing.assert_allclose(v.logits(TEXTS), hf_logits(reference, TEXTS), atol=1e-5)
    assert v.size_bytes == (tiny / "model.safetensors").stat().st_size
    probs = v.predict_proba(TEXTS)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v.predict(TEXTS, batch_size=4), probs.argmax(-1))


def test_onnx_export_has_dynamic_batch_and_sequence_axes(onnx_paths):
    import onnx

    graph = onnx.load(str(onnx_paths[0])).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["logits"]
    for i in graph.input:
        dims = i.type.tensor_type.shape.dim
        assert len(dims) == 2 and all(d.dim_param and not d.dim_value for d in dims), dims
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3


@pytest.fixture(scope="module")
def onnx_fp32_variant(onnx_paths, reference):
    return I.onnx_variant("onnx fp32", onnx_paths[0], reference[1])


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.text(alphabet="abcdefgh xyz!?@#é", min_size=1, max_size=60), min_size=1, max_size=5)
)
def test_onnx_fp32_matches_eager_for_any_batch_and_length(onnx_fp32_variant, reference, texts):
    np.testing.assert_allclose(
        onnx_fp32_variant.logits(texts), hf_logits(reference, texts), atol=1e-4
    )


def test_onnx_int8_is_smaller_and_close(onnx_paths, reference):
    fp32, int8 = onnx_paths
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
    v = I.onnx_variant("onnx int8", int8, reference[1])
    got, want = v.logits(TEXTS), hf_logits(reference, TEXTS)
    spread = np.abs(want).max()
    assert np.abs(got - want).max() < 0.1 * spread + 1e-3, (got, want)


def test_onnx_files_are_cached(tiny, out_dir, onnx_paths):
    before = [p.stat().st_mtime_ns for p in onnx_paths]
    again = I.onnx_files(tiny, out_dir)
    assert again == onnx_paths and [p.stat().st_mtime_ns for p in again] == before


def test_onnx_variant_rejects_wrong_inputs(tmp_path, reference):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])
    path = tmp_path / "wrong.onnx"
    onnx.save(
        helper.make_model(
            helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], "g", [x], [y]),
            opset_imports=[helper.make_opsetid("", 17)],
        ),
        str(path),
    )
    with pytest.raises(ValueError, match="expected"):
        I.onnx_variant("wrong", path, reference[1])


def test_torch_dynamic_int8_quantises_every_linear(tiny, out_dir, reference):
    v = O.torch_dynamic_int8(tiny, out_dir)
    model = reference[0]
    q = O.quantize_torch_dynamic(model)
    kinds = {type(m).__module__ for m in q.modules() if "Linear" in type(m).__name__}
    assert kinds and all("quantized" in k for k in kinds), kinds
    assert any(type(m) is torch.nn.Linear for m in model.modules()), "the original must stay float"
    got, want = v.logits(TEXTS), hf_logits(reference, TEXTS)
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max() + 1e-3
    assert v.size_bytes > 0


@settings(max_examples=10, deadline=None)
@given(st.floats(min_value=0.0, max_value=0.95))
def test_magnitude_prune_hits_the_sparsity_and_keeps_the_largest(reference, sparsity):
    model = reference[0]
    before = {n: p.clone() for n, p in model.named_parameters()}
    pruned = O.magnitude_prune(model, sparsity)
    total = sum(m.weight.numel() for m, _ in O.prunable_weights(pruned))
    assert abs(O.weight_sparsity(pruned) - sparsity) <= 1.0 / total + 1e-9
    kept = torch.cat([m.weight[m.weight != 0].abs() for m, _ in O.prunable_weights(pruned)])
    orig = torch.cat([o.weight.flatten().abs() for o, _ in O.prunable_weights(model)])
    zeroed = torch.cat(
        [
            (o.weight[p.weight == 0]).abs()
            for (o, _), (p, _) in zip(O.prunable_weights(model), O.prunable_weights(pruned))
        ]
    )
    if len(zeroed) and len(kept):
        assert zeroed.max() <= kept.min() + 1e-12, (
            "magnitude pruning must remove the smallest |w| first"
        )
    assert len(orig) == total
    for n, p in model.named_parameters():  # the original is untouched
        assert torch.equal(p, before[n]), n
    assert not any(
        name.endswith("_mask") or name.endswith("_orig") for name, _ in pruned.named_parameters()
    )


def test_magnitude_prune_rejects_bad_sparsity(reference):
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="sparsity"):
            O.magnitude_prune(reference[0], bad)


def test_pruned_variant_saves_and_reports_sparsity(tiny, out_dir):
    v = O.pruned(tiny, 0.5, out_dir)
    assert v.sparsity == pytest.approx(0.5, abs=1e-3)
    assert v.files and v.size_bytes > 0 and v.name == "pruned 50%"


def test_macro_f1_matches_hand_computation():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    # class 0: P=1/2 R=1/2 F=1/2; class 1: P=2/3 R=1 F=0.8; class 2: P=1 R=1/2 F=2/3
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.macro_f1([0, 1], [0, 0], num_classes=3) == pytest.approx((2 / 3 + 0 + 0) / 3)


def test_percentile_and_its_error():
    assert measuring.percentile([1, 2, 3, 4], 50) == 2.5
    with pytest.raises(ValueError):
        measuring.percentile([], 50)


def test_measure_one_row_per_variant(tiny, onnx_paths, reference):
    variants = [I.eager_fp32(tiny), I.onnx_variant("onnx int8", onnx_paths[1], reference[1])]
    labels = [i % 3 for i in range(len(TEXTS))]
    rows = measuring.measure(
        variants, TEXTS, labels, latency_rounds=6, warmup=1, batch_size=4, progress=False
    )
    assert [r.name for r in rows] == ["pytorch fp32", "onnx int8"]
    for r, v in zip(rows, variants):
        assert len(r.latencies_ms) == 6 and 0 < r.p50_ms <= r.p95_ms
        assert r.throughput > 0 and r.size_mb == pytest.approx(v.size_bytes / 1e6)
        assert r.macro_f1 == pytest.approx(metrics.macro_f1(labels, v.predict(TEXTS), 3))
        assert r.accuracy == pytest.approx(np.mean(v.predict(TEXTS) == np.array(labels)))
    unsorted = measuring.measure(
        variants,
        TEXTS,
        labels,
        latency_rounds=2,
        warmup=1,
        batch_size=4,
        sort_by_length=False,
        progress=False,
    )
    assert [r.macro_f1 for r in unsorted] == [
        r.macro_f1 for r in rows
    ]  # sorting must not mix up the labels
    table = measuring.format_table(rows)
    assert "pytorch fp32" in table and "onnx int8" in table and "1.0x" in table
    assert measuring.speedup(rows, "pytorch fp32", "onnx int8") == pytest.approx(
        rows[0].p50_ms / rows[1].p50_ms
    )
    with pytest.raises(ValueError, match="no measurement"):
        measuring.speedup(rows, "pytorch fp32", "nope")


def test_measure_rejects_bad_arguments(tiny):
    v = I.eager_fp32(tiny)
    with pytest.raises(ValueError):
        measuring.measure([], TEXTS, [0] * len(TEXTS))
    with pytest.raises(ValueError, match="equal length"):
        measuring.measure([v], TEXTS, [0])
    with pytest.raises(ValueError, match="latency_rounds"):
        measuring.measure([v], TEXTS, [0] * len(TEXTS), latency_rounds=0)


def test_artifacts_dir_and_fingerprint(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path / "art"))
    assert course_settings.artifacts_dir() == tmp_path / "art"
    assert I.cache_dir_for(tiny).parent == tmp_path / "art" / "optimize"
    first = I.weights_fingerprint(tiny)
    weights = tiny / "model.safetensors"
    st_ = weights.stat()
    os.utime(weights, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    try:
        assert I.weights_fingerprint(tiny) != first, (
            "retrained weights must not reuse a stale export"
        )
    finally:
        os.utime(weights, ns=(st_.st_atime_ns, st_.st_mtime_ns))


def test_plot_latency_vs_f1(tiny):
    import matplotlib

    matplotlib.use("Agg")
    rows = [
        measuring.Measurement("a", 90.0, 10.0, 12.0, 100.0, 0.7, 0.8),
        measuring.Measurement("b", 23.0, 2.0, 3.0, 400.0, 0.69, 0.8),
    ]
    ax = measuring.plot_latency_vs_f1(rows)
    assert ax.get_xscale() == "log" and len(ax.collections) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a, 90 MB", "b, 23 MB"]
    ax.figure.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # beside the data
    ticks = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
    assert "2" in ticks and "10" in ticks  # plain numbers, not 2x10^0


def test_plot_latency_spread_and_weight_range():
    import matplotlib

    matplotlib.use("Agg")
    rows = [
        measuring.Measurement("a", 90.0, 10.0, 12.0, 100.0, 0.7, 0.8, latencies_ms=[9, 10, 12]),
        measuring.Measurement("b", 23.0, 2.0, 3.0, 400.0, 0.69, 0.8, latencies_ms=[2, 2.5, 3]),
    ]
    ax = measuring.plot_latency_spread(rows)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.get_xscale() == "log" and ax.get_xlabel()

    w = torch.tensor([[-0.5, 0.1], [0.2, 0.05]])
    ax = O.plot_weight_range(w)
    assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == pytest.approx([-0.5, 0.5])
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    ax.figure.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-10, max_value=10, allow_nan=False, width=32), min_size=1, max_size=50
    )
)
def test_fake_quantize_int8_error_is_at_most_half_a_step(values):
    w = torch.tensor(values)
    scale = O.int8_scale(w)
    w_hat = O.fake_quantize_int8(w)
    assert w_hat.shape == w.shape and w_hat.dtype == w.dtype
    assert (w - w_hat).abs().max() <= scale / 2 + 1e-6
    if scale:
        codes = torch.round(w_hat / scale)
        assert codes.abs().max() <= 127 and torch.allclose(codes * scale, w_hat, atol=1e-6)


def test_fake_quantize_int8_agrees_with_torch_codes(reference):
    # torch picks scale = max|w| / 127.5 (so code -128 is used too); with its scale, same formula
    w = reference[0].bert.encoder.layer[0].attention.self.query.weight.detach()
    q = O.quantize_torch_dynamic(reference[0]).bert.encoder.layer[0].attention.self.query.weight()
    assert torch.equal(torch.round(w / q.q_scale()).clamp(-128, 127).to(torch.int8), q.int_repr())


def test_check_fake_quantize_int8(capsys):
    assert O.check_fake_quantize_int8(O.fake_quantize_int8) is O.fake_quantize_int8
    assert "[correct]" in capsys.readouterr().out

    def unsolved(w):
        raise NotImplementedError

    assert O.check_fake_quantize_int8(unsolved) is O.fake_quantize_int8
    assert "[skipped]" in capsys.readouterr().out

    def forgot_zero(w):
        scale = w.abs().max() / 127
        return torch.round(w / scale) * scale

    assert O.check_fake_quantize_int8(forgot_zero) is O.fake_quantize_int8
    out = capsys.readouterr().out
    assert "[not yet]" in out and "all zeros" in out


def test_predicted_int8_megabytes_counts_weights_of_the_listed_types(reference):
    small = O._size_test_model()
    # embed 1000x16, norm 16+16, hidden 16x64 + 64, out 64x3 (no bias)
    n_embed, n_norm, n_hidden_w, n_hidden_b, n_out = 16000, 32, 1024, 64, 192
    total = n_embed + n_norm + n_hidden_w + n_hidden_b + n_out
    assert O.predicted_int8_megabytes(small) == pytest.approx(4 * total / 1e6)
    linear = n_embed * 4 + n_norm * 4 + n_hidden_w + n_hidden_b * 4 + n_out
    assert O.predicted_int8_megabytes(small, (torch.nn.Linear,)) == pytest.approx(linear / 1e6)
    both = (torch.nn.Linear, torch.nn.Embedding)
    assert O.predicted_int8_megabytes(small, both) == pytest.approx((linear - 3 * n_embed) / 1e6)


def test_predicted_int8_megabytes_is_close_to_the_real_files(tiny, out_dir, onnx_paths, reference):
    model = reference[0]
    torch_file = O.torch_dynamic_int8(tiny, out_dir).size_bytes / 1e6
    predicted = O.predicted_int8_megabytes(model, (torch.nn.Linear,))
    assert predicted == pytest.approx(torch_file, rel=0.05)
    # ONNX: the stored tensors are the prediction (plus a few int64 index tables and the
    # scales); the file adds the graph itself, a fixed cost that is large for a tiny model
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_paths[1])).graph
    stored = sum(numpy_helper.to_array(t).nbytes for t in graph.initializer) / 1e6
    both = O.predicted_int8_megabytes(model, (torch.nn.Linear, torch.nn.Embedding))
    assert both == pytest.approx(stored, rel=0.03)
    assert both < onnx_paths[1].stat().st_size / 1e6 < both + 0.5


def test_check_predicted_int8_megabytes(capsys):
    assert O.check_predicted_int8_megabytes(O.predicted_int8_megabytes) is (
        O.predicted_int8_megabytes
    )
    assert "[correct]" in capsys.readouterr().out

    def unsolved(model, int8_types):
        raise NotImplementedError

    assert O.check_predicted_int8_megabytes(unsolved) is O.predicted_int8_megabytes
    assert "[skipped]" in capsys.readouterr().out

    def biases_in_int8_too(model, int8_types):
        return (
            sum(
                p.numel() * (1 if isinstance(m, int8_types) else 4)
                for m in model.modules()
                for p in m.parameters(recurse=False)
            )
            / 1e6
        )

    assert O.check_predicted_int8_megabytes(biases_in_int8_too) is O.predicted_int8_megabytes
    out = capsys.readouterr().out
    assert "[not yet]" in out and "bias stays float32" in out and "all float32" not in out


def ort_dynamic_quantize_linear(x: np.ndarray):
    """ONNX Runtime's own DynamicQuantizeLinear (the op its dynamic int8 graphs quantise
    activations with), run on ``x``: the reference for ``optimize.quantize_uint8``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero_point"])
    graph = helper.make_graph(
        [node],
        "dql",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [
            helper.make_tensor_value_info("y", TensorProto.UINT8, [None]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("zero_point", TensorProto.UINT8, []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32)})


@pytest.mark.parametrize(
    "low, high", [(-0.17, 4.0), (-3.0, 1.0), (0.5, 2.0), (-2.0, -0.1), (-1.0, 1.0)]
)
def test_quantize_uint8_matches_onnx_runtime(low, high):
    x = np.random.default_rng(0).uniform(low, high, 5000).astype(np.float32)
    codes, scale, zero_point = O.quantize_uint8(x)
    want_codes, want_scale, want_zero_point = ort_dynamic_quantize_linear(x)
    assert scale == pytest.approx(float(want_scale), rel=1e-6)
    assert zero_point == int(want_zero_point)
    assert np.abs(codes.astype(int) - want_codes.astype(int)).max() <= 1  # a half, rounded apart
    assert (codes == want_codes).mean() > 0.999
    back = O.fake_quantize_uint8(torch.from_numpy(x))
    inside = (x >= min(low, 0)) & (x <= max(high, 0))
    assert (back - torch.from_numpy(x)).abs()[inside].max() <= scale / 2 + 1e-6
    assert O.fake_quantize_uint8(torch.zeros(3)).eq(0).all()  # zero stays exact
    assert O.fake_quantize_uint8(torch.tensor([0.0, 1.0]))[0] == 0


def test_onnx_bytes_per_channel_against_per_tensor(tiny, out_dir, onnx_paths):
    """Per channel: one float32 scale and one zero point per output channel of every matrix;
    per tensor: one of each per matrix. The kinds add up to the file size."""
    import onnx
    from onnx import numpy_helper

    per_tensor = O.onnx_int8_per_tensor(tiny, out_dir)
    for path, per_channel in ((onnx_paths[1], True), (per_tensor.files[0], False)):
        kinds = O.onnx_bytes_by_kind(path)
        assert sum(kinds.values()) == path.stat().st_size and kinds["graph and framing"] > 0
        weights = [
            numpy_helper.to_array(t)
            for t in onnx.load(str(path)).graph.initializer
            if t.name.endswith("_quantized")
        ]
        matrices = [w for w in weights if w.dtype == np.int8]  # MatMul weights (in, out)
        tables = len(weights) - len(matrices)  # embedding tables: uint8, one scale each
        scales = sum(w.shape[-1] for w in matrices) if per_channel else len(matrices)
        assert kinds["scales (float32)"] == 4 * (scales + tables), path.name
        assert kinds["zero points"] == scales + tables
    assert per_tensor.predict(TEXTS).shape == (len(TEXTS),)
