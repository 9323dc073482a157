"""The course's shared data and measurements: one definition of each, used by the checkers, the story tests, the
chapters and the model cards (``training/evaluate.py``) alike.

- :func:`non_special_ids`: the token ids random sequences are drawn from;
- :func:`repeated_tokens`: ``[BOS] + r + r`` with ``r`` drawn from the non-special tokens (never BOS in the middle);
- :func:`repeat_losses`: the mean loss on the first and on the second copy of such tokens;
- :func:`induction_scores` (:func:`induction_scores_of_patterns`): each head's mean attention from the second copy
  to the token after the earlier copy; :func:`prev_token_scores`: to the previous token;
- :func:`zero_ablation_hook`: a ``hook_z`` hook that zeroes one head;
- :class:`IOIDataset` (:func:`ioi_dataset`): indirect-object-identification prompts of equal token length, with
  answer tokens, word positions (``IO``, ``S1``, ``S2``, ``END``) and their names-swapped and "ABC" variants;
- :func:`text_tokens`, :func:`text_rows`: rows of the course's generated text (``utils.corpus``), BOS first.

Example:
    >>> model = load_model("attn2l")
    >>> tokens = repeated_tokens(model, seq_len=50, batch=10, seed=0)       # [10, 101], BOS first
    >>> first, second = repeat_losses(model, tokens)                       # nats: second << first
    >>> induction_scores(model, tokens).shape                              # [n_layers, n_heads]
    torch.Size([2, 2])
    >>> data = ioi_dataset(model, ["When {N1} and {N2} went to the {place}, {S} gave a {object} to"],
    ...                    names=["Mary", "John", "Tom", "Anna"], n_pairs=4)
    >>> data.tokens.shape, data.answer_tokens.shape, data.positions.end[:2]
    (torch.Size([8, 15]), torch.Size([8, 2]), tensor([14, 14]))
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from utils.corpus import generate_documents, ioi_prompt

EVAL_TEXT_SEED = 987_654  # corpus seed never used in training: the default of text_tokens


# --------------------------------------------------------------------------------------------------------
# Repeated random tokens
# --------------------------------------------------------------------------------------------------------
def non_special_ids(model) -> Int[Tensor, "n_allowed"]:
    """The token ids random sequences are drawn from: the whole vocabulary but the special tokens (BOS/EOS/pad)."""
    special = set(model.tokenizer.all_special_ids) if model.tokenizer is not None else {0}
    return torch.tensor([t for t in range(model.cfg.d_vocab) if t not in special])


def repeated_tokens(model, seq_len: int, batch: int = 1, *, seed: int | None = None,
                    generator: torch.Generator | None = None) -> Int[Tensor, "batch full_seq_len"]:
    """``[BOS] + r + r`` for ``batch`` random sequences ``r`` of ``seq_len`` non-special tokens.

    Args:
        seed: seeds a fresh generator (the same seed always gives the same tokens); or pass ``generator``.

    Returns:
        int64 tokens of shape ``[batch, 1 + 2 * seq_len]`` on ``model.cfg.device``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    allowed = non_special_ids(model)
    r = allowed[torch.randint(0, len(allowed), (batch, seq_len), generator=generator)]
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id if model.tokenizer is not None else 0)
    return torch.cat([bos, r, r], dim=1).to(model.cfg.device)


def repeat_losses(model, tokens: Int[Tensor, "batch full_seq_len"], fwd_hooks=()) -> tuple[float, float]:
    """Mean loss (nats) on the first and on the second copy of ``[BOS] + r + r``, with optional hooks.

    Both average over the same targets ``r[1:]``: the first token of each copy is left out (nothing predicts it).
    """
    seq_len = (tokens.shape[1] - 1) // 2
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))
    log_probs = logits.log_softmax(-1)[:, :-1]
    loss = -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]  # loss[:, p] predicts tokens[:, p + 1]
    return loss[:, 1:seq_len].mean().item(), loss[:, seq_len + 1:].mean().item()


def zero_ablation_hook(head: int):
    """A hook for ``blocks.{layer}.attn.hook_z`` (``[batch, pos, head, d_head]``) that zeroes one head's output."""

    def hook(z, hook):
        z[:, :, head] = 0.0
        return z

    return hook


# --------------------------------------------------------------------------------------------------------
# Head scores: the one definition of the induction score (model cards, story tests, checkers; the chapter-4
# exercise of the same name is checked to agree with it) and of the previous-token score
# --------------------------------------------------------------------------------------------------------
def attention_patterns(model, tokens: Int[Tensor, "batch pos"],
                       fwd_hooks=()) -> Float[Tensor, "layer batch head query key"]:
    """Every head's attention pattern on ``tokens`` (with optional hooks, e.g. an ablation), stacked over layers."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad(), model.hooks(fwd_hooks=list(fwd_hooks)):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n] for n in names])


def induction_scores_of_patterns(patterns: Float[Tensor, "layer batch head query key"]) -> Float[Tensor, "layer head"]:
    """The induction score of each head from its patterns on ``[BOS] + r + r`` (``seq_len`` read off their size):
    the mean, over the batch and the second copy's queries ``q = seq_len + 1, ..., 2 * seq_len``, of the attention
    to the key after the earlier copy, ``q - seq_len + 1``. In [0, 1]."""
    seq_len = (patterns.shape[-1] - 1) // 2
    q = torch.arange(seq_len + 1, 2 * seq_len + 1, device=patterns.device)
    return patterns[..., q, q - seq_len + 1].mean(dim=(1, 3))


def induction_scores(model, tokens: Int[Tensor, "batch full_seq_len"], fwd_hooks=()) -> Float[Tensor, "layer head"]:
    """:func:`induction_scores_of_patterns` of a run on ``tokens`` (from :func:`repeated_tokens`), with optional hooks.

    Example:
        >>> induction_scores(model, repeated_tokens(model, 50, 10, seed=0)).shape    # [n_layers, n_heads]
    """
    return induction_scores_of_patterns(attention_patterns(model, tokens, fwd_hooks))


def cache_patterns(cache) -> Float[Tensor, "layer batch head query key"]:
    """The patterns of a cache with a batch dimension (``cache["pattern", layer]``), stacked over layers: what
    :func:`induction_scores_of_patterns` takes."""
    return torch.stack([cache["pattern", layer] for layer in range(cache.model.cfg.n_layers)])


def prev_token_scores(model, tokens: Int[Tensor, "batch pos"], fwd_hooks=()) -> Float[Tensor, "layer head"]:
    """Mean attention from each position (after the first) to the previous one: ``[n_layers, n_heads]``."""
    patterns = attention_patterns(model, tokens, fwd_hooks)
    q = torch.arange(1, tokens.shape[1], device=patterns.device)
    return patterns[..., q, q - 1].mean(dim=(1, 3))


# --------------------------------------------------------------------------------------------------------
# Indirect object identification
# --------------------------------------------------------------------------------------------------------
class WordPositions(NamedTuple):
    """Token positions of the IOI words in each prompt, each ``[batch]``: the indirect object, the subject's first
    and second mention, and the last token (where the answer is predicted)."""

    io: Int[Tensor, "batch"]
    s1: Int[Tensor, "batch"]
    s2: Int[Tensor, "batch"]
    end: Int[Tensor, "batch"]


@dataclass(frozen=True)
class IOIDataset:
    """IOI prompts that all tokenize to the same length (no padding).

    ``answer_tokens[:, 0]`` is the indirect object (the right answer), ``answer_tokens[:, 1]`` the subject;
    ``orders[i]`` is ``"ABBA"`` (IO named first) or ``"BABA"``; ``frames[i]`` indexes the template used.
    """

    prompts: list[str]
    io_names: list[str]
    s_names: list[str]
    orders: list[str]
    frames: list[int]
    tokens: Int[Tensor, "batch pos"]
    answer_tokens: Int[Tensor, "batch 2"]
    positions: WordPositions | None

    def __len__(self) -> int:
        return len(self.prompts)

    def swapped(self, model) -> "IOIDataset":
        """The names-swapped (corrupted) prompts: IO and S exchanged everywhere, so the right answer is the clean S."""
        return _from_names(model, self, self.s_names, self.io_names, self.io_names)

    def abc(self, model, names: Sequence[str], seed: int = 0) -> "IOIDataset":
        """The "ABC" prompts: IO, S1 and S2 replaced by three names unrelated to the prompt (no name repeats, so
        no IOI answer); ``answer_tokens`` keep the clean IO and S, to measure how the model's preference moves."""
        rng = random.Random(seed)
        triples = [rng.sample([n for n in names if n not in (io, s)], 3) for io, s in zip(self.io_names, self.s_names)]
        out = _from_names(model, self, [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples])
        return replace(out, io_names=self.io_names, s_names=self.s_names, answer_tokens=self.answer_tokens)


def _single_token(model, name: str) -> int:
    ids = model.to_tokens(" " + name, prepend_bos=False)[0]
    if len(ids) != 1:
        raise ValueError(f"{name!r} is not a single token (with a leading space): IOI names must be")
    return int(ids[0])


def _from_names(model, data: IOIDataset, a: Sequence[str], b1: Sequence[str], b2: Sequence[str]) -> IOIDataset:
    """``data`` with the tokens at IO, S1 and S2 replaced by ``a``, ``b1`` and ``b2`` (positions unchanged)."""
    tokens = data.tokens.clone()
    rows = torch.arange(len(data))
    for names, where in [(a, data.positions.io), (b1, data.positions.s1), (b2, data.positions.s2)]:
        tokens[rows, where] = torch.tensor([_single_token(model, n) for n in names], device=tokens.device)
    prompts = [model.to_string(t[1:]) for t in tokens]
    answers = torch.tensor([[_single_token(model, x), _single_token(model, y)] for x, y in zip(a, b1)],
                           device=tokens.device)
    return replace(data, prompts=prompts, io_names=list(a), s_names=list(b1), tokens=tokens, answer_tokens=answers)


def ioi_dataset(model, templates: Sequence[str], names: Sequence[str] = (), n_pairs: int = 10,
                orders: Sequence[str] = ("ABBA", "BABA"), seed: int = 0,
                pairs: Sequence[tuple[str, str]] | None = None, need_positions: bool = True) -> IOIDataset:
    """``n_pairs`` random (IO, S) name pairs per template and order, as one :class:`IOIDataset`; or, with ``pairs``,
    each given pair ``(A, B)`` twice per template, ABBA then BABA ("A and B ..., B gave ... to" -> A, then
    "A and B ..., A gave ... to" -> B), so each name is the answer once and the orders alternate.

    Templates use ``{N1}``, ``{N2}`` (the two names, in prompt order), ``{S}`` (the subject's second mention) and the
    corpus's filler slots (``{place}``, ``{object}``, ...). Each template's fillers are drawn once, so its prompts
    differ only in the names; every prompt must tokenize to the same length (else ``ValueError``, naming the
    templates).

    Args:
        templates: IOI templates, e.g. ``utils.corpus.IOI_HELDOUT_TEMPLATES``.
        names: names to draw from (each a single token with a leading space).
        n_pairs: name pairs per template and order.
        orders: ``"ABBA"`` (IO first) and/or ``"BABA"`` (S first).
        seed: seeds the names and the fillers.
        pairs: fixed name pairs instead of random ones (``names``, ``n_pairs`` and ``orders`` are then unused).
        need_positions: raise ``ValueError`` when a prompt's names cannot be located (a frame that opens with a
            name, which is then a different token); with False such a dataset gets ``positions = None`` (enough to
            measure the logit difference).
    """
    rng = random.Random(seed)
    rows = []
    for frame, template in enumerate(templates):
        fill_seed = rng.random()  # one set of fillers per template: its prompts differ only in the names
        if pairs is not None:
            chosen = [(io, s, order) for a, b in pairs for io, s, order in ((a, b, "ABBA"), (b, a, "BABA"))]
        else:
            chosen = [(*rng.sample(list(names), 2), order) for order in orders for _ in range(n_pairs)]
        for io, s, order in chosen:
            rows.append((ioi_prompt(template, io, s, order, random.Random(fill_seed)), io, s, order, frame))
    prompts = [r[0] for r in rows]
    lengths = {len(model.to_tokens(p)[0]) for p in prompts}
    if len(lengths) != 1:
        by_frame = {templates[r[4]]: len(model.to_tokens(r[0])[0]) for r in rows}
        raise ValueError(f"IOI prompts of different token lengths {sorted(lengths)}: {by_frame}")
    tokens = model.to_tokens(prompts)
    io_ids = torch.tensor([_single_token(model, r[1]) for r in rows], device=tokens.device)
    s_ids = torch.tensor([_single_token(model, r[2]) for r in rows], device=tokens.device)
    io_count, s_count = (tokens == io_ids[:, None]).sum(-1), (tokens == s_ids[:, None]).sum(-1)
    bad = [rows[i][0] for i in range(len(rows)) if io_count[i] != 1 or s_count[i] != 2]
    if bad and need_positions:  # a frame that opens with a name: there it has no leading space (another token)
        raise ValueError(f"IOI prompts must contain the IO token once and the S token twice (each name with a leading "
                         f"space: a frame must not open with a name); not so in {bad[:2]}")
    positions = None if bad else WordPositions(
        io=(tokens == io_ids[:, None]).int().argmax(-1),
        s1=(tokens == s_ids[:, None]).int().argmax(-1),
        s2=tokens.shape[1] - 1 - (tokens == s_ids[:, None]).int().flip(-1).argmax(-1),
        end=torch.full((len(rows),), tokens.shape[1] - 1, device=tokens.device),
    )
    return IOIDataset(prompts, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows],
                      tokens, torch.stack([io_ids, s_ids], dim=1), positions)


def opens_with_name(template: str) -> bool:
    """Whether an IOI template starts with a name slot: there the name has no leading space, so it is another token
    than the answer (``ioi_dataset`` rejects such prompts)."""
    return template.lstrip().startswith(("{N1}", "{N2}", "{S}"))


def ioi_same_length(model, templates: Sequence[str], names: Sequence[str], n_pairs: int = 10,
                    orders: Sequence[str] = ("ABBA", "BABA"), seed: int = 0) -> IOIDataset:
    """:func:`ioi_dataset` of the largest group of ``templates`` whose prompts share one token length (ties: the group
    of the earliest template), so that prompts from several templates fit in one batch without padding. Templates
    that open with a name (:func:`opens_with_name`) are left out."""
    templates = [t for t in templates if not opens_with_name(t)]
    by_length: dict[int, list[str]] = {}
    for i, template in enumerate(templates):
        length = len(ioi_dataset(model, [template], names, n_pairs=1, orders=orders[:1], seed=seed + i).tokens[0])
        by_length.setdefault(length, []).append(template)
    group = max(by_length.values(), key=len)
    return ioi_dataset(model, group, names, n_pairs=n_pairs, orders=orders, seed=seed)


# --------------------------------------------------------------------------------------------------------
# Generated text
# --------------------------------------------------------------------------------------------------------
def text_tokens(model, batch: int = 10, seed: int = EVAL_TEXT_SEED) -> Int[Tensor, "batch n_ctx"]:
    """Rows of ordinary generated text (by default a seed not used in training): ``[batch, n_ctx]``, BOS first."""
    docs = generate_documents(batch * 4, seed=seed)
    stream = []
    for d in docs:
        stream += model.tokenizer.encode(d) + [model.tokenizer.eos_token_id]
    n = model.cfg.n_ctx - 1
    rows = [[model.tokenizer.bos_token_id] + stream[i * n : (i + 1) * n] for i in range(batch)]
    return torch.tensor(rows, device=model.cfg.device)


def text_rows(tokenizer, n_rows: int, n_ctx: int, seed: int) -> Int[Tensor, "n_rows n_ctx"]:
    """``[n_rows, n_ctx]`` token ids of generated documents, BOS first in every row.

    Documents (``generate_documents(..., seed)``) are tokenized, joined with ``<|endoftext|>`` and cut
    into consecutive windows of ``n_ctx - 1`` tokens, each prefixed with BOS: the layout the shipped
    models were trained on. Encodes with a private copy of the fast tokenizer's backend, without padding or
    truncation: ``model.to_tokens([...])`` turns padding on in the shared backend, which would otherwise pad every
    document here to the longest of its batch.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(getattr(tokenizer, "backend_tokenizer", tokenizer).to_str())
    tok.no_padding()
    tok.no_truncation()
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    n = n_ctx - 1
    stream: list[int] = []
    chunk = 0
    while len(stream) < n_rows * n:
        docs = generate_documents(2000, seed=seed * 1_000 + chunk)
        chunk += 1
        for enc in tok.encode_batch(docs):
            stream += enc.ids + [eos]
    rows = torch.tensor(stream[: n_rows * n]).view(n_rows, n)
    return torch.cat([torch.full((n_rows, 1), bos), rows], dim=1)


# --------------------------------------------------------------------------------------------------------
# Sparse autoencoders
# --------------------------------------------------------------------------------------------------------
def hook_z_sae_for(model_name: str) -> str | None:
    """The name of a shipped SAE on an attention layer's ``hook_z`` of ``model_name`` (``models/saes/*``), if any."""
    import json

    from utils.models import SAES_DIR

    for folder in sorted(SAES_DIR.iterdir()) if SAES_DIR.is_dir() else []:
        try:
            info = json.loads((folder / "train_info.json").read_text())
        except (OSError, ValueError):
            continue
        if info.get("model") == model_name and str(info.get("hook_name", "")).endswith("attn.hook_z"):
            return folder.name
    return None


# --------------------------------------------------------------------------------------------------------
# Activation patching
# --------------------------------------------------------------------------------------------------------
def single_token_names(model, names: Sequence[str]) -> list[str]:
    """The ``names`` that are one token with their leading space in ``model``'s tokenizer (IOI names must be), in
    order: e.g. every training name for the shipped models, most of them for ``gpt2-small``."""
    return [n for n in names if len(model.to_tokens(" " + n, prepend_bos=False)[0]) == 1]


@dataclass(frozen=True)
class LogitDiffMetric:
    """A patching metric as a picklable object (it travels to the grading worker, a closure cannot): the mean over
    the batch of ``logit(answer_tokens[:, 0]) - logit(answer_tokens[:, 1])`` at the last position, normalised so that
    ``corrupted`` gives 0 and ``clean`` gives 1 (the raw logit difference with the defaults 0 and 1).

    Example:
        >>> metric = LogitDiffMetric(data.answer_tokens, corrupted=-7.3, clean=8.1)
        >>> metric(model(data.tokens))        # a 0-d tensor, 1.0 on the clean prompts
    """

    answer_tokens: Int[Tensor, "batch 2"]
    corrupted: float = 0.0
    clean: float = 1.0

    def __call__(self, logits) -> Tensor:
        answers = logits[:, -1].gather(-1, self.answer_tokens.to(logits.device))
        logit_diff = (answers[:, 0] - answers[:, 1]).mean()
        return (logit_diff - self.corrupted) / (self.clean - self.corrupted)


IGNORES_CHUNK_SIZE = "ignoring chunk_size (more patches in one forward pass than chunk_size allows)"


@dataclass(frozen=True)
class ChunkBoundMetric(LogitDiffMetric):
    """A :class:`LogitDiffMetric` that also checks a patching engine's memory bound: the logits of one forward pass
    hold at most ``max_floats`` numbers (``chunk_size * batch * pos * d_vocab``). The engine computes the metric on a
    slice (a view) of its logits, so the size of the tensor behind the slice tells how many patches that forward
    pass ran; a larger one raises the checker's ``WRONG_VALUES`` failure, which names the mistake."""

    max_floats: int = 0

    def __call__(self, logits) -> Tensor:
        floats = logits.untyped_storage().nbytes() // logits.element_size()
        if self.max_floats and floats > self.max_floats:
            from utils.checking import CheckFailure, Status

            raise CheckFailure(Status.WRONG_VALUES, f"one forward pass returned logits of {floats:,} numbers; "
                               f"chunk_size allows at most chunk_size * batch * pos * d_vocab = {self.max_floats:,}: "
                               f"{IGNORES_CHUNK_SIZE}")
        return super().__call__(logits)
