# %% [markdown]
# # Circuit School quick reference
# TransformerLens, SAE-Lens, PyTorch, einops, jaxtyping and circuitsvis, on the course's shipped models.
# Every block runs as written (offline, in the course's tests); a **⚠️ Sheet / Now** box marks a line of the
# usual quick-reference sheets that no longer works, or silently gives a wrong number, with the pinned versions.

# %% tags=["setup"]
# Course plumbing (not reference material): find the repository so that `utils` imports, and choose whether the
# online lines run (they download gpt2-small and one of its SAEs from the Hugging Face hub).
import sys
from pathlib import Path

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "utils" / "models.py").exists())
sys.path.insert(0, str(ROOT))
ONLINE = False  # True: also run the gpt2-small lines

# %% [markdown]
# How to read it: an online block (blue on the page, `if ONLINE:` in the notebook) loads `gpt2-small` or its SAE
# from the hub; the block under it does the same with a shipped model, offline. Shapes are in comments as
# `[batch, pos, d_model]`. **Learn it** points at the chapter exercise that teaches the entry.

# %% [markdown]
# ## Imports
# One cell at the top of a notebook. `torch` is spelled `torch` in the course (ARENA writes `import torch as t`).
#
# **Learn it:** ch00 · ch01

# %%
from functools import partial

import circuitsvis as cv
import einops
import plotly.express as px
import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache, FactoredMatrix, HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from utils.device import get_device
from utils.models import load_model, load_sae

# %% [markdown] tags=["changed"]
# **Sheet:** `from transformer_lens import utils`
#
# **Now:** deprecated in TransformerLens 3.x (a `DeprecationWarning` on import, removed in 4.0): import what you
# use from `transformer_lens.utilities`, e.g. `get_act_name`.

# %% [markdown]
# ## Devices and gradients
# `get_device()` is the course's one choice of device: `CS_DEVICE=cpu|cuda|mps` wins, else CUDA when available,
# else CPU. Interpretability code reads activations and needs no gradients.
#
# **Learn it:** ch00 · ch01

# %%
device = get_device()
x = torch.randn(3, 4).to(device)             # tensors and models move with .to(device)
torch.set_grad_enabled(False)                # no autograd graph from here on (training turns it back on)
with torch.inference_mode():                 # or just for a block
    y = x @ x.T
with torch.no_grad():
    y = x.softmax(-1)
print(device, x.device, y.requires_grad)

# %% [markdown] tags=["changed"]
# **Sheet:** `t.device("mps" if t.backends.mps.is_available() else "cuda" if ...)`
#
# **Now:** MPS is opt-in (`CS_DEVICE=mps`): some torch versions give silently wrong results on MPS for ops
# TransformerLens uses, which is why TransformerLens never picks it by itself.

# %% [markdown]
# ## Loading a model
# `from_pretrained` downloads, converts and processes the weights (fold LayerNorm, centre the writing weights
# and the unembedding). `load_model` gives a shipped model through the same code path and defaults, or
# `gpt2-small` when online.
#
# **Learn it:** ch01 · ch04

# %% tags=["online"]
model = HookedTransformer.from_pretrained(
    "gpt2-small", center_unembed=True, center_writing_weights=True, fold_ln=True,
    refactor_factored_attn_matrices=True, device=device)

# %%
model = load_model("attn2l", device=device)           # 2 layers, attention only: the induction-head model
mlp_model = load_model("mlp4l", device=device)        # 4 layers with MLPs
raw = load_model("attn2l", device=device, fold_ln=False, center_writing_weights=False, center_unembed=False,
                 fold_value_biases=False)   # unprocessed weights (like from_pretrained_no_processing)
# load_model("gpt2-small") is the one-setting switch when online

# %% [markdown] tags=["changed"]
# **Sheet:** `HookedTransformer.from_pretrained("gpt2-small", ...)`
#
# **Now:** still works in TransformerLens 3.9 but warns that `HookedTransformer` is deprecated (its successor is
# `TransformerBridge`; 4.x removed it). The course pins 3.9 and keeps `HookedTransformer`; `utils.models` silences
# the warning.

# %% [markdown]
# A model of your own from a config (random weights): give it a tokenizer if you want `to_tokens`.

# %%
tiny_cfg = HookedTransformerConfig(
    n_layers=2, n_heads=4, d_model=64, d_head=16, d_mlp=256, d_vocab=model.cfg.d_vocab, n_ctx=64,
    act_fn="gelu", normalization_type="LN",      # or "LNPre", or None
    attention_dir="causal",                      # or "bidirectional"
    device=device)
tiny = HookedTransformer(tiny_cfg, tokenizer=model.tokenizer)

# %% [markdown]
# ## The config
# Everything about the architecture is in `model.cfg`.
#
# **Learn it:** ch01

# %%
cfg = model.cfg
print(cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_ctx, cfg.device)
print(cfg.attn_only, mlp_model.cfg.d_mlp, mlp_model.cfg.act_fn)
print(cfg.normalization_type)   # "LNPre" after fold_ln: the LayerNorm weights went into the next matrices

# %% [markdown]
# ## Tokenization
# `to_tokens` prepends the BOS token unless told not to; a prompt's positions count it.
#
# **Learn it:** ch01/count_tokens · ch01/multi_token_words · ch01/token_position

# %%
tokens = model.to_tokens("When Mary and John went to the store")   # [1, pos], BOS first
no_bos = model.to_tokens("When Mary and John", prepend_bos=False)
str_toks = model.to_str_tokens("Hello world")        # ['<|endoftext|>', ...]: a list of strings, BOS included
text = model.to_string(tokens[0])                     # ids -> text (a list of texts for a batch)
mary = model.to_single_token(" Mary")                 # an int; an error unless exactly one token
assert model.to_single_str_token(mary) == " Mary"
texts = model.tokenizer.batch_decode(tokens)          # the Hugging Face tokenizer is model.tokenizer
batch = model.to_tokens(["Mary went home", "John and Mary went home"])   # padded on the right
print(str_toks, tokens.shape, batch.shape)

# %% [markdown]
# ## Forward passes
# A model takes token ids (or text) and returns logits by default.
#
# **Learn it:** ch01/get_log_probs · ch01/cross_entropy_loss · ch01/greedy_generate

# %%
logits = model(tokens)                                  # [batch, pos, d_vocab]
loss = model(tokens, return_type="loss")                # mean next-token cross-entropy, a scalar
per_token = model(tokens, return_type="loss", loss_per_token=True)   # [batch, pos - 1]
logits = model("When Mary and John went to", return_type="logits")   # text in: tokenized with BOS
log_probs = logits.log_softmax(dim=-1)
next_token = model.to_string(logits[0, -1].argmax())
print(loss.item(), per_token.shape, repr(next_token))

# %% [markdown]
# ## Caching activations
# `run_with_cache` returns the logits and an `ActivationCache` of every hook point; `names_filter` keeps only
# some, and `return_type=None` skips the logits.
#
# **Learn it:** ch02/attention_pattern_from_qk · ch04/run_and_cache_model_repeated_tokens

# %%
ioi_tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")
logits, cache = model.run_with_cache(ioi_tokens)
none, patterns = model.run_with_cache(ioi_tokens, names_filter=lambda name: name.endswith("pattern"),
                                      return_type=None)
print(none, list(patterns.keys()))   # None ['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_pattern']

# %% [markdown]
# ## Cache keys
# `cache[name, layer]` is short for `cache[get_act_name(name, layer)]`. An attention-only model has no MLP keys
# (`resid_mid`, `mlp_out`, `pre`, `post`): they are shown on `mlp4l`.
#
# **Learn it:** ch02/attention_pattern_from_qk · ch02/current_attn_detector · ch02/prev_attn_detector

# %%
cache["pattern", 0]        # [batch, head, query_pos, key_pos]: attention probabilities
cache["attn_scores", 0]    # the same before the softmax (masked with -inf)
cache["q", 0], cache["k", 0], cache["v", 0], cache["z", 0]   # [batch, pos, head, d_head]; z: the head outputs
cache["resid_pre", 1], cache["resid_post", 1]   # [batch, pos, d_model]: residual stream into / out of layer 1
cache["attn_out", 0]       # [batch, pos, d_model]: all heads of layer 0, after W_O
cache["embed"], cache["pos_embed"]              # [batch, pos, d_model]
cache["scale"]             # [batch, pos, 1]: the final LayerNorm's scale (ln_final.hook_scale)
assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"]   # the same tensor

_, mlp_cache = mlp_model.run_with_cache(ioi_tokens)
mlp_cache["resid_mid", 0]  # [batch, pos, d_model]: after attention, before the MLP
mlp_cache["pre", 0], mlp_cache["post", 0]        # [batch, pos, d_mlp]: MLP hidden layer before / after act_fn
mlp_cache["mlp_out", 0]    # [batch, pos, d_model]

model.set_use_attn_result(True)                  # needed before the run for cache["result", layer]
_, result_cache = model.run_with_cache(ioi_tokens)
model.set_use_attn_result(False)
result_cache["result", 0]                        # [batch, pos, head, d_model]: each head's output after W_O

# %% [markdown] tags=["changed"]
# **Sheet:** `cache["result", layer]`
#
# **Now:** a `KeyError` unless `model.set_use_attn_result(True)` was called before the run (it is off by default
# because it costs `n_heads × d_model` per position); `cache.stack_head_results` computes it from `z` instead.

# %% [markdown]
# ## Cache methods
# The residual stream at the end is the sum of what every component wrote. These methods stack the pieces
# (`pos_slice=-1`: last position only) and apply the final LayerNorm's scale as frozen in this run.
#
# **Learn it:** ch02/logit_lens · ch02/residual_stack_to_logit_diff · ch02/head_direct_logit_attribution

# %%
# [component, batch, d_model] stacks, with their labels:
accum, labels = cache.accumulated_resid(layer=-1, pos_slice=-1, return_labels=True)   # partial sums
# incl_mid=True adds resid_mid entries (models with MLPs only): mlp_cache.accumulated_resid(incl_mid=True, ...)
scaled = cache.apply_ln_to_stack(accum, layer=-1, pos_slice=-1)        # divided by the final LN scale
decomp, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)  # (*)
lens_logits = cache.accumulated_resid(layer=None, pos_slice=-1, apply_ln=True) @ model.W_U  # the logit lens
# (*) computed from z and W_O when the run did not cache "result"; this also adds cache["result", layer]
assert torch.allclose(decomp.sum(0), cache["resid_post", -1][:, -1], atol=1e-3)   # the pieces add up
print(labels, head_labels, lens_logits.shape)

# %% [markdown]
# ## Weights
# Attention weights carry layer and head dimensions; index them to get one head's matrix.
#
# **Learn it:** ch04/full_ov_circuit · ch04/pos_by_pos_pattern · ch04/decompose_qk_input

# %%
model.W_E                  # [d_vocab, d_model]
model.W_pos                # [n_ctx, d_model]
model.W_U                  # [d_model, d_vocab]
model.W_Q, model.W_K, model.W_V   # [n_layers, n_heads, d_model, d_head]
model.W_O                  # [n_layers, n_heads, d_head, d_model]
model.b_Q, model.b_O       # [n_layers, n_heads, d_head], [n_layers, d_model]
mlp_model.W_in[0], mlp_model.W_out[0]   # [d_model, d_mlp], [d_mlp, d_model]
mlp_model.b_in[0], mlp_model.b_out[0]   # [d_mlp], [d_model]

layer, head = 1, 0
W_OV = model.W_V[layer, head] @ model.W_O[layer, head]       # [d_model, d_model]: one head's OV circuit
W_QK = model.W_Q[layer, head] @ model.W_K[layer, head].T     # [d_model, d_model]: .T is fine on 2-D
all_QK = model.W_Q @ model.W_K.transpose(-1, -2)              # [n_layers, n_heads, d_model, d_model]
all_OV = model.W_V @ model.W_O                                # [n_layers, n_heads, d_model, d_model]
model.QK, model.OV         # the same as FactoredMatrix objects (nothing multiplied out)
assert torch.allclose(model.QK[layer, head].AB, W_QK, atol=1e-4)

# %% [markdown] tags=["changed"]
# **Sheet:** `W_QK = W_Q @ W_K.T`
#
# **Now:** on the 4-D `model.W_Q` / `model.W_K` this raises a `RuntimeError` (and torch warns that `.T` on more
# than 2 dimensions is deprecated): use `W_K.transpose(-1, -2)`, one head's 2-D matrices, or `model.QK`.

# %% [markdown] tags=["changed"]
# **Sheet:** `full_OV = W_E @ W_OV @ W_U  # Shape: [d_vocab, d_vocab]`
#
# **Now:** with every layer and head that is `[n_layers, n_heads, d_vocab, d_vocab]` (1.5 TB for gpt2-small):
# take one head and keep it factored, `model.W_E @ model.OV[layer, head] @ model.W_U`.

# %% [markdown]
# ## Hook names
# Every activation flows past a named `HookPoint`: `blocks.{layer}.{module}.hook_{name}`.
#
# **Learn it:** ch03/cache_some · ch02

# %%
get_act_name("pattern", 1)     # 'blocks.1.attn.hook_pattern'
get_act_name("z", 0)           # 'blocks.0.attn.hook_z' (also "q", "k", "v", "result", "attn_scores")
get_act_name("resid_pre", 1)   # 'blocks.1.hook_resid_pre' (also resid_mid, resid_post, attn_out, mlp_out)
get_act_name("post", 0)        # 'blocks.0.mlp.hook_post' (MLP after the activation function; "pre" before)
get_act_name("embed")          # 'hook_embed' (also "pos_embed")
hook_names = list(model.hook_dict)   # every hook point of this model, e.g. 'ln_final.hook_normalized'
assert get_act_name("pattern", 1) == "blocks.1.attn.hook_pattern" and "ln_final.hook_normalized" in hook_names

# %% [markdown]
# ## FactoredMatrix
# A product `A @ B` kept as its two factors: cheap to chain, index and measure; `.AB` multiplies it out.
#
# **Learn it:** ch04/full_ov_circuit · ch04/top_1_acc · ch04/get_batched_comp_scores

# %%
OV = FactoredMatrix(model.W_V[layer, head], model.W_O[layer, head])   # [d_model, d_model] as A, B
full_OV = model.W_E @ OV @ model.W_U       # [d_vocab, d_vocab], still factored
full_OV.AB                                 # the full matrix, when you need it
OV.eigenvalues                             # [d_head] (the non-zero ones)
OV.S                                       # [d_head] singular values
OV.norm()                                  # Frobenius norm
OV.shape                                   # torch.Size([d_model, d_model])
rows = torch.tensor([1, 5, 7])
sub = full_OV[rows, rows]                  # 3 × 3, still factored: rows AND columns (a tensor pairs them)
assert torch.allclose(sub.AB, full_OV.AB[rows][:, rows], atol=1e-3)

# %% [markdown]
# ## Hook functions
# A hook gets `(activation, hook)`. Return nothing to only read; return a tensor to replace the activation.
# `functools.partial` fills in any extra arguments.
#
# **Learn it:** ch03/head_zero_ablation_hook · ch03/attention_entropy · ch04/induction_scores

# %%
store = {}


def access_hook(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
    store[hook.layer()] = pattern.mean().item()      # hook.name is the full name; hook.layer() its layer


def zero_head_hook(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint,
                   head: int) -> Float[Tensor, "batch pos head d_head"]:
    z[:, :, head, :] = 0.0
    return z


def scale_head_hook(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head: int,
                    scale: float) -> Float[Tensor, "batch pos head d_head"]:
    z[:, :, head, :] *= scale
    return z


half_head_0 = partial(scale_head_hook, head=0, scale=0.5)   # now a function of (z, hook)

# %% [markdown]
# ## Running with hooks
# `run_with_hooks` adds the hooks for one forward pass and removes them afterwards. A hook's name may be a
# function of the name (every layer's pattern at once).
#
# **Learn it:** ch03/head_zero_ablation_hook · ch03/get_ablation_scores · ch04/induction_scores

# %%
logits = model.run_with_hooks(ioi_tokens, fwd_hooks=[
    (get_act_name("z", 0), partial(zero_head_hook, head=1)),
    ("blocks.1.attn.hook_pattern", access_hook),
])
model.run_with_hooks(ioi_tokens, return_type=None,
                     fwd_hooks=[(lambda name: name.endswith("pattern"), access_hook)])
loss = model.run_with_hooks(ioi_tokens, return_type="loss", fwd_hooks=[(get_act_name("z", 1), half_head_0)])
print(store, loss.item())

# %% [markdown]
# ## Hook management
# Hooks added with `add_hook` stay until `reset_hooks()`; permanent ones survive that too. `hook.ctx` is a
# dictionary on each hook point for a hook to leave results in.
#
# **Learn it:** ch03/permanent_hook_demo · ch03/attention_entropy

# %%
model.add_hook(get_act_name("z", 1), half_head_0)            # stays for every later run
model.reset_hooks()                                          # removes it (and empties every hook.ctx)
model.add_hook(get_act_name("z", 1), half_head_0, is_permanent=True)
model.reset_hooks()                                          # a permanent hook survives this...
model.reset_hooks(including_permanent=True)                  # ...but not this
with model.hooks(fwd_hooks=[(get_act_name("z", 1), half_head_0)]):
    loss = model(ioi_tokens, return_type="loss")             # hooked only inside the block


def max_attention_hook(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
    hook.ctx["max"] = pattern[..., 1:].amax(dim=(0, 2, 3))   # [head]: strongest attention away from BOS


model.run_with_hooks(ioi_tokens, return_type=None,
                     fwd_hooks=[("blocks.0.attn.hook_pattern", max_attention_hook)])
print(model.hook_dict["blocks.0.attn.hook_pattern"].ctx["max"])   # still there after the run
model.reset_hooks()                                          # clear_contexts=True by default
assert model.hook_dict["blocks.0.attn.hook_pattern"].ctx == {}

# %% [markdown]
# ## Tensor creation
#
# **Learn it:** ch00/batch_positional_embeddings · ch00

# %%
torch.tensor([1, 2, 3])                             # int64
torch.tensor([[0.5, 1.0]], device=device, dtype=torch.float32)
torch.zeros(2, 3, 4), torch.ones(5), torch.zeros_like(x), torch.ones_like(x)
torch.rand(2, 3)                                    # uniform on [0, 1)
torch.randn(2, 3)                                   # standard normal
torch.randint(0, 100, (2, 8))                       # integers in [0, 100)
torch.randperm(10)                                  # a random permutation of 0..9
torch.arange(0, 10, 2), torch.linspace(0, 1, steps=5)
torch.empty(2, 3)                                   # uninitialized: fill it before reading
torch.full((2, 3), -1.0), torch.eye(4)
generator = torch.Generator().manual_seed(0)        # reproducible randomness without touching the global seed
torch.randint(0, 100, (2, 8), generator=generator)

# %% [markdown]
# ## Shapes, stacking, splitting
#
# **Learn it:** ch00/split_heads · ch00/merge_heads

# %%
a = torch.randn(2, 3, 4)
a.shape, a.size(-1), a.numel(), a.ndim
a.unsqueeze(0).shape, a.unsqueeze(0).squeeze(0).shape   # [1, 2, 3, 4] and back
a.flatten().shape, a.flatten(1, 2).shape                 # [24], [2, 12]
a.reshape(6, 4), a.view(6, 4)                            # view needs compatible (e.g. contiguous) memory
a[0].T, a.transpose(1, 2).shape, a.permute(2, 0, 1).shape   # .T only on 2-D tensors
torch.stack([a, a], dim=0).shape                         # [2, 2, 3, 4]: a new dimension
torch.cat([a, a], dim=0).shape                           # [4, 3, 4]: along an existing one (alias: concat)
torch.split(a, 2, dim=-1), torch.chunk(a, 2, dim=-1), a.unbind(0)   # tuples of pieces

# %% [markdown]
# ## Math and reductions
#
# **Learn it:** ch00/attention_pattern · ch00/next_token_log_probs · ch01/cross_entropy_loss

# %%
a.abs(), a.exp(), a.clamp(min=0).sqrt(), a.pow(2), a.clip(-1, 1)
a.exp().log()
a.sum(dim=-1), a.mean(dim=(0, 1)), a.std(dim=0)
a.var(dim=0, correction=0)                               # correction=0 is the old unbiased=False
values, indices = a.max(dim=-1)                          # a named tuple; a.amax(dim=-1) for the values only
a.argmax(dim=-1), a.argmin(dim=-1)
a.norm(dim=-1, keepdim=True)                             # keepdim=True keeps a size-1 dimension
a.softmax(dim=-1), a.log_softmax(dim=-1)
m = torch.randn(4, 5)
a @ m, torch.matmul(a, m), torch.bmm(a, a.transpose(1, 2)), torch.einsum("bij,jk->bik", a, m)
(a > 0).any(dim=-1), (a > 0).all(), torch.where(a > 0, a, 0.0)

# %% [markdown]
# ## Indexing
#
# **Learn it:** ch00/next_token_log_probs · ch00/top_k_next_tokens · ch02/prev_attn_detector

# %%
a[:, -1], a[:, :-1], a[..., 0]                           # last position, all but last, first feature
log_probs = model(ioi_tokens).log_softmax(-1)            # [1, pos, d_vocab]
next_lp = log_probs[:, :-1].gather(dim=-1, index=ioi_tokens[:, 1:, None])[..., 0]   # [1, pos - 1]
a[a > 0]                                                 # boolean mask: a 1-D tensor of the kept values
a[torch.tensor([0, 1]), torch.tensor([2, 0])]           # pairs: a[0, 2] and a[1, 0]
top_values, top_ids = log_probs[0, -1].topk(5)
sorted_values, order = a.sort(dim=-1, descending=True)
order = a.argsort(dim=-1, descending=True)
unique, counts = torch.unique(torch.tensor([1, 1, 2, 5]), return_counts=True)
torch.nonzero(a > 0), torch.argwhere(a > 0)             # [n_true, ndim] indices
pattern = cache["pattern", 0]                            # [batch, head, query, key]
prev = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)     # [batch, head, pos - 1]: to the previous token
m.diagonal(), torch.diag(torch.tensor([1.0, 2.0]))       # 2-D: dim1=0, dim2=1 by default

# %% [markdown]
# ## In place, masking, copies
#
# **Learn it:** ch00/apply_causal_mask · ch00/masked_mean

# %%
scores = torch.randn(1, 2, 5, 5)                            # [batch, head, query, key]
mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)   # True above the diagonal: the future
masked = scores.masked_fill(mask, float("-inf"))            # a new tensor; masked_fill_ changes scores itself
probs = masked.softmax(dim=-1)                              # rows sum to 1; a fully masked row would be NaN
buffer = torch.ones(3)
buffer.zero_(), buffer.fill_(2.0), buffer.add_(1.0)        # trailing _: in place
copy = scores.clone()                                       # new memory
detached = probs.detach()                                   # same memory, cut from autograd
safe = probs.detach().clone()

# %% [markdown]
# ## Types and conversions
#
# **Learn it:** ch00 · ch01/prediction_accuracy

# %%
a.float(), a.half(), a.long(), a.int(), (a > 0).bool(), a.to(torch.bfloat16), a.to(device, torch.float64)
a.sum().item()                                # a Python number (one element only)
a[0, 0].tolist()                              # nested Python lists
array = a.detach().cpu().numpy()              # numpy needs a CPU tensor without grad
torch.from_numpy(array), torch.tensor(array)  # shares memory / copies

# %% [markdown]
# ## einops
# Named dimensions instead of remembered axis numbers: `rearrange` (reshape/transpose), `reduce` (sum, mean,
# max over named dimensions), `repeat` (broadcast), `einsum` (contract).
#
# **Learn it:** ch00/split_heads · ch00/attention_scores · ch00/masked_mean · ch00/batch_positional_embeddings

# %%
z = cache["z", 0]                                                         # [batch, pos, head, d_head]
flat = einops.rearrange(z, "b s h d -> b s (h d)")                        # merge heads
back = einops.rearrange(flat, "b s (h d) -> b s h d", h=model.cfg.n_heads)
images = einops.rearrange(torch.randn(2, 28 * 28, 3), "b (h w) c -> b h w c", h=28)
pairs = einops.rearrange(torch.randn(6, 4), "(b1 b2) d -> b1 b2 d", b1=2)
einops.reduce(z, "b s h d -> b h", "mean"), einops.reduce(z, "b s h d -> b d", "sum")
einops.repeat(model.W_pos[:5], "pos d -> b pos d", b=3)                  # [3, 5, d_model]
q, k = cache["q", 0], cache["k", 0]
attn_scores = einops.einsum(q, k, "batch posQ head d_head, batch posK head d_head -> batch head posQ posK")
head_out = einops.einsum(cache["pattern", 0], cache["v", 0],
                         "batch head posQ posK, batch posK head d_head -> batch posQ head d_head")
assert torch.allclose(head_out, z, atol=1e-4)                             # that is what z is
logits_again = einops.einsum(cache["resid_post", 1] / cache["scale"], model.W_U,
                             "b s d, d v -> b s v") + model.b_U

# %% [markdown]
# ## jaxtyping
# Shapes in the signature: documentation by default, checked at call time with a typechecker.
#
# **Learn it:** ch00/split_heads · ch00

# %%
from beartype import beartype  # installed with transformer-lens
from jaxtyping import jaxtyped

Float[Tensor, "batch pos d_model"], Float[Tensor, "batch head query key"], Int[Tensor, "batch pos"]
Bool[Tensor, "batch"], Float[Tensor, "... d_model"], Float[Tensor, "*batch pos d_model"], Float[Tensor, ""]


@jaxtyped(typechecker=beartype)
def unembed(resid: Float[Tensor, "batch pos d_model"],
            W_U: Float[Tensor, "d_model d_vocab"]) -> Float[Tensor, "batch pos d_vocab"]:
    return resid @ W_U


unembed(cache["resid_post", 1], model.W_U)   # a wrong shape raises a TypeError naming the dimension

# %% [markdown]
# ## Logit difference
# The standard metric of a two-answer task (indirect object vs subject): how much more the model prefers the
# right answer at the last position.
#
# **Learn it:** ch02/logits_to_ave_logit_diff · ch05/ioi_metric

# %%
def logits_to_ave_logit_diff(logits: Float[Tensor, "batch pos d_vocab"],
                             answer_tokens: Int[Tensor, "batch 2"],
                             per_prompt: bool = False) -> Float[Tensor, "*batch"]:
    """Logit of the right answer (column 0) minus the wrong one (column 1), at the last position."""
    answer_logits = logits[:, -1].gather(dim=-1, index=answer_tokens)    # [batch, 2]
    correct, wrong = answer_logits.unbind(dim=-1)
    diff = correct - wrong
    return diff if per_prompt else diff.mean()


prompts = ["When Mary and John went to the store, John gave a drink to",
           "When John and Mary went to the store, Mary gave a drink to"]
answers = torch.tensor([[model.to_single_token(" Mary"), model.to_single_token(" John")],
                        [model.to_single_token(" John"), model.to_single_token(" Mary")]], device=device)
ioi_batch = model.to_tokens(prompts)                     # both prompts have the same number of tokens
ioi_logits, ioi_cache = model.run_with_cache(ioi_batch)
print(logits_to_ave_logit_diff(ioi_logits, answers, per_prompt=True))

# %% [markdown]
# ## Ablation
# Remove a head's contribution and measure what breaks. Zero ablation sets its `z` to 0; mean ablation
# replaces it with an average, a gentler baseline.
#
# **Learn it:** ch03/head_zero_ablation_hook · ch03/head_mean_ablation_hook · ch04/ablation_induction_score

# %%
def zero_ablate_head(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head: int) -> Tensor:
    z[:, :, head] = 0.0
    return z


def mean_ablate_head(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head: int) -> Tensor:
    z[:, :, head] = z[:, :, head].mean(dim=(0, 1))   # over batch and positions (.mean(0): per position)
    return z


def ablate_heads(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, heads: list[int]) -> Tensor:
    z[:, :, heads] = 0.0
    return z


for hook_fn in [partial(zero_ablate_head, head=0), partial(mean_ablate_head, head=0),
                partial(ablate_heads, heads=[0, 1])]:
    ablated = model.run_with_hooks(ioi_batch, fwd_hooks=[(get_act_name("z", 1), hook_fn)])
    print(logits_to_ave_logit_diff(ablated, answers).item())

# %% [markdown]
# ## Activation patching
# Run a corrupted prompt, paste in one activation from the clean run, and see how much of the clean behaviour
# comes back. Clean and corrupted prompts must have the same number of tokens.
#
# **Learn it:** ch05/get_act_patch_resid_pre · ch05/patch_head_vector · ch05/get_path_patch_head_to_final_resid_post

# %%
import transformer_lens.patching as patching

clean_tokens = ioi_batch
corrupted_tokens = model.to_tokens(["When Mary and John went to the store, Mary gave a drink to",
                                    "When John and Mary went to the store, John gave a drink to"])
clean_logits, clean_cache = model.run_with_cache(clean_tokens)
corrupted_logits = model(corrupted_tokens)
clean_diff = logits_to_ave_logit_diff(clean_logits, answers)
corrupted_diff = logits_to_ave_logit_diff(corrupted_logits, answers)


def patch_resid(resid: Float[Tensor, "batch pos d_model"], hook: HookPoint, pos: int,
                clean_cache: ActivationCache) -> Tensor:
    resid[:, pos] = clean_cache[hook.name][:, pos]
    return resid


def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
    """0 = corrupted, 1 = clean."""
    return (logits_to_ave_logit_diff(logits, answers) - corrupted_diff) / (clean_diff - corrupted_diff)


end_pos = clean_tokens.shape[1] - 1
patched_logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[
    (get_act_name("resid_pre", 1), partial(patch_resid, pos=end_pos, clean_cache=clean_cache))])
by_layer_pos = patching.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)   # [layer, pos]
assert torch.allclose(by_layer_pos[1, end_pos], metric(patched_logits), atol=1e-4)   # the library's loop
px.imshow(by_layer_pos.cpu(), labels=dict(x="position", y="layer"), title="resid_pre patching")

# %% [markdown]
# ## Direct logit attribution
# Project each component's output on the direction `W_U[:, right] - W_U[:, wrong]`, after the final LayerNorm's
# scale, and the pieces add up to the logit difference.
#
# **Learn it:** ch02/residual_stack_to_logit_diff · ch02/head_direct_logit_attribution · ch04/logit_attribution

# %%
logit_dir = model.W_U[:, answers[:, 0]] - model.W_U[:, answers[:, 1]]   # [d_model, batch]: one per prompt
model.set_use_attn_result(True)
_, dla_cache = model.run_with_cache(ioi_batch)
model.set_use_attn_result(False)
head_out = dla_cache["result", 1][:, -1]                      # [batch, head, d_model], last position
head_out = head_out / dla_cache["scale"][:, -1, None]                   # the final LayerNorm's scale
dla = einops.einsum(head_out, logit_dir, "batch head d_model, d_model batch -> batch head")

stack, labels = dla_cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
scaled = dla_cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)      # [component, batch, d_model]
per_component = einops.einsum(scaled, logit_dir, "comp batch d_model, d_model batch -> comp batch")
ioi_diff = logits_to_ave_logit_diff(ioi_logits, answers, per_prompt=True)
b_U_diff = model.b_U[answers[:, 0]] - model.b_U[answers[:, 1]]            # the unembedding bias's share
assert torch.allclose(per_component.sum(0) + b_U_diff, ioi_diff, atol=1e-3)   # the pieces add up
print(dict(zip(labels, per_component.mean(1).tolist())), dla.mean(0))

# %% [markdown] tags=["changed"]
# **Sheet:** `dla = einops.einsum(head_outputs[:, -1], logit_dir, ...)`
#
# **Now:** leaves out the final LayerNorm: divide by `cache["scale"]` (or use `cache.apply_ln_to_stack`), or the
# numbers are off by a factor that differs per prompt and no longer add up to the logit difference.

# %% [markdown]
# ## Induction heads
# On `[BOS] + r + r` (a random sequence repeated), an induction head attends from each token of the second copy
# to the token after its first occurrence: the stripe `seq_len - 1` below the diagonal. It is built from a
# previous-token head in an earlier layer (K-composition).
#
# **Learn it:** ch04/generate_repeated_tokens · ch04/induction_scores · ch04/get_comp_score

# %%
seq_len = 20
bos = torch.full((4, 1), model.tokenizer.bos_token_id, device=device)
r = torch.randint(0, model.cfg.d_vocab, (4, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
rep_tokens = torch.cat([bos, r, r], dim=1)                            # [batch, 2 * seq_len + 1]
_, rep_cache = model.run_with_cache(rep_tokens)
stripes = [rep_cache["pattern", layer].diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)  # [batch, head, n]
           for layer in range(model.cfg.n_layers)]
scores = torch.stack([s[..., -seq_len:].mean(dim=(0, -1)) for s in stripes])  # [layer, head]: 2nd copy only
ind_layer, ind_head = divmod(int(scores.argmax()), model.cfg.n_heads)
print(scores, f"induction head {ind_layer}.{ind_head}")


def comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """How much of W_B reads what W_A writes: ||W_A W_B|| / (||W_A|| ||W_B||)."""
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()


k_comp = [comp_score(model.OV[0, h].AB, model.W_K[ind_layer, ind_head]) for h in range(model.cfg.n_heads)]

# %% [markdown] tags=["changed"]
# **Sheet:** `pattern.diagonal(-seq_len+1).mean()`
#
# **Now:** on a cached `[batch, head, query, key]` pattern `diagonal` takes dimensions 0 and 1 (batch and head)
# by default: pass `dim1=-2, dim2=-1`, and keep the last `seq_len` entries (the second copy).

# %% [markdown]
# ## circuitsvis
# Interactive attention views. In a notebook the returned object displays itself; `local_src` is a
# self-contained HTML page (works offline), `cdn_src` loads the viewer from a CDN.
#
# **Learn it:** ch04/induction_attn_detector · ch02/current_attn_detector

# %%
str_tokens = model.to_str_tokens(rep_tokens[0, :16])
short_cache = model.run_with_cache(rep_tokens[:1, :16])[1]
cv.attention.attention_patterns(tokens=str_tokens, attention=short_cache["pattern", 1][0])   # [head, q, k]
view = cv.attention.attention_heads(
    tokens=str_tokens, attention=short_cache["pattern", 1][0],
    attention_head_names=[f"L1H{h}" for h in range(model.cfg.n_heads)])
offline_page = view.local_src                   # e.g. Path("heads.html").write_text(offline_page)
view

# %% [markdown] tags=["changed"]
# **Sheet:** `cv.attention.attention_patterns(..., attention_head_names=[...])`
#
# **Now:** `attention_patterns` takes only `tokens` and `attention` (a `TypeError` otherwise): head names go to
# `cv.attention.attention_heads(..., attention_head_names=...)`.

# %% [markdown]
# ## SAE-Lens
# A sparse autoencoder reads one hook point, encodes it into many sparse latents and decodes it back.
# `HookedSAETransformer` splices SAEs into the forward pass.
#
# **Learn it:** ch06/sae_encode · ch06/sae_metrics · ch06/steering_hook

# %% tags=["online"]
sae_model = HookedSAETransformer.from_pretrained("gpt2-small", device=device)
sae = SAE.from_pretrained(release="gpt2-small-res-jb", sae_id="blocks.7.hook_resid_pre", device=str(device))

# %%
sae = load_sae("mlp4l-res1", device=device)   # online: load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre")
assert sae.cfg.metadata.model_name == "mlp4l"
sae_model = HookedSAETransformer(mlp_model.cfg, tokenizer=mlp_model.tokenizer)   # the shipped weights in an
sae_model.load_state_dict(mlp_model.state_dict())                                # SAE-ready model
sae_model.eval()

# %% [markdown] tags=["changed"]
# **Sheet:** `sae, cfg, sparsity = SAE.from_pretrained(...)`
#
# **Now:** SAE-Lens 6 returns the SAE alone; unpacking it still runs but warns and always gives `sparsity = None`:
# `SAE.from_pretrained_with_cfg_and_sparsity(...)` returns the real triple.

# %%
hook_name = sae.cfg.metadata.hook_name                  # where it reads and writes: blocks.1.hook_resid_post
sae.W_enc, sae.W_dec                                    # [d_in, d_sae], [d_sae, d_in]
sae_tokens = sae_model.to_tokens(prompts)
with sae_model.saes(saes=[sae]):                        # spliced in for the block only
    sae_logits = sae_model(sae_tokens)
sae_model.add_sae(sae)                                  # or until reset_saes()
sae_logits = sae_model(sae_tokens)
sae_model.reset_saes()                                  # don't forget
_, sae_cache = sae_model.run_with_cache_with_saes(sae_tokens, saes=[sae])
latents = sae_cache[f"{hook_name}.hook_sae_acts_post"]  # [batch, pos, d_sae]
feats = sae.encode(sae_cache[f"{hook_name}.hook_sae_input"])   # the same, by hand
recon = sae.decode(feats)                               # [batch, pos, d_in]
assert torch.allclose(feats, latents, atol=1e-4)
mary_vs_john = mlp_model.W_U[:, answers[0, 0]] - mlp_model.W_U[:, answers[0, 1]]     # [d_model]
latent_dla = latents[0, -1] * (sae.W_dec @ mary_vs_john)   # [d_sae]: each active latent's direct push (no LN)
print((latents[:, -1] != 0).sum(-1), latent_dla.topk(3).indices)

# %% [markdown] tags=["changed"]
# **Sheet:** `cache[f"{sae.cfg.hook_name}.hook_sae_acts_post"]`
#
# **Now:** SAE-Lens 6 moved the hook name to `sae.cfg.metadata.hook_name` (`sae.cfg.hook_name` is an
# `AttributeError`); `add_sae` skips an SAE whose hook name the model lacks, with only a log message.

# %% [markdown]
# ## A training loop
# Gradients back on, an optimizer, and the five lines every loop has.
#
# **Learn it:** ch00/train_linear_probe

# %%
torch.set_grad_enabled(True)                               # it was switched off at the top
tiny.train()
optimizer = torch.optim.AdamW(tiny.parameters(), lr=1e-3, weight_decay=0.01)
data = torch.randint(0, tiny_cfg.d_vocab, (16, 2, 8), generator=torch.Generator().manual_seed(0))
data = einops.rearrange(data, "n copy s -> n (copy s)").to(device)          # 16 sequences of 16 tokens
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=4, shuffle=True)
for epoch in range(2):
    for (batch,) in tqdm(loader, disable=True):
        optimizer.zero_grad()
        loss = tiny(batch, return_type="loss")
        loss.backward()
        optimizer.step()
    for group in optimizer.param_groups:                   # a hand-made schedule: halve the learning rate
        group["lr"] *= 0.5
tiny.eval()
torch.set_grad_enabled(False)
print(loss.item())
