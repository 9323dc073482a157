"""Reference solutions for chapter ch01_tokenization.

Generated from chapters/src/01_tokenization.py by `make build`: do not edit; edit the source and rebuild.
"""


import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


def count_tokens(model: HookedTransformer, texts: list[str], prepend_bos: bool = True) -> list[int]:
    """The number of tokens of each text in `texts` (including the BOS token when `prepend_bos` is True)."""
    return [model.to_tokens(text, prepend_bos=prepend_bos).shape[-1] for text in texts]


def multi_token_words(model: HookedTransformer, words: list[str]) -> list[str]:
    """The words of `words` (in order) for which `" " + word` is not exactly one token."""
    return [word for word in words if len(model.to_str_tokens(" " + word, prepend_bos=False)) != 1]


def token_position(model: HookedTransformer, prompt: str, token_str: str, prepend_bos: bool = True) -> int:
    """Position of the first occurrence of the single token `token_str` in `model.to_tokens(prompt, ...)`."""
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)[0]
    token = model.to_single_token(token_str)
    return int((tokens == token).nonzero()[0].item())


def get_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """log P(tokens[:, p + 1] | tokens[:, :p + 1]) for every position p except the last."""
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(dim=-1, index=tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def cross_entropy_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, ""]:
    """Mean next-token cross-entropy loss over the batch and the `pos - 1` predicted positions."""
    return -get_log_probs(logits, tokens).mean()


def prediction_accuracy(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> float:
    """Fraction of positions p < pos - 1 where logits[:, p].argmax() == tokens[:, p + 1]."""
    predictions = logits[:, :-1].argmax(dim=-1)
    return (predictions == tokens[:, 1:]).float().mean().item()


def greedy_generate(model: HookedTransformer, prompt: str, n_new_tokens: int) -> str:
    """`prompt` followed by up to `n_new_tokens` greedily generated tokens, as text without the BOS token.

    Generation stops before an end-of-text token (`model.tokenizer.eos_token_id`), which is not included.
    """
    tokens = model.to_tokens(prompt)
    for _ in range(n_new_tokens):
        next_token = model(tokens)[0, -1].argmax()
        if next_token.item() == model.tokenizer.eos_token_id:
            break
        tokens = torch.cat([tokens, next_token.view(1, 1)], dim=-1)
    return model.to_string(tokens[0, 1:])


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no known
# mistake.
HINTS = {
    'count_tokens': (
        '`model.to_tokens(text, prepend_bos=prepend_bos)` has shape `[1, pos]`: take `.shape[-1]` f'
        'or each text, and\npass `prepend_bos` through (do not leave the default).'
    ),
    'multi_token_words': (
        '`len(model.to_str_tokens(" " + word, prepend_bos=False)) != 1`. With the default `prepend_'
        'bos=True`, every\nword has at least two tokens (BOS + the word). Trying `model.to_single_to'
        'ken(" " + word)` inside\n`try`/`except` works too.'
    ),
    'token_position': (
        'Tokenize with `model.to_tokens(prompt, prepend_bos=prepend_bos)[0]`, get the id with\n`mode'
        'l.to_single_token(token_str)`, then `(tokens == token_id).nonzero()[0].item()` is the firs'
        't match.\nReturn a Python `int`, not a tensor. (`model.to_str_tokens(...).index(token_str)`'
        ' works too.)'
    ),
    'get_log_probs': (
        '`logits[:, :-1].log_softmax(dim=-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)`. '
        'Position `p`\npredicts `tokens[:, p + 1]`: forgetting the shift gives the right shape (minu'
        's one position) but scores the\nmodel on the token it has just *seen*.'
    ),
    'cross_entropy_loss': (
        '`-get_log_probs(logits, tokens).mean()`. Equivalently\n`torch.nn.functional.cross_entropy(l'
        'ogits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())`. Keep the minus\nsign, take the mean'
        ' (not the sum), and do not call `.item()`.'
    ),
    'prediction_accuracy': (
        '`(logits[:, :-1].argmax(-1) == tokens[:, 1:]).float().mean().item()`: the same shift as fo'
        'r the\nlog-probabilities, and `.item()` to get a Python float.'
    ),
    'greedy_generate': (
        'Start from `tokens = model.to_tokens(prompt)`; in each step take `next_token = model(token'
        's)[0, -1].argmax()`,\n`break` if `next_token.item() == model.tokenizer.eos_token_id`, else\n'
        '`tokens = torch.cat([tokens, next_token.view(1, 1)], dim=-1)`. Finish with `model.to_strin'
        'g(tokens[0, 1:])`:\nposition 0 is the BOS token, which `model.generate` leaves out.'
    ),
}
