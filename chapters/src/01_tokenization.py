# %% [markdown]
# # Chapter 1 — Tokenization and the forward pass
#
# A language model never sees text. It sees a list of integers — **tokens** — and for every position it
# outputs a vector of **logits**, one score per token of the vocabulary, saying how likely each token is to
# come *next*. Everything interpretability studies happens between those two ends, so before opening the
# model up we need to be fluent with both: how text becomes tokens (and the ways that goes quietly wrong), and
# how logits become log-probabilities, a loss, an accuracy and generated text.
#
# In this chapter you will:
#
# - load a model and read its configuration, `model.cfg`;
# - turn text into tokens and back with `to_tokens`, `to_str_tokens`, `to_string` and `to_single_token`;
# - meet the **BOS token** and the `prepend_bos` pitfall, the most common off-by-one in interpretability code;
# - compute next-token log-probabilities, the cross-entropy loss and the accuracy from the logits, and check
#   them against TransformerLens;
# - write greedy generation one token at a time.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

# %% [markdown]
# ## 1. Loading a model and reading `model.cfg`
#
# The course ships its own small models so that everything works offline. This chapter uses **attn2l**: a
# 2-layer, attention-only transformer trained (by `training/train_model.py` in this repository) on synthetic
# English-like text — sentences about people, places and objects, such as *"When Mary and John went to the
# store, John gave a drink to Mary"* — and on repeated sequences of random tokens. It is tiny and knows
# nothing about the real world, but it is a real transformer, and TransformerLens loads it as a
# `HookedTransformer`, exactly like GPT-2.
#
# When you are online, `MODEL_NAME = "gpt2-small"` loads GPT-2 small from the Hugging Face hub instead, and
# every function you write in this chapter works on it unchanged (its outputs will of course be different
# from the ones described in the text).

# %%
from utils.models import load_model
from utils.plotting import expect

torch.set_grad_enabled(False)  # this chapter only runs the model, it never trains it: no gradients needed

MODEL_NAME = "attn2l"  # the shipped 2-layer attention-only model; "gpt2-small" works when you are online
model = load_model(MODEL_NAME, device=device)
print(type(model).__name__, "with", model.cfg.n_layers, "layers on", model.cfg.device)

# %% [markdown]
# `model.cfg` is a `HookedTransformerConfig` and holds every hyperparameter (`print(model.cfg)` shows all of
# them, most of which do not apply to this model). The ones you will use all the time:
#
# | field | meaning |
# |---|---|
# | `n_layers` | number of transformer blocks |
# | `d_model` | width of the residual stream |
# | `n_heads`, `d_head` | attention heads per layer and the size of each head |
# | `attn_only` | True when the blocks have no MLPs (as in attn2l) |
# | `d_vocab` | vocabulary size: the last dimension of the logits |
# | `n_ctx` | the longest sequence the model accepts (its positional embeddings stop there) |
# | `default_prepend_bos` | whether `to_tokens` and `model("text")` put a BOS token first (section 3) |
#
# The weights are attributes with the same names you will meet throughout the course: `W_E` (embedding),
# `W_pos`, `W_Q`/`W_K`/`W_V`/`W_O` (stacked over layers and heads) and `W_U` (unembedding).

# %%
cfg = model.cfg
print(f"{cfg.n_layers=} {cfg.d_model=} {cfg.n_heads=} {cfg.d_head=} {cfg.attn_only=}")
print(f"{cfg.d_vocab=} {cfg.n_ctx=} {cfg.default_prepend_bos=}")
print("W_E", tuple(model.W_E.shape), " W_Q", tuple(model.W_Q.shape), " W_U", tuple(model.W_U.shape))
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## 2. Text to tokens and back
#
# The tokenizer of attn2l is a **byte-level BPE** tokenizer with 2048 tokens, trained on the same synthetic
# text as the model (GPT-2's has 50257, trained on web text; the idea is the same). BPE starts from single
# bytes and repeatedly merges the most frequent pairs, so frequent words end up as one token and rare words
# are spelled out in pieces. A space belongs to the token that *follows* it: `" Mary"` (with the space) and
# `"Mary"` are two different tokens.
#
# TransformerLens has four methods for moving between text and tokens:
#
# - `model.to_tokens(text)` → an `Int[Tensor, "batch pos"]` of token ids (a list of strings gives a batch,
#   padded to the longest);
# - `model.to_str_tokens(text)` → the list of token *strings*: the best way to see what the model sees;
# - `model.to_string(tokens)` → text again;
# - `model.to_single_token(" Mary")` → one int, or an error if the string is not exactly one token.

# %%
prompt = "When Mary and John went to the store, John gave a drink to"
tokens = model.to_tokens(prompt)
print(tokens.shape, tokens)
print(model.to_str_tokens(prompt))
print(repr(model.to_string(tokens[0])))
print(model.to_single_token(" Mary"), model.to_single_token("Mary"))
for word in [" store", "store", " necklace", "necklace", " interpretability"]:
    print(f"{word!r:20} -> {model.to_str_tokens(word, prepend_bos=False)}")

# %% [markdown]
# Names, places and objects from the training text are single tokens *with* their leading space; without it,
# most are spelled out in pieces, and a word the tokenizer never saw in training, like "interpretability",
# falls apart into many small pieces. Notice also the strange first token, `<|endoftext|>`: that is the BOS
# token, the subject of section 3.
#
# ### Exercise: count the tokens
#
# How long is a prompt, in tokens? Write `count_tokens`, which returns the number of tokens of each text,
# *counting the BOS token when `prepend_bos` is True*. Tokenize each text on its own: `model.to_tokens` on
# the whole list pads every prompt to the length of the longest one.

# %%
def count_tokens(model: HookedTransformer, texts: list[str], prepend_bos: bool = True) -> list[int]:
    """The number of tokens of each text in `texts` (including the BOS token when `prepend_bos` is True)."""
    # SOLUTION
    return [model.to_tokens(text, prepend_bos=prepend_bos).shape[-1] for text in texts]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Tokenize each text on its own with `model.to_tokens`, passing `prepend_bos` through (do not rely on the
# default), and read the size of the position dimension, the last one. One call on the whole list would pad
# every text to the longest.

# %% [markdown]
# ### Exercise: which words are not a single token?
#
# Many interpretability experiments compare the logits of two candidate answers at one position (" Mary" vs
# " John"). That only works when each answer is **one token** — with its leading space, because the answer
# follows a space in the sentence. Write `multi_token_words`, which returns (in their original order) the
# words that are *not* a single token once a space is put in front of them. Do not count the BOS token.

# %%
def multi_token_words(model: HookedTransformer, words: list[str]) -> list[str]:
    """The words of `words` (in order) for which `" " + word` is not exactly one token."""
    # SOLUTION
    return [word for word in words if len(model.to_str_tokens(" " + word, prepend_bos=False)) != 1]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Tokenize `" " + word` *without* the BOS token (`prepend_bos=False`; `to_str_tokens` makes the pieces easy to
# count) and keep the words that give more than one piece, in their original order.

# %%
candidates = ["Mary", "John", "Victoria", "store", "necklace", "interpretability", "banana", "Paris", "Einstein"]
print("not single tokens:", multi_token_words(model, candidates))
print("tokens per text:", count_tokens(model, [prompt, "Hello world", "interpretability"]))

# %% [markdown]
# ## 3. The BOS token and the `prepend_bos` pitfall
#
# `to_tokens` puts a **BOS** ("beginning of sequence") token first: here `<|endoftext|>`, id
# `model.tokenizer.bos_token_id`. So does `model("some text")`, which tokenizes for you. The model was trained
# with a BOS token at position 0 (`cfg.default_prepend_bos` is True), and attention heads use it as a
# resting place when they have nothing else to attend to. Without it, the first word sits at position 0 and
# the model behaves differently — not only there, as you will see in section 4.
#
# The pitfall: the BOS token shifts every position by one. " John" is the fourth token of our prompt's text,
# so you might expect it at position 3 (counting from 0); with BOS it sits at position 4. Mix up tokens made
# with and without BOS (`to_tokens` with the default vs `to_str_tokens(..., prepend_bos=False)`) and every
# position you index is off by one — silently, because the shapes still fit.
#
# Three rules:
#
# 1. Look at `model.to_str_tokens(...)` before indexing positions.
# 2. Pass `prepend_bos=False` only when the text *continues* something (e.g. an answer like `" Mary"` that you
#    append to a prompt).
# 3. Passing a string to the model adds BOS; passing a tensor of tokens does not add another one.

# %%
with_bos = model.to_tokens(prompt)
without_bos = model.to_tokens(prompt, prepend_bos=False)
print(model.to_str_tokens(with_bos)[:5], "...")
print(model.to_str_tokens(without_bos)[:5], "...")
print("loss with BOS:   ", model(with_bos, return_type="loss").item())
print("loss without BOS:", model(without_bos, return_type="loss").item())
print("model(prompt) == model(with_bos):", torch.allclose(model(prompt), model(with_bos)))

# %% [markdown]
# ### Exercise: where is that token?
#
# Write `token_position`, which returns the position of the **first** occurrence of the token `token_str`
# (e.g. `" John"`) in the tokens of `prompt`, tokenized with or without BOS as `prepend_bos` says. The answer
# differs by one between the two settings: that is the point.

# %%
def token_position(model: HookedTransformer, prompt: str, token_str: str, prepend_bos: bool = True) -> int:
    """Position of the first occurrence of the single token `token_str` in `model.to_tokens(prompt, ...)`."""
    # SOLUTION
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)[0]
    token = model.to_single_token(token_str)
    return int((tokens == token).nonzero()[0].item())
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Tokenize as `prepend_bos` says, get the id of `token_str` with `to_single_token`, and find the first index
# where the tokens equal it (`nonzero`, or `list.index` on `to_str_tokens`). Return a Python `int`.

# %% [markdown]
# TransformerLens has this built in as `model.get_token_position(token, input, mode="first" or "last",
# prepend_bos=...)`. Let's check both against each other, and see the offset.

# %%
for bos in (True, False):
    print(f"prepend_bos={bos}: first ' John' at {token_position(model, prompt, ' John', prepend_bos=bos)}, "
          f"TransformerLens says {model.get_token_position(' John', prompt, prepend_bos=bos)}; "
          f"last ' John' at {model.get_token_position(' John', prompt, mode='last', prepend_bos=bos)}")

# %% [markdown]
# ## 4. Logits, log-probabilities and the loss
#
# `model(tokens)` returns logits of shape `[batch, pos, d_vocab]`. The logits at position `p` are the model's
# prediction for the token at position `p + 1`, having seen tokens `0 .. p`. So the last position predicts the
# continuation of the prompt. Let's see what attn2l expects after our prompt.

# %%
logits = model(tokens)
print(logits.shape)


def show_top_predictions(model, prompt, k=5):
    probs = model(prompt)[0, -1].softmax(dim=-1)
    top = probs.topk(k)
    print(prompt, "->", ", ".join(f"{model.to_string(i)!r} {p.item():.3f}" for p, i in zip(top.values, top.indices)))


show_top_predictions(model, prompt)
show_top_predictions(model, "When Victoria and Arthur went to the park, Arthur gave a ball to")

# %% [markdown]
# This is the indirect-object-identification (IOI) task that chapter 5 dissects: the right completion is the
# name that appeared *once* (" Mary"), not the repeated subject (" John"). Compare the two prompts. The first
# uses names that fill these roles in attn2l's training text; "Victoria" and "Arthur" were held out of the
# IOI sentences it was trained on, and the tiny attention-only model is much less sure about them
# (`models/attn2l/README.md` reports how it does on held-out names and templates). The logits tell you what a
# model *actually* does on each input — always look before you assume.
#
# ### Exercise: log-probabilities of the actual next tokens
#
# The log-probability the model gives to the token that really comes next, at every position, is the raw
# material of the loss and of many interpretability metrics. It is the same move as in chapter 0, now on a
# real model's logits: `log_softmax` over the vocabulary, drop the last position (it has no next token), and
# `gather` the ids of `tokens[:, 1:]`.

# %%
def get_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """log P(tokens[:, p + 1] | tokens[:, :p + 1]) for every position p except the last."""
    # SOLUTION
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(dim=-1, index=tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Position `p` predicts `tokens[:, p + 1]`: drop the last position of the logits and the first position of the
# tokens. Take `log_softmax` over the vocabulary, then `gather` along the last dimension (its index needs a
# trailing dimension of size 1, which you squeeze away afterwards).

# %% [markdown]
# Which tokens are easy for the model and which are hard? Each bar is the log-probability of the token under
# it, given everything to its left, once with the BOS token and once without. (Nothing predicts the BOS token
# itself, and without BOS nothing predicts the first word either.) With BOS, the tokens the sentence
# template determines (" to", " the", " a") are near 0 and the free choices (which name, which place, which
# object) are costly. Without BOS, attn2l does worse at most positions, not only at the first word: every
# position's attention changes when the token it used as a resting place is gone.

# %%
import plotly.graph_objects as go

sentence = "When Mary and John went to the store, John gave a drink to Mary."
str_tokens = model.to_str_tokens(sentence)
labels = [f"{i}: {t!r}" for i, t in enumerate(str_tokens)][1:]  # the tokens after BOS
log_probs_bos = expect(get_log_probs(model(sentence), model.to_tokens(sentence)), "get_log_probs",
                       shape=(1, len(str_tokens) - 1), names="batch pos_minus_1")[0]
no_bos_tokens = model.to_tokens(sentence, prepend_bos=False)
log_probs_no_bos = expect(get_log_probs(model(no_bos_tokens), no_bos_tokens), "get_log_probs",
                          shape=(1, no_bos_tokens.shape[1] - 1), names="batch pos_minus_1")[0]
go.Figure([
    go.Bar(name="with BOS", x=labels, y=log_probs_bos.cpu()),
    go.Bar(name="without BOS", x=labels[1:], y=log_probs_no_bos.cpu()),
], layout=dict(title="log P(token | everything before it)", xaxis_title="next token", yaxis_title="log-prob",
               barmode="group")).show()

# %% [markdown]
# ### Exercise: the cross-entropy loss
#
# The training loss of a language model is the **mean** over every batch element and every predicted
# position of the *negative* log-probability of the actual next token. Write it from `get_log_probs` (you
# may call it) or from scratch; it must equal `model(tokens, return_type="loss")`. Return a 0-dimensional
# tensor, as TransformerLens does, not a Python float.

# %%
def cross_entropy_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, ""]:
    """Mean next-token cross-entropy loss over the batch and the `pos - 1` predicted positions."""
    # SOLUTION
    return -get_log_probs(logits, tokens).mean()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The loss is the mean (over batch *and* positions, not the sum) of the *negative* log-probabilities that
# `get_log_probs` returns. Keep it a tensor: no `.item()`.

# %%
batch_tokens = model.to_tokens(["When Mary and John went to the store, John gave a drink to Mary",
                                "When Tom and Lisa went to the park, Lisa gave a ball to Tom"])
batch_logits = model(batch_tokens)
print("ours:          ", cross_entropy_loss(batch_logits, batch_tokens).item())
print("TransformerLens:", model(batch_tokens, return_type="loss").item())

# %% [markdown]
# A loss of `L` nats means that the geometric mean of the probabilities the model gave the right tokens is
# `exp(-L)`. Guessing uniformly over the 2048 tokens gives `log(2048) ≈ 7.6`; attn2l does far better on text
# like its training data.
#
# ### Exercise: prediction accuracy
#
# Loss rewards confidence; sometimes you simply want to know how often the model's **top** guess is right.
# Write `prediction_accuracy`: the fraction of predicted positions (over the whole batch) where the argmax of
# the logits is the actual next token. Return a Python `float`.

# %%
def prediction_accuracy(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> float:
    """Fraction of positions p < pos - 1 where logits[:, p].argmax() == tokens[:, p + 1]."""
    # SOLUTION
    predictions = logits[:, :-1].argmax(dim=-1)
    return (predictions == tokens[:, 1:]).float().mean().item()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The same shift as for the log-probabilities: compare the argmax over the vocabulary at positions `:-1` with
# the tokens at `1:`, average the matches as floats, and return a Python float.

# %%
print(f"top-1 accuracy on the batch: {prediction_accuracy(batch_logits, batch_tokens):.0%}")
print("predicted:", model.to_str_tokens(batch_logits[0, :-1].argmax(-1)))
print("actual:   ", model.to_str_tokens(batch_tokens[0, 1:]))

# %% [markdown]
# ## 5. Generating text, one token at a time
#
# Generation is just the forward pass in a loop: run the model on the tokens so far, take the prediction at
# the **last** position, append it, repeat. *Greedy* generation always takes the most likely token (the
# argmax); sampling (`do_sample=True`, `temperature`, `top_k`, ...) draws it at random instead.
#
# ### Exercise: greedy generation
#
# Write `greedy_generate`: tokenize `prompt` (with BOS, the default), then up to `n_new_tokens` times run the
# model, take the argmax at the last position and append it. Stop early if the model predicts the
# end-of-text token (`model.tokenizer.eos_token_id`; here the same `<|endoftext|>` token as BOS): in the
# training data it separates documents, so predicting it means "this text is finished". Do not append it.
# Return the prompt followed by the generated text as a string **without** the BOS token — exactly what
# `model.generate(prompt, max_new_tokens=n_new_tokens, do_sample=False)` returns. (`generate` does the same
# thing faster, by caching the keys and values of earlier positions instead of re-running them.)

# %%
def greedy_generate(model: HookedTransformer, prompt: str, n_new_tokens: int) -> str:
    """`prompt` followed by up to `n_new_tokens` greedily generated tokens, as text without the BOS token.

    Generation stops before an end-of-text token (`model.tokenizer.eos_token_id`), which is not included.
    """
    # SOLUTION
    tokens = model.to_tokens(prompt)
    for _ in range(n_new_tokens):
        next_token = model(tokens)[0, -1].argmax()
        if next_token.item() == model.tokenizer.eos_token_id:
            break
        tokens = torch.cat([tokens, next_token.view(1, 1)], dim=-1)
    return model.to_string(tokens[0, 1:])
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Start from `model.to_tokens(prompt)`. In each step run the model, take the argmax of the *last* position's
# logits, stop if it is `model.tokenizer.eos_token_id`, else append it along the position dimension
# (`torch.cat` with a `[1, 1]` tensor). Decode without position 0, the BOS token, as `model.generate` does.

# %%
for start in ["When Mary and John went to the store, John gave a", "Sarah went to the"]:
    ours = greedy_generate(model, start, 12)
    theirs = model.generate(start, max_new_tokens=12, do_sample=False, verbose=False)
    print(repr(ours), "| same as model.generate:", ours == theirs)

# %% [markdown]
# ## Summary
#
# - `model.cfg` holds the shapes: `n_layers`, `d_model`, `n_heads`, `d_head`, `d_vocab`, `n_ctx`.
# - `to_tokens` / `to_str_tokens` / `to_string` / `to_single_token` move between text and tokens. A leading
#   space is part of the token: compare answers like `" Mary"`, and check that they are single tokens.
# - `to_tokens` and `model("text")` prepend a BOS token by default, which shifts every position by one.
#   Look at `to_str_tokens` before you index, and pass `prepend_bos=False` only for continuations.
# - Logits at position `p` predict token `p + 1`: log-probs, loss and accuracy all need that shift. The loss
#   is the mean negative log-prob of the actual next tokens and equals `model(tokens, return_type="loss")`.
# - Generation is the forward pass in a loop, reading the last position each time.
#
# Next: **Chapter 2**, where we open the forward pass up and cache every activation along the way.
