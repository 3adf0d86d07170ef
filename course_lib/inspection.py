"""Looking inside a pretrained BERT (lesson 04): its attention maps and its sentence vectors.

Sentence vectors: ``topic_sentiment_sample`` draws tweets on two topics with two sentiments from
the course split, and ``similarity_by_topic_and_sentiment`` measures how similar two of them
are when they share a topic, a sentiment, both or neither.

Attention weights come back as ``(layers, heads, L, L)``: row = query (the token looking),
column = key (the token looked at); layers and heads are numbered from 0. The figures share one
0-1 colour scale so panels can be compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .bert import BertModel
from .settings import by_profile


@torch.no_grad()
def attention_maps(model: BertModel, tokenizer, text: str) -> tuple[list[str], torch.Tensor]:
    """Tokens of ``text`` and all attention weights, ``(layers, heads, L, L)``; row = query, column
    = key."""
    batch = tokenizer([text], return_tensors="pt")
    device = next(model.parameters()).device
    out = model(**{k: v.to(device) for k, v in batch.items()}, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return tokens, torch.stack([a[0] for a in out.attentions]).cpu()


ATTENTION_PATTERNS = ("the previous token", "the next token", "itself", "[CLS]", "[SEP]")


def attention_patterns(maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """How much weight each head gives to five simple targets, averaged over the queries.

    ``maps`` ``(layers, heads, L, L)`` as from ``attention_maps`` (row = query, column = key;
    the first token ``[CLS]``, the last ``[SEP]``). Returns ``{pattern: (layers, heads)}`` with
    the patterns of ``ATTENTION_PATTERNS``: the previous token (key ``i - 1``, queries 1..L-1),
    the next token (key ``i + 1``, queries 0..L-2), the token itself (key ``i``), the first key,
    the last key. A value of 1 means the head puts all its weight there.
    """
    if maps.dim() != 4 or maps.shape[-1] != maps.shape[-2] or maps.shape[-1] < 2:
        raise ValueError(
            "maps must be (layers, heads, L, L) with L >= 2 (self-attention of one text), got "
            f"shape {tuple(maps.shape)}"
        )
    i = torch.arange(maps.shape[-1])
    return {
        "the previous token": maps[..., i[1:], i[:-1]].mean(-1),
        "the next token": maps[..., i[:-1], i[1:]].mean(-1),
        "itself": maps[..., i, i].mean(-1),
        "[CLS]": maps[..., :, 0].mean(-1),
        "[SEP]": maps[..., :, -1].mean(-1),
    }


def plot_attention_grid(maps: torch.Tensor, title: str | None = None, cmap: str = "Blues"):
    """Every head of every layer in one figure: a row per layer, a column per head (both
    numbered from 0), one 0-1 colour scale for all panels and one colourbar.

    ``maps`` ``(layers, heads, L, L)``; in each panel rows are queries and columns keys, in
    the order of the tokens. Sized to the width of a notebook. Returns the figure.
    """
    import matplotlib.pyplot as plt

    maps = torch.as_tensor(maps).detach().cpu()
    if maps.dim() != 4:
        raise ValueError(f"maps must be (layers, heads, L, L), got shape {tuple(maps.shape)}")
    n_layers, n_heads = maps.shape[:2]
    panel = min(0.8, 9.0 / n_heads)  # inches: 12 heads fill about 10 inches with the colourbar
    width, height = panel * n_heads + 1.2, panel * n_layers + 1.0
    # A fixed layout: constrained_layout takes seconds to place 72 panels and a colourbar.
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=0.45 / width,
        right=1 - 1.0 / width,
        bottom=0.45 / height,
        top=1 - 0.55 / height,
        wspace=0.12,
        hspace=0.12,
    )
    image = None
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer, head]
            image = ax.imshow(maps[layer, head], vmin=0, vmax=1, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():  # a thin frame, so pale panels keep their edges
                spine.set_visible(True)
                spine.set_color("0.6")
                spine.set_linewidth(0.6)
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
    bar = fig.add_axes((1 - 0.8 / width, 0.25, 0.12 / width, 0.5))
    fig.colorbar(image, cax=bar, label="attention weight")
    fig.supxlabel(
        "each panel: rows = the token that looks (query), columns = the token looked at (key), "
        "in sentence order",
        fontsize=9,
        y=0.1 / height,
    )
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.1 / height)
    return fig


def plot_similarity_matrix(sim, texts, ax=None, title="cosine similarity of sentence embeddings"):
    """The ``(N, N)`` similarity matrix of ``texts`` with each value written in its cell, on a
    fixed 0-1 colour scale with a colourbar (a value below 0 gets the colour of 0). Long texts
    are shortened on the axes. Returns ``ax``.
    """
    import matplotlib.pyplot as plt

    sim = torch.as_tensor(sim).detach().cpu()
    if sim.dim() != 2 or sim.shape != (len(texts), len(texts)):
        raise ValueError(
            f"sim must be (N, N) with N = len(texts) = {len(texts)}, got shape {tuple(sim.shape)}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 6), layout="constrained")
    image = ax.imshow(sim, vmin=0, vmax=1, cmap="viridis")
    labels = [t if len(t) < 34 else t[:32] + "…" for t in texts]
    ax.set_xticks(range(len(texts)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(texts)), labels, fontsize=8)
    for i in range(len(texts)):
        for j in range(len(texts)):
            value = float(sim[i, j])
            label = f"{value:.2f}".replace("-0.00", "0.00")
            colour = "black" if value > 0.6 else "white"
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
    ax.grid(False)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    return ax


def attention_explorer(
    model: BertModel, tokenizer, text: str = "The cat sat on the mat because it was tired."
):
    """An ipywidgets explorer: pick a layer and a head, type any text, see the attention heatmap.

    Rows are the tokens that look (queries), columns the tokens looked at (keys).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .plots import attention_heatmap

    cfg = model.config
    layer = widgets.IntSlider(
        value=cfg.num_hidden_layers - 1, min=0, max=cfg.num_hidden_layers - 1, description="layer"
    )
    head = widgets.IntSlider(value=0, min=0, max=cfg.num_attention_heads - 1, description="head")
    box = widgets.Text(
        value=text, description="text", continuous_update=False, layout=widgets.Layout(width="90%")
    )
    out = widgets.Output()
    cache: dict[str, tuple] = {}

    def draw(*_):
        if box.value not in cache:
            cache.clear()
            cache[box.value] = attention_maps(model, tokenizer, box.value)
        tokens, maps = cache[box.value]
        with out:
            out.clear_output(wait=True)
            size = 0.3 * len(tokens) + 2.0
            _, ax = plt.subplots(figsize=(size, size))
            attention_heatmap(
                maps[layer.value, head.value],
                tokens,
                ax=ax,
                annotate=False,
                cmap="Blues",
                title=f"layer {layer.value}, head {head.value}",
            )
            plt.show()

    for w in (layer, head, box):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([box, widgets.HBox([layer, head]), out])


# ---------------------------------------------------------------- topic or sentiment?

TOPICS = {
    "flights": r"\bflights?\b",
    "Apple and Google": r"\b(?:apple|google|iphone|ipad|android)\b",
}


def topic_sentiment_sample(
    topics: dict[str, str] = TOPICS,
    sentiments: tuple[str, ...] = ("negative", "positive"),
    per_group: int | None = None,
    seed: int = 0,
    split: str = "train",
) -> tuple[list[str], list[int], list[int]]:
    """``per_group`` random tweets of the course ``split`` for every (topic, sentiment): a tweet
    belongs to a topic when it matches that topic's pattern (case-insensitive) and no other.
    Returns ``(texts, topic ids, sentiment ids)``, ids indexing ``topics`` and ``sentiments``.
    ``per_group`` defaults to 75 (full profile) or 10 (quick)."""
    from .data import LABELS, load_split

    per_group = by_profile(full=75, quick=10) if per_group is None else per_group
    unknown = set(sentiments) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown sentiments {sorted(unknown)}; expected some of {LABELS}")
    patterns = [re.compile(p, re.IGNORECASE) for p in topics.values()]
    texts, labels = load_split(split)
    generator = torch.Generator().manual_seed(seed)
    out: tuple[list[str], list[int], list[int]] = ([], [], [])
    for t, pattern in enumerate(patterns):
        others = [q for q in patterns if q is not pattern]
        for s, sentiment in enumerate(sentiments):
            pool = [
                text
                for text, label in zip(texts, labels)
                if LABELS[label] == sentiment
                and pattern.search(text)
                and not any(q.search(text) for q in others)
            ]
            if len(pool) < per_group:
                raise ValueError(
                    f"only {len(pool)} {sentiment} tweets on {list(topics)[t]!r}; "
                    f"asked for {per_group}"
                )
            chosen = torch.randperm(len(pool), generator=generator)[:per_group].tolist()
            out[0].extend(pool[i] for i in chosen)
            out[1].extend([t] * per_group)
            out[2].extend([s] * per_group)
    return out


@dataclass
class TopicSentimentSimilarity:
    """Mean cosine similarity of two different tweets, by whether they share topic and sentiment,
    and the sentiment gap within a topic against the same gap with shuffled sentiments."""

    means: dict[tuple[bool, bool], float]  # (same topic, same sentiment) -> mean over pairs
    pairs: dict[tuple[bool, bool], int]
    gap: float  # within a topic: same sentiment minus opposite sentiment
    shuffled_gaps: torch.Tensor  # the gap after shuffling the sentiments within each topic

    def report(self) -> str:
        low, high = self.shuffled_gaps.quantile(torch.tensor([0.025, 0.975])).tolist()
        rows = [f"{'mean similarity (pairs)':26} {'same sentiment':>18} {'opposite sentiment':>20}"]
        for same_topic, name in ((True, "same topic"), (False, "different topics")):
            cells = [
                f"{self.means[same_topic, s]:.3f} ({self.pairs[same_topic, s]:,})"
                for s in (True, False)
            ]
            rows.append(f"{name:26} {cells[0]:>18} {cells[1]:>20}")
        rows.append(
            f"within a topic, same minus opposite sentiment: {self.gap:+.3f}; with the "
            f"sentiments shuffled within each topic, 95% of {len(self.shuffled_gaps)} shuffles "
            f"give {low:+.3f} to {high:+.3f}"
        )
        return "\n".join(rows)


def _pair_means(sim, pairs, same_topic, same_sentiment):
    means, counts = {}, {}
    for t in (True, False):
        for s in (True, False):
            chosen = pairs & (same_topic == t) & (same_sentiment == s)
            counts[t, s] = int(chosen.sum())
            means[t, s] = sim[chosen].mean().item() if counts[t, s] else float("nan")
    return means, counts


def similarity_by_topic_and_sentiment(
    embeddings: torch.Tensor, topics, sentiments, n_shuffles: int = 200, seed: int = 0
) -> TopicSentimentSimilarity:
    """Cosine similarities of the unit ``embeddings`` ``(N, D)``, averaged over the pairs of two
    different tweets with the same or a different topic and sentiment (``topics``, ``sentiments``:
    ``N`` ids each). The sentiment gap inside a topic is compared with the gaps that
    ``n_shuffles`` random relabellings (sentiments shuffled within each topic) give: a gap inside
    that range could be chance."""
    topics, sentiments = torch.as_tensor(topics), torch.as_tensor(sentiments)
    n = embeddings.shape[0]
    if embeddings.dim() != 2 or topics.shape != (n,) or sentiments.shape != (n,):
        raise ValueError(
            f"expected embeddings (N, D) and N topic and sentiment ids; got "
            f"{tuple(embeddings.shape)}, {tuple(topics.shape)} and {tuple(sentiments.shape)}"
        )
    sim = embeddings @ embeddings.T
    pairs = torch.ones(n, n, dtype=torch.bool).triu(1)  # each pair of two tweets once
    same_topic = topics[:, None] == topics[None, :]

    def gap(labels):
        within = pairs & same_topic
        same = labels[:, None] == labels[None, :]
        return (sim[within & same].mean() - sim[within & ~same].mean()).item()

    generator = torch.Generator().manual_seed(seed)
    shuffled = []
    for _ in range(n_shuffles):
        labels = sentiments.clone()
        for t in topics.unique():
            idx = (topics == t).nonzero().squeeze(1)
            labels[idx] = sentiments[idx[torch.randperm(len(idx), generator=generator)]]
        shuffled.append(gap(labels))
    same_sentiment = sentiments[:, None] == sentiments[None, :]
    means, counts = _pair_means(sim, pairs, same_topic, same_sentiment)
    return TopicSentimentSimilarity(means, counts, gap(sentiments), torch.tensor(shuffled))
