"""Smaller and faster versions of the fine-tuned classifier, and one honest way to measure them.

Five kinds of variant, all turning a list of texts into ``(n, C)`` logits:

==========================  =================================================================
``eager_fp32``              the Hugging Face model as trained: PyTorch, float32, eager mode
``torch_dynamic_int8``      every ``nn.Linear`` weight stored as int8; activations quantised on
                            the fly, per batch (``torch.ao.quantization.quantize_dynamic``)
``onnx_fp32``               the graph exported with ``torch.onnx.export`` (dynamic batch and
                            sequence axes) and run by ONNX Runtime
``onnx_int8``               the ONNX graph with its MatMul weights quantised to int8, one
                            scale per output channel (``onnxruntime.quantization.quantize_dynamic``)
``pruned``                  magnitude pruning: the fraction ``s`` of encoder Linear weights with
                            the smallest ``|w|`` set to zero (global, unstructured)
==========================  =================================================================

Dynamic int8 quantisation maps a float tensor ``x`` to ``q = round(x / scale) + zero_point``
with ``scale = (max(x) - min(x)) / 255``, so ``x ~ scale * (q - zero_point)``. Weights are
quantised once, ahead of time; activations at run time, per batch. Matrix products then run in
int8 with int32 accumulation, which is where the speed comes from.

``course_lib.measuring.measure`` compares the variants: size, latency, throughput, macro-F1.

Exported files go to ``artifacts/`` (git-ignored), cached by the weights they came from.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import checked_model_folder, labels_of, load_classifier
from .runtime.exercises import Case, check_exercise
from .settings import MAX_TOKENS, artifacts_dir

# Part of the cache key of exported files: change it whenever the export recipe changes.
EXPORT_RECIPE = (
    "torch.onnx.export(dynamo) + eager attention; ort quantize_dynamic QInt8 per-channel; v2"
)
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "logits"


# --------------------------------------------------------------------------- where files go


def weights_fingerprint(model_dir: str | os.PathLike) -> str:
    """A short hash of the weight files' path, size and modification time.

    Used as a cache key: a retrained model (or a new ``EXPORT_RECIPE``) gets a fresh export
    instead of a stale one.
    """
    model_dir = Path(model_dir).resolve()
    h = hashlib.sha256(f"{model_dir}|{EXPORT_RECIPE}".encode())
    for f in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def cache_dir_for(model_dir: str | os.PathLike) -> Path:
    """``artifacts/optimize/<model folder name>-<fingerprint>/``: where its variants are written."""
    model_dir = Path(model_dir)
    return (
        artifacts_dir()
        / "optimize"
        / f"{model_dir.resolve().name}-{weights_fingerprint(model_dir)}"
    )


@contextlib.contextmanager
def _quiet(*loggers: str):
    """Silence warnings and the named loggers (exporter and quantiser chatter) for a block."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger, _ in saved:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in saved:
                logger.setLevel(level)


def tokenize(
    tokenizer, texts: Sequence[str], max_length: int = MAX_TOKENS
) -> dict[str, np.ndarray]:
    """Token ids and attention mask, both ``(n, T)`` int64, padded to the longest text (T <=
    max_length)."""
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r:.80}")
    enc = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    return {name: enc[name].astype(np.int64) for name in ONNX_INPUTS}


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``exp(z - max z) / sum exp(z - max z)`` of ``(n, C)`` logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- int8, by hand


def int8_scale(w) -> float:
    """Symmetric per-tensor scale ``max|w| / 127``: the largest magnitude maps to code 127."""
    return float(w.abs().max()) / 127.0


def fake_quantize_int8(w):
    """Quantise to int8 and back: ``scale * round(w / scale)`` with ``scale = max|w| / 127``.

    ``w`` is any float tensor; the result has its shape and dtype. Every entry moves by at most
    ``scale / 2``. An all-zero tensor stays zero.
    """
    import torch

    scale = int8_scale(w)
    if scale == 0.0:
        return torch.zeros_like(w)
    return torch.round(w / scale).clamp(-127, 127) * scale


def check_fake_quantize_int8(fn, verbose: bool = True):
    """Checker for the int8 exercise; returns the function to use from here on."""
    import torch

    g = torch.Generator().manual_seed(2)
    outlier = torch.randn(8, 8, generator=g) * 0.05
    outlier[3, 4] = 4.0
    cases = [
        Case(
            "a small vector",
            (torch.tensor([0.5, -1.0, 0.26, 0.0]),),
            hint="every result must be a whole multiple of the scale, and -1.0 (the largest "
            "magnitude) must come back unchanged.",
        ),
        Case("a random weight matrix", (torch.randn(16, 32, generator=g) * 0.1,)),
        Case(
            "one large outlier",
            (outlier,),
            hint="the scale comes from the largest magnitude, the outlier included.",
        ),
        Case(
            "all zeros",
            (torch.zeros(3, 3),),
            hint="max|w| is 0 here: return zeros instead of dividing by 0.",
        ),
    ]
    return check_exercise(
        "int8 quantise and dequantise", fn, fake_quantize_int8, cases, atol=1e-6, verbose=verbose
    ).function


def predicted_int8_megabytes(model, int8_types: tuple = ()) -> float:
    """The file size, in MB (10^6 bytes), of ``model`` stored with dynamic int8 quantisation.

    The ``weight`` of every module whose type is in ``int8_types`` costs 1 byte per number;
    every other parameter (biases, LayerNorm, the weights of other modules) stays float32, 4
    bytes. ``int8_types=()`` is the float32 model. PyTorch's ``quantize_dynamic`` quantises
    ``(nn.Linear,)``; ONNX Runtime's quantiser also the embedding tables, ``(nn.Linear,
    nn.Embedding)``. Scales, names and file format add a little on top.
    """
    total = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            in_int8 = name == "weight" and isinstance(module, tuple(int8_types))
            total += p.numel() * (1 if in_int8 else 4)
    return total / 1e6


def _size_test_model():
    """A small model with every kind of parameter lesson 06 counts (checker of the size
    exercise)."""
    import torch

    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 16)
            self.norm = torch.nn.LayerNorm(16)
            self.hidden = torch.nn.Linear(16, 64)
            self.out = torch.nn.Linear(64, 3, bias=False)

    return Small()


def check_predicted_int8_megabytes(fn, verbose: bool = True):
    """Checker for ``fn(model, int8_types) -> MB``; returns the function to use from here on."""
    import torch

    small = _size_test_model()
    cases = [
        Case(
            "all float32 (int8_types empty)",
            (small, ()),
            hint="every parameter is a float32 here: 4 bytes each; MB means 10^6 bytes.",
        ),
        Case(
            "nn.Linear in int8 (PyTorch's quantize_dynamic)",
            (small, (torch.nn.Linear,)),
            hint="only the weight of a quantised layer goes to 1 byte; its bias stays float32.",
        ),
        Case(
            "nn.Linear and nn.Embedding in int8 (ONNX Runtime)",
            (small, (torch.nn.Linear, torch.nn.Embedding)),
            hint="the embedding table is a weight too; the LayerNorm stays float32.",
        ),
    ]

    def rounded(f):  # to the byte (10^-6 MB), so that the order of the sums does not matter
        return lambda *args: round(float(f(*args)), 6)

    result = check_exercise(
        "size of an int8 model",
        rounded(fn),
        rounded(predicted_int8_megabytes),
        cases,
        verbose=verbose,
    )
    return fn if result.passed else predicted_int8_megabytes


def plot_weight_range(w, ax=None):
    """Histogram of the values of a weight tensor (log counts) with the range ``+-max|w|`` that
    one int8 scale must cover."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3), layout="constrained")
    values = w.detach().flatten().float().numpy()
    edge = float(np.abs(values).max())
    ax.hist(values, bins=200, color="tab:blue", alpha=0.8, label="weights")
    for x in (-edge, edge):
        ax.axvline(x, color="tab:red", ls="--", lw=1, label="±max|w|" if x > 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (log scale)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title("Most weights are tiny; the scale is set by the rare large ones")
    return ax


# --------------------------------------------------------------------------- the variants


@dataclass
class Variant:
    """One way of running the classifier.

    ``run(batch) -> (n, C) logits`` takes the output of ``tokenize``; ``files`` are what must be
    shipped to run it (their total is the reported size).
    """

    name: str
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    tokenizer: object
    files: list[Path] = field(default_factory=list)
    backend: str = "torch"
    sparsity: float = 0.0
    labels: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(Path(f).stat().st_size for f in self.files)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, C)`` float32 logits for a list of texts."""
        return np.asarray(self.run(tokenize(self.tokenizer, texts)), dtype=np.float32)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, C)`` class probabilities, rows summing to 1."""
        return softmax_rows(self.logits(texts))

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Class index per text, ``(n,)``, computed in batches."""
        out = [
            self.logits(texts[i : i + batch_size]).argmax(-1)
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def torch_variant(
    name: str,
    model,
    tokenizer,
    files: Sequence[Path],
    sparsity: float = 0.0,
    labels: Sequence[str] = (),
) -> Variant:
    """Wrap a PyTorch classifier (anything returning ``.logits``) as a ``Variant``."""
    import torch

    model = model.eval()

    def run(batch):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return out.logits.float().numpy()

    return Variant(name, run, tokenizer, list(files), "torch", sparsity, list(labels))


def eager_fp32(model_dir: str | os.PathLike) -> Variant:
    """The fine-tuned model as saved: PyTorch fp32, eager mode."""
    model_dir = checked_model_folder(model_dir)
    model, tokenizer = load_classifier(model_dir)
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    return torch_variant("pytorch fp32", model, tokenizer, files, labels=labels_of(model_dir))


def quantize_torch_dynamic(model):
    """A copy of ``model`` with every ``nn.Linear`` replaced by a dynamically quantised int8 one.

    Uses ``torch.ao.quantization.quantize_dynamic`` (deprecated in favour of torchao, still
    present and working in torch 2.13; the warnings are silenced here).
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )


def torch_dynamic_int8(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> Variant:
    """PyTorch dynamic int8. Its state dict is saved to ``out_dir`` so that its size is real."""
    import torch

    model_dir = checked_model_folder(model_dir)
    out_dir = Path(out_dir) if out_dir else cache_dir_for(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_classifier(model_dir)
    qmodel = quantize_torch_dynamic(model)
    path = out_dir / "pytorch_int8_state_dict.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(qmodel.state_dict(), path)
    return torch_variant("pytorch int8", qmodel, tokenizer, [path], labels=labels_of(model_dir))


class _LogitsOnly:
    """Factory for a module that returns just the logits tensor (the ONNX graph's one output)."""

    @staticmethod
    def wrap(model):
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        return LogitsOnly(model).eval()


def export_onnx(model, tokenizer, path: str | os.PathLike) -> Path:
    """Export a sequence classifier to one ONNX file with dynamic batch and sequence axes.

    Inputs ``input_ids`` and ``attention_mask`` are ``(batch, sequence)`` int64; the output
    ``logits`` is ``(batch, C)``. Uses the ``torch.export``-based exporter (``dynamo=True``,
    which needs ``onnxscript``); weights are stored inside the file (no external data).
    Written to a temporary name first, so a half-written file is never picked up.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = tokenize(tokenizer, ["an example input", "a second, somewhat longer example input"])
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with _quiet("torch.onnx", "torch.export", "onnxscript"):
        program = torch.onnx.export(
            _LogitsOnly.wrap(model),
            tuple(torch.from_numpy(example[k]) for k in ONNX_INPUTS),
            input_names=list(ONNX_INPUTS),
            output_names=[ONNX_OUTPUT],
            dynamic_shapes={
                "input_ids": {0: batch, 1: sequence},
                "attention_mask": {0: batch, 1: sequence},
            },
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.save(str(tmp), external_data=False)
    os.replace(tmp, path)
    return path


def quantize_onnx_int8(
    src: str | os.PathLike, dst: str | os.PathLike, per_channel: bool = True
) -> Path:
    """ONNX Runtime dynamic quantisation: MatMul weights to signed int8, activations at run time.

    ``per_channel=True`` gives every output channel (row of a weight matrix) its own scale, so a
    large weight coarsens only its own row. On the course model it kept test macro-F1 level with
    fp32, where one scale per tensor lost most of a point, at the same speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    with _quiet("", "onnxruntime"):  # "": the root logger, where the quantiser logs its advice
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel)
    os.replace(tmp, dst)
    return dst


def onnx_files(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, refresh: bool = False
) -> tuple[Path, Path]:
    """``(fp32.onnx, int8.onnx)`` for a model folder: exported and quantised once, then cached."""
    model_dir = checked_model_folder(model_dir)
    out_dir = Path(out_dir) if out_dir else cache_dir_for(model_dir)
    fp32, int8 = out_dir / "model.onnx", out_dir / "model.int8.onnx"
    if refresh or not fp32.is_file():
        # Eager attention (softmax(QK^T/sqrt(d) + mask) V, written out) exports to a smaller graph
        # than the SDPA path, whose extra guard operations cost time at batch 1; same numbers.
        model, tokenizer = load_classifier(model_dir, attn_implementation="eager")
        export_onnx(model, tokenizer, fp32)
    if refresh or not int8.is_file():
        quantize_onnx_int8(fp32, int8)
    return fp32, int8


def onnx_session(path: str | os.PathLike, threads: int | None = None, spinning: bool = True):
    """An ONNX Runtime CPU session with all graph optimisations and ``threads`` intra-op threads.

    ``threads`` defaults to ``torch.get_num_threads()`` so that PyTorch and ONNX Runtime are
    compared on equal terms. ``spinning=False`` makes idle worker threads sleep instead of
    busy-waiting for the next job: a little slower per call, but it leaves the cores to other
    work (a server shares them with its event loop, and here with the load-test client).
    """
    import onnxruntime as ort

    if threads is None:
        import torch

        threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_variant(
    name: str,
    path: str | os.PathLike,
    tokenizer,
    labels: Sequence[str] = (),
    threads: int | None = None,
    spinning: bool = True,
) -> Variant:
    """Wrap an ONNX file (inputs ``input_ids``, ``attention_mask``; output ``logits``) as a
    ``Variant``."""
    session = onnx_session(path, threads, spinning)
    expected = set(ONNX_INPUTS)
    got = {i.name for i in session.get_inputs()}
    if got != expected:
        raise ValueError(f"{path} has inputs {sorted(got)}; expected {sorted(expected)}")

    def run(batch):
        return session.run([ONNX_OUTPUT], batch)[0]

    return Variant(name, run, tokenizer, [Path(path)], "onnx", 0.0, list(labels))


def onnx_fp32(model_dir: str | os.PathLike, out_dir=None, threads: int | None = None) -> Variant:
    """ONNX Runtime, float32 (exported on first use, then cached in ``artifacts/``)."""
    from transformers import AutoTokenizer

    fp32, _ = onnx_files(model_dir, out_dir)
    return onnx_variant(
        "onnx fp32", fp32, AutoTokenizer.from_pretrained(model_dir), labels_of(model_dir), threads
    )


def onnx_int8(
    model_dir: str | os.PathLike, out_dir=None, threads: int | None = None, spinning: bool = True
) -> Variant:
    """ONNX Runtime, dynamic int8 (exported and quantised on first use, then cached)."""
    from transformers import AutoTokenizer

    _, int8 = onnx_files(model_dir, out_dir)
    return onnx_variant(
        "onnx int8",
        int8,
        AutoTokenizer.from_pretrained(model_dir),
        labels_of(model_dir),
        threads,
        spinning,
    )


# --------------------------------------------------------------------------- pruning


def prunable_weights(model) -> list[tuple[object, str]]:
    """``(module, "weight")`` for every ``nn.Linear`` inside the encoder (not embeddings, not the
    head)."""
    import torch

    encoder = getattr(getattr(model, "base_model", model), "encoder", model)
    return [(m, "weight") for m in encoder.modules() if isinstance(m, torch.nn.Linear)]


def magnitude_prune(model, sparsity: float):
    """A copy of ``model`` whose encoder Linear weights have the fraction ``sparsity`` with the
    smallest ``|w|`` set to zero, ranked globally across layers (unstructured L1 pruning).

    The zeros are made permanent (no masks left behind), so the result saves and runs like
    any model. Dense kernels do not skip zeros: expect the same speed and file size, and an
    accuracy that falls as ``sparsity`` grows.
    """
    from torch.nn.utils import prune

    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    pruned = copy.deepcopy(model).eval()
    params = prunable_weights(pruned)
    if sparsity > 0:
        prune.global_unstructured(
            params, pruning_method=prune.L1Unstructured, amount=float(sparsity)
        )
        for module, name in params:
            prune.remove(module, name)
    return pruned


def weight_sparsity(model) -> float:
    """Fraction of exact zeros among the prunable (encoder Linear) weights."""
    params = prunable_weights(model)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    total = sum(m.weight.numel() for m, _ in params)
    return zeros / total if total else 0.0


def pruned(model_dir: str | os.PathLike, sparsity: float, out_dir=None) -> Variant:
    """Magnitude-pruned fp32 variant, saved with ``save_pretrained`` so its size is real."""
    model_dir = checked_model_folder(model_dir)
    out_dir = Path(out_dir) if out_dir else cache_dir_for(model_dir)
    model, tokenizer = load_classifier(model_dir)
    pmodel = magnitude_prune(model, sparsity)
    folder = out_dir / f"pruned-{round(sparsity * 100):02d}"
    pmodel.save_pretrained(folder)
    return torch_variant(
        f"pruned {sparsity:.0%}",
        pmodel,
        tokenizer,
        sorted(folder.glob("*.safetensors")),
        sparsity=weight_sparsity(pmodel),
        labels=labels_of(model_dir),
    )
