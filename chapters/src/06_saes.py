# %% [markdown]
# # Chapter 6 — Sparse autoencoders: reading a model's activations as features
#
# A model's activations are dense vectors: every neuron takes part in many things, and one thing is spread over
# many neurons. A **sparse autoencoder** (SAE) rewrites an activation `x` as a sparse sum of learned directions,
#
# $$ x \approx b_{dec} + \sum_i f_i(x)\, W_{dec}[i], $$
#
# where only a handful of the **latents** `f_i(x)` are non-zero at a time. When the SAE is good, many latents
# mean one thing each ("the token `.`", "the name that should come next") and we can read, ablate and steer
# them. In this chapter you will:
#
# 1. **take an SAE apart**: encode and decode with its weights, and splice it into the model with SAE-Lens's
#    `HookedSAETransformer` (`run_with_saes`, `run_with_cache_with_saes`, the `saes()` context, `use_error_term`);
# 2. **measure it**: L0, explained variance, MSE, dead latents, and how much of the model's loss it keeps (CE
#    loss recovered, KL), the same numbers as `sae_lens.evals`;
# 3. **read latents**: their top-activating contexts, their effect on the logits, and an offline dashboard;
# 4. **use latents causally**: ablate one, and steer generation with one;
# 5. **follow IOI through an attention SAE**: find the latents that move the right name, and ablate them;
# 6. **train an SAE** yourself with SAE-Lens's training runner, on a CPU, while you watch.
#
# Everything runs offline on the course's shipped 4-layer model `mlp4l` and its shipped SAEs: a residual-stream
# SAE and an attention-output SAE on `hook_z`, both trained by `training/train_sae.py` with SAE-Lens (their
# model cards are in `models/saes/`). When you are online, `MODEL_NAME = "gpt2-small"` and
# `SAE_NAME = "gpt2-small-res-jb/blocks.8.hook_resid_pre"` run the same cells on GPT-2 small and Joseph Bloom's
# public SAEs. No latent index is hard-coded: every latent we look at is *computed*.

# %% [markdown] tags=["learner"]
# **How to work:** replace each `raise NotImplementedError()` with your code, run the cell, then run the
# check cell under it. Hints and solutions are in the dropdowns below each check.

# %% tags=["module"]
import html
from functools import partial

import einops
import torch
from jaxtyping import Float, Int
from sae_lens import (
    SAE,
    HookedSAETransformer,
    LanguageModelSAERunnerConfig,
    LoggingConfig,
    TopKTrainingSAEConfig,
)
from torch import Tensor
from transformer_lens.hook_points import HookPoint

# %% [markdown]
# ## 0. The model and its SAEs
#
# SAE-Lens splices SAEs into a model through `HookedSAETransformer`, a `HookedTransformer` that can attach an SAE
# at any hook point. `load_model(..., sae_transformer=True)` builds the shipped model as one (the same weights and
# processing as a plain `load_model`), and `load_sae` loads an SAE by name (`available_saes()` lists them). An SAE
# knows where it belongs: `sae.cfg.metadata.hook_name`.

# %%
import contextlib
import sys
import time

import plotly.express as px
from datasets import Dataset
from IPython.display import HTML, display
from sae_lens import LanguageModelSAETrainingRunner

from utils.corpus import IOI_TRAIN_TEMPLATES, TRAIN_NAMES
from utils.data import hook_z_sae_for, ioi_same_length, text_rows, text_tokens
from utils.models import available_saes, load_model, load_sae

# %% tags=["parameters"]
MODEL_NAME = "mlp4l"  # or "gpt2-small" when you are online
SAE_NAME = "mlp4l-res1"  # online: "gpt2-small-res-jb/blocks.8.hook_resid_pre"
Z_SAE_NAME = None  # an SAE on an attention layer's hook_z; None: the shipped one of MODEL_NAME
# (online, with gpt2-small: "gpt2-small-hook-z-kk/blocks.9.hook_z", where GPT-2's name movers are)

# %%
torch.set_grad_enabled(False)  # we only read the model, until section 6 trains an SAE
if device.type == "cpu" and MODEL_NAME != "gpt2-small":
    torch.set_num_threads(1)  # a model this small runs as fast on one CPU thread, and never waits for a busy core
model = load_model(MODEL_NAME, device=device, sae_transformer=True)
sae = load_sae(SAE_NAME, device=device)
Z_SAE_NAME = Z_SAE_NAME or hook_z_sae_for(MODEL_NAME)
assert Z_SAE_NAME, f"no hook_z SAE of {MODEL_NAME} is shipped: set Z_SAE_NAME (available_saes() lists the SAEs)"
z_sae = load_sae(Z_SAE_NAME, device=device)
for name, s in [(SAE_NAME, sae), (Z_SAE_NAME, z_sae)]:
    print(f"{name}: {available_saes()[name]}")
    print(f"    architecture {s.cfg.architecture()}, d_in {s.cfg.d_in}, d_sae {s.cfg.d_sae}, "
          f"k {getattr(s.cfg, 'k', '-')}, hook {s.cfg.metadata.hook_name!r}")
hook = sae.cfg.metadata.hook_name
z_hook = z_sae.cfg.metadata.hook_name
print(f"{MODEL_NAME}: {model.cfg.n_layers} layers, {model.cfg.n_heads} heads of d_head {model.cfg.d_head}, "
      f"d_model {model.cfg.d_model}, d_vocab {model.cfg.d_vocab}")

# %% [markdown]
# The first SAE reads the residual stream after a block (`d_in = d_model`). The second reads `hook_z`, the
# attention heads' outputs *before* `W_O`, with all heads concatenated: `d_in = n_heads * d_head`. Its config says
# `reshape_activations = "hook_z"`: `z_sae.encode` takes `[batch, pos, n_heads, d_head]` and flattens the heads
# itself, and `z_sae.decode` gives that shape back.
#
# Our text: held-out rows of the course corpus (generated English-like sentences, never used in training),
# `BOS` first.

# %%
tokens = text_tokens(model, batch=64, seed=11)[:, :128]  # [64, 128]
print(tokens.shape, "|", repr(model.to_string(tokens[0, :40])))
print(f"a document's tokens: {model.tokenizer.encode('Hi there')} (the tokenizer puts BOS = "
      f"{model.tokenizer.bos_token!r} first; each document also ends with EOS = {model.tokenizer.eos_token!r})")

# %% [markdown]
# `<|endoftext|>` is both this model's BOS and its EOS: each document of the stream starts with BOS and ends with EOS,
# so where one document ends and the next begins, and at the start of a row, two `<|endoftext|>` tokens meet.

# %% [markdown]
# ## 1. SAE anatomy
#
# The shipped SAEs are **TopK SAEs** (Gao et al., 2024). Encoding `x` (shape `[..., d_in]`):
#
# 1. subtract the decoder bias and project: `hidden_pre = (x - b_dec) @ W_enc + b_enc` (`[..., d_sae]`);
# 2. if `sae.cfg.rescale_acts_by_decoder_norm`, multiply each latent by the norm of its decoder row
#    `W_dec[i]` (so that latents compete on the size of what they *write*);
# 3. keep the `k = sae.cfg.k` largest entries (a ReLU on those, zeros everywhere else).
#
# A **standard** SAE (`sae.cfg.architecture() == "standard"`, e.g. `gpt2-small-res-jb`) skips steps 2 and 3 and
# applies a ReLU to every latent instead; handle both. Write the encoder from the weights (`sae.W_enc`
# `[d_in, d_sae]`, `sae.b_enc`, `sae.b_dec`, `sae.W_dec` `[d_sae, d_in]`), without calling `sae.encode`.

# %%
def sae_encode(sae: SAE, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
    """The SAE's latents for activations `x` (flat: `[..., d_in]`), computed from its weights."""
    # SOLUTION
    hidden_pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if sae.cfg.architecture() != "topk":
        return hidden_pre.relu()
    if sae.cfg.rescale_acts_by_decoder_norm:
        hidden_pre = hidden_pre * sae.W_dec.norm(dim=-1)
    top = hidden_pre.topk(sae.cfg.k, dim=-1)
    return torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The pre-activations use all three of `b_dec`, `W_enc` and `b_enc`. The config tells you the rest:
# `sae.cfg.architecture()`, `sae.cfg.k`, `sae.cfg.rescale_acts_by_decoder_norm`. `Tensor.topk` returns values and
# indices (the largest values, signs included); `Tensor.scatter` writes values at indices into a tensor of zeros.

# %% [markdown]
# Decoding is one affine map: `latents @ W_dec + b_dec`. (A TopK SAE with `rescale_acts_by_decoder_norm`
# divides each latent by its decoder row's norm first, undoing step 2 of the encoder.)

# %%
def sae_decode(sae: SAE, feature_acts: Float[Tensor, "*batch d_sae"]) -> Float[Tensor, "*batch d_in"]:
    """The SAE's reconstruction `[..., d_in]` (flat) from its latents, computed from its weights."""
    # SOLUTION
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        feature_acts = feature_acts / sae.W_dec.norm(dim=-1)
    return feature_acts @ sae.W_dec + sae.b_dec
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One matrix product and one bias. When the encoder multiplied by the decoder rows' norms, divide by them here; a
# standard SAE's config has no `rescale_acts_by_decoder_norm` at all (`getattr` with a default).

# %% [markdown]
# Your functions against SAE-Lens's, on the residual stream at the SAE's hook (`BOS` is left out: its residual
# stream is an outlier):

# %%
_, clean_cache = model.run_with_cache(tokens[:8], names_filter=[hook, z_hook])
x = clean_cache[hook][:, 1:]  # [8, n_ctx - 1, d_in]
mine = sae_encode(sae, x)
print(f"latents: max |mine - sae.encode| = {(mine - sae.encode(x)).abs().max():.2e}; "
      f"{(mine != 0).sum(-1).float().mean():.1f} active per token; "
      f"max |decode difference| = {(sae_decode(sae, mine) - sae.decode(mine)).abs().max():.2e}")
print(f"decoder row norms: {sae.W_dec.norm(dim=-1).min():.4f} to {sae.W_dec.norm(dim=-1).max():.4f} "
      "(SAE-Lens saves TopK SAEs with unit decoder rows: the rescaling is then a no-op)")
z = clean_cache[z_hook][:, 1:]  # [8, n_ctx - 1, n_heads, d_head]
print(f"hook_z SAE: z_sae.encode(z) of shape {tuple(z.shape)} equals sae_encode on the flattened heads: "
      f"max diff {(z_sae.encode(z) - sae_encode(z_sae, z.flatten(-2))).abs().max():.2e}")

# %% [markdown]
# ### Splicing an SAE into the model
#
# `model.run_with_saes(tokens, saes=[sae])` runs the model with the SAE's *reconstruction* in place of the
# activation at `sae.cfg.metadata.hook_name`; `model.run_with_cache_with_saes(...)` also returns a cache, in which
# the SAE's own hook points appear under the hook's name: `f"{hook}.hook_sae_acts_post"` (the latents),
# `.hook_sae_acts_pre`, `.hook_sae_input`, `.hook_sae_recons`, `.hook_sae_output`. Both take the SAE out again at
# the end (so does the `with model.saes(saes=[sae]):` context); `model.add_sae(sae)` would leave it in.
#
# Return the per-token loss of the model *with the SAE spliced in* (`return_type="loss", loss_per_token=True`:
# `[batch, pos - 1]`) and the latents at every position, from the cache of the same run.

# %%
def spliced_loss_and_latents(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch pos_minus_1"], Float[Tensor, "batch pos d_sae"]]:
    """Per-token loss with `sae` spliced in, and the SAE's latents (`hook_sae_acts_post`) from the same run."""
    # SOLUTION
    loss, cache = model.run_with_cache_with_saes(tokens, saes=[sae], return_type="loss", loss_per_token=True)
    return loss, cache[f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One call does both: `run_with_cache_with_saes` passes `return_type` and `loss_per_token` on to the forward pass.
# The latents are under the SAE's hook name followed by the SAE's own hook point *after* the TopK.

# %%
clean_loss = model(tokens[:8], return_type="loss", loss_per_token=True)
spliced_loss, latents = spliced_loss_and_latents(model, sae, tokens[:8])
print(f"mean loss: clean {clean_loss.mean():.3f} nats, with {SAE_NAME} spliced in {spliced_loss.mean():.3f} nats; "
      f"latents {tuple(latents.shape)}")

# %% [markdown]
# The reconstruction is not perfect, so splicing changes the loss a little. With `use_error_term=True`, SAE-Lens
# adds the **error term** `x - sae(x)` back: the model computes exactly what it did without the SAE, yet every
# latent is there to read, ablate or steer. The error is itself a hook point, `hook_sae_error`.

# %%
clean_logits = model(tokens[:8])
with_error = model.run_with_saes(tokens[:8], saes=[sae], use_error_term=True)
error_term_diff = (with_error - clean_logits).abs().max().item()
print(f"use_error_term=True: max |logits - clean logits| = {error_term_diff:.1e}")
assert error_term_diff < 1e-3, "with the error term the logits must be the clean logits"

# %% [markdown]
# ## 2. How good is an SAE?
#
# Four numbers describe a reconstruction, over `n_tokens` activations `x` (`[n_tokens, d_in]`), latents and
# reconstructions `x_hat` (SAE-Lens's definitions, `sae_lens.evals`):
#
# - **L0**: the mean number of active (non-zero) latents per token; `k` for a TopK SAE.
# - **MSE**: the squared error `||x - x_hat||²` summed over `d_in`, averaged over tokens.
# - **Explained variance**: `1 - MSE / total variance`, where the total variance is `||x - mean(x)||²` (the mean
#   over tokens), summed over `d_in`, averaged over tokens. 1 is perfect; 0 is no better than predicting the mean.
# - **Dead fraction**: the fraction of latents that are active on *none* of these tokens.

# %%
def reconstruction_metrics(
    x: Float[Tensor, "n_tokens d_in"], feature_acts: Float[Tensor, "n_tokens d_sae"],
    x_hat: Float[Tensor, "n_tokens d_in"]
) -> dict[str, float]:
    """`{"l0", "mse", "explained_variance", "dead_frac"}` (Python floats) of one set of activations."""
    # SOLUTION
    active = feature_acts != 0
    mse = (x - x_hat).pow(2).sum(-1).mean()
    total_variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    return {
        "l0": active.sum(-1).float().mean().item(),
        "mse": mse.item(),
        "explained_variance": (1 - mse / total_variance).item(),
        "dead_frac": (~active.any(0)).float().mean().item(),
    }
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Sum the squared error over `d_in` (the last dimension) and average over tokens; the total variance is the same
# with `x - x.mean(0)` in place of `x - x_hat`. A latent is dead when `(feature_acts != 0).any(0)` is False for it.
# Turn each result into a Python float with `.item()`.

# %% [markdown]
# The **density** of a latent is the fraction of tokens on which it is active. Dead latents have density 0; dense
# latents (active on, say, more than 10% of tokens) are suspects: in large SAEs many of them fire on no clear
# pattern. Density alone does not decide it, though: section 3's `.` latent is one of this SAE's dense latents, and
# it means one thing. Its histogram, on a log scale, is the usual first look at an SAE.

# %%
def latent_density(feature_acts: Float[Tensor, "n_tokens d_sae"]) -> Float[Tensor, "d_sae"]:
    """The fraction of tokens on which each latent is active (non-zero)."""
    # SOLUTION
    return (feature_acts != 0).float().mean(0)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# `(feature_acts != 0)` as floats, averaged over the tokens (dimension 0).

# %% [markdown]
# Reconstruction is not the goal: the model's behaviour is. Splice the SAE in and compare the next-token loss with
# the clean loss and with the loss when the hook's activation is **zero-ablated** (replaced by zeros everywhere):
#
# $$ \text{CE loss recovered} = \frac{CE_{zero} - CE_{SAE}}{CE_{zero} - CE_{clean}}, $$
#
# 1 when the SAE keeps all the loss the hook carries, 0 when it is as bad as deleting it. The **KL divergence**
# `KL(clean || spliced)` of the next-token distributions, averaged over positions, measures the same thing without
# looking at the right answers (and `KL(clean || zero-ablated)` gives its scale).
#
# Write `sae_metrics` like `sae_lens.evals`:
#
# - leave out the positions of **special tokens** (`model.tokenizer.all_special_ids`: here `BOS`, which is also the
#   document separator). Their activations are outliers that would dominate the statistics, so SAE-Lens bypasses
#   the SAE there: splice with `model.run_with_cache_with_saes(..., exclude_special_tokens=True)`;
# - the reconstruction statistics come from the spliced run's cache: `hook_sae_input`, `hook_sae_acts_post`,
#   `hook_sae_recons` (flat `[..., d_in]`, even for a `hook_z` SAE), at the kept positions (boolean indexing
#   `[keep]` gives `[n_tokens, ...]`), through your `reconstruction_metrics`;
# - the losses: `return_type="both", loss_per_token=True` gives `(logits, loss)` with the loss at positions
#   `0 .. pos - 2`; average it over the positions whose *input* token is kept (`keep[:, :-1]`). The KL uses every
#   kept position.

# %%
def sae_metrics(model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"]) -> dict[str, float]:
    """`reconstruction_metrics` plus `ce_clean`, `ce_sae`, `ce_zero`, `ce_recovered`, `kl_sae`, `kl_zero`, with
    special-token positions left out (Python floats)."""
    # SOLUTION
    hook = sae.cfg.metadata.hook_name
    keep = ~torch.isin(tokens, torch.tensor(model.tokenizer.all_special_ids, device=tokens.device))
    clean_logits, clean_loss = model(tokens, return_type="both", loss_per_token=True)
    (sae_logits, sae_loss), cache = model.run_with_cache_with_saes(
        tokens, saes=[sae], exclude_special_tokens=True, return_type="both", loss_per_token=True)
    zero_logits, zero_loss = model.run_with_hooks(
        tokens, return_type="both", loss_per_token=True, fwd_hooks=[(hook, lambda act, hook: torch.zeros_like(act))])
    metrics = reconstruction_metrics(cache[f"{hook}.hook_sae_input"][keep], cache[f"{hook}.hook_sae_acts_post"][keep],
                                     cache[f"{hook}.hook_sae_recons"][keep])
    ce_clean, ce_sae, ce_zero = (loss[keep[:, :-1]].mean().item() for loss in (clean_loss, sae_loss, zero_loss))
    clean_log_probs = clean_logits.log_softmax(-1)

    def kl_from_clean(logits):
        kl = (clean_log_probs.exp() * (clean_log_probs - logits.log_softmax(-1))).sum(-1)
        return kl[keep].mean().item()

    return metrics | {
        "ce_clean": ce_clean, "ce_sae": ce_sae, "ce_zero": ce_zero,
        "ce_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean),
        "kl_sae": kl_from_clean(sae_logits), "kl_zero": kl_from_clean(zero_logits),
    }
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Three forward passes on the same tokens: clean, spliced (with the cache, special tokens excluded) and zero-ablated
# (a hook that returns zeros of the activation's shape). `torch.isin` builds the mask of kept positions. Each
# position's loss belongs to its input token, hence `keep[:, :-1]`. KL(clean || new) weighs `log p_clean - log
# p_new` by the *clean* probabilities, summed over the vocabulary.

# %% [markdown]
# Both shipped SAEs, on 16 rows of held-out text:

# %%
metric_tokens = tokens[:16]
shipped = {name: sae_metrics(model, s, metric_tokens) for name, s in [(SAE_NAME, sae), (Z_SAE_NAME, z_sae)]}
for name, m in shipped.items():
    print(f"{name}: L0 {m['l0']:.1f} | explained variance {m['explained_variance']:.3f} | MSE {m['mse']:.3f} | "
          f"dead {m['dead_frac']:.1%}")
    print(f"    CE clean {m['ce_clean']:.3f} / with SAE {m['ce_sae']:.3f} / zero-ablated {m['ce_zero']:.3f} nats "
          f"-> recovered {m['ce_recovered']:.1%} | KL with SAE {m['kl_sae']:.4f}, zero-ablated {m['kl_zero']:.3f}")

# %% [markdown]
# The same CE losses from SAE-Lens's own evaluation function (with the same special tokens left out):

# %%
from sae_lens.evals import get_recons_loss
from sae_lens.training.activation_scaler import ActivationScaler

special_ids = model.tokenizer.all_special_ids
library = get_recons_loss(sae, model, ActivationScaler(), metric_tokens, compute_kl=True, compute_ce_loss=True,
                          ignore_tokens=special_ids)
keep = ~torch.isin(metric_tokens, torch.tensor(special_ids, device=metric_tokens.device))
print(f"sae_lens.evals: CE with SAE {library['ce_loss_with_sae'][keep[:, :-1]].mean():.3f}, zero-ablated "
      f"{library['ce_loss_with_ablation'][keep[:, :-1]].mean():.3f}, KL with SAE "
      f"{library['kl_div_with_sae'][keep].mean():.4f} (yours: {shipped[SAE_NAME]['ce_sae']:.3f}, "
      f"{shipped[SAE_NAME]['ce_zero']:.3f}, {shipped[SAE_NAME]['kl_sae']:.4f})")

# %% [markdown]
# Read CE loss recovered next to its baseline. Deleting the residual stream in the middle of the model wrecks it,
# so the residual SAE's ratio divides by several nats. Deleting the attention SAE's layer barely moves the *mean* loss
# on ordinary text (compare `ce_zero` with `ce_clean` above): the ratio divides by almost nothing and says little.
# The KL divergences are the better guide there: deleting the layer does change the model's predictions (`kl_zero`),
# and splicing the SAE in changes them far less (`kl_sae`). Section 5 also judges it on its layer's task, IOI.
#
# The density histogram of the residual SAE's latents:

# %%
_, feature_cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[f"{hook}.hook_sae_acts_post"])
feature_acts = feature_cache[f"{hook}.hook_sae_acts_post"][:, 1:]  # [64, n_ctx - 1, d_sae], BOS left out
flat_acts = feature_acts.reshape(-1, sae.cfg.d_sae)
density = latent_density(flat_acts)
dense_threshold = 0.1
print(f"{(density == 0).sum()} dead latents, {(density > dense_threshold).sum()} dense ones "
      f"(active on more than {dense_threshold:.0%} of {flat_acts.shape[0]:,} tokens)")
px.histogram(x=density[density > 0].log10().cpu(), nbins=60, labels=dict(x="log10(density)"),
             title=f"Latent densities of {SAE_NAME} ({int((density == 0).sum())} dead latents not shown)").show()

# %% [markdown]
# ## 3. Reading latents
#
# What does a latent mean? First guess: look at the tokens where it is most active, **with their context**. Start
# with the bookkeeping. Given a `[batch, seq]` table of one latent's activations, find the `k` largest entries and
# return their `(batch, seq)` indices, largest first, as a `[k, 2]` int64 tensor, leaving out the first and last
# `buffer` positions of every row (so that a window of `buffer` tokens on each side fits).

# %%
def get_k_largest_indices(x: Float[Tensor, "batch seq"], k: int, buffer: int = 0) -> Int[Tensor, "k 2"]:
    """`(batch, seq)` indices of the `k` largest entries of `x` (largest first), positions
    `buffer .. seq - buffer - 1` only."""
    # SOLUTION
    inner = x[:, buffer: x.shape[1] - buffer]
    flat = inner.flatten().topk(k).indices
    rows, cols = flat // inner.shape[1], flat % inner.shape[1] + buffer
    return torch.stack([rows, cols], dim=1)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Slice away the edges first (careful: `x[:, buffer:-buffer]` is empty when `buffer` is 0), take the top k of the
# flattened table, and turn each flat index back into a row and a column of the *sliced* table, then of `x`.

# %% [markdown]
# Then cut a window of `2 * buffer + 1` entries around each index (the index in the middle) out of any `[batch, seq]`
# tensor: the tokens, or the activations.

# %%
def index_with_buffer(
    x: Float[Tensor, "batch seq"], indices: Int[Tensor, "k 2"], buffer: int
) -> Float[Tensor, "k window"]:
    """`x[b, s - buffer : s + buffer + 1]` for each `(b, s)` in `indices`: `[k, 2 * buffer + 1]`."""
    # SOLUTION
    rows, cols = indices.unbind(-1)
    offsets = torch.arange(-buffer, buffer + 1, device=x.device)
    return x[rows[:, None], cols[:, None] + offsets]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Advanced indexing with two index tensors that broadcast to `[k, 2 * buffer + 1]`: one for the rows, one for the
# columns of each window (each index's column plus the offsets `-buffer ... buffer`).

# %% [markdown]
# Now the real thing: run the model with the SAE spliced in and read one latent's activations from the cache; return
# its `k` largest activations, the token windows around them, and the latent's activations in those windows (to
# highlight the tokens).

# %%
def fetch_max_activating_examples(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], latent: int, k: int = 10,
    buffer: int = 5
) -> tuple[Float[Tensor, "k"], Int[Tensor, "k window"], Float[Tensor, "k window"]]:
    """The `k` largest activations of `latent` on `tokens` (positions at least `buffer` from each end), the
    token windows around them and the latent's activations in those windows."""
    # SOLUTION
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    acts = cache[name][..., latent]  # [batch, seq]
    indices = get_k_largest_indices(acts, k, buffer)
    return (acts[indices[:, 0], indices[:, 1]], index_with_buffer(tokens, indices, buffer),
            index_with_buffer(acts, indices, buffer))
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Cache only the latents (`names_filter`), keep the one latent's `[batch, seq]` table, and let your two previous
# functions do the rest: `index_with_buffer` once on the tokens and once on the activations. The top *tokens*, not
# the top sequences: one row may hold several of them.

# %% [markdown]
# Which latent first? Many of this SAE's latents are **single-token latents**: all of their top activations fall on
# one token. Find them (for each latent, the share of its top 20 activations on its most common token); we will use
# the densest one of the token `"."` and the densest one of `" the"`.

# %%
top_vals, top_pos = flat_acts.topk(20, dim=0)  # [20, d_sae]
top_tokens = tokens[:, 1:].reshape(-1)[top_pos]
top_token = top_tokens.mode(0).values  # [d_sae]: each latent's most common top token
single_token = ((top_tokens == top_token).all(0) & (top_vals[-1] > 0)).nonzero()[:, 0]
print(f"{len(single_token)} of {sae.cfg.d_sae} latents have all of their top-20 activations on one token")


def densest_single_token_latent(text: str) -> int:
    candidates = single_token[top_token[single_token] == model.to_single_token(text)]
    return int(candidates[density[candidates].argmax()])


period_latent, the_latent = densest_single_token_latent("."), densest_single_token_latent(" the")
for text, latent in [(".", period_latent), (" the", the_latent)]:
    print(f"the densest {text!r} latent: {latent} (density {density[latent]:.2%}, max activation "
          f"{top_vals[0, latent]:.2f}; {int((top_token[single_token] == model.to_single_token(text)).sum())} "
          f"single-token latents of {text!r} in all)")
print(f"latent {period_latent} is one of the {int((density > dense_threshold).sum())} dense latents: "
      f"{bool(density[period_latent] > dense_threshold)}")
acts_k, windows, window_acts = fetch_max_activating_examples(model, sae, tokens, period_latent, k=5, buffer=6)
for value, window in zip(acts_k.tolist(), windows):
    print(f"{value:6.2f}  {model.to_string(window[:6])!r} [{model.to_string(window[6:7])}] "
          f"{model.to_string(window[7:])!r}")

# %% [markdown]
# A latent also *writes* something: its decoder row `W_dec[i]`. For a residual-stream SAE that row lives in the
# residual stream already. For a `hook_z` SAE it is `n_heads * d_head` numbers, one `d_head` slice per head, which
# reach the residual stream through each head's `W_O`:
#
# $$ \text{direction}_i = \sum_h W_{dec}[i, h, :]\, W_O^{L, h} \quad (\text{reshape } W_{dec}[i] \text{ to }
# [n\_heads, d\_head]). $$
#
# Return every latent's direction in the residual stream (`[d_sae, d_model]`), for either kind of SAE: read the layer
# from `sae.cfg.metadata.hook_name` (`"blocks.2.attn.hook_z"`).

# %%
def latent_residual_directions(model: HookedSAETransformer, sae: SAE) -> Float[Tensor, "d_sae d_model"]:
    """Each latent's decoder direction in the residual stream: `W_dec` for a residual-stream SAE, `W_dec` (split
    into heads) times `W_O` of the SAE's layer for a `hook_z` SAE."""
    # SOLUTION
    hook_name = sae.cfg.metadata.hook_name
    if not hook_name.endswith("hook_z"):
        return sae.W_dec
    layer = int(hook_name.split(".")[1])
    W_dec = sae.W_dec.view(sae.cfg.d_sae, model.cfg.n_heads, model.cfg.d_head)
    return einops.einsum(W_dec, model.W_O[layer], "d_sae n_heads d_head, n_heads d_head d_model -> d_sae d_model")
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Split each `hook_z` decoder row into its heads (the heads are concatenated head by head) and contract with the
# layer's `model.W_O` over both the heads and `d_head`. A residual-stream SAE's rows need nothing.

# %% [markdown]
# Multiplying a latent's direction by the unembedding `W_U` gives its **direct effect on the logits**: which tokens it
# promotes and suppresses if nothing after it changed. (For the residual SAE, layers after its hook sit on the way;
# it is still a useful hint.) Return the `k` largest logits and their token ids, and the `k` smallest (most negative
# first) and theirs.

# %%
def latent_top_logits(
    model: HookedSAETransformer, sae: SAE, latent: int, k: int = 10
) -> tuple[Float[Tensor, "k"], Int[Tensor, "k"], Float[Tensor, "k"], Int[Tensor, "k"]]:
    """`(top values, top token ids, bottom values, bottom token ids)` of the latent's direction times `W_U`."""
    # SOLUTION
    logits = latent_residual_directions(model, sae)[latent] @ model.W_U
    top, bottom = logits.topk(k), logits.topk(k, largest=False)
    return top.values, top.indices, bottom.values, bottom.indices
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The latent's direction from your previous function, times the unembedding, gives `[d_vocab]` logits; `topk` has a
# `largest=` argument.

# %%
top_v, top_i, bottom_v, bottom_i = latent_top_logits(model, sae, period_latent, k=8)
print(f"latent {period_latent} promotes: {model.to_str_tokens(top_i)}")
print(f"latent {period_latent} suppresses: {model.to_str_tokens(bottom_i)}")
nonzero = flat_acts[:, period_latent][flat_acts[:, period_latent] > 0]
px.histogram(x=nonzero.cpu(), nbins=50, labels=dict(x="activation"),
             title=f"Non-zero activations of latent {period_latent} ({len(nonzero):,} tokens)").show()

# %% [markdown]
# Why several latents for one token? This is **feature splitting**: an SAE with more latents than it needs for a
# concept ("a full stop") splits it into several that share the token and differ in context. Three of the `.`
# latents, each with the words before its top activations and the tokens it promotes most: compare them.

# %%
period_latents = single_token[top_token[single_token] == model.to_single_token(".")]
for latent in period_latents[density[period_latents].argsort(descending=True)[:3]].tolist():
    _, split_windows, _ = fetch_max_activating_examples(model, sae, tokens, latent, k=3, buffer=3)
    _, promoted, _, _ = latent_top_logits(model, sae, latent, k=4)
    print(f"latent {latent} (density {density[latent]:.2%}): before: "
          f"{[model.to_string(w[:3]) for w in split_windows]}; promotes {model.to_str_tokens(promoted)}")

# %% [markdown]
# ### An offline latent dashboard
#
# Neuronpedia shows a page per latent of public SAEs. Ours is computed here from your functions and drawn as plain
# HTML (no scripts, no network): the density, the top contexts with each token's activation as its background,
# contexts sampled across the range of its activations (`q75`, `q50`, `q25`: the context nearest to each quartile of
# its non-zero activations; a latent is mostly seen weaker than at its top), and the top and bottom logits of its
# direct effect.

# %% tags=["module"]
def _chip(text: str, strength: float, rgb: tuple[int, int, int], title: str = "") -> str:
    alpha = max(0.0, min(1.0, strength))
    return (f"<span title='{html.escape(title)}' style='background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f}); "
            f"padding: 1px 2px; border-radius: 3px; white-space: pre;'>{html.escape(text)}</span>")


def latent_dashboard(model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], latent: int,
                     k: int = 6, buffer: int = 6, n_logits: int = 8) -> str:
    """A self-contained HTML view of one latent (no scripts, no network): density, activation histogram, top
    contexts with highlighted tokens, contexts sampled across the range of its activations, top and bottom logits.
    Built from the chapter's exercises."""
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    table = cache[name][..., latent]  # [batch, seq]
    acts = table[:, 1:].flatten()
    density = (acts > 0).float().mean().item()
    values, windows, window_acts = fetch_max_activating_examples(model, sae, tokens, latent, k=k, buffer=buffer)
    top_v, top_i, bottom_v, bottom_i = latent_top_logits(model, sae, latent, k=n_logits)
    peak = max(values.max().item(), 1e-6)

    def row(label: str, window, window_act) -> str:
        chips = "".join(_chip(text, a / peak, (255, 140, 0), f"{a:.2f}")
                        for text, a in zip(model.to_str_tokens(window), window_act.tolist()))
        return (f"<tr><td style='text-align: right; padding-right: 8px; white-space: nowrap;'>{label}</td>"
                f"<td style='font-family: monospace;'>{chips}</td></tr>")

    rows = [row(f"{value:.2f}", window, window_act) for value, window, window_act in zip(values.tolist(), windows,
                                                                                            window_acts)]
    # The top k show the latent at its strongest; a latent is mostly seen weaker. One context per quartile of its
    # non-zero activations (the one nearest to each quartile), among the positions where a window fits.
    inner = table[:, buffer: table.shape[1] - buffer]
    active = inner[inner > 0]
    if len(active):
        for q in (0.75, 0.5, 0.25):
            target = active.quantile(q)
            where = ((inner - target).abs() + (inner <= 0) * 1e9).flatten().argmin()
            index = torch.tensor([[int(where) // inner.shape[1], int(where) % inner.shape[1] + buffer]],
                                 device=table.device)
            value = table[index[0, 0], index[0, 1]].item()
            rows.append(row(f"q{int(q * 100)} {value:.2f}", index_with_buffer(tokens, index, buffer)[0],
                            index_with_buffer(table, index, buffer)[0]))
    nonzero = acts[acts > 0]
    counts = torch.histc(nonzero, bins=20, min=0, max=peak).tolist() if len(nonzero) else [0] * 20
    tallest = max(counts) or 1
    bars = "".join(f"<div title='{int(c)} tokens' style='display: inline-block; width: 9px; margin-right: 1px; "
                   f"height: {max(1, int(60 * c / tallest))}px; background: #f08c00;'></div>" for c in counts)
    span = max(top_v.abs().max().item(), bottom_v.abs().max().item(), 1e-6)
    promoted = " ".join(_chip(text, v / span, (0, 90, 255), f"{v:+.2f}")
                        for v, text in zip(top_v.tolist(), model.to_str_tokens(top_i)))
    suppressed = " ".join(_chip(text, -v / span, (230, 0, 0), f"{v:+.2f}")
                          for v, text in zip(bottom_v.tolist(), model.to_str_tokens(bottom_i)))
    return (f"<div style='font: 13px sans-serif; border: 1px solid #ccc; border-radius: 6px; padding: 10px; "
            f"margin: 6px 0; max-width: 980px;'>"
            f"<b>latent {latent}</b> of <code>{html.escape(sae.cfg.metadata.hook_name)}</code> · density "
            f"{density:.3%} of {len(acts):,} tokens · max activation {peak:.2f}"
            f"<div style='margin: 8px 0;'><div style='display: flex; align-items: flex-end; height: 62px;'>{bars}"
            f"</div><small>non-zero activations, 0 to {peak:.2f}</small></div>"
            f"<div><b>promotes</b> {promoted}</div><div><b>suppresses</b> {suppressed}</div>"
            f"<small>(direct effect: the decoder direction times W_U, skipping every layer after the SAE)</small>"
            f"<table style='margin-top: 8px; border-collapse: collapse;'>{''.join(rows)}</table></div>")


# %%
display(HTML(latent_dashboard(model, sae, tokens[:32], period_latent)))

# %% [markdown]
# ## 4. Using latents causally
#
# Reading is correlational. To test what a latent *does*, change it. With the SAE spliced in **and** the error term
# on, everything the SAE misses flows around it unchanged, so zeroing one latent's activation (a hook on
# `f"{hook_name}.hook_sae_acts_post"`) removes exactly that latent's contribution. `run_with_hooks_with_saes` takes no
# `use_error_term`, so open the context yourself:
#
# ```python
# with model.saes(saes=[sae], use_error_term=True):
#     logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])
# ```
#
# Zero the latent at every position and return the logits.

# %%
def ablate_sae_latent(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], latent: int
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits with `sae` spliced in (error term on) and `latent` zeroed at every position."""
    # SOLUTION
    def ablate(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        acts[..., latent] = 0.0
        return acts

    with model.saes(saes=[sae], use_error_term=True):
        return model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", ablate)])
    # END SOLUTION


# %% [markdown] tags=["hint"]
# A hook function that zeroes one latent and returns the activations, on the SAE's hook point after the TopK
# (zeroing before it would let another latent take the place), run inside the `saes()` context shown above.

# %% [markdown]
# What does the `" the"` latent do for the next token? Ablate it and look at the loss on the token after each
# `" the"` where it fires, and everywhere else:

# %%
loss_tokens = tokens[:16]
targets = loss_tokens[:, 1:]
fires = feature_acts[:16, :, the_latent] > 0  # [16, n_ctx - 1]: positions 1 .. n_ctx - 1
clean_lp = model(loss_tokens).log_softmax(-1)[:, :-1].gather(-1, targets[..., None])[..., 0]
ablated_lp = ablate_sae_latent(model, sae, loss_tokens, the_latent).log_softmax(-1)[:, :-1].gather(
    -1, targets[..., None])[..., 0]
where = torch.zeros_like(clean_lp, dtype=torch.bool)
where[:, 1:] = fires[:, :-1]  # the prediction made at a position where the latent fires
loss_increase = (clean_lp - ablated_lp)[where].mean().item()
print(f"ablating latent {the_latent}: loss on the token after the {int(where.sum())} positions where it fires "
      f"rises by {loss_increase:.3f} nats (elsewhere: {(clean_lp - ablated_lp)[~where].mean():+.4f} nats)")

# %% [markdown]
# The damage is where the latent fires, and almost nowhere else: the model reads "the previous word was *the*" from
# this one latent.

# %% [markdown]
# ### Steering
#
# The other way round: **add** a latent's decoder direction to the activations, `coeff * W_dec[latent]`, at every
# position (as a hook on the SAE's hook point, with no SAE spliced in), and see what the model does. Write the hook
# function (TransformerLens calls it with the activation and the hook point; the other arguments you bind with
# `functools.partial`).

# %%
def steering_hook(
    activations: Float[Tensor, "batch pos d_in"], hook: HookPoint, sae: SAE, latent_idx: int,
    steering_coefficient: float
) -> Float[Tensor, "batch pos d_in"]:
    """`activations + steering_coefficient * W_dec[latent_idx]` at every position."""
    # SOLUTION
    return activations + steering_coefficient * sae.W_dec[latent_idx]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# One line: the decoder row `sae.W_dec[latent_idx]` (`[d_in]`) broadcasts over batch and positions. Every position,
# not only the last: the model reads earlier positions through attention.

# %% [markdown]
# Now generate with it. `model.generate(prompt, max_new_tokens=..., verbose=False)` samples at temperature 1; seed
# torch's generator first (`torch.manual_seed(seed)`) so that a seed gives the same text with and without steering,
# and add the hook for the duration of the generation only (`with model.hooks(fwd_hooks=[(hook_name, fn)]):`). Start
# from a text prompt: sampled from `BOS` alone, the small shipped models produce degenerate repetitions.

# %%
def generate_with_steering(
    model: HookedSAETransformer, sae: SAE, prompt: str, latent_idx: int, steering_coefficient: float,
    max_new_tokens: int = 20, seed: int = 0
) -> str:
    """The prompt and `max_new_tokens` sampled tokens, with `latent_idx` steered by `steering_coefficient`."""
    # SOLUTION
    fn = partial(steering_hook, sae=sae, latent_idx=latent_idx, steering_coefficient=steering_coefficient)
    torch.manual_seed(seed)
    with model.hooks(fwd_hooks=[(sae.cfg.metadata.hook_name, fn)]):
        return model.generate(prompt, max_new_tokens=max_new_tokens, verbose=False)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Bind `steering_hook`'s extra arguments with `functools.partial`, seed, and generate inside the `model.hooks(...)`
# context on the SAE's hook point: the hook goes away when the block ends, whatever happens inside.

# %% [markdown]
# Steer with the `.` latent, at multiples of its largest activation on our text, and count the sampled tokens that
# start a **capitalised word** (the words sentences start with: names, *The*, *When*, ...):

# %%
prompts = ["In the morning, the weather was", "The old house near the river", "After the lunch, they"]
vocab = model.to_str_tokens(torch.arange(model.cfg.d_vocab))
capitalised = torch.tensor([len(t) > 1 and t[0] == " " and t[1].isupper() for t in vocab])


def steered_samples(coeff: float, n_seeds: int = 2, max_new_tokens: int = 12) -> dict:
    """Over the prompts and seeds: the share of sampled tokens that start a capitalised word, how many samples stopped
    before `max_new_tokens` (at EOS), and one sample."""
    texts = [generate_with_steering(model, sae, p, period_latent, coeff, max_new_tokens, seed)
             for p in prompts for seed in range(n_seeds)]
    new = [model.to_tokens(text[len(prompt):], prepend_bos=False)[0].cpu()
           for text, prompt in zip(texts, [p for p in prompts for _ in range(n_seeds)])]
    return {"capitalised": capitalised[torch.cat(new)].float().mean().item(),
            "short": sum(len(t) < max_new_tokens for t in new), "n": len(new), "sample": texts[0]}


peak = top_vals[0, period_latent].item()
steered = {}
for multiple in [0, 1, 2, 4]:
    steered[multiple] = out = steered_samples(multiple * peak)
    print(f"coefficient {multiple} x {peak:.1f}: {out['capitalised']:.0%} of sampled tokens start a capitalised word; "
          f"{out['short']} of {out['n']} samples stop early; e.g. {out['sample']!r}")

# %% [markdown]
# At two and four times its largest activation, almost every sampled token starts a capitalised word: the model
# writes what follows a full stop (a name, *When*, *Once*) again and again, and none of the sentences in between. At
# one times its largest activation the share is no higher than without steering, and most samples end early:
# `generate` stops when it samples `<|endoftext|>` (EOS), the token that ends a document. A latent's meaning shows in
# what steering it does, but a caricature of it: "a sentence just ended", without the sentence.
#
# ## 5. IOI through an attention SAE
#
# In "When Mary and John went to the store, John gave a drink to", the model should say " Mary": the **indirect
# object** (IO), not the repeated subject (S). Some attention heads (in GPT-2, the *name movers*) copy the IO name
# from its earlier position to the last token. The shipped `hook_z` SAE sits on the attention layer whose heads write
# the most `IO - S` logit difference directly (the training script chose it that way; its model card has the table).
# Here are IOI prompts from the corpus templates of one token length, and the layers' direct contributions:

# %%
ioi = ioi_same_length(model, IOI_TRAIN_TEMPLATES, TRAIN_NAMES, n_pairs=8, seed=0)
ioi_logits, ioi_cache = model.run_with_cache(ioi.tokens)
io_logit = ioi_logits[:, -1].gather(-1, ioi.answer_tokens[:, :1])[:, 0]
s_logit = ioi_logits[:, -1].gather(-1, ioi.answer_tokens[:, 1:])[:, 0]
clean_ld = (io_logit - s_logit).mean().item()
print(f"{len(ioi)} prompts, e.g. {ioi.prompts[0]!r} -> {ioi.io_names[0]!r}")
print(f"logit(IO) - logit(S): {clean_ld:.2f} on average; IO wins on {(io_logit > s_logit).float().mean():.0%}")
answer_dirs = model.W_U[:, ioi.answer_tokens[:, 0]] - model.W_U[:, ioi.answer_tokens[:, 1]]  # [d_model, batch]
final_scale = ioi_cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
head_dla = torch.stack([
    einops.einsum(ioi_cache["z", layer][:, -1], model.W_O[layer], answer_dirs.T / final_scale,
                  "batch head d_head, head d_head d_model, batch d_model -> head") / len(ioi)
    for layer in range(model.cfg.n_layers)])
z_layer = int(z_hook.split(".")[1])
print(f"direct IO - S logit attribution of each layer's heads (summed): "
      f"{', '.join(f'L{i} {v:.2f}' for i, v in enumerate(head_dla.sum(1).tolist()))}; the hook_z SAE reads layer "
      f"{z_layer}")


def mean_logit_diff(logits: Tensor) -> float:
    last = logits[:, -1]
    return (last.gather(-1, ioi.answer_tokens[:, :1]) - last.gather(-1, ioi.answer_tokens[:, 1:])).mean().item()


ld_spliced = mean_logit_diff(model.run_with_saes(ioi.tokens, saes=[z_sae]))
ld_zero = mean_logit_diff(model.run_with_hooks(ioi.tokens, fwd_hooks=[(z_hook, lambda z, hook: torch.zeros_like(z))]))
print(f"logit difference with the hook_z SAE spliced in (no error term): {ld_spliced:.2f}; with layer {z_layer}'s "
      f"hook_z zero-ablated: {ld_zero:.2f}; the SAE keeps {(ld_spliced - ld_zero) / (clean_ld - ld_zero):.0%} of what "
      "the layer adds")

# %% [markdown]
# The direct logit attribution (DLA) of one latent on one prompt is its activation at the last token times its
# direction in the residual stream, divided by the final LayerNorm's scale at that token
# (`cache["ln_final.hook_scale"]`, `[batch, pos, 1]`), dotted with the logit-difference direction
# `W_U[:, IO] - W_U[:, S]`. Splice the SAE in with the error term (so the run, and the scale, are the clean ones) and
# return every latent's DLA on every prompt; `answer_tokens[:, 0]` is IO and `answer_tokens[:, 1]` is S, and the
# last position is the one that predicts the answer.

# %%
def latent_dla(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, "batch d_sae"]:
    """Each latent's direct logit attribution toward `IO - S` at the last position of each prompt."""
    # SOLUTION
    name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True,
                                              names_filter=[name, "ln_final.hook_scale"])
    acts = cache[name][:, -1]  # [batch, d_sae]
    directions = latent_residual_directions(model, sae)  # [d_sae, d_model]
    logit_diff_dirs = (model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]).T  # [batch, d_model]
    logit_diff_dirs = logit_diff_dirs / cache["ln_final.hook_scale"][:, -1]
    return acts * einops.einsum(directions, logit_diff_dirs, "d_sae d_model, batch d_model -> batch d_sae")
    # END SOLUTION


# %% [markdown] tags=["hint"]
# From one cached run (error term on): the latents and the final LayerNorm scale at the last position. Each prompt
# has its own logit-difference direction (`model.W_U` columns of its two answers); divide it by that prompt's scale,
# project every latent's residual direction on it, and weight by the latent's activation.

# %%
dla = latent_dla(model, z_sae, ioi.tokens, ioi.answer_tokens)  # [batch, d_sae]
by_latent = dla.mean(0)
n_top = 20
top_latents = by_latent.topk(n_top).indices.tolist()
print(f"all latents together: {dla.sum(1).mean():.2f} of the layer's {head_dla[z_layer].sum():.2f} logits of direct "
      f"IO - S attribution (the rest is the decoder bias and the reconstruction error)")
print(f"the top {n_top} latents by mean DLA carry {by_latent[top_latents].sum():.2f}")
for latent in top_latents[:5]:
    active = dla[:, latent] != 0
    names = [ioi.io_names[i] for i in active.nonzero()[:, 0].tolist()]
    print(f"latent {latent}: mean DLA {by_latent[latent]:.3f}; active at the last token on {int(active.sum())} "
          f"prompts, favours IO on {(dla[active, latent] > 0).float().mean():.0%} of them; IO names there: "
          f"{sorted(set(names))[:6]}")

# %% [markdown]
# Where do these latents live? A `hook_z` latent's decoder row splits into one slice per head; the share of its
# squared norm in each head says which heads write it. Return, for every latent, the fraction of `||W_dec[i]||²` in
# each head (each row sums to 1).

# %%
def decoder_norms_by_head(sae: SAE, n_heads: int) -> Float[Tensor, "d_sae n_heads"]:
    """The fraction of each latent's squared decoder norm in each head's `d_head` slice (rows sum to 1)."""
    # SOLUTION
    per_head = sae.W_dec.view(sae.cfg.d_sae, n_heads, -1).pow(2).sum(-1)
    return per_head / per_head.sum(-1, keepdim=True)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Split the decoder rows into heads as for the residual directions, square and sum within each head, and divide by
# each latent's total.

# %%
head_share = decoder_norms_by_head(z_sae, model.cfg.n_heads)
main_head = head_share[top_latents].argmax(-1)
print(f"heads of layer {z_layer}, direct IO - S attribution: "
      f"{', '.join(f'H{h} {v:.2f}' for h, v in enumerate(head_dla[z_layer].tolist()))}")
print(f"main head of each of the top {n_top} latents: "
      f"{', '.join(f'H{h}: {int((main_head == h).sum())}' for h in range(model.cfg.n_heads))}; "
      f"mean share of the main head {head_share[top_latents].max(-1).values.mean():.0%}")
px.imshow(head_share[top_latents].T.cpu(), x=[str(i) for i in top_latents],
          y=[f"H{h}" for h in range(model.cfg.n_heads)], color_continuous_scale="Blues", zmin=0, zmax=1,
          labels=dict(x="latent", y="head", color="share"),
          title=f"Share of each top-DLA latent's decoder norm in each head of layer {z_layer}").show()
main_share = head_share[top_latents].max(-1).values.mean().item()
print(f"so: each top latent's largest head holds {main_share:.0%} of its decoder norm on average, against "
      f"{1 / model.cfg.n_heads:.0%} for a latent spread evenly over the {model.cfg.n_heads} heads")

# %% [markdown]
# The answer to "where do they live": **spread over the heads**. No top latent belongs to one head; each is a mixture
# of the layer's heads, a little more of one than of the others. An SAE on the concatenated heads is free to find
# directions that cut across them, and this one does.

# %% [markdown]
# Finally the causal check: zero a set of latents at every position (SAE spliced in, error term on) and return the
# mean logit difference `logit(IO) - logit(S)` at the last position.

# %%
def ablate_latents_logit_diff(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"],
    latents: list[int]
) -> float:
    """Mean `logit(IO) - logit(S)` at the last position with `latents` zero-ablated (error term on)."""
    # SOLUTION
    def ablate(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        acts[..., latents] = 0.0
        return acts

    with model.saes(saes=[sae], use_error_term=True):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", ablate)])
    last = logits[:, -1]
    return (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean().item()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# As `ablate_sae_latent`, with a list of latents (a list indexes several at once); then the two answers' logits at
# the last position (`gather` with `answer_tokens`), their mean difference as a Python float.

# %%
generator = torch.Generator().manual_seed(0)
active_at_end = (dla != 0).any(0).nonzero()[:, 0]
others = active_at_end[~torch.isin(active_at_end, torch.tensor(top_latents, device=active_at_end.device))]
random_latents = others[torch.randperm(len(others), generator=generator)[:n_top]].tolist()
ld_top = ablate_latents_logit_diff(model, z_sae, ioi.tokens, ioi.answer_tokens, top_latents)
ld_random = ablate_latents_logit_diff(model, z_sae, ioi.tokens, ioi.answer_tokens, random_latents)
print(f"logit difference: clean {clean_ld:.2f}; the top {n_top} DLA latents ablated {ld_top:.2f}; {n_top} random "
      f"latents active at the last token ablated {ld_random:.2f}")

# %%
print(f"share of the logit difference: the top {n_top} latents' ablation removes {(clean_ld - ld_top) / clean_ld:.1%}; "
      f"layer {z_layer}'s heads write {head_dla[z_layer].sum() / clean_ld:.0%} of it directly; zeroing the whole layer "
      f"removes {(clean_ld - ld_zero) / clean_ld:.0%}")

# %% [markdown]
# The latents with the largest direct effect matter more when removed than as many other latents active at the same
# place, but read the shares: they carry a small part of the answer, because this layer does. In GPT-2 the name
# movers sit in layers 9 and 10 and write the answer directly; in `mlp4l`, chapter 5 found the mechanism earlier. A
# layer-0 head moves the subject's name to `END`, the MLPs write the answer, and patching the residual stream at `END`
# before layer 2 brings back the whole clean answer. That residual stream is exactly where the first SAE reads:
# `blocks.1.hook_resid_post` is `blocks.2.hook_resid_pre`.
#
# ### Latent attribution: where chapter 5 put the mechanism
#
# Which of the residual SAE's latents carry the answer? Ablating each one costs a forward pass per latent. The
# gradient gives every latent's estimate at once, as attribution patching does for activations (chapter 5): with the
# SAE spliced in (error term on), the change of the metric when latent `i` goes to 0 at one position is, to first
# order, `-acts[i] * d metric / d acts[i]`. So the **attribution** of a latent is `acts * grad`, summed over the
# positions (and the prompts: the metric is the mean logit difference `logit(IO) - logit(S)` at the last position).
#
# One forward pass, one backward pass. In the hook on `hook_sae_acts_post`, replace the activations by a detached copy
# that requires a gradient (`acts.detach().requires_grad_()`), keep it, and return it: the run then goes on from it.
# Under `torch.enable_grad()` (this chapter turned gradients off), compute the metric and take
# `torch.autograd.grad(metric, kept)`: it leaves the model's parameters alone.

# %%
def latent_attribution(
    model: HookedSAETransformer, sae: SAE, tokens: Int[Tensor, "batch pos"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, "d_sae"]:
    """`acts * grad` of each latent (SAE spliced in, error term on), summed over prompts and positions, for the mean
    `logit(IO) - logit(S)` at the last position."""
    # SOLUTION
    kept = {}

    def keep(acts: Float[Tensor, "batch pos d_sae"], hook: HookPoint) -> Float[Tensor, "batch pos d_sae"]:
        kept["acts"] = acts.detach().requires_grad_()
        return kept["acts"]

    with torch.enable_grad(), model.saes(saes=[sae], use_error_term=True):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post", keep)])
        last = logits[:, -1]
        metric = (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean()
        (grad,) = torch.autograd.grad(metric, kept["acts"])
    return (kept["acts"] * grad).sum((0, 1)).detach()
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The metric is a mean over prompts, so its gradient already carries the `1 / batch`: sum `acts * grad` over both the
# prompts and the positions. The error term keeps the run the clean one; `torch.autograd.grad` returns a tuple.

# %% [markdown]
# Now verify the estimate: ablate the top latents for real (your `ablate_latents_logit_diff` works for any SAE), next
# to as many random latents active at `END`, and compare each top latent's attribution with its exact effect.

# %%
attribution = latent_attribution(model, sae, ioi.tokens, ioi.answer_tokens)
res_top = attribution.topk(n_top).indices.tolist()
res_name = f"{hook}.hook_sae_acts_post"
_, res_cache = model.run_with_cache_with_saes(ioi.tokens, saes=[sae], names_filter=[res_name])
res_active = (res_cache[res_name][:, -1] != 0).any(0).nonzero()[:, 0]
res_others = res_active[~torch.isin(res_active, torch.tensor(res_top, device=res_active.device))]
res_random = res_others[torch.randperm(len(res_others), generator=torch.Generator().manual_seed(0))[:n_top]].tolist()
ld_res_top = ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, res_top)
ld_res_random = ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, res_random)
print(f"{SAE_NAME}: ablating the top {n_top} latents by attribution: logit difference {clean_ld:.2f} -> "
      f"{ld_res_top:.2f} ({(clean_ld - ld_res_top) / clean_ld:.0%} of it removed); {n_top} random latents active at "
      f"END: {ld_res_random:.2f}")
exact = torch.tensor([clean_ld - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, [latent])
                      for latent in res_top[:10]])
estimate = -attribution[res_top[:10]].cpu()  # ablation removes the latent: the metric changes by -attribution
pairs = zip(res_top, exact.tolist(), (-estimate).tolist())
print("top 10 latents, exact drop when ablated / attribution:", ", ".join(f"{i} {e:.2f}/{a:.2f}" for i, e, a in pairs))
correlation = torch.corrcoef(torch.stack([exact, -estimate]))[0, 1]
print(f"correlation of the exact drops with the attributions: {correlation:.2f}; the attributions are "
      f"{(-estimate).sum() / exact.sum():.0%} of the exact drops in total")
display(HTML(latent_dashboard(model, sae, tokens[:32], res_top[0])))

# %% [markdown]
# In this layer the answer is concentrated: a few latents carry a large share of it, and random latents active at the
# same place carry almost none. Among its top picks, the attribution ranks the latents nearly as their exact ablations
# do, but each of its values is smaller than the exact drop: it is a first-order estimate. Where is it worst? Where
# the change is largest: the latents most active at `END`.

# %%
most_active = res_cache[res_name][:, -1].mean(0).topk(3).indices.tolist()
for latent in most_active:
    drop = clean_ld - ablate_latents_logit_diff(model, sae, ioi.tokens, ioi.answer_tokens, [latent])
    rank = int((attribution > attribution[latent]).sum()) + 1
    print(f"latent {latent}: mean activation at END {res_cache[res_name][:, -1, latent].mean():.2f}; exact drop "
          f"{drop:.2f}, attribution {attribution[latent]:.2f} (rank {rank} of {sae.cfg.d_sae})")

# %% [markdown]
# Removing a latent that is strongly active is not a small change, and a first-order estimate of it can be far off,
# down to the sign: one of these latents matters more than any of the attribution's top picks, and the attribution
# ranks it near the bottom. So use attribution as a filter, verify what it picks by ablation (as chapter 5 verifies
# attribution patching's top components with exact patching), and ablate the few most active latents exactly too:
# they are cheap to check and the most likely to be missed.
#
# ## 6. Training an SAE
#
# The shipped SAEs were trained with SAE-Lens's `LanguageModelSAETrainingRunner`: it runs the model on a dataset,
# collects the activations at the hook point into a shuffled buffer, and trains the SAE on them. Offline, give it the
# model itself (`override_model=`) and a pre-tokenised dataset (`override_dataset=`), and turn Weights & Biases off.
#
# Build the runner's configuration to this spec (everything else at SAE-Lens's defaults):
#
# - the SAE: `TopKTrainingSAEConfig(d_in=d_in, d_sae=expansion * d_in, k=k, device=device)`, with
#   `normalize_activations="expected_average_only_in"` (train on activations rescaled to a fixed mean norm; SAE-Lens
#   folds the factor back into the weights at the end) and `aux_loss_coefficient=1.0` (AuxK: dead latents learn to
#   reconstruct what the live ones miss);
# - the run: `LanguageModelSAERunnerConfig(sae=..., model_name=model_name, hook_name=hook_name,
#   is_dataset_tokenized=True, streaming=False, context_size=context_size, training_tokens=training_tokens,
#   train_batch_size_tokens=batch_tokens, lr=lr, seed=seed, device=device)`;
# - `n_batches_in_buffer=32` (the buffer holds `32 * context_size` tokens, at least one batch) and
#   `store_batch_size_prompts=16`;
# - `lr_warm_up_steps` = 5% and `lr_decay_steps` = 20% of the `training_tokens // batch_tokens` steps (rounded
#   down, to the nearest or up: any is right);
#   `dead_feature_window=max(1, 50_000 // batch_tokens)` steps (a latent silent for 50k tokens counts as dead);
# - `n_batches_for_norm_estimate=10` (the default, 1000 batches, is longer than our whole run);
# - offline and quiet: `logger=LoggingConfig(log_to_wandb=False)`, `output_path=None`, `checkpoint_path=None`,
#   `n_checkpoints=0`, `verbose=False`, `model_from_pretrained_kwargs={}`.

# %%
def sae_training_config(
    model_name: str, hook_name: str, d_in: int, *, expansion: int = 4, k: int = 8, training_tokens: int = 120_000,
    batch_tokens: int = 1024, context_size: int = 128, lr: float = 6e-3, seed: int = 0, device: str = "cpu"
) -> LanguageModelSAERunnerConfig:
    """The runner configuration of a small TopK SAE, offline, to the spec above."""
    # SOLUTION
    steps = training_tokens // batch_tokens
    return LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=d_in, d_sae=expansion * d_in, k=k, aux_loss_coefficient=1.0,
                                  normalize_activations="expected_average_only_in", device=device),
        model_name=model_name, hook_name=hook_name, is_dataset_tokenized=True, streaming=False,
        context_size=context_size, training_tokens=training_tokens, train_batch_size_tokens=batch_tokens,
        n_batches_in_buffer=32, store_batch_size_prompts=16, lr=lr, lr_warm_up_steps=steps // 20,
        lr_decay_steps=steps // 5, dead_feature_window=max(1, 50_000 // batch_tokens), n_batches_for_norm_estimate=10,
        seed=seed, device=device, logger=LoggingConfig(log_to_wandb=False), output_path=None, checkpoint_path=None,
        n_checkpoints=0, verbose=False, model_from_pretrained_kwargs={},
    )
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Two objects: `TopKTrainingSAEConfig(...)` (`d_sae` is `expansion * d_in`, not `expansion`) inside
# `LanguageModelSAERunnerConfig(sae=..., ...)`; copy every setting of the spec, in particular
# `logger=LoggingConfig(log_to_wandb=False)` (the default logs to Weights & Biases) and
# `n_batches_for_norm_estimate=10`.

# %% [markdown]
# Train it on the hook of the residual SAE, on rows of the course corpus that neither the model nor the shipped SAEs
# saw (corpus seed 7). The progress bar is SAE-Lens's: it redraws every 100 steps, so it stops at the last multiple of
# 100 steps (the cell prints where), although the run trains every step.

# %%
context_size = min(128, model.cfg.n_ctx)
cfg = sae_training_config(MODEL_NAME, hook, sae.cfg.d_in, context_size=context_size, device=str(device))
n_rows = (cfg.training_tokens // context_size
          + (cfg.n_batches_for_norm_estimate + cfg.n_batches_in_buffer) * cfg.store_batch_size_prompts + 64)
dataset = Dataset.from_dict({"input_ids": text_rows(model.tokenizer, n_rows, context_size, seed=7).tolist()})
torch.manual_seed(0)  # the SAE's initialisation and the buffer's shuffles
start = time.perf_counter()
with torch.enable_grad(), contextlib.redirect_stderr(sys.stdout):  # the progress bar goes with the cell's output
    my_sae = LanguageModelSAETrainingRunner(cfg, override_model=model, override_dataset=dataset).run()
my_sae.eval()
steps = cfg.training_tokens // cfg.train_batch_size_tokens
print(f"\ntrained in {time.perf_counter() - start:.0f} s: {steps} steps of {cfg.train_batch_size_tokens} tokens; the "
      f"bar last moved at step {100 * (steps // 100)} ({100 * (steps // 100) / steps:.0%} of the steps)")
mine = sae_metrics(model, my_sae, metric_tokens)
theirs = shipped[SAE_NAME]
print(f"your SAE ({my_sae.cfg.d_sae} latents, k {my_sae.cfg.k}, {cfg.training_tokens:,} tokens): explained variance "
      f"{mine['explained_variance']:.3f}, CE loss recovered {mine['ce_recovered']:.1%}, dead {mine['dead_frac']:.1%}")
print(f"{SAE_NAME} ({sae.cfg.d_sae} latents, k {getattr(sae.cfg, 'k', '-')}): explained variance "
      f"{theirs['explained_variance']:.3f}, CE loss recovered {theirs['ce_recovered']:.1%}, dead "
      f"{theirs['dead_frac']:.1%}")

# %% [markdown]
# Compare the two lines: the shipped SAE had more latents, a larger `k` and more training tokens. Try `expansion`,
# `k` and `training_tokens` and watch the numbers trade off: more latents and a larger `k` reconstruct better; a
# smaller `k` is sparser (easier to read) and reconstructs worse.
#
# ## Summary
#
# - An SAE rewrites an activation as `b_dec` plus a sparse sum of decoder rows; a TopK SAE keeps the `k` largest
#   pre-activations. `HookedSAETransformer` splices it in (`run_with_saes`, `run_with_cache_with_saes`, `saes()`),
#   and `use_error_term=True` keeps the model's output exact while exposing every latent.
# - Judge an SAE by L0, explained variance, dead latents and, above all, how much of the model's behaviour it keeps
#   when spliced in (CE loss recovered against zero ablation, KL), as `sae_lens.evals` does, special tokens left out;
#   read each ratio next to its baseline.
# - Read a latent by its top-activating contexts and its direct effect on the logits; test it by ablating it (error
#   term on) and by steering with its decoder row.
# - An attention SAE on `hook_z` splits the output of a whole layer into latents; each latent's decoder row says
#   which heads write it. Direct logit attribution finds the latents that push the indirect object's name, and
#   ablation confirms that they matter more than as many other latents.
# - SAE-Lens's training runner trains an SAE offline from a model and a pre-tokenised dataset.
