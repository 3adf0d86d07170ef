"""Text generation with a decoder: sampling, the stop condition, and the KV cache.

One step of generation turns the logits of the last position into a token:

    p = softmax(logits / T)              temperature T: T -> 0 is greedy, T > 1 flatter
    top-k:  keep the k largest logits    top-p: keep the smallest set whose probability >= p
    x_next ~ p (renormalised over what was kept)

Without a cache, step t runs the model on all t tokens again: the cost of generating n tokens
grows like n^2 in the projections and n^3 in attention. With a KV cache each step runs only the
new token and reuses the keys and values of the earlier ones (they cannot change: a causal model
never lets an old position see a new one), so a step costs about the same at any length, plus
one row of attention over the cache.

Memory of the cache: ``2 (k and v) * n_layers * n_kv_heads * d_head * positions * batch * bytes``.
"""

from __future__ import annotations

import time

import torch

from .runtime.exercises import Case, check_exercise

# ---------------------------------------------------------------- filters on the logits


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``. ``(..., V)``.

    Ties at the k-th value are all kept. ``k >= V`` keeps everything."""
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the most likely tokens until their probability reaches ``p``.

    Sort by probability; a token is kept when the probability of the tokens ranked above it is
    still below ``p`` (so the most likely token is always kept). ``(..., V)`` -> ``(..., V)``."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top-p needs 0 < p <= 1, got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(B, V)`` logits of the last position -> ``(B,)`` token ids.

    ``temperature=0`` is greedy (argmax); otherwise scale, filter (top-k, then top-p), sample."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ---------------------------------------------------------------- the generation loop


@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int = 40,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = 0,
    attention_mask: torch.Tensor | None = None,
    eos_token_id: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``input_ids`` ``(B, L)`` by up to ``max_new_tokens``; returns ``(B, L + n)``.

    Prompts of different lengths are LEFT-padded with ``attention_mask`` (0 = pad), so every
    prompt ends at the last column. A row stops at ``eos_token_id`` (later columns are filled
    with it); generation stops when every row has stopped. ``seed`` fixes the sampling.
    ``use_cache=False`` recomputes the whole prefix each step (the slow way, for comparison).
    """
    device = next(model.parameters()).device
    model.eval()
    ids = input_ids.to(device)
    B = ids.shape[0]
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(device)
    if mask.shape != ids.shape:
        raise ValueError(
            f"attention_mask {tuple(mask.shape)} must match input_ids {tuple(ids.shape)}"
        )
    eos = model.config.eos_token_id if eos_token_id is None else eos_token_id
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    cache, step_input = None, ids
    for _ in range(max_new_tokens):
        if use_cache:
            out = model(step_input, attention_mask=mask, cache=cache)
            cache = out.cache
        else:
            out = model(ids, attention_mask=mask)
        token = next_token(out.logits[:, -1], temperature, top_k, top_p, gen)
        token = torch.where(done, torch.full_like(token, eos), token)
        ids = torch.cat((ids, token[:, None]), dim=1)
        mask = torch.cat((mask, torch.ones_like(token)[:, None]), dim=1)
        step_input = token[:, None]
        done |= token == eos
        if done.all():
            break
    return ids


def generate_text(
    model, tokenizer, prompts: str | list[str], max_new_tokens: int = 40, **sampling
) -> list[str]:
    """Prompts in, continued texts out (prompt included, special tokens dropped)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    enc = tokenizer(prompts, return_tensors="pt", padding=True)  # left padding
    out = generate(
        model, enc["input_ids"], max_new_tokens, attention_mask=enc["attention_mask"], **sampling
    )
    return tokenizer.batch_decode(out, skip_special_tokens=True)


# ---------------------------------------------------------------- the KV cache: speed and size


def time_generation(model, prompt_ids: torch.Tensor, n_tokens: int, use_cache: bool, repeats=3):
    """Best-of-``repeats`` seconds to generate exactly ``n_tokens`` greedily (no early stop)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(model, prompt_ids, n_tokens, temperature=0, eos_token_id=-1, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return best


def kv_cache_speedups(model, lengths=(16, 32, 64, 128), prompt_len: int = 4, repeats: int = 3):
    """For each number of generated tokens: seconds without and with the cache, and the ratio.

    Both are measured in the same run, alternating, on the same prompt."""
    prompt = torch.full((1, prompt_len), model.config.bos_token_id, dtype=torch.long)
    rows = []
    for n in lengths:
        slow = time_generation(model, prompt, n, use_cache=False, repeats=repeats)
        fast = time_generation(model, prompt, n, use_cache=True, repeats=repeats)
        rows.append({"tokens": n, "no_cache_s": slow, "cache_s": fast, "speedup": slow / fast})
    return rows


def kv_cache_bytes(
    n_layers: int, n_kv_heads: int, d_head: int, positions: int, batch: int = 1, bytes_per_value=2
) -> int:
    """``2 * n_layers * n_kv_heads * d_head * positions * batch * bytes_per_value``: one key and
    one value vector per head, per layer, per position, per sequence."""
    return 2 * n_layers * n_kv_heads * d_head * positions * batch * bytes_per_value


def cache_nbytes(cache) -> int:
    """Bytes actually held by a cache returned by the model (to check ``kv_cache_bytes``)."""
    return sum(t.numel() * t.element_size() for kv in cache for t in kv)


# ---------------------------------------------------------------- a 7B model on paper (estimates)

# Llama-2-7B's published shape (Touvron et al., 2023): used only for the estimates below.
LLAMA2_7B = {"parameters": 6.74e9, "n_layers": 32, "n_kv_heads": 32, "d_head": 128}


# (label, bytes per weight, bytes per cached key or value). Quantising the weights to int8 does
# not quantise the cache: that is a separate choice (an int8 KV cache), so it gets its own row.
SEVEN_B_PRECISIONS = (
    ("fp16", 2, 2),
    ("int8 weights", 1, 2),
    ("int8 weights + int8 cache", 1, 1),
)


def seven_b_estimates(context: int = 4096, bandwidth_gb_s: float = 50.0) -> list[dict]:
    """ESTIMATES, not measurements, for a 7B Llama: fp16, int8 weights with an fp16 cache, and
    int8 weights with an int8 cache.

    weights = parameters * bytes; KV cache = ``kv_cache_bytes(..., positions=context)`` at the
    cache's own precision; tokens/s <= bandwidth / weights, since every generated token reads
    every weight once (batch 1, memory-bound; compute and the reads of the cache are ignored, so
    this is an upper bound)."""
    m = LLAMA2_7B
    rows = []
    for name, weight_bytes, cache_bytes in SEVEN_B_PRECISIONS:
        weights = m["parameters"] * weight_bytes
        kv = kv_cache_bytes(m["n_layers"], m["n_kv_heads"], m["d_head"], context, 1, cache_bytes)
        rows.append(
            {
                "precision": name,
                "weights_GB": weights / 1e9,
                "kv_cache_GB": kv / 1e9,
                "max_tokens_per_s": bandwidth_gb_s * 1e9 / weights,
            }
        )
    return rows


# ---------------------------------------------------------------- the widget


def generation_widget(model, tokenizer, prompt: str = "my flight", max_new_tokens: int = 40):
    """A prompt box, temperature / top-k / top-p controls, a "Generate" button and an output area.

    Each click (or Enter in the prompt box) prints three new samples (seeds 0-2, then 3-5, ...),
    one per line, each starting with ``> ``."""
    import ipywidgets as widgets

    # continuous_update=False: the value changes on Enter (or leaving the box), and Enter generates.
    box = widgets.Text(
        value=prompt,
        description="prompt",
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    temperature = widgets.FloatSlider(
        value=0.8, min=0.0, max=2.0, step=0.1, description="temperature"
    )
    top_k = widgets.IntSlider(value=50, min=0, max=200, step=5, description="top-k (0=off)")
    top_p = widgets.FloatSlider(value=0.95, min=0.05, max=1.0, step=0.05, description="top-p")
    button = widgets.Button(description="Generate", button_style="primary")
    out = widgets.Output()

    clicks = [0]  # each Generate (or Enter) draws three new samples: seeds 3c, 3c + 1, 3c + 2

    def on_click(_):
        first_seed, clicks[0] = 3 * clicks[0], clicks[0] + 1
        with out:
            out.clear_output()
            for seed in range(first_seed, first_seed + 3):
                text = generate_text(
                    model,
                    tokenizer,
                    box.value,
                    max_new_tokens,
                    temperature=temperature.value,
                    top_k=top_k.value or None,
                    top_p=top_p.value,
                    seed=seed,
                )[0]
                print("> " + text)

    button.on_click(on_click)
    box.observe(on_click, names="value")
    return widgets.VBox([box, widgets.HBox([temperature, top_k, top_p]), button, out])


# ---------------------------------------------------------------- exercise checkers (lesson 09)


def check_top_k_filter(fn, verbose: bool = True, show_answer: bool = False):
    """Checker for ``fn(logits (..., V), k) -> logits`` with all but the k largest set to -inf."""

    hint = "keep the k largest values of each row; every other entry becomes float('-inf')."
    g = torch.Generator().manual_seed(9)
    cases = [
        Case("one row, k=2", (torch.tensor([[1.0, 3.0, 2.0, 0.5]]), 2), hint=hint),
        Case("k=1 is greedy", (torch.tensor([[0.1, 0.2, 5.0]]), 1), hint=hint),
        Case("k equal to V keeps everything", (torch.tensor([[1.0, -1.0]]), 2), hint=hint),
        Case(
            "a batch of rows",
            (torch.randn(4, 10, generator=g), 3),
            hint="work along the last dimension (dim=-1) so each row keeps its own top k.",
        ),
    ]
    return check_exercise(
        "top-k filtering", fn, top_k_filter, cases, verbose=verbose, show_answer=show_answer
    ).function


def check_kv_cache_bytes(fn, verbose: bool = True, show_answer: bool = False):
    """Checker for ``fn(n_layers, n_kv_heads, d_head, positions, batch, bytes_per_value)``."""

    hint = (
        "picture what one attention layer keeps for one token it has already seen, count those "
        "numbers, then ask which of the other arguments multiplies that count."
    )
    cases = [
        Case("our model, 64 positions, float32", (4, 4, 32, 64, 1, 4), hint=hint),
        Case(
            "batch of 8",
            (4, 4, 32, 64, 8, 4),
            hint="every sequence in the batch has its own cache.",
        ),
        Case("Llama-2-7B, 4096 positions, fp16", (32, 32, 128, 4096, 1, 2), hint=hint),
    ]
    return check_exercise(
        "KV cache size", fn, kv_cache_bytes, cases, verbose=verbose, show_answer=show_answer
    ).function
