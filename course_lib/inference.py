"""Running a fine-tuned classifier: texts in, logits and probabilities out.

The one layer that lesson 06 (which compares ways of running the model) and the service of
lesson 07 both stand on. A *variant* is one way of running the classifier, all turning a list of
texts into ``(n, C)`` logits:

==================  ==========================================================================
``eager_fp32``      the Hugging Face model as trained: PyTorch, float32, eager mode
``onnx_fp32``       the graph exported with ``torch.onnx.export`` (dynamic batch and sequence
                    axes) and run by ONNX Runtime
``onnx_int8``       the ONNX graph with its weights quantised to int8, one scale per output
                    channel (``onnxruntime.quantization.quantize_dynamic``)
==================  ==========================================================================

Lesson 06's own variants (PyTorch dynamic int8, pruning) and the int8 arithmetic by hand are in
``course_lib.optimize``. Exported files go to ``artifacts/`` (git-ignored), cached by the weights
they came from.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import checked_model_folder, labels_of, load_classifier
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
