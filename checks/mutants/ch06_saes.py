"""Known mistakes for chapter 6 (sparse autoencoders). Each one is a mistake learners really make; its description is
shown to a learner whose output matches it."""

from functools import partial

import einops
import torch
from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, StandardTrainingSAEConfig, TopKTrainingSAEConfig

from utils.checking import Mutant, Status

# Two mistakes with one output (the model's own loss, the right latents): the diagnosis names both.
CLEAN_LOSS = ("returning the loss of the model without the SAE: either the loss comes from another run than the "
              "spliced one (compute it in the same run_with_cache_with_saes call), or the run splices with "
              "use_error_term=True (the error term restores the clean loss)")
LAST_ONLY = "steering the last position only (add the direction at every position: later tokens read earlier ones)"


def _acts_name(sae, point="hook_sae_acts_post"):
    return f"{sae.cfg.metadata.hook_name}.{point}"


# ---------------------------------------------------------------------------------------------- encode / decode
def _encode(sae, x, *, b_dec=True, b_enc=True, topk=True, by_abs=False, rescale=True, W_enc=None):
    W_enc = sae.W_enc if W_enc is None else W_enc
    pre = ((x - sae.b_dec) if b_dec else x) @ W_enc + (sae.b_enc if b_enc else 0)
    if sae.cfg.architecture() != "topk":
        return pre.relu()
    if rescale and sae.cfg.rescale_acts_by_decoder_norm:
        pre = pre * sae.W_dec.norm(dim=-1)
    if not topk:
        return pre.relu()
    idx = (pre.abs() if by_abs else pre).topk(sae.cfg.k, dim=-1).indices
    return torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx).relu())


def encode_no_b_dec(sae, x):
    return _encode(sae, x, b_dec=False)


def encode_no_b_enc(sae, x):
    return _encode(sae, x, b_enc=False)


def encode_relu_only(sae, x):
    return _encode(sae, x, topk=False)


def encode_topk_by_abs(sae, x):
    return _encode(sae, x, by_abs=True)


def encode_ignores_rescale(sae, x):
    return _encode(sae, x, rescale=False)


def encode_with_decoder(sae, x):
    return _encode(sae, x, W_enc=sae.W_dec.T)


def _decode(sae, acts, *, b_dec=1, rescale=True, W_dec=None):
    W_dec = sae.W_dec if W_dec is None else W_dec
    if rescale and getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        acts = acts / sae.W_dec.norm(dim=-1)
    return acts @ W_dec + b_dec * sae.b_dec


def decode_no_b_dec(sae, feature_acts):
    return _decode(sae, feature_acts, b_dec=0)


def decode_minus_b_dec(sae, feature_acts):
    return _decode(sae, feature_acts, b_dec=-1)


def decode_with_encoder(sae, feature_acts):
    return _decode(sae, feature_acts, W_dec=sae.W_enc.T)


def decode_ignores_rescale(sae, feature_acts):
    return _decode(sae, feature_acts, rescale=False)


# ---------------------------------------------------------------------------------------------- splicing
def spliced_acts_pre(model, sae, tokens):
    loss, cache = model.run_with_cache_with_saes(tokens, saes=[sae], return_type="loss", loss_per_token=True)
    return loss, cache[_acts_name(sae, "hook_sae_acts_pre")]


def spliced_error_term(model, sae, tokens):
    loss, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True, return_type="loss",
                                                 loss_per_token=True)
    return loss, cache[_acts_name(sae)]


def spliced_loss_without_sae(model, sae, tokens):
    loss = model(tokens, return_type="loss", loss_per_token=True)
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae])
    return loss, cache[_acts_name(sae)]


def spliced_mean_loss(model, sae, tokens):
    loss, cache = model.run_with_cache_with_saes(tokens, saes=[sae], return_type="loss")
    return loss, cache[_acts_name(sae)]


# ---------------------------------------------------------------------------------------------- metrics
def _recon(x, acts, x_hat, *, ev="centred", mse_mean_dims=False, alive=False, l0_fraction=False):
    active = acts != 0
    sq = (x - x_hat).pow(2)
    mse = sq.mean(-1).mean() if mse_mean_dims else sq.sum(-1).mean()
    if ev == "centred":
        explained = 1 - sq.sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()
    elif ev == "uncentred":
        explained = 1 - sq.sum(-1).mean() / x.pow(2).sum(-1).mean()
    else:  # SAE-Lens's legacy formula: one ratio per token, averaged
        explained = (1 - sq.sum(-1) / (x - x.mean(0)).pow(2).sum(-1)).mean()
    l0 = active.float().mean(-1).mean() if l0_fraction else active.sum(-1).float().mean()
    dead = active.any(0).float().mean() if alive else (~active.any(0)).float().mean()
    return {"l0": l0.item(), "mse": mse.item(), "explained_variance": explained.item(), "dead_frac": dead.item()}


def recon_uncentred(x, feature_acts, x_hat):
    return _recon(x, feature_acts, x_hat, ev="uncentred")


def recon_per_token_ratio(x, feature_acts, x_hat):
    return _recon(x, feature_acts, x_hat, ev="per_token")


def recon_mse_mean_over_dims(x, feature_acts, x_hat):
    return _recon(x, feature_acts, x_hat, mse_mean_dims=True)


def recon_alive_fraction(x, feature_acts, x_hat):
    return _recon(x, feature_acts, x_hat, alive=True)


def recon_l0_fraction(x, feature_acts, x_hat):
    return _recon(x, feature_acts, x_hat, l0_fraction=True)


def density_counts(feature_acts):
    return (feature_acts != 0).float().sum(0)


def density_mean_activation(feature_acts):
    return feature_acts.mean(0)


def density_per_token(feature_acts):
    return (feature_acts != 0).float().mean(1)


def _metrics(model, sae, tokens, *, exclude=True, baseline="zero", kl_reversed=False, error_term=False,
             ce_lost=False):
    from solutions.ch06_saes import reconstruction_metrics

    hook = sae.cfg.metadata.hook_name
    if exclude:
        keep = ~torch.isin(tokens, torch.tensor(model.tokenizer.all_special_ids, device=tokens.device))
    else:
        keep = torch.ones_like(tokens, dtype=torch.bool)
    clean_logits, clean_loss = model(tokens, return_type="both", loss_per_token=True)
    (sae_logits, sae_loss), cache = model.run_with_cache_with_saes(
        tokens, saes=[sae], exclude_special_tokens=exclude, use_error_term=error_term, return_type="both",
        loss_per_token=True)

    def ablate(act, hook):
        return torch.zeros_like(act) if baseline == "zero" else act.mean((0, 1), keepdim=True).expand_as(act)

    zero_logits, zero_loss = model.run_with_hooks(tokens, return_type="both", loss_per_token=True,
                                                  fwd_hooks=[(hook, ablate)])
    out = reconstruction_metrics(cache[f"{hook}.hook_sae_input"][keep], cache[f"{hook}.hook_sae_acts_post"][keep],
                                 cache[f"{hook}.hook_sae_recons"][keep])
    ce_clean, ce_sae, ce_zero = (loss[keep[:, :-1]].mean().item() for loss in (clean_loss, sae_loss, zero_loss))
    log_p = clean_logits.log_softmax(-1)

    def kl(logits):
        log_q = logits.log_softmax(-1)
        value = (log_q.exp() * (log_q - log_p)) if kl_reversed else (log_p.exp() * (log_p - log_q))
        return value.sum(-1)[keep].mean().item()

    recovered = ((ce_sae - ce_clean) if ce_lost else (ce_zero - ce_sae)) / (ce_zero - ce_clean)
    return out | {"ce_clean": ce_clean, "ce_sae": ce_sae, "ce_zero": ce_zero, "ce_recovered": recovered,
                  "kl_sae": kl(sae_logits), "kl_zero": kl(zero_logits)}


def metrics_keeps_special_tokens(model, sae, tokens):
    return _metrics(model, sae, tokens, exclude=False)


def metrics_mean_ablation(model, sae, tokens):
    return _metrics(model, sae, tokens, baseline="mean")


def metrics_kl_reversed(model, sae, tokens):
    return _metrics(model, sae, tokens, kl_reversed=True)


def metrics_error_term(model, sae, tokens):
    return _metrics(model, sae, tokens, error_term=True)


def metrics_ce_lost(model, sae, tokens):
    return _metrics(model, sae, tokens, ce_lost=True)


# ---------------------------------------------------------------------------------------------- top activations
def _largest(x, k, buffer=0, *, add_back=True, exclude=True, divisor="cols", largest=True):
    inner = x[:, buffer: x.shape[1] - buffer] if exclude else x
    flat = inner.flatten().topk(k, largest=largest).indices
    n = inner.shape[1] if divisor == "cols" else inner.shape[0]
    rows, cols = flat // n, flat % n
    return torch.stack([rows, cols + (buffer if add_back and exclude else 0)], dim=1)


def largest_no_offset(x, k, buffer=0):
    return _largest(x, k, buffer, add_back=False)


def largest_no_buffer(x, k, buffer=0):
    return _largest(x, k, buffer, exclude=False)


def largest_wrong_divisor(x, k, buffer=0):
    return _largest(x, k, buffer, divisor="rows")


def largest_smallest(x, k, buffer=0):
    return _largest(x, k, buffer, largest=False)


def window_right_only(x, indices, buffer):
    rows, cols = indices.unbind(-1)
    return x[rows[:, None], cols[:, None] + torch.arange(0, 2 * buffer + 1, device=x.device)]


def window_one_short(x, indices, buffer):
    rows, cols = indices.unbind(-1)
    return x[rows[:, None], cols[:, None] + torch.arange(-buffer, buffer, device=x.device)]


def window_unpaired(x, indices, buffer):
    rows, cols = indices.unbind(-1)
    return x[rows][:, cols[:, None] + torch.arange(-buffer, buffer + 1, device=x.device)]


def _fetch(model, sae, tokens, latent, k=10, buffer=5, *, point="hook_sae_acts_post", sequences=False,
           largest=True, edges=False):
    from solutions.ch06_saes import index_with_buffer

    name = _acts_name(sae, point)
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], names_filter=[name])
    acts = cache[name][..., latent]
    inner = acts[:, buffer: acts.shape[1] - buffer]
    if edges:  # the top k over every position; the windows are shifted to fit in the row
        flat = acts.flatten().topk(k).indices
        rows, cols = flat // acts.shape[1], flat % acts.shape[1]
        centres = torch.stack([rows, cols.clamp(buffer, acts.shape[1] - 1 - buffer)], dim=1)
        return acts[rows, cols], index_with_buffer(tokens, centres, buffer), index_with_buffer(acts, centres, buffer)
    if sequences:
        best, pos = inner.max(-1)
        rows = best.topk(k).indices
        indices = torch.stack([rows, pos[rows] + buffer], dim=1)
    else:
        flat = inner.flatten().topk(k, largest=largest).indices
        indices = torch.stack([flat // inner.shape[1], flat % inner.shape[1] + buffer], dim=1)
    return (acts[indices[:, 0], indices[:, 1]], index_with_buffer(tokens, indices, buffer),
            index_with_buffer(acts, indices, buffer))


def fetch_acts_pre(model, sae, tokens, latent, k=10, buffer=5):
    return _fetch(model, sae, tokens, latent, k, buffer, point="hook_sae_acts_pre")


def fetch_top_sequences(model, sae, tokens, latent, k=10, buffer=5):
    return _fetch(model, sae, tokens, latent, k, buffer, sequences=True)


def fetch_smallest(model, sae, tokens, latent, k=10, buffer=5):
    return _fetch(model, sae, tokens, latent, k, buffer, largest=False)


def fetch_every_position(model, sae, tokens, latent, k=10, buffer=5):
    return _fetch(model, sae, tokens, latent, k, buffer, edges=True)


# ---------------------------------------------------------------------------------------------- directions and logits
def _directions(model, sae, *, use_W_O=True, layer=None, order="heads_first"):
    hook = sae.cfg.metadata.hook_name
    if not hook.endswith("hook_z") or not use_W_O:
        return sae.W_dec
    layer = int(hook.split(".")[1]) if layer is None else layer
    if order == "heads_first":
        W_dec = sae.W_dec.view(sae.cfg.d_sae, model.cfg.n_heads, model.cfg.d_head)
    else:
        W_dec = sae.W_dec.view(sae.cfg.d_sae, model.cfg.d_head, model.cfg.n_heads).transpose(1, 2)
    return einops.einsum(W_dec, model.W_O[layer], "s h d, h d m -> s m")


def directions_no_W_O(model, sae):
    return _directions(model, sae, use_W_O=False)


def directions_layer_zero(model, sae):
    return _directions(model, sae, layer=0)


def directions_heads_last(model, sae):
    return _directions(model, sae, order="heads_last")


def _top_logits(model, sae, latent, k=10, *, direction="residual", unembed="W_U", negate_bottom=False):
    if direction == "encoder":
        vector = sae.W_enc[:, latent]
    elif direction == "raw":
        vector = sae.W_dec[latent]
    else:
        vector = _directions(model, sae)[latent]
    logits = vector @ (model.W_U if unembed == "W_U" else model.W_E.T)
    top, bottom = logits.topk(k), (-logits).topk(k)
    return top.values, top.indices, (bottom.values if negate_bottom else -bottom.values), bottom.indices


def top_logits_encoder(model, sae, latent, k=10):
    return _top_logits(model, sae, latent, k, direction="encoder")


def top_logits_no_W_O(model, sae, latent, k=10):
    return _top_logits(model, sae, latent, k, direction="raw")


def top_logits_embedding(model, sae, latent, k=10):
    return _top_logits(model, sae, latent, k, unembed="W_E")


def top_logits_negated_bottom(model, sae, latent, k=10):
    return _top_logits(model, sae, latent, k, negate_bottom=True)


# ---------------------------------------------------------------------------------------------- ablation
def _ablate(model, sae, tokens, latents, *, error_term=True, point="hook_sae_acts_post", last_only=False,
            keep_only=False):
    def hook_fn(acts, hook):
        if keep_only:
            mask = torch.ones(acts.shape[-1], dtype=torch.bool, device=acts.device)
            mask[latents] = False
            acts[..., mask] = 0.0
        elif last_only:
            acts[:, -1, latents] = 0.0
        else:
            acts[..., latents] = 0.0
        return acts

    with model.saes(saes=[sae], use_error_term=error_term):
        return model.run_with_hooks(tokens, fwd_hooks=[(_acts_name(sae, point), hook_fn)])


def ablate_no_error_term(model, sae, tokens, latent):
    return _ablate(model, sae, tokens, latent, error_term=False)


def ablate_acts_pre(model, sae, tokens, latent):
    return _ablate(model, sae, tokens, latent, point="hook_sae_acts_pre")


def ablate_last_position(model, sae, tokens, latent):
    return _ablate(model, sae, tokens, latent, last_only=True)


def ablate_all_others(model, sae, tokens, latent):
    return _ablate(model, sae, tokens, [latent], keep_only=True)


# ---------------------------------------------------------------------------------------------- steering
def steer_last_position(activations, hook, sae, latent_idx, steering_coefficient):
    activations = activations.clone()
    activations[:, -1] += steering_coefficient * sae.W_dec[latent_idx]
    return activations


def steer_encoder_direction(activations, hook, sae, latent_idx, steering_coefficient):
    return activations + steering_coefficient * sae.W_enc[:, latent_idx]


def steer_subtracts(activations, hook, sae, latent_idx, steering_coefficient):
    return activations - steering_coefficient * sae.W_dec[latent_idx]


def steer_unit_direction(activations, hook, sae, latent_idx, steering_coefficient):
    return activations + steering_coefficient * sae.W_dec[latent_idx] / sae.W_dec[latent_idx].norm()


def _generate(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens=20, seed=0, *,
              hook_fn=None, seeded=True, permanent=False):
    from solutions.ch06_saes import steering_hook

    fn = partial(hook_fn or steering_hook, sae=sae, latent_idx=latent_idx, steering_coefficient=steering_coefficient)
    if seeded:
        torch.manual_seed(seed)
    if permanent:
        model.add_hook(sae.cfg.metadata.hook_name, fn)
        return model.generate(prompt, max_new_tokens=max_new_tokens, verbose=False)
    with model.hooks(fwd_hooks=[(sae.cfg.metadata.hook_name, fn)]):
        return model.generate(prompt, max_new_tokens=max_new_tokens, verbose=False)


def generate_last_position(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens=20, seed=0):
    return _generate(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens, seed,
                     hook_fn=steer_last_position)


def generate_unseeded(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens=20, seed=0):
    return _generate(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens, seed, seeded=False)


def generate_hook_left_on(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens=20, seed=0):
    return _generate(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens, seed, permanent=True)


def generate_unsteered(model, sae, prompt, latent_idx, steering_coefficient, max_new_tokens=20, seed=0):
    torch.manual_seed(seed)
    return model.generate(prompt, max_new_tokens=max_new_tokens, verbose=False)


# ---------------------------------------------------------------------------------------------- IOI
def _dla(model, sae, tokens, answer_tokens, *, scale=True, sign=1, directions="residual", position=-1):
    name = _acts_name(sae)
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True,
                                              names_filter=[name, "ln_final.hook_scale"])
    acts = cache[name][:, position]
    dirs = _directions(model, sae, use_W_O=directions == "residual")
    diff = sign * (model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]).T
    if scale:
        diff = diff / cache["ln_final.hook_scale"][:, -1]
    return acts * einops.einsum(dirs, diff, "s m, b m -> b s")


def dla_no_scale(model, sae, tokens, answer_tokens):
    return _dla(model, sae, tokens, answer_tokens, scale=False)


def dla_s_minus_io(model, sae, tokens, answer_tokens):
    return _dla(model, sae, tokens, answer_tokens, sign=-1)


def dla_no_W_O(model, sae, tokens, answer_tokens):
    return _dla(model, sae, tokens, answer_tokens, directions="raw")


def dla_first_position(model, sae, tokens, answer_tokens):
    return _dla(model, sae, tokens, answer_tokens, position=0)


def _head_norms(sae, n_heads, *, squared=True, order="heads_first", normalise="latent"):
    if order == "heads_first":
        W = sae.W_dec.view(sae.cfg.d_sae, n_heads, -1)
    else:
        W = sae.W_dec.view(sae.cfg.d_sae, -1, n_heads).transpose(1, 2)
    per_head = W.pow(2).sum(-1) if squared else W.norm(dim=-1)
    if normalise == "latent":
        return per_head / per_head.sum(-1, keepdim=True)
    if normalise == "heads":
        return per_head / per_head.sum(0, keepdim=True)
    return per_head


def head_norms_not_squared(sae, n_heads):
    return _head_norms(sae, n_heads, squared=False)


def head_norms_heads_last(sae, n_heads):
    return _head_norms(sae, n_heads, order="heads_last")


def head_norms_unnormalised(sae, n_heads):
    return _head_norms(sae, n_heads, normalise=None)


def head_norms_over_latents(sae, n_heads):
    return _head_norms(sae, n_heads, normalise="heads")


def _ablated_ld(model, sae, tokens, answer_tokens, latents, *, error_term=True, sign=1, all_positions=False,
                first_only=False):
    chosen = latents[:1] if first_only else latents
    logits = _ablate(model, sae, tokens, chosen, error_term=error_term)
    if all_positions:
        diff = logits.gather(-1, answer_tokens[:, None, :1].expand(-1, logits.shape[1], 1)) - logits.gather(
            -1, answer_tokens[:, None, 1:].expand(-1, logits.shape[1], 1))
        return sign * diff.mean().item()
    last = logits[:, -1]
    return sign * (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean().item()


def ld_no_error_term(model, sae, tokens, answer_tokens, latents):
    return _ablated_ld(model, sae, tokens, answer_tokens, latents, error_term=False)


def ld_s_minus_io(model, sae, tokens, answer_tokens, latents):
    return _ablated_ld(model, sae, tokens, answer_tokens, latents, sign=-1)


def ld_all_positions(model, sae, tokens, answer_tokens, latents):
    return _ablated_ld(model, sae, tokens, answer_tokens, latents, all_positions=True)


def ld_first_latent_only(model, sae, tokens, answer_tokens, latents):
    return _ablated_ld(model, sae, tokens, answer_tokens, latents, first_only=True)


# ---------------------------------------------------------------------------------------------- training config
# ---------------------------------------------------------------------------------------------- latent attribution
def _attribution(model, sae, tokens, answer_tokens, *, error_term=True, times_acts=True, last_only=False, sign=1):
    kept = {}

    def keep(acts, hook):
        kept["acts"] = acts.detach().requires_grad_()
        return kept["acts"]

    with torch.enable_grad(), model.saes(saes=[sae], use_error_term=error_term):
        last = model.run_with_hooks(tokens, fwd_hooks=[(_acts_name(sae), keep)])[:, -1]
        metric = sign * (last.gather(-1, answer_tokens[:, :1]) - last.gather(-1, answer_tokens[:, 1:])).mean()
        (grad,) = torch.autograd.grad(metric, kept["acts"])
    attribution = kept["acts"] * grad if times_acts else grad
    attribution = attribution[:, -1:] if last_only else attribution
    return attribution.sum((0, 1)).detach()


def attribution_gradient_only(model, sae, tokens, answer_tokens):
    return _attribution(model, sae, tokens, answer_tokens, times_acts=False)


def attribution_no_error_term(model, sae, tokens, answer_tokens):
    return _attribution(model, sae, tokens, answer_tokens, error_term=False)


def attribution_last_position_only(model, sae, tokens, answer_tokens):
    return _attribution(model, sae, tokens, answer_tokens, last_only=True)


def attribution_s_minus_io(model, sae, tokens, answer_tokens):
    return _attribution(model, sae, tokens, answer_tokens, sign=-1)


def _config(model_name, hook_name, d_in, *, expansion=4, k=8, training_tokens=120_000, batch_tokens=1024,
            context_size=128, lr=6e-3, seed=0, device="cpu", d_sae=None, wandb=False, standard=False,
            norm_batches=10):
    steps = training_tokens // batch_tokens
    d_sae = expansion * d_in if d_sae is None else d_sae
    if standard:
        sae = StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, normalize_activations="expected_average_only_in",
                                        device=device)
    else:
        sae = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, aux_loss_coefficient=1.0,
                                    normalize_activations="expected_average_only_in", device=device)
    return LanguageModelSAERunnerConfig(
        sae=sae, model_name=model_name, hook_name=hook_name, is_dataset_tokenized=True, streaming=False,
        context_size=context_size, training_tokens=training_tokens, train_batch_size_tokens=batch_tokens,
        n_batches_in_buffer=32, store_batch_size_prompts=16, lr=lr, lr_warm_up_steps=steps // 20,
        lr_decay_steps=steps // 5, dead_feature_window=max(1, 50_000 // batch_tokens),
        n_batches_for_norm_estimate=norm_batches, seed=seed, device=device,
        logger=LoggingConfig(log_to_wandb=wandb), output_path=None, checkpoint_path=None, n_checkpoints=0,
        verbose=False, model_from_pretrained_kwargs={},
    )


def config_warm_up_in_tokens(model_name, hook_name, d_in, **kwargs):
    cfg = _config(model_name, hook_name, d_in, **kwargs)
    cfg.lr_warm_up_steps, cfg.lr_decay_steps = cfg.training_tokens // 20, cfg.training_tokens // 5
    return cfg


def config_d_sae_is_expansion(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, d_sae=kwargs.get("expansion", 4), **kwargs)


def config_wandb_on(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, wandb=True, **kwargs)


def config_standard_sae(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, standard=True, **kwargs)


def config_default_norm_estimate(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, norm_batches=1000, **kwargs)


def config_fixed_batch_size(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, **{**kwargs, "batch_tokens": 1024})


def config_ignores_device(model_name, hook_name, d_in, **kwargs):
    return _config(model_name, hook_name, d_in, **{**kwargs, "device": "cpu"})


MUTANTS = {
    "sae_encode": [
        Mutant(encode_no_b_dec, "forgetting to subtract b_dec before the encoder"),
        Mutant(encode_no_b_enc, "leaving out the encoder bias b_enc"),
        Mutant(encode_relu_only, "applying a ReLU to every latent instead of keeping the top k"),
        Mutant(encode_topk_by_abs, "keeping the k largest in absolute value (TopK keeps the k largest)"),
        Mutant(encode_ignores_rescale, "ignoring rescale_acts_by_decoder_norm (scale by the decoder rows' norms "
               "before the TopK)"),
        Mutant(encode_with_decoder, "encoding with W_dec.T instead of W_enc"),
    ],
    "sae_decode": [
        Mutant(decode_no_b_dec, "leaving out the decoder bias b_dec"),
        Mutant(decode_minus_b_dec, "subtracting b_dec instead of adding it"),
        Mutant(decode_with_encoder, "decoding with W_enc.T instead of W_dec"),
        Mutant(decode_ignores_rescale, "ignoring rescale_acts_by_decoder_norm (divide by the decoder rows' norms "
               "first)"),
    ],
    "spliced_loss_and_latents": [
        Mutant(spliced_acts_pre, "reading hook_sae_acts_pre (before the TopK) instead of hook_sae_acts_post"),
        Mutant(spliced_error_term, CLEAN_LOSS),
        Mutant(spliced_loss_without_sae, CLEAN_LOSS),
        Mutant(spliced_mean_loss, "returning the mean loss instead of the loss per token (loss_per_token=True)",
               Status.WRONG_SHAPE),
    ],
    "reconstruction_metrics": [
        Mutant(recon_uncentred, "dividing by ||x||² instead of the variance ||x - mean(x)||²"),
        Mutant(recon_per_token_ratio, "averaging one explained-variance ratio per token (SAE-Lens's legacy "
               "formula) instead of dividing the mean error by the mean variance"),
        Mutant(recon_mse_mean_over_dims, "averaging the squared error over d_in instead of summing it"),
        Mutant(recon_alive_fraction, "returning the fraction of latents that are alive, not dead"),
        Mutant(recon_l0_fraction, "averaging the active latents over d_sae (a fraction) instead of counting them"),
    ],
    "latent_density": [
        Mutant(density_counts, "counting the active tokens instead of taking their fraction"),
        Mutant(density_mean_activation, "averaging the activations instead of how often they are non-zero"),
        Mutant(density_per_token, "averaging over latents (dimension -1) instead of tokens", Status.WRONG_SHAPE),
    ],
    "sae_metrics": [
        Mutant(metrics_keeps_special_tokens, "keeping the special-token (BOS) positions"),
        Mutant(metrics_mean_ablation, "ablating with the mean activation instead of zeros"),
        Mutant(metrics_kl_reversed, "computing KL(spliced || clean) instead of KL(clean || spliced)"),
        Mutant(metrics_error_term, "splicing with use_error_term=True (the spliced run is then the clean run)"),
        Mutant(metrics_ce_lost, "computing the fraction of CE loss lost, (SAE - clean) / (zero - clean)"),
    ],
    "get_k_largest_indices": [
        Mutant(largest_no_offset, "forgetting to add buffer back to the column indices after slicing"),
        Mutant(largest_no_buffer, "not leaving out the first and last buffer positions"),
        Mutant(largest_wrong_divisor, "unflattening with the number of rows instead of the number of columns"),
        Mutant(largest_smallest, "taking the k smallest values"),
    ],
    "index_with_buffer": [
        Mutant(window_right_only, "starting the window at the index instead of buffer positions before it"),
        Mutant(window_one_short, "stopping the window one short (arange(-buffer, buffer))", Status.WRONG_SHAPE),
        Mutant(window_unpaired, "indexing rows and columns separately (x[rows][:, window]) instead of pairing them",
               Status.WRONG_SHAPE),
    ],
    "fetch_max_activating_examples": [
        Mutant(fetch_acts_pre, "ranking by hook_sae_acts_pre (before the TopK) instead of hook_sae_acts_post"),
        Mutant(fetch_top_sequences, "taking the k sequences with the largest maximum instead of the k largest "
               "tokens"),
        Mutant(fetch_smallest, "taking the k smallest activations"),
        Mutant(fetch_every_position, "ranking every position, including the first and last buffer positions of "
               "each row (a window must fit around each example: leave them out)"),
    ],
    "latent_residual_directions": [
        Mutant(directions_no_W_O, "using the hook_z decoder rows as residual directions (they must go through W_O)"),
        Mutant(directions_layer_zero, "using W_O of layer 0 instead of the SAE's layer"),
        Mutant(directions_heads_last, "splitting the decoder rows as [d_head, n_heads] (heads are concatenated head "
               "by head: [n_heads, d_head])"),
    ],
    "latent_top_logits": [
        Mutant(top_logits_encoder, "using the encoder column W_enc[:, latent] instead of the decoder direction"),
        Mutant(top_logits_no_W_O, "multiplying a hook_z decoder row by W_U without W_O"),
        Mutant(top_logits_embedding, "multiplying by the embedding W_E instead of the unembedding W_U"),
        Mutant(top_logits_negated_bottom, "returning the bottom logits with their sign flipped"),
    ],
    "ablate_sae_latent": [
        Mutant(ablate_no_error_term, "splicing without the error term (the reconstruction error changes the logits "
               "too)"),
        Mutant(ablate_acts_pre, "zeroing hook_sae_acts_pre (before the TopK, another latent takes the place)"),
        Mutant(ablate_last_position, "ablating the last position only"),
        Mutant(ablate_all_others, "zeroing every latent except this one"),
    ],
    "steering_hook": [
        Mutant(steer_last_position, LAST_ONLY),
        Mutant(steer_encoder_direction, "adding the encoder column W_enc[:, latent] instead of the decoder row"),
        Mutant(steer_subtracts, "subtracting the direction instead of adding it"),
        Mutant(steer_unit_direction, "normalising the decoder row to unit norm"),
    ],
    "generate_with_steering": [
        Mutant(generate_last_position, LAST_ONLY),
        Mutant(generate_unseeded, "not seeding torch's generator with the seed argument"),
        Mutant(generate_unsteered, "generating without the steering hook"),
        Mutant(generate_hook_left_on, "adding the hook with model.add_hook and leaving it on the model",
               Status.CHANGED_MODEL),
    ],
    "latent_dla": [
        Mutant(dla_no_scale, "forgetting to divide by the final LayerNorm scale"),
        Mutant(dla_s_minus_io, "using W_U[:, S] - W_U[:, IO] (the answer is IO)"),
        Mutant(dla_no_W_O, "using the hook_z decoder rows without W_O"),
        Mutant(dla_first_position, "reading the latents at the first position instead of the last"),
    ],
    "decoder_norms_by_head": [
        Mutant(head_norms_not_squared, "sharing out the norms instead of the squared norms"),
        Mutant(head_norms_heads_last, "splitting the decoder rows as [d_head, n_heads] instead of [n_heads, d_head]"),
        Mutant(head_norms_unnormalised, "not dividing by each latent's total"),
        Mutant(head_norms_over_latents, "normalising over latents (dimension 0) instead of over heads"),
    ],
    "ablate_latents_logit_diff": [
        Mutant(ld_no_error_term, "splicing without the error term"),
        Mutant(ld_s_minus_io, "returning logit(S) - logit(IO)"),
        Mutant(ld_all_positions, "averaging the logit difference over every position instead of the last"),
        Mutant(ld_first_latent_only, "ablating only the first latent of the list"),
    ],
    "latent_attribution": [
        Mutant(attribution_gradient_only, "returning the gradient alone (attribution is activation times gradient)"),
        Mutant(attribution_no_error_term, "splicing without the error term (the run, and its gradients, are then not "
               "the clean model's)"),
        Mutant(attribution_last_position_only, "keeping the last position only (a latent at an earlier position acts "
               "on the answer through attention: sum over every position)"),
        Mutant(attribution_s_minus_io, "differentiating logit(S) - logit(IO) (answer_tokens[:, 0] is the IO)"),
    ],
    "sae_training_config": [
        Mutant(config_d_sae_is_expansion, "setting d_sae to the expansion factor instead of expansion * d_in"),
        Mutant(config_wandb_on, "leaving Weights & Biases logging on (LoggingConfig(log_to_wandb=False))"),
        Mutant(config_standard_sae, "configuring a standard (ReLU) SAE instead of a TopK SAE"),
        Mutant(config_default_norm_estimate, "leaving n_batches_for_norm_estimate at its default (1000 batches)"),
        Mutant(config_warm_up_in_tokens, "taking 5% and 20% of the training tokens for the warm-up and decay steps "
               "(they are shares of the steps, training_tokens // batch_tokens)"),
        Mutant(config_fixed_batch_size, "ignoring batch_tokens (train_batch_size_tokens, and the steps computed from "
               "it, must follow it)"),
        Mutant(config_ignores_device, "ignoring the device argument (both the runner and the SAE config take it)"),
    ],
}
