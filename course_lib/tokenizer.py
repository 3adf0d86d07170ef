"""BERT's WordPiece tokenizer, from scratch.

Text becomes ids in four steps, each a method of ``WordPieceTokenizer``:

1. **normalise** (``normalize``): drop control characters, turn every kind of whitespace into
   ``" "``, put spaces around each CJK ideograph, strip accents (NFD, then drop the non-spacing
   marks), lower-case;
2. **pre-tokenise** (``pre_tokenize``): split on whitespace, and make each punctuation character
   a word of its own;
3. **WordPiece** (``wordpiece``): split each word greedily into the longest vocabulary pieces,
   left to right; pieces after the first carry the prefix ``##``. A word that cannot be split,
   or is longer than 100 characters, becomes ``[UNK]``;
4. **post-process** (``__call__``): ``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]`` for a pair),
   token types 0 for A and 1 for B, truncation, padding and the attention mask.

The reference is Hugging Face's fast (Rust) BERT tokenizer with the same ``vocab.txt``; the
unit tests check that the ids are identical on every tweet of the course corpus. Where the
Rust tokenizer and the original Python one disagree (which characters are "control", the CJK
ranges, how longest-first truncation splits a pair), this file follows the Rust one and says
so.

One known difference remains: Python 3.11's ``unicodedata`` knows Unicode 14, the Rust
tokenizer classifies characters with older tables. Over all 1,112,064 code points, 503
characters (added to Unicode or recategorised since 2015) come out differently; none occurs in
the corpus (``benchmarks/tokenizer_speed.py --unicode-sweep`` counts them).

Speed: the per-character work is done by ``str.translate`` with lazily filled tables, and the
pieces of each distinct word are cached, so the Python overhead is paid once per word type.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from .runtime.exercises import Case, check_exercise

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# CJK ideograph blocks, as in Hugging Face's Rust tokenizer (its extension-B/C/D range starts at
# U+2B920; the original Python BERT code starts it at U+2B820).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# "Control" = Unicode categories Cc, Cf, Co, Cs (not Cn: unassigned code points are kept),
# except tab, newline and carriage return, which count as whitespace.
_CONTROL_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph, which BERT treats as a word of its own."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_control(ch: str) -> bool:
    """True for characters that normalisation deletes (NUL, U+FFFD and Cc/Cf/Co/Cs)."""
    if ch in "\t\n\r":
        return False
    return ch in "\x00\ufffd" or unicodedata.category(ch) in _CONTROL_CATEGORIES


def is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or ch.isspace()


def is_punctuation(ch: str) -> bool:
    """Every non-alphanumeric printable ASCII character (so ``$``, ``+``, ``^`` too), or any P*
    category."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class _CharTable(dict):
    """A ``str.translate`` table filled on first use: ``rule(ch) -> replacement string``."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, codepoint: int) -> str:
        out = self[codepoint] = self.rule(chr(codepoint))
        return out


def wordpiece_split(
    word: str, vocab, unk_token: str = "[UNK]", max_chars: int = 100, prefix: str = "##"
) -> list[str]:
    """Greedy longest-match-first WordPiece split of one word.

    From the left, take the longest prefix of the rest of the word that is in ``vocab``
    (written ``##piece`` when it does not start the word), and repeat. If some position has no
    match at all, or the word has more than ``max_chars`` characters, the whole word is
    ``[unk_token]``.

    >>> wordpiece_split("unaffable", {"un", "##aff", "##able"})
    ['un', '##aff', '##able']
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:  # no prefix of word[start:] is in the vocabulary
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """``vocab.txt`` (one token per line; the line number is the id) -> ``{token: id}``."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab.setdefault(line.rstrip("\n"), i)
    if not vocab:
        raise ValueError(f"{path} holds no tokens; expected a BERT vocab.txt, one token per line")
    return vocab


class WordPieceTokenizer:
    """BERT's uncased WordPiece tokenizer.

    ``tok = WordPieceTokenizer.from_pretrained("minilm")`` reads the packaged ``vocab.txt``.
    ``tok(texts, padding=True, return_tensors="pt")`` returns ``input_ids``, ``token_type_ids``
    and ``attention_mask``, each ``(B, L)``, like Hugging Face's tokenizers.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_cjk: bool = True,
        max_chars_per_word: int = 100,
        model_max_length: int = 512,
        cache_size: int = 500_000,
    ):
        for tok in SPECIAL_TOKENS:
            if tok not in vocab:
                raise ValueError(
                    f"the vocabulary has no {tok!r}; expected BERT's special tokens "
                    f"{SPECIAL_TOKENS}"
                )
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.lowercase = lowercase
        # As in Hugging Face: strip_accents=None means "strip when lower-casing".
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.tokenize_cjk = tokenize_cjk
        self.max_chars_per_word = max_chars_per_word
        self.model_max_length = model_max_length
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.vocab[t] for t in SPECIAL_TOKENS
        )
        # Special tokens typed in the text ("[MASK]") stay whole, matched before normalisation.
        self._special_re = re.compile("(" + "|".join(map(re.escape, SPECIAL_TOKENS)) + ")")
        self._clean = _CharTable(self._clean_char)
        self._drop_marks = _CharTable(lambda ch: "" if unicodedata.category(ch) == "Mn" else ch)
        self._lower_split = _CharTable(self._lower_split_char)
        self._word_cache: dict[str, list[int]] = {}
        self._cache_size = cache_size

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = "minilm", **overrides) -> WordPieceTokenizer:
        """Read ``vocab.txt`` and the casing options of ``tokenizer_config.json`` from a model
        folder.

        ``name`` is anything ``course_lib.models.resolve_model`` accepts ("minilm", a folder, a Hub
        id).
        """
        from .models import resolve_model

        folder = resolve_model(name)
        if not (folder / "vocab.txt").is_file():
            raise ValueError(f"{folder} has no vocab.txt; expected a BERT (WordPiece) model folder")
        options = {}
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
            options = {
                "lowercase": config.get("do_lower_case", True),
                "strip_accents": config.get("strip_accents"),
                "tokenize_cjk": config.get("tokenize_chinese_chars", True),
            }
            if (
                isinstance(config.get("model_max_length"), int)
                and config["model_max_length"] < 10**6
            ):
                options["model_max_length"] = config["model_max_length"]
        options.update(overrides)
        return cls(load_vocab(folder / "vocab.txt"), **options)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocab_size={len(self)}, lowercase={self.lowercase}, "
            f"strip_accents={self.strip_accents}, tokenize_cjk={self.tokenize_cjk})"
        )

    # ------------------------------------------------------------------ step 1: normalise

    def _clean_char(self, ch: str) -> str:
        if is_control(ch):
            return ""
        if is_whitespace(ch):
            return " "
        if self.tokenize_cjk and is_cjk(ch):
            return f" {ch} "
        return ch

    def _lower_split_char(self, ch: str) -> str:
        # Lower-case one character at a time (no context rules such as Greek final sigma),
        # then pad punctuation with spaces so that splitting on spaces isolates it.
        text = ch.lower() if self.lowercase else ch
        return "".join(f" {c} " if is_punctuation(c) else c for c in text)

    def normalize(self, text: str) -> str:
        """Cleaned, CJK-spaced, accent-stripped, lower-cased text (step 1)."""
        text = text.translate(self._clean)
        if self.strip_accents and not text.isascii():
            text = unicodedata.normalize("NFD", text).translate(self._drop_marks)
        if self.lowercase:
            text = "".join(c.lower() for c in text) if not text.isascii() else text.lower()
        return text

    # ------------------------------------------------------------------ step 2: pre-tokenise

    def pre_tokenize(self, normalized: str) -> list[str]:
        """Words of already normalised text: split on whitespace and around each punctuation
        mark."""
        return "".join(f" {c} " if is_punctuation(c) else c for c in normalized).split()

    def basic_tokenize(self, text: str) -> list[str]:
        """Steps 1 and 2 for raw text: the list of words WordPiece will see."""
        text = text.translate(self._clean)
        if self.strip_accents and not text.isascii():
            text = unicodedata.normalize("NFD", text).translate(self._drop_marks)
        return text.translate(self._lower_split).split()

    # ------------------------------------------------------------------ step 3: WordPiece

    def wordpiece(self, word: str) -> list[str]:
        """The WordPiece tokens of one word (step 3)."""
        return wordpiece_split(word, self.vocab, "[UNK]", self.max_chars_per_word)

    def _word_ids(self, word: str) -> list[int]:
        ids = self._word_cache.get(word)
        if ids is None:
            ids = [self.vocab[p] for p in self.wordpiece(word)]
            if len(self._word_cache) >= self._cache_size:
                self._word_cache.clear()
            self._word_cache[word] = ids
        return ids

    def _segments(self, text: str) -> list[str]:
        # Split out special tokens typed in the text; odd positions of re.split are the matches.
        return self._special_re.split(text) if "[" in text else [text]

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens, without [CLS]/[SEP]."""
        return [self.ids_to_tokens[i] for i in self.encode_text(text)]

    def encode_text(self, text: str) -> list[int]:
        """Text -> token ids, without [CLS]/[SEP]."""
        if not isinstance(text, str):
            raise ValueError(f"expected a str, got {type(text).__name__}")
        ids: list[int] = []
        for k, segment in enumerate(self._segments(text)):
            if k % 2:
                ids.append(self.vocab[segment])
                continue
            for word in self.basic_tokenize(segment):
                ids.extend(self._word_ids(word))
        return ids

    # ------------------------------------------------------------------ step 4: post-process

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
    ) -> dict[str, list[int]]:
        """One text (or pair) -> ``{"input_ids", "token_type_ids", "attention_mask"}`` as lists."""
        a = self.encode_text(text)
        b = self.encode_text(text_pair) if text_pair is not None else None
        if truncation:
            limit = self.model_max_length if max_length is None else max_length
            n_special = (3 if b is not None else 2) if add_special_tokens else 0
            if limit < n_special:
                raise ValueError(
                    f"max_length={limit} leaves no room for the {n_special} special tokens"
                )
            a, b = truncate_longest_first(a, b, limit - n_special)
        if add_special_tokens:
            ids = [self.cls_id, *a, self.sep_id]
            types = [0] * len(ids)
            if b is not None:
                ids += [*b, self.sep_id]
                types += [1] * (len(b) + 1)
        else:
            ids = a + (b or [])
            types = [0] * len(a) + [1] * len(b or [])
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
    ):
        """Tokenise one text or a batch, like Hugging Face's ``tokenizer(...)``.

        ``padding``: False, True / "longest" (to the longest in the batch) or "max_length".
        ``truncation=True`` cuts to ``max_length`` (default ``model_max_length``), taking tokens
        from the longer text of a pair first. ``return_tensors="pt"`` gives ``(B, L)`` int64
        tensors (a batch is required to be padded to a rectangle).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if text_pair is None:
            pairs: list[str | None] = [None] * len(texts)
        else:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(texts):
                raise ValueError(
                    f"got {len(texts)} texts and {len(pairs)} pairs; expected the same number"
                )
        rows = [
            self.encode(
                t,
                p,
                add_special_tokens=add_special_tokens,
                truncation=truncation,
                max_length=max_length,
            )
            for t, p in zip(texts, pairs)
        ]
        if padding:
            if padding == "max_length":
                width = self.model_max_length if max_length is None else max_length
            elif padding in (True, "longest"):
                width = max((len(r["input_ids"]) for r in rows), default=0)
            else:
                raise ValueError(
                    f"padding must be False, True, 'longest' or 'max_length', got {padding!r}"
                )
            for r in rows:
                extra = width - len(r["input_ids"])
                if extra > 0:
                    r["input_ids"] = r["input_ids"] + [self.pad_id] * extra
                    r["token_type_ids"] = r["token_type_ids"] + [0] * extra
                    r["attention_mask"] = r["attention_mask"] + [0] * extra
        out = {
            key: [r[key] for r in rows] for key in ("input_ids", "token_type_ids", "attention_mask")
        }
        if return_tensors == "pt":
            lengths = {len(r) for r in out["input_ids"]}
            if len(lengths) > 1:
                raise ValueError(
                    f"sequences have different lengths {sorted(lengths)}; pass padding=True "
                    f"to get a (B, L) tensor"
                )
            return {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}
        if return_tensors is not None:
            raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
        return {key: value[0] for key, value in out.items()} if single else out

    # ------------------------------------------------------------------ back to text

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.ids_to_tokens[int(i)] for i in ids]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text: ``##`` pieces glued to the previous token, words joined by spaces.

        Lossy by design: case, accents and the exact spacing around punctuation are gone.
        """
        words: list[str] = []
        for token in self.convert_ids_to_tokens(ids):
            if skip_special_tokens and token in SPECIAL_TOKENS:
                continue
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)


def truncate_longest_first(
    a: list[int], b: list[int] | None, budget: int
) -> tuple[list[int], list[int] | None]:
    """Cut ``a`` (and ``b``) so that together they hold at most ``budget`` tokens.

    A single text keeps its first ``budget`` tokens. For a pair, the shorter text stays whole
    when the longer one can absorb the cut; otherwise each gets half, the extra token going to
    the longer one (Hugging Face's Rust rule; with equal lengths the second gets the extra).
    """
    if b is None:
        return a[:budget], None
    if len(a) + len(b) <= budget:
        return a, b
    n_short, n_long = sorted((len(a), len(b)))
    n_long = n_short if n_short > budget else max(n_short, budget - n_short)
    if n_short + n_long > budget:
        n_short, n_long = budget // 2, budget // 2 + budget % 2
    if len(a) > len(b):
        return a[:n_long], b[:n_short]
    return a[:n_short], b[:n_long]


# ---------------------------------------------------------------- speed (lesson 04)


@dataclass
class SpeedComparison:
    """What ``compare_speed`` measured: one call on the whole list of texts per tokenizer, in
    this process, and how often the texts repeat their words."""

    n_texts: int
    n_words: int  # words after steps 1 and 2, over all texts
    n_distinct_words: int  # what the word cache ends up holding
    ours_cold_s: float  # a fresh tokenizer: each distinct word is split once, then cached
    ours_warm_s: float  # the same tokenizer again: every word comes from the cache
    reference_s: float
    threads: str  # TOKENIZERS_PARALLELISM, which decides whether Rust may use several threads
    ours_ids: list = field(repr=False, default_factory=list)
    reference_ids: list = field(repr=False, default_factory=list)

    def report(self) -> str:
        share = self.n_distinct_words / max(self.n_words, 1)
        return "\n".join(
            [
                f"{self.n_texts:,} texts, {self.n_words:,} words, of which "
                f"{self.n_distinct_words:,} distinct ({share:.0%})",
                f"ours, word cache empty at the start : {self.ours_cold_s:5.2f} s",
                f"ours again, every word in the cache : {self.ours_warm_s:5.2f} s",
                f"Hugging Face's fast tokenizer (Rust): {self.reference_s:5.2f} s"
                f"   (TOKENIZERS_PARALLELISM={self.threads})",
            ]
        )


def compare_speed(texts: Sequence[str], reference, name: str = "minilm") -> SpeedComparison:
    """Time a fresh ``WordPieceTokenizer`` (twice: empty word cache, then full) and
    ``reference`` (a Hugging Face tokenizer) on ``texts``, one call each on the whole list, and
    count the words and distinct words that explain the difference. Keeps the ids of both."""
    import time
    from collections import Counter

    tok = WordPieceTokenizer.from_pretrained(name)
    start = time.perf_counter()
    ours_ids = tok(list(texts))["input_ids"]
    cold = time.perf_counter() - start
    start = time.perf_counter()
    tok(list(texts))
    warm = time.perf_counter() - start
    start = time.perf_counter()
    reference_ids = reference(list(texts))["input_ids"]
    reference_s = time.perf_counter() - start
    words = Counter(  # the words WordPiece sees: special tokens typed in a text are not words
        word
        for text in texts
        for k, segment in enumerate(tok._segments(text))
        if k % 2 == 0
        for word in tok.basic_tokenize(segment)
    )
    return SpeedComparison(
        n_texts=len(texts),
        n_words=sum(words.values()),
        n_distinct_words=len(words),
        ours_cold_s=cold,
        ours_warm_s=warm,
        reference_s=reference_s,
        threads=os.environ.get("TOKENIZERS_PARALLELISM", "(unset)"),
        ours_ids=ours_ids,
        reference_ids=list(reference_ids),
    )


# ---------------------------------------------------------------- exercise checker (lesson 04)


def check_wordpiece(fn, verbose: bool = True, show_answer: bool = False):
    """Checker for the WordPiece exercise: ``fn(word, vocab) -> list of tokens``.

    Compared with ``wordpiece_split`` on a toy vocabulary and on BERT's real one.
    """

    toy = {"un", "##aff", "##able", "play", "##ing", "##s", "p", "##l", "##a", "##y", "a"}
    real = None
    try:
        real = WordPieceTokenizer.from_pretrained("minilm").vocab
    except Exception:  # the packaged model is missing: the toy cases still teach the rule
        pass
    hint_greedy = "take the LONGEST prefix in the vocabulary first, then continue after it."
    hint_prefix = "pieces that do not start the word are looked up with the '##' prefix."
    cases = [
        Case("toy: 'unaffable'", ("unaffable", toy), hint=hint_prefix),
        Case("toy: 'playing' (longest match first)", ("playing", toy), hint=hint_greedy),
        Case("toy: 'plays'", ("plays", toy), hint=hint_greedy),
        Case(
            "toy: 'xyz' cannot be split",
            ("xyz", toy),
            hint="if some position has no match, the WHOLE word becomes ['[UNK]'].",
        ),
        Case(
            "toy: 'playx' fails at the end",
            ("playx", toy),
            hint="a failure anywhere in the word makes the whole word ['[UNK]'], "
            "not a partial split.",
        ),
    ]
    if real is not None:
        cases += [
            Case(f"BERT vocab: {w!r}", (w, real), hint=hint_greedy)
            for w in ("tokenization", "transformers", "unbelievably", "a")
        ]

    def reference(word, vocab):
        return wordpiece_split(word, vocab)

    return check_exercise(
        "WordPiece split", fn, reference, cases, verbose=verbose, show_answer=show_answer
    ).function
