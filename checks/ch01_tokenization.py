"""Checkers for chapter 1 (tokenization and the forward pass).

Every case runs on the shipped ``attn2l`` model (loaded once per device) with real prompts, plus random and
engineered logits and edge cases; ``tests/framework.py`` compares the learner's function with
``solutions.ch01_tokenization`` on each and ``checks/mutants/ch01_tokenization.py`` holds the known mistakes.
The reference itself is tested against TransformerLens at the bottom (loss, generate, get_token_position).
"""


import torch

from checks.helpers import LOSS, chapter_model, seeded
from checks.mutants.ch01_tokenization import MUTANTS
from utils.checkers import Chapter
from utils.checking import Case

chapter = Chapter("ch01_tokenization", mutants=MUTANTS)

IOI_PROMPT = "When Mary and John went to the store, John gave a drink to"
IOI_BATCH = [  # same number of tokens each, so the batch needs no padding
    "When Mary and John went to the store, John gave a drink to Mary",
    "When Tom and Lisa went to the park, Lisa gave a ball to Tom",
    "When Sarah and Paul went to the school, Paul gave a book to Sarah",
]
TEXTS = [IOI_PROMPT, "Hello world", "interpretability", "Sarah went to the park."]
WORDS = ["Mary", "the", "interpretability", "store", "banana", "Victoria", "necklace", "Einstein", "drink", "Hello"]



@torch.no_grad()
def _logits_and_tokens(device, texts):
    model = chapter_model(chapter, device)
    tokens = model.to_tokens(texts)
    return model(tokens), tokens


def _random_logits_and_tokens(device, batch, pos, d_vocab, seed, hit_rate=0.5, boost=6.0):
    """Random logits in which about ``hit_rate`` of the predictions are boosted onto the actual next token, so
    that shifted, unshifted and last-position-only answers all differ."""
    generator = seeded(seed)
    logits = torch.randn(batch, pos, d_vocab, generator=generator) * 2
    tokens = torch.randint(0, d_vocab, (batch, pos), generator=generator)
    hits = torch.rand(batch, pos - 1, generator=generator) < hit_rate
    hits[:, -1] = torch.arange(batch) % 2 == 0  # last position right in every other prompt
    logits[:, :-1] += boost * hits.unsqueeze(-1) * torch.nn.functional.one_hot(tokens[:, 1:], d_vocab)
    return logits.to(device), tokens.to(device)


@chapter.exercise()
def count_tokens(device):
    model = chapter_model(chapter, device)
    yield Case((model, TEXTS), label=f"texts {TEXTS} with the default prepend_bos=True")
    yield Case((model, TEXTS), {"prepend_bos": False}, label=f"texts {TEXTS} with prepend_bos=False")
    yield Case((model, ["", "Mary"]), label="the empty string and 'Mary' (prepend_bos=True)")


@chapter.exercise()
def multi_token_words(device):
    model = chapter_model(chapter, device)
    yield Case((model, WORDS), label=f"words {WORDS}")
    yield Case((model, ["John", "park"]), label="two single-token words (the answer is an empty list)")
    yield Case((model, []), label="an empty list")


@chapter.exercise()
def token_position(device):
    model = chapter_model(chapter, device)
    yield Case((model, IOI_PROMPT, " John"), label=f"' John' in {IOI_PROMPT!r} (prepend_bos=True)")
    yield Case((model, IOI_PROMPT, " John"), {"prepend_bos": False},
               label=f"' John' in {IOI_PROMPT!r} with prepend_bos=False")
    yield Case((model, "Sarah went to the park. Sarah gave a ball to Tom.", " ball"),
               label="' ball' in 'Sarah went to the park. Sarah gave a ball to Tom.'")




@chapter.exercise(dims="batch pos_minus_1", tol=LOSS)
def get_log_probs(device):
    yield Case(_logits_and_tokens(device, IOI_BATCH), label="attn2l's logits on 3 IOI sentences")
    yield Case(_random_logits_and_tokens(device, 2, 6, 50, seed=1), label="random logits, batch=2, pos=6, d_vocab=50")
    yield Case(_logits_and_tokens(device, ["Mary"]), label="attn2l's logits on '<BOS>Mary' (one prediction)")


@chapter.exercise(dims="", tol=LOSS)
def cross_entropy_loss(device):
    yield Case(_logits_and_tokens(device, IOI_BATCH), label="attn2l's logits on 3 IOI sentences")
    yield Case(_random_logits_and_tokens(device, 2, 6, 50, seed=2), label="random logits, batch=2, pos=6, d_vocab=50")


@chapter.exercise()
def prediction_accuracy(device):
    yield Case(_logits_and_tokens(device, IOI_BATCH), label="attn2l's logits on 3 IOI sentences")
    yield Case(_random_logits_and_tokens(device, 4, 8, 30, seed=3),
               label="random logits (about half the predictions right), batch=4, pos=8, d_vocab=30")


# The last case runs long enough to reach the end of the sentence, where the model predicts <|endoftext|>.
GENERATE_CASES = [(IOI_PROMPT[: -len(" a drink to")], 6), ("Sarah went to the", 5), ("Tom", 3), (IOI_PROMPT, 20)]


@chapter.exercise()
def greedy_generate(device):
    model = chapter_model(chapter, device)
    for prompt, n in GENERATE_CASES:
        yield Case((model, prompt, n), label=f"{prompt!r}, {n} new tokens")
    yield Case((model, "Mary", 0), label="'Mary', 0 new tokens (the prompt itself)")


# The reference agrees with TransformerLens ------------------------------------------------------------------
def _reference():
    return chapter.reference
