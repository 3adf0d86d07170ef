"""Smaller and faster versions of the fine-tuned classifier (lesson 06).

Beside the variants every lesson can run (``course_lib.inference``: PyTorch fp32, ONNX Runtime
fp32 and int8), lesson 06 builds two of its own:

==========================  =================================================================
``torch_dynamic_int8``      every ``nn.Linear`` weight stored as int8; activations quantised on
                            the fly, per batch (``torch.ao.quantization.quantize_dynamic``)
``pruned``                  magnitude pruning: the fraction ``s`` of encoder Linear weights with
                            the smallest ``|w|`` set to zero (global, unstructured)
==========================  =================================================================

Dynamic int8 quantisation maps a float tensor ``x`` to ``q = round(x / scale) + zero_point``
with ``scale = (max(x) - min(x)) / 255``, so ``x ~ scale * (q - zero_point)``. Weights are
quantised once, ahead of time; activations at run time, per batch. Matrix products then run in
int8 with int32 accumulation, which is where the speed comes from. Both schemes of the lesson are
written out here: symmetric int8 (``fake_quantize_int8``, the exercise: no zero point, the
weights' scheme) and asymmetric uint8 with a zero point (``quantize_uint8``, the activations'
scheme in ONNX Runtime).

``course_lib.measuring.measure`` compares the variants: size, latency, throughput, macro-F1.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np

from .artifacts import checked_model_folder, labels_of, load_classifier
from .inference import Variant, cache_dir_for, torch_variant
from .runtime.exercises import Case, check_exercise

# --------------------------------------------------------------------------- int8, by hand


def int8_scale(w) -> float:
    """Symmetric per-tensor scale ``max|w| / 127``: the largest magnitude maps to code 127."""
    # divided in the tensor's own precision: a float32 scale that underflows to 0 (weights near
    # 1e-45) then means "all zeros" instead of an overflow to inf in w / scale
    return float(w.abs().max() / 127.0)


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


def uint8_affine_params(x) -> tuple[float, int]:
    """Asymmetric (affine) uint8 parameters ``(scale, zero_point)`` of a tensor, chosen as ONNX
    Runtime's ``DynamicQuantizeLinear`` chooses them for activations: the range ``[min, max]``,
    stretched to include 0 (so that 0, the padding and the ReLU/GELU floor, is exact), is cut into
    255 steps, and ``zero_point`` is the code that stands for 0. ``x ~ scale * (q - zero_point)``.
    An all-zero tensor gives ``(0.0, 0)``."""
    a = np.asarray(x, dtype=np.float32)
    lo, hi = min(np.float32(a.min()), np.float32(0)), max(np.float32(a.max()), np.float32(0))
    scale = np.float32(hi - lo) / np.float32(255)
    if scale == 0:
        return 0.0, 0
    return float(scale), int(np.clip(np.round(-lo / scale), 0, 255))


def quantize_uint8(x) -> tuple[np.ndarray, float, int]:
    """``(codes, scale, zero_point)``: ``x`` as uint8 codes ``round(x / scale) + zero_point``,
    clipped to 0..255 (NumPy rounds halves to even, as ONNX Runtime does)."""
    a = np.asarray(x, dtype=np.float32)
    scale, zero_point = uint8_affine_params(a)
    if scale == 0.0:
        return np.zeros(a.shape, np.uint8), scale, zero_point
    codes = np.clip(np.round(a / np.float32(scale)) + zero_point, 0, 255).astype(np.uint8)
    return codes, scale, zero_point


def fake_quantize_uint8(x):
    """Asymmetric quantise and back: ``scale * (q - zero_point)``; a torch tensor of ``x``'s
    shape and dtype. Every entry inside the range moves by at most ``scale / 2``."""
    import torch

    codes, scale, zero_point = quantize_uint8(x.detach().cpu().numpy())
    back = np.float32(scale) * (codes.astype(np.float32) - np.float32(zero_point))
    return torch.from_numpy(back).to(dtype=x.dtype, device=x.device)


def check_fake_quantize_int8(fn, verbose: bool = True, show_answer: bool = False):
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
        "int8 quantise and dequantise",
        fn,
        fake_quantize_int8,
        cases,
        atol=1e-6,
        verbose=verbose,
        show_answer=show_answer,
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


def check_predicted_int8_megabytes(fn, verbose: bool = True, show_answer: bool = False):
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
        show_answer=show_answer,
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


# --------------------------------------------------------------------------- PyTorch int8


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


def onnx_int8_per_tensor(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, threads=None
) -> Variant:
    """ONNX Runtime dynamic int8 with one scale per weight matrix (``per_channel=False``), where
    ``inference.onnx_int8`` gives every output channel its own; quantised once, then cached."""
    from transformers import AutoTokenizer

    from .inference import onnx_files, onnx_variant, quantize_onnx_int8

    fp32, _ = onnx_files(model_dir, out_dir)
    path = fp32.with_name("model.int8.per_tensor.onnx")
    if not path.is_file():
        quantize_onnx_int8(fp32, path, per_channel=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return onnx_variant("onnx int8 per-tensor", path, tokenizer, labels_of(model_dir), threads)


def onnx_bytes_by_kind(path: str | os.PathLike) -> dict[str, int]:
    """Where the bytes of an ONNX file are: its stored tensors (initializers) by kind, named as
    ONNX Runtime's quantiser names them (``*_quantized``, ``*_scale``, ``*_zero_point``), and the
    rest of the file (the graph: its operators, names and shapes, and protobuf's framing)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    kinds = {
        "int8/uint8 weights": 0,
        "scales (float32)": 0,
        "zero points": 0,
        "other float32 (biases, LayerNorm)": 0,
        "other tensors": 0,
    }
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if tensor.name.endswith("_scale"):
            kind = "scales (float32)"
        elif tensor.name.endswith("_zero_point"):
            kind = "zero points"
        elif array.dtype in (np.int8, np.uint8):
            kind = "int8/uint8 weights"
        elif array.dtype == np.float32:
            kind = "other float32 (biases, LayerNorm)"
        else:
            kind = "other tensors"
        kinds[kind] += array.nbytes
    kinds["graph and framing"] = os.path.getsize(path) - sum(kinds.values())
    return kinds


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
