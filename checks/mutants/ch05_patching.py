"""Known mistakes for chapter 5 (activation patching and the IOI circuit). Each one is a mistake learners really make;
its description is shown to a learner whose output matches it."""

from functools import partial

import torch
from transformer_lens.utilities import get_act_name

from utils.checking import Mutant, Status
from utils.data import IGNORES_CHUNK_SIZE

POSITION_ACTS = ("resid_pre", "attn_out", "mlp_out")
# Two mistakes with one symptom (every patch scores the corrupted run's metric): the diagnosis names both.
PATCHES_LOST = ("no patch reaches the forward pass, so every patch scores like the corrupted run: either the shortcut "
                "applies your hook to the cached corrupted activation itself (clone it first: the hook patches the "
                "cache, and every patch then looks like one that changes nothing), or the chunk's hook drops what your "
                "hook returns (assign it: activation[rows] = hook(activation[rows], ...); a hook that works out of "
                "place patches nothing otherwise)")
NO_START_AT_LAYER = ("never using start_at_layer (every chunk runs from the tokens, through the layers before the "
                     "patch: run it from the cached resid_pre with start_at_layer=layer)")


# ---------------------------------------------------------------------------------------------- metric
def _answer_logits(logits, answer_tokens, pos=-1):
    return logits[:, pos].gather(-1, answer_tokens)


def metric_no_mean(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens)
    return (a[:, 0] - a[:, 1] - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def metric_clean_baseline(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens)
    return ((a[:, 0] - a[:, 1]).mean() - clean_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def metric_denominator_flipped(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens)
    return ((a[:, 0] - a[:, 1]).mean() - corrupted_logit_diff) / (corrupted_logit_diff - clean_logit_diff)


def metric_first_position(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens, pos=0)
    return ((a[:, 0] - a[:, 1]).mean() - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def metric_s_minus_io(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens)
    return ((a[:, 1] - a[:, 0]).mean() - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def metric_unnormalised(logits, answer_tokens, corrupted_logit_diff, clean_logit_diff):
    a = _answer_logits(logits, answer_tokens)
    return (a[:, 0] - a[:, 1]).mean()


# ---------------------------------------------------------------------------------------------- hooks
def resid_every_position(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[:] = clean_cache[hook.name]
    return corrupted_residual_component


def resid_first_prompt_only(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[0, pos] = clean_cache[hook.name][0, pos]
    return corrupted_residual_component


def resid_d_model_index(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[..., pos] = clean_cache[hook.name][..., pos]
    return corrupted_residual_component


def resid_wrong_way(corrupted_residual_component, hook, pos, clean_cache):
    clean = clean_cache[hook.name]
    clean[:, pos] = corrupted_residual_component[:, pos]
    return clean


def resid_slice_only(corrupted_residual_component, hook, pos, clean_cache):
    return clean_cache[hook.name][:, pos]


def head_all_heads(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:] = clean_cache[hook.name]
    return corrupted_head_vector


def head_position_index(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:, head_index] = clean_cache[hook.name][:, head_index]
    return corrupted_head_vector


def head_d_head_index(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[..., head_index] = clean_cache[hook.name][..., head_index]
    return corrupted_head_vector


def head_last_position(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:, -1, head_index] = clean_cache[hook.name][:, -1, head_index]
    return corrupted_head_vector


def pattern_like_z(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:, :, head_index] = clean_cache[hook.name][:, :, head_index]
    return corrupted_head_vector


def pattern_all_heads(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:] = clean_cache[hook.name]
    return corrupted_head_vector


def pattern_last_query(corrupted_head_vector, hook, head_index, clean_cache):
    corrupted_head_vector[:, head_index, -1] = clean_cache[hook.name][:, head_index, -1]
    return corrupted_head_vector


# The correct hooks, for the mutants of the functions that use them.
def _patch_pos(act, hook, pos, clean_cache):
    act[:, pos] = clean_cache[hook.name][:, pos]
    return act


def _patch_head(act, hook, head_index, clean_cache):
    act[:, :, head_index] = clean_cache[hook.name][:, :, head_index]
    return act


def _patch_pattern(act, hook, head_index, clean_cache):
    act[:, head_index] = clean_cache[hook.name][:, head_index]
    return act


# ---------------------------------------------------------------------------------------------- loops
def _loop(model, tokens, clean_cache, metric, names, n_index, setter, index_arg, *, layer_of=lambda layer: layer,
          transpose=False):
    out = torch.zeros(len(names), model.cfg.n_layers, n_index, device=model.cfg.device)
    for i, act_name in enumerate(names):
        for layer in range(model.cfg.n_layers):
            for index in range(n_index):
                hook_fn = partial(setter, **{index_arg: index}, clean_cache=clean_cache)
                logits = model.run_with_hooks(tokens, fwd_hooks=[(get_act_name(act_name, layer_of(layer)), hook_fn)])
                out[i, layer, index] = metric(logits).item()
    return out.transpose(-1, -2) if transpose else out


def resid_pre_resid_post(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_post"], corrupted_tokens.shape[1],
                 _patch_pos, "pos")[0]


def resid_pre_layer_0(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre"], corrupted_tokens.shape[1],
                 _patch_pos, "pos", layer_of=lambda layer: 0)[0]


def resid_pre_pos_layer(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre"], corrupted_tokens.shape[1],
                 _patch_pos, "pos", transpose=True)[0]


def resid_pre_wrong_way(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre"], corrupted_tokens.shape[1],
                 resid_wrong_way, "pos")[0]


def block_mlp_before_attn(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre", "mlp_out", "attn_out"],
                 corrupted_tokens.shape[1], _patch_pos, "pos")


def block_resid_mid(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre", "resid_mid", "mlp_out"],
                 corrupted_tokens.shape[1], _patch_pos, "pos")


def block_resid_pre_thrice(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre"] * 3,
                 corrupted_tokens.shape[1], _patch_pos, "pos")


def block_whole_sequence(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["resid_pre", "attn_out", "mlp_out"],
                 corrupted_tokens.shape[1], resid_every_position, "pos")


def head_out_all_heads(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["z"], model.cfg.n_heads, head_all_heads,
                 "head_index")[0]


def head_out_values(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["v"], model.cfg.n_heads, _patch_head,
                 "head_index")[0]


def head_out_head_layer(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["z"], model.cfg.n_heads, _patch_head,
                 "head_index", transpose=True)[0]


def head_out_layer_0(model, corrupted_tokens, clean_cache, patching_metric):
    return _loop(model, corrupted_tokens, clean_cache, patching_metric, ["z"], model.cfg.n_heads, _patch_head,
                 "head_index", layer_of=lambda layer: 0)[0]


def _every(model, tokens, clean_cache, metric, names, pattern_setter=_patch_pattern):
    parts = [_loop(model, tokens, clean_cache, metric, [name], model.cfg.n_heads,
                   pattern_setter if name == "pattern" else _patch_head, "head_index")[0] for name in names]
    return torch.stack(parts)


def every_k_before_q(model, corrupted_tokens, clean_cache, patching_metric):
    return _every(model, corrupted_tokens, clean_cache, patching_metric, ["z", "k", "q", "v", "pattern"])


def every_pattern_like_z(model, corrupted_tokens, clean_cache, patching_metric):
    return _every(model, corrupted_tokens, clean_cache, patching_metric, ["z", "q", "k", "v", "pattern"],
                  pattern_setter=pattern_like_z)


def every_without_pattern(model, corrupted_tokens, clean_cache, patching_metric):
    return _every(model, corrupted_tokens, clean_cache, patching_metric, ["z", "q", "k", "v"])


def every_result_first(model, corrupted_tokens, clean_cache, patching_metric):
    return _every(model, corrupted_tokens, clean_cache, patching_metric, ["pattern", "q", "k", "v", "z"])


# ---------------------------------------------------------------------------------------------- batched engine
def _out_of_place(setter):
    """A hook that returns the patched activation and leaves its input as it was (a valid hook)."""
    def patch(act, hook, **kwargs):
        return setter(act.clone(), hook, **kwargs)
    return patch


def _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32, clone_check=True,
            stack="repeat", start=None, drop_last_chunk=False, strided_rows=False, first_index_only=False,
            skipped=None, one_chunk=False, from_tokens=False, drop_hook_output=False):
    batch, seq_len = corrupted_tokens.shape
    by_position = act_name in POSITION_ACTS
    n_index = seq_len if by_position else model.cfg.n_heads
    setter = _patch_pos if by_position else _patch_pattern if act_name == "pattern" else _patch_head
    if drop_hook_output:
        setter = _out_of_place(setter)
    arg = "pos" if by_position else "head_index"
    results = torch.zeros(model.cfg.n_layers, n_index, device=model.cfg.device)
    with torch.no_grad():
        corrupted_logits, cache = model.run_with_cache(corrupted_tokens)
        corrupted_value = patching_metric(corrupted_logits).item()
        for layer in range(model.cfg.n_layers):
            name = get_act_name(act_name, layer)
            hook = model.hook_dict[name]
            todo = []
            for index in range(n_index):
                patched = setter(cache[name].clone() if clone_check else cache[name], hook, **{arg: index},
                                 clean_cache=clean_cache)
                if torch.equal(patched, cache[name]):
                    results[layer, index] = corrupted_value if skipped is None else skipped
                else:
                    todo.append(index)
            size = max(len(todo), 1) if one_chunk else chunk_size
            stop = len(todo) - size + 1 if drop_last_chunk else len(todo)
            for begin in range(0, max(stop, 0), size):
                chunk = todo[begin: begin + size]
                n = len(chunk)
                resid = cache["resid_pre", layer]
                resid = resid.repeat(n, 1, 1) if stack == "repeat" else resid.repeat_interleave(n, dim=0)

                def patch_chunk(activation, hook):
                    for i, index in enumerate(chunk):
                        rows = slice(i * batch, (i + 1) * batch)
                        patched = setter(activation[rows], hook, **{arg: chunk[0] if first_index_only else index},
                                         clean_cache=clean_cache)
                        if not drop_hook_output:
                            activation[rows] = patched
                    return activation

                if from_tokens:
                    logits = model.run_with_hooks(corrupted_tokens.repeat(n, 1), fwd_hooks=[(name, patch_chunk)])
                else:
                    logits = model.run_with_hooks(resid, start_at_layer=layer if start is None else start,
                                                  fwd_hooks=[(name, patch_chunk)])
                for i, index in enumerate(chunk):
                    rows = slice(i, None, n) if strided_rows else slice(i * batch, (i + 1) * batch)
                    results[layer, index] = patching_metric(logits[rows]).item()
    return results


def batched_no_clone(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   clone_check=False)


def batched_repeat_interleave(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   stack="interleave")


def batched_from_layer_0(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size, start=0)


def batched_drops_last_chunk(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   drop_last_chunk=True)


def batched_strided_rows(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   strided_rows=True)


def batched_one_index_per_chunk(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   first_index_only=True)


def batched_skipped_zero(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size, skipped=0.0)


def batched_ignores_chunk_size(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   one_chunk=True)


def batched_from_tokens(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   from_tokens=True)


def batched_drops_hook_output(model, corrupted_tokens, clean_cache, patching_metric, act_name, *, chunk_size=32):
    return _engine(model, corrupted_tokens, clean_cache, patching_metric, act_name, chunk_size=chunk_size,
                   drop_hook_output=True)


# ---------------------------------------------------------------------------------------------- roles
def _copying(model, name_tokens, k=5, *, mlp0_for_layer_0=False, mlp0=True, sign_after=False, ln_final=True):
    embeddings = model.W_E[name_tokens][:, None]
    extended = embeddings + model.blocks[0].mlp(model.blocks[0].ln2(embeddings)) if mlp0 else embeddings
    results = torch.zeros(2, model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    for layer in range(model.cfg.n_layers):
        resid = extended if (layer > 0 or mlp0_for_layer_0) else embeddings
        for head in range(model.cfg.n_heads):
            W_OV = model.W_V[layer, head] @ model.W_O[layer, head]
            for sign in (0, 1):
                out = resid @ (W_OV if (sign == 0 or sign_after) else -W_OV)
                logits = model.unembed(model.ln_final(out) if ln_final else out)[:, 0]
                if sign == 1 and sign_after:
                    logits = -logits
                top = logits.topk(k, dim=-1).indices
                results[sign, layer, head] = (top == name_tokens[:, None]).any(-1).float().mean()
    return results


def copying_without_mlp0(model, name_tokens, k=5):
    return _copying(model, name_tokens, k, mlp0=False)


def copying_mlp0_for_layer_0(model, name_tokens, k=5):
    return _copying(model, name_tokens, k, mlp0_for_layer_0=True)


def copying_sign_after_unembed(model, name_tokens, k=5):
    return _copying(model, name_tokens, k, sign_after=True)


def copying_without_ln_final(model, name_tokens, k=5):
    return _copying(model, name_tokens, k, ln_final=False)


def copying_fixed_k(model, name_tokens, k=5):
    return _copying(model, name_tokens, 5)


def _attn_scores(cache, seq_len, head_type, *, dup_offset=0, swap=False, dest_start=1, mean_heads=False):
    if head_type == "prev":
        dest = torch.arange(1, 2 * seq_len + 1)
        src = dest - 1
    else:
        dest = torch.arange(seq_len + dest_start, 2 * seq_len + dest_start)
        src = dest - seq_len + (1 if head_type == "induction" else dup_offset)
    dims = (0, 1, 2) if mean_heads else (0, 2)
    out = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        out.append((pattern[:, :, src, dest] if swap else pattern[:, :, dest, src]).mean(dim=dims))
    return torch.stack(out)


def attn_duplicate_off_by_one(cache, seq_len, head_type):
    return _attn_scores(cache, seq_len, head_type, dup_offset=1)


def attn_src_dest_swapped(cache, seq_len, head_type):
    return _attn_scores(cache, seq_len, head_type, swap=True)


def attn_dest_off_by_one(cache, seq_len, head_type):
    return _attn_scores(cache, seq_len, head_type, dest_start=0)


def attn_mean_over_heads(cache, seq_len, head_type):
    return _attn_scores(cache, seq_len, head_type, mean_heads=True)


def _sources(seq_len, head_type):
    """The right destinations and sources (see the reference)."""
    if head_type == "prev":
        dest = torch.arange(1, 2 * seq_len + 1)
        return dest, dest - 1
    dest = torch.arange(seq_len + 1, 2 * seq_len + 1)
    return dest, dest - seq_len + (1 if head_type == "induction" else 0)


def attn_every_pair(cache, seq_len, head_type):
    dest, src = _sources(seq_len, head_type)
    return torch.stack([cache["pattern", layer][:, :, dest][:, :, :, src].mean(dim=(0, 2, 3))
                        for layer in range(cache.model.cfg.n_layers)])


def attn_whole_diagonal(cache, seq_len, head_type):
    offset = {"prev": 1, "duplicate": seq_len, "induction": seq_len - 1}[head_type]
    return torch.stack([cache["pattern", layer].diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=(0, 2))
                        for layer in range(cache.model.cfg.n_layers)])


def attn_prev_second_copy_only(cache, seq_len, head_type):
    if head_type != "prev":
        return _attn_scores(cache, seq_len, head_type)
    dest = torch.arange(seq_len + 1, 2 * seq_len + 1)
    return torch.stack([cache["pattern", layer][:, :, dest, dest - 1].mean(dim=(0, 2))
                        for layer in range(cache.model.cfg.n_layers)])


def attn_induction_token_before(cache, seq_len, head_type):
    dest, src = _sources(seq_len, head_type)
    if head_type == "induction":
        src = dest - seq_len - 1
    return torch.stack([cache["pattern", layer][:, :, dest, src].mean(dim=(0, 2))
                        for layer in range(cache.model.cfg.n_layers)])


# ---------------------------------------------------------------------------------------------- path patching
def _freeze_hook(layer, head, new_cache, orig_cache, *, order="patch_last", freeze=True, whole_layer=False):
    def hook(z, hook):
        if order == "patch_first" and hook.layer() == layer:
            z[:, :, head] = new_cache[hook.name][:, :, head]
        if freeze:
            z[:] = orig_cache[hook.name]
        if order == "patch_last" and hook.layer() == layer:
            if whole_layer:
                z[:] = new_cache[hook.name]
            else:
                z[:, :, head] = new_cache[hook.name][:, :, head]
        return z
    return hook


def _to_final(model, metric, tokens, new_cache, orig_cache, **options):
    results = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = _freeze_hook(layer, head, new_cache, orig_cache, **options)
            logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), hook)])
            results[layer, head] = metric(logits).item()
    return results


def final_freezes_sender_too(model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_final(model, patching_metric, orig_tokens, new_cache, orig_cache, order="patch_first")


def final_no_freezing(model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_final(model, patching_metric, orig_tokens, new_cache, orig_cache, freeze=False)


def final_caches_swapped(model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_final(model, patching_metric, orig_tokens, orig_cache, new_cache)


def final_whole_sender_layer(model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_final(model, patching_metric, orig_tokens, new_cache, orig_cache, whole_layer=True)


def _to_heads(receiver_heads, receiver_input, model, metric, tokens, new_cache, orig_cache, *, input_name=None,
              all_heads=False, skip_step_1=False, full_shape=False, **options):
    receiver_layers = sorted({layer for layer, _ in receiver_heads})
    names = {get_act_name(input_name or receiver_input, layer) for layer in receiver_layers}
    n_rows = model.cfg.n_layers if full_shape else max(receiver_layers)
    results = torch.zeros(n_rows, model.cfg.n_heads, device=model.cfg.device)
    for layer in range(n_rows):
        for head in range(model.cfg.n_heads):
            if skip_step_1 or layer >= max(receiver_layers):
                patched = new_cache
            else:
                with model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_z"),
                                             _freeze_hook(layer, head, new_cache, orig_cache, **options))]):
                    _, patched = model.run_with_cache(tokens, names_filter=lambda n: n in names, return_type=None)

            def patch(x, hook):
                for r_layer, r_head in receiver_heads:
                    if r_layer == hook.layer():
                        if all_heads:
                            x[:] = patched[hook.name]
                        else:
                            x[:, :, r_head] = patched[hook.name][:, :, r_head]
                return x

            logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n in names, patch)])
            results[layer, head] = metric(logits).item()
    return results


def heads_freeze_sender_too(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache,
                            orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     order="patch_first")


def heads_no_freezing(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     freeze=False)


def heads_always_queries(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     input_name="q")


def heads_whole_receiver_layer(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache,
                               orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     all_heads=True)


def heads_inputs_from_new_cache(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache,
                                orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     skip_step_1=True)


def heads_every_layer(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache):
    return _to_heads(receiver_heads, receiver_input, model, patching_metric, orig_tokens, new_cache, orig_cache,
                     full_shape=True)


# ------------------------------------------------------------------------------------ direct logit attribution
def _dla(model, cache, answer_tokens, *, scale=True, sign=1, pos=-1, reduce="mean"):
    direction = sign * (model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]])
    ln_scale = cache["ln_final.hook_scale"][:, pos] if scale else torch.ones(len(answer_tokens), 1,
                                                                            device=direction.device)
    heads = torch.stack([torch.einsum("bhd,hdm->bhm", cache["z", layer][:, pos], model.W_O[layer])
                         for layer in range(model.cfg.n_layers)])
    mlps = torch.stack([cache["mlp_out", layer][:, pos] for layer in range(model.cfg.n_layers)])
    n = len(answer_tokens) if reduce == "mean" else 1
    return (torch.einsum("lbhm,mb->lh", heads / ln_scale[:, None], direction) / n,
            torch.einsum("lbm,mb->l", mlps / ln_scale, direction) / n)


def dla_no_scale(model, cache, answer_tokens):
    return _dla(model, cache, answer_tokens, scale=False)


def dla_s_minus_io(model, cache, answer_tokens):
    return _dla(model, cache, answer_tokens, sign=-1)


def dla_first_position(model, cache, answer_tokens):
    return _dla(model, cache, answer_tokens, pos=0)


def dla_summed_over_prompts(model, cache, answer_tokens):
    return _dla(model, cache, answer_tokens, reduce="sum")


def dla_attn_out_shared(model, cache, answer_tokens):
    heads, mlps = _dla(model, cache, answer_tokens)
    direction = model.W_U[:, answer_tokens[:, 0]] - model.W_U[:, answer_tokens[:, 1]]
    scale = cache["ln_final.hook_scale"][:, -1]
    attn = torch.stack([cache["attn_out", layer][:, -1] for layer in range(model.cfg.n_layers)])
    per_layer = torch.einsum("lbm,mb->l", attn / scale, direction) / len(answer_tokens)
    return per_layer[:, None].expand_as(heads) / model.cfg.n_heads, mlps


# ---------------------------------------------------------------------------------------------- attribution patching
def _atp(model, corrupted_tokens, clean_cache, metric, act_name, dims, *, difference="clean_minus", baseline=True,
         reduce="sum", layer_of=lambda layer: layer, swap_layer_index=False):
    names = [get_act_name(act_name, layer_of(layer)) for layer in range(model.cfg.n_layers)]
    unique = list(dict.fromkeys(names))
    probes = {}

    def add_probe(activation, hook):
        probes[hook.name] = torch.zeros_like(activation, requires_grad=True)
        return activation + probes[hook.name]

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, add_probe) for name in unique]):
        logits, cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in unique)
        value = metric(logits)
        grads = dict(zip(unique, torch.autograd.grad(value, [probes[name] for name in unique])))
    rows = []
    for name in names:
        clean, corrupted = clean_cache[name], cache[name]
        delta = {"clean_minus": clean - corrupted, "corrupted_minus": corrupted - clean, "clean": clean}[difference]
        total = (delta * grads[name]).sum(dim=dims)
        rows.append(total / len(corrupted_tokens) if reduce == "mean" else total)
    table = torch.stack(rows)
    table = table.T.contiguous() if swap_layer_index else table
    return table + (value.item() if baseline else 0.0)


def _atp_at_clean_run(model, corrupted_tokens, clean_cache, metric, act_name, dims):
    """The gradient taken on the clean run (the clean tokens are not an argument: they are recovered from the clean
    cache's embeddings, the nearest row of W_E)."""
    embed = clean_cache["hook_embed"]
    clean_tokens = torch.cdist(embed.flatten(0, 1), model.W_E).argmin(-1).view(embed.shape[:2])
    names = [get_act_name(act_name, layer) for layer in range(model.cfg.n_layers)]
    probes = {}

    def add_probe(activation, hook):
        probes[hook.name] = torch.zeros_like(activation, requires_grad=True)
        return activation + probes[hook.name]

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, add_probe) for name in names]):
        value = metric(model(corrupted_tokens))
        clean_value = metric(model(clean_tokens))
        grads = torch.autograd.grad(clean_value, [probes[name] for name in names])
    _, cache = model.run_with_cache(corrupted_tokens)
    return value.item() + torch.stack([((clean_cache[name] - cache[name]) * grad).sum(dim=dims)
                                       for name, grad in zip(names, grads)])


def attr_resid_clean_times_gradient(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", (0, 2), difference="clean")


def attr_resid_corrupted_minus_clean(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", (0, 2),
                difference="corrupted_minus")


def attr_resid_no_baseline(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", (0, 2), baseline=False)


def attr_resid_mean_over_prompts(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "resid_pre", (0, 2), reduce="mean")


def attr_resid_post(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "resid_post", (0, 2))


def attr_heads_corrupted_minus_clean(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "z", (0, 1, 3), difference="corrupted_minus")


def attr_heads_no_baseline(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "z", (0, 1, 3), baseline=False)


def attr_heads_values(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "v", (0, 1, 3))


def attr_heads_head_layer(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp(model, corrupted_tokens, clean_cache, patching_metric, "z", (0, 1, 3), swap_layer_index=True)


def attr_heads_gradient_at_clean_run(model, corrupted_tokens, clean_cache, patching_metric):
    return _atp_at_clean_run(model, corrupted_tokens, clean_cache, patching_metric, "z", (0, 1, 3))


# ---------------------------------------------------------------------------------------------- mean ablation
def _keep(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len, *, how="rows", fixed_word=None):
    batch = len(next(iter(positions.values())))
    device = next(iter(positions.values())).device
    keep = torch.zeros(n_layers, batch, seq_len, n_heads, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    for role, heads in circuit.items():
        where = positions[fixed_word or seq_pos_to_keep[role]]
        for layer, head in heads:
            if how == "rows":
                keep[layer, rows, where, head] = True
            elif how == "every_listed":
                keep[layer, :, where, head] = True
            elif how == "all_positions":
                keep[layer, :, :, head] = True
            elif how == "first_prompt":
                keep[layer, :, where[0], head] = True
    return keep


def keep_every_position(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len):
    return _keep(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len, how="all_positions")


def keep_every_listed_position(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len):
    return _keep(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len, how="every_listed")


def keep_first_prompts_position(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len):
    return _keep(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len, how="first_prompt")


def keep_always_at_end(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len):
    return _keep(positions, circuit, seq_pos_to_keep, n_layers, n_heads, seq_len, fixed_word="end")


def _means(means_cache, frames, *, ignore_frames=False, dims=(1,), first_only=False):
    z = torch.stack([means_cache["z", layer] for layer in range(means_cache.model.cfg.n_layers)])
    means = torch.empty_like(z)
    groups = [torch.ones_like(frames, dtype=torch.bool)] if ignore_frames else [frames == f for f in frames.unique()]
    for same in groups:
        if first_only:
            means[:, same] = z[:, same][:, :1]
        else:
            means[:, same] = z[:, same].mean(dim=dims, keepdim=True).expand_as(z[:, same])
    return means


def means_ignore_frames(means_cache, frames):
    return _means(means_cache, frames, ignore_frames=True)


def means_over_positions_too(means_cache, frames):
    return _means(means_cache, frames, dims=(1, 2))


def means_first_prompt_of_frame(means_cache, frames):
    return _means(means_cache, frames, first_only=True)


def means_over_heads_too(means_cache, frames):
    return _means(means_cache, frames, dims=(1, 3))


def hook_inverted(z, hook, means, keep):
    return torch.where(keep[hook.layer()][..., None], means[hook.layer()], z)


def hook_layer_0(z, hook, means, keep):
    return torch.where(keep[0][..., None], z, means[0])


def hook_zero_ablation(z, hook, means, keep):
    return torch.where(keep[hook.layer()][..., None], z, torch.zeros_like(z))


def hook_every_head_at_kept_positions(z, hook, means, keep):
    return torch.where(keep[hook.layer()].any(-1, keepdim=True)[..., None], z, means[hook.layer()])


def _faithfulness(model, tokens, answer_tokens, means, keep, *, how="ratio", invert_keep=False):
    def per_prompt(logits):
        a = logits[:, -1].gather(-1, answer_tokens)
        return a[:, 0] - a[:, 1]

    def hook(z, hook):
        kept = keep[hook.layer()][..., None]
        return torch.where(kept, means[hook.layer()], z) if invert_keep else torch.where(kept, z, means[hook.layer()])

    ablated = per_prompt(model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), hook)]))
    full = per_prompt(model(tokens))
    if how == "inverted":
        return (full.mean() / ablated.mean()).item()
    if how == "circuit_only":
        return ablated.mean().item()
    if how == "per_prompt":
        return (ablated / full).mean().item()
    return (ablated.mean() / full.mean()).item()


def faithfulness_inverted(model, tokens, answer_tokens, means, keep):
    return _faithfulness(model, tokens, answer_tokens, means, keep, how="inverted")


def faithfulness_circuit_logit_diff(model, tokens, answer_tokens, means, keep):
    return _faithfulness(model, tokens, answer_tokens, means, keep, how="circuit_only")


def faithfulness_per_prompt_ratios(model, tokens, answer_tokens, means, keep):
    return _faithfulness(model, tokens, answer_tokens, means, keep, how="per_prompt")


def faithfulness_circuit_ablated(model, tokens, answer_tokens, means, keep):
    return _faithfulness(model, tokens, answer_tokens, means, keep, invert_keep=True)


MUTANTS = {
    "ioi_metric": [
        Mutant(metric_no_mean, "normalising each prompt's logit difference without averaging over the batch",
               Status.WRONG_SHAPE),
        Mutant(metric_clean_baseline, "subtracting the clean logit difference in the numerator (normalising with the "
               "wrong baseline: the clean run would score 0 and the corrupted run -1)"),
        Mutant(metric_denominator_flipped, "dividing by corrupted minus clean (the sign of the denominator is "
               "flipped: the clean run would score -1)"),
        Mutant(metric_first_position, "reading the logits at the first position (logits[:, 0]) instead of the last"),
        Mutant(metric_s_minus_io, "taking logit(S) - logit(IO): answer_tokens[:, 0] is the IO, [:, 1] the subject"),
        Mutant(metric_unnormalised, "returning the raw logit difference without normalising it"),
    ],
    "patch_residual_component": [
        Mutant(resid_every_position, "patching every position instead of only pos"),
        Mutant(resid_first_prompt_only, "patching only the first prompt ([0, pos]) instead of every prompt ([:, pos])"),
        Mutant(resid_d_model_index, "indexing d_model ([..., pos]) instead of the position ([:, pos])"),
        Mutant(resid_wrong_way, "patching the wrong way round: writing the corrupted value into the clean cache and "
               "returning the clean activation"),
        Mutant(resid_slice_only, "returning only the patched slice instead of the whole activation",
               Status.WRONG_SHAPE),
    ],
    "get_act_patch_resid_pre": [
        Mutant(resid_pre_resid_post, "patching resid_post (after the layer) instead of resid_pre (before it)"),
        Mutant(resid_pre_layer_0, "always hooking layer 0 (get_act_name('resid_pre', 0)) whatever the layer"),
        Mutant(resid_pre_pos_layer, "returning [pos, layer] instead of [layer, pos]", Status.WRONG_SHAPE),
        Mutant(resid_pre_wrong_way, "patching the wrong way round (the hook writes into the clean cache, which then "
               "holds corrupted values for the next patches)"),
    ],
    "get_act_patch_block_every": [
        Mutant(block_mlp_before_attn, "putting mlp_out before attn_out (the order is resid_pre, attn_out, mlp_out)"),
        Mutant(block_resid_mid, "patching resid_mid (the residual stream after attention) instead of attn_out (what "
               "attention writes)"),
        Mutant(block_resid_pre_thrice, "patching resid_pre for all three panels (the activation name is not "
               "passed on)"),
        Mutant(block_whole_sequence, "patching every position of the activation at once instead of one position"),
    ],
    "patch_head_vector": [
        Mutant(head_all_heads, "patching z of all heads instead of only head_index"),
        Mutant(head_position_index, "indexing the position dimension ([:, head_index]) instead of the head dimension "
               "([:, :, head_index])"),
        Mutant(head_d_head_index, "indexing d_head ([..., head_index]) instead of the head dimension "
               "([:, :, head_index])"),
        Mutant(head_last_position, "patching the head at the last position only instead of at every position"),
    ],
    "get_act_patch_attn_head_out_all_pos": [
        Mutant(head_out_all_heads, "patching z of all heads of the layer instead of one head"),
        Mutant(head_out_values, "patching the values (hook_v) instead of the head outputs (hook_z)"),
        Mutant(head_out_head_layer, "filling the results in [head, layer] order instead of [layer, head]"),
        Mutant(head_out_layer_0, "always hooking layer 0 (get_act_name('z', 0)) whatever the layer"),
    ],
    "patch_attn_patterns": [
        Mutant(pattern_like_z, "indexing the pattern like z ([:, :, head_index]): patterns are [batch, head, query, "
               "key], the head comes second"),
        Mutant(pattern_all_heads, "patching the patterns of all heads instead of only head_index"),
        Mutant(pattern_last_query, "patching the last query position only instead of the head's whole pattern"),
    ],
    "get_act_patch_attn_head_all_pos_every": [
        Mutant(every_k_before_q, "putting the keys before the queries (the order is z, q, k, v, pattern)"),
        Mutant(every_pattern_like_z, "patching the pattern with patch_head_vector (its head index is the second "
               "dimension: use patch_attn_patterns)"),
        Mutant(every_without_pattern, "leaving out the pattern (five activations: z, q, k, v, pattern)",
               Status.WRONG_SHAPE),
        Mutant(every_result_first, "putting the pattern first and z last (the order is z, q, k, v, pattern)"),
    ],
    "get_act_patch_batched": [
        Mutant(batched_no_clone, PATCHES_LOST),
        Mutant(batched_drops_hook_output, PATCHES_LOST),
        Mutant(batched_skipped_zero, "filling the patches that change nothing with 0.0 instead of the corrupted run's "
               "metric (the two agree only for a metric normalised to 0 on the corrupted run)"),
        Mutant(batched_ignores_chunk_size, IGNORES_CHUNK_SIZE),
        Mutant(batched_from_tokens, NO_START_AT_LAYER),
        Mutant(batched_repeat_interleave, "stacking the copies with repeat_interleave (each prompt n times in a row) "
               "while reading patch i from rows i * batch to (i + 1) * batch"),
        Mutant(batched_from_layer_0, "feeding layer L's resid_pre to the model from layer 0 (start_at_layer must be "
               "the patched layer)"),
        Mutant(batched_drops_last_chunk, "dropping the last, shorter chunk (range(0, n - chunk_size + 1, chunk_size))"),
        Mutant(batched_strided_rows, "reading patch i from rows i, i + n, i + 2n, ... (logits[i::n]) while the copies "
               "are stacked whole (repeat): patch i is rows i * batch to (i + 1) * batch"),
        Mutant(batched_one_index_per_chunk, "patching every copy in a chunk with the chunk's first index"),
    ],
    "get_copying_scores": [
        Mutant(copying_without_mlp0, "leaving out MLP 0 (heads after layer 0 read the embedding plus what MLP 0 "
               "adds to it)"),
        Mutant(copying_mlp0_for_layer_0, "adding MLP 0's output for the layer-0 heads too (they read the residual "
               "stream before MLP 0)"),
        Mutant(copying_sign_after_unembed, "flipping the sign after the unembedding instead of before (the "
               "unembedding has a bias)"),
        Mutant(copying_without_ln_final, "unembedding without the final LayerNorm (model.ln_final)"),
        Mutant(copying_fixed_k, "ignoring k (always the top 5)"),
    ],
    "get_attn_scores": [
        Mutant(attn_duplicate_off_by_one, "taking the duplicate source seq_len - 1 positions back (that is the "
               "induction target: the duplicate token is seq_len positions back)"),
        Mutant(attn_src_dest_swapped, "indexing the pattern as [src, dest]: patterns are [batch, head, dest (query), "
               "src (key)]"),
        Mutant(attn_dest_off_by_one, "an off-by-one in the destinations (arange(seq_len, 2 * seq_len)): the second "
               "copy is positions seq_len + 1 to 2 * seq_len"),
        Mutant(attn_mean_over_heads, "averaging over the heads too (one score per layer)", Status.WRONG_SHAPE),
        Mutant(attn_every_pair, "indexing the destinations and the sources one after the other "
               "(pattern[:, :, dest][..., src] averages every destination-source pair): index them together, "
               "pattern[:, :, dest, src], for one source per destination"),
        Mutant(attn_whole_diagonal, "averaging a whole diagonal of the pattern (pattern.diagonal(-offset)): it "
               "starts in the first copy (or at BOS); only destinations in the second copy count"),
        Mutant(attn_prev_second_copy_only, "scoring previous-token heads on the second copy only (every position "
               "after BOS has a previous token: destinations 1 to 2 * seq_len)"),
        Mutant(attn_induction_token_before, "taking the token before the first occurrence (seq_len + 1 back) as the "
               "induction source: it is the token after it, seq_len - 1 back"),
    ],
    "get_path_patch_head_to_final_resid_post": [
        Mutant(final_freezes_sender_too, "freezing the sender too (patch it after freezing every head, not before)"),
        Mutant(final_no_freezing, "not freezing the other heads (that is activation patching, not path patching)"),
        Mutant(final_caches_swapped, "swapping the caches (the sender gets its orig output, every other head its "
               "new one)"),
        Mutant(final_whole_sender_layer, "patching every head of the sender's layer instead of the sender only"),
    ],
    "get_path_patch_head_to_heads": [
        Mutant(heads_freeze_sender_too, "freezing the sender too in step 1 (patch it after freezing every head)"),
        Mutant(heads_no_freezing, "not freezing the other heads in step 1 (every path from the sender reaches the "
               "receivers)"),
        Mutant(heads_always_queries, "always patching the queries (hook_q) whatever receiver_input says"),
        Mutant(heads_whole_receiver_layer, "patching the input of every head in the receivers' layers instead of the "
               "receiver heads only"),
        Mutant(heads_inputs_from_new_cache, "patching the receivers' inputs from the new run directly (step 1 must "
               "compute them with only the sender patched)"),
        Mutant(heads_every_layer, "returning a row for every layer (senders run over the layers before the last "
               "receiver's layer only)", Status.WRONG_SHAPE),
    ],
    "logit_diff_attribution": [
        Mutant(dla_no_scale, "forgetting to divide by the final LayerNorm's scale (ln_final.hook_scale at the last "
               "position)"),
        Mutant(dla_s_minus_io, "using W_U[:, S] - W_U[:, IO] (answer_tokens[:, 0] is the IO, [:, 1] the subject)"),
        Mutant(dla_first_position, "reading the outputs at the first position instead of the last"),
        Mutant(dla_summed_over_prompts, "summing over the prompts instead of averaging"),
        Mutant(dla_attn_out_shared, "sharing each layer's attn_out equally among its heads (each head writes its own "
               "z @ W_O[layer, head])"),
    ],
    "get_attr_patch_resid_pre": [
        Mutant(attr_resid_clean_times_gradient, "multiplying the gradient by the clean activation instead of the "
               "difference clean - corrupted (the patch changes the activation by that difference)"),
        Mutant(attr_resid_corrupted_minus_clean, "taking corrupted - clean (the patch moves from the corrupted "
               "activation to the clean one: clean - corrupted)"),
        Mutant(attr_resid_no_baseline, "returning the estimated change without adding the corrupted run's metric (the "
               "exact results are the metric after the patch)"),
        Mutant(attr_resid_mean_over_prompts, "averaging over the prompts (the metric is already their mean: its "
               "gradient carries the 1 / batch, so sum)"),
        Mutant(attr_resid_post, "using resid_post instead of resid_pre"),
    ],
    "get_attr_patch_attn_head_out": [
        Mutant(attr_heads_corrupted_minus_clean, "taking corrupted - clean (the patch moves from the corrupted "
               "activation to the clean one: clean - corrupted)"),
        Mutant(attr_heads_no_baseline, "returning the estimated change without adding the corrupted run's metric (the "
               "exact results are the metric after the patch)"),
        Mutant(attr_heads_values, "attributing the values (hook_v) instead of the head outputs (hook_z)"),
        Mutant(attr_heads_head_layer, "filling the results in [head, layer] order instead of [layer, head]"),
        Mutant(attr_heads_gradient_at_clean_run, "taking the gradient on the clean run (AtP linearises around the "
               "corrupted run, where the patches are made)"),
    ],
    "get_heads_and_posns_to_keep": [
        Mutant(keep_every_position, "keeping the circuit heads at every position instead of their role's position"),
        Mutant(keep_every_listed_position, "indexing [layer, :, where, head]: every prompt keeps the positions of all "
               "prompts (index the prompts and their positions together)"),
        Mutant(keep_first_prompts_position, "using the first prompt's position for every prompt"),
        Mutant(keep_always_at_end, "keeping every role at END, ignoring seq_pos_to_keep"),
    ],
    "compute_means_by_frame": [
        Mutant(means_ignore_frames, "averaging over all prompts, ignoring their frames"),
        Mutant(means_over_positions_too, "averaging over the positions too (each position keeps its own mean)"),
        Mutant(means_first_prompt_of_frame, "using the first prompt of each frame instead of the frame's mean"),
        Mutant(means_over_heads_too, "averaging over the heads too (each head keeps its own mean)"),
    ],
    "mean_ablation_hook": [
        Mutant(hook_inverted, "inverting the mask: mean-ablating the kept heads and keeping the rest"),
        Mutant(hook_layer_0, "using layer 0's means and mask in every layer (index them with hook.layer())"),
        Mutant(hook_zero_ablation, "zero-ablating instead of putting the means"),
        Mutant(hook_every_head_at_kept_positions, "keeping every head at a position where one head is kept"),
    ],
    "circuit_faithfulness": [
        Mutant(faithfulness_inverted, "dividing the full model's logit difference by the circuit's (upside down)"),
        Mutant(faithfulness_circuit_logit_diff, "returning the circuit's logit difference without dividing by the full "
               "model's"),
        Mutant(faithfulness_per_prompt_ratios, "averaging the per-prompt ratios instead of dividing the mean logit "
               "differences"),
        Mutant(faithfulness_circuit_ablated, "mean-ablating the circuit and keeping everything else (the mask is "
               "inverted)"),
    ],
}
