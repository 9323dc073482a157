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


# The hint of each exercise, from its hint cell: shown by the checker when a failure matches no
# known mistake.
HINTS = {
    'count_tokens': (
        'Tokenize each text on its own with `model.to_tokens`, passing `prepend_bos` through (do '
        'not rely on the\ndefault), and read the size of the position dimension, the last one. On'
        'e call on the whole list would pad\nevery text to the longest.'
    ),
    'multi_token_words': (
        'Tokenize `" " + word` *without* the BOS token (`prepend_bos=False`; `to_str_tokens` make'
        's the pieces easy to\ncount) and keep the words that give more than one piece, in their '
        'original order.'
    ),
    'token_position': (
        'Tokenize as `prepend_bos` says, get the id of `token_str` with `to_single_token`, and fi'
        'nd the first index\nwhere the tokens equal it (`nonzero`, or `list.index` on `to_str_tok'
        'ens`). Return a Python `int`.'
    ),
    'get_log_probs': (
        'Position `p` predicts `tokens[:, p + 1]`: drop the last position of the logits and the f'
        'irst position of the\ntokens. Take `log_softmax` over the vocabulary, then `gather` alon'
        'g the last dimension (its index needs a\ntrailing dimension of size 1, which you squeeze'
        ' away afterwards).'
    ),
    'cross_entropy_loss': (
        'The loss is the mean (over batch *and* positions, not the sum) of the *negative* log-pro'
        'babilities that\n`get_log_probs` returns. Keep it a tensor: no `.item()`.'
    ),
    'prediction_accuracy': (
        'The same shift as for the log-probabilities: compare the argmax over the vocabulary at p'
        'ositions `:-1` with\nthe tokens at `1:`, average the matches as floats, and return a Pyt'
        'hon float.'
    ),
    'greedy_generate': (
        'Start from `model.to_tokens(prompt)`. In each step run the model, take the argmax of the'
        " *last* position's\nlogits, stop if it is `model.tokenizer.eos_token_id`, else append it"
        ' along the position dimension\n(`torch.cat` with a `[1, 1]` tensor). Decode without posi'
        'tion 0, the BOS token, as `model.generate` does.'
    ),
}
