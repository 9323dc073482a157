"""Checkers for chapter 5 (activation patching and the IOI circuit), plus tests that the shipped model tells the
chapter's story and that the patching engine returns exactly what ``transformer_lens.patching`` returns.

Cases are built from the shipped ``mlp4l`` (and ``attn2l``, to catch hard-coded layer and head counts): small IOI
datasets from the chapter's frames (``utils.data``), their names-swapped and ABC corruptions, real caches and
hook points. The patching metric is ``utils.data.LogitDiffMetric``: a picklable object, so that it reaches the
grading worker (a closure cannot). The loop exercises (``get_act_patch_*``) are compared with the chapter's batched
engine (``fast``), which returns the same numbers in a fraction of the forward passes; a test below proves the
engine equal to the loops and to the library.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
from transformer_lens import ActivationCache

from checks.helpers import METRIC, chapter_model, seeded, shipped_model
from checks.mutants.ch05_patching import MUTANTS, NO_START_AT_LAYER
from utils.corpus import TRAIN_NAMES
from utils.checkers import Chapter
from utils.checking import Case, CheckFailure, Status, clone_inputs, count_forward_passes
from utils.data import ChunkBoundMetric, LogitDiffMetric, ioi_same_length, repeated_tokens, single_token_names

chapter = Chapter("ch05_patching", mutants=MUTANTS)

# Patching results are a normalised logit difference computed from a full forward pass (~1e-6 apart between the
# batched engine and the loop on CPU: the same arithmetic, in batches of another size); other devices reorder
# reductions, and a small logit-difference baseline amplifies their noise.


def _frames():
    from solutions.ch05_patching import FRAMES

    return FRAMES



def _ld(logits, answer_tokens):
    answers = logits[:, -1].gather(-1, answer_tokens)
    return (answers[:, 0] - answers[:, 1]).mean().item()


@functools.cache
def _ioi(device, name="mlp4l", frames=(0,), n_pairs=1, seed=0, corruption="swapped", cut=None):
    """A small IOI set: tokens, corrupted tokens, caches, a LogitDiffMetric (0 corrupted, 1 clean), datasets.
    ``cut`` keeps the first ``cut`` tokens of every prompt (a cheaper case for the slowest loops)."""
    model = shipped_model(name, device)
    names = single_token_names(model, TRAIN_NAMES)
    data = ioi_same_length(model, [_frames()[i] for i in frames], names, n_pairs=n_pairs, seed=seed)
    corrupted = data.swapped(model) if corruption == "swapped" else data.abc(model, names, seed=seed)
    tokens, bad = data.tokens, corrupted.tokens
    if cut is not None:
        tokens, bad = tokens[:, :cut], bad[:, :cut]
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(tokens)
        bad_logits, bad_cache = model.run_with_cache(bad)
    clean_ld, bad_ld = _ld(clean_logits, data.answer_tokens), _ld(bad_logits, data.answer_tokens)
    metric = LogitDiffMetric(data.answer_tokens, bad_ld, clean_ld)
    return SimpleNamespace(model=model, data=data, corrupted=corrupted, tokens=tokens, bad_tokens=bad,
                           clean_cache=clean_cache, bad_cache=bad_cache, metric=metric, clean_ld=clean_ld,
                           bad_ld=bad_ld, clean_logits=clean_logits, bad_logits=bad_logits, names=names)


def _label(s, what):
    frames = "frame" if len({*s.data.frames}) == 1 else "frames"
    return f"{s.model.cfg.n_layers}-layer model, {len(s.tokens)} IOI prompts ({len({*s.data.frames})} {frames}), " \
           f"{s.tokens.shape[1]} tokens, {what}"


def _judge_against(fast_name):
    """Compare a loop exercise with the batched engine (same numbers, far fewer forward passes; a test below proves
    them equal), memoized as the case's reference output like every reference."""
    def judge(attempt):
        from solutions.ch05_patching import fast

        if attempt.case.reference_output is None:
            case = attempt.case
            case.reference_output = getattr(fast, fast_name)(*clone_inputs(case.args), **clone_inputs(case.kwargs))
        attempt.compare()
    return judge


# ------------------------------------------------------------------------------------------------ metric
@chapter.exercise(tol=METRIC)
def ioi_metric(device):
    s = _ioi(device)
    yield Case((s.clean_logits, s.data.answer_tokens, s.bad_ld, s.clean_ld), label="the clean logits (1 expected)")
    big = _ioi(device, frames=(1, 2), n_pairs=2, corruption="abc")
    yield Case((big.bad_logits, big.data.answer_tokens, big.bad_ld, big.clean_ld),
               label="the ABC logits, ABC baseline (0 expected)")
    s2 = _ioi(device, frames=(3,), n_pairs=2, seed=1)
    yield Case((s2.bad_logits, s2.data.answer_tokens, 1.5, s2.clean_ld),
               label="swapped logits, corrupted_logit_diff=1.5")
    yield Case((torch.randn(3, 5, 40, generator=seeded(0)).to(device),
                torch.tensor([[3, 7], [0, 1], [39, 2]], device=device), -2.0, 4.0),
               label="random logits [3, 5, 40], baselines -2 and 4")


# ------------------------------------------------------------------------------------------------ hooks
def _hook(model, name):
    return model.hook_dict[name]


@chapter.exercise(dims="batch pos d_model")
def patch_residual_component(device):
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    name = "blocks.1.hook_resid_pre"
    yield Case((s.bad_cache[name], _hook(s.model, name), s.data.positions.s2[0].item(), s.clean_cache),
               label=f"{name} at S2 (position {s.data.positions.s2[0].item()}), 4 prompts")
    name = "blocks.2.hook_mlp_out"
    yield Case((s.bad_cache[name], _hook(s.model, name), 0, s.clean_cache), label=f"{name} at position 0")
    name = "blocks.0.hook_attn_out"
    last = s.tokens.shape[1] - 1
    yield Case((s.bad_cache[name], _hook(s.model, name), last, s.clean_cache), label=f"{name} at position {last}")


@chapter.exercise(dims="batch pos head_index d_head")
def patch_head_vector(device):
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    for name, head in [("blocks.1.attn.hook_z", 2), ("blocks.0.attn.hook_q", 0), ("blocks.3.attn.hook_v", 3)]:
        yield Case((s.bad_cache[name], _hook(s.model, name), head, s.clean_cache), label=f"{name}, head {head}")


@chapter.exercise(dims="batch head_index pos_q pos_k")
def patch_attn_patterns(device):
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    for name, head in [("blocks.1.attn.hook_pattern", 1), ("blocks.0.attn.hook_pattern", 3)]:
        yield Case((s.bad_cache[name], _hook(s.model, name), head, s.clean_cache), label=f"{name}, head {head}")


# ------------------------------------------------------------------------------------------------ loops
def _short(device):
    """Two prompts cut to 5 tokens, "<BOS> Friends <A> and <B>", names swapped in the corrupted run: the two names
    differ, and the logit difference of the last position moves by 0.3 between the runs (a well-scaled metric)."""
    return _ioi(device, frames=(2,), seed=5, cut=5)


def _loop_cases(device, *, chapter_model=True, other_model=True):
    """(model, corrupted tokens, clean cache, metric) cases for the loop exercises, which run one forward pass per
    patch: the chapter's mlp4l on prompts cut to 5 tokens (``chapter_model``: two names differ; every known mistake
    fails there, at a fraction of the passes), then attn2l (``other_model``: 2 layers, 2 heads, prompts of another
    length: hard-coded layer, head or position counts fail). Grading runs the learner's loops on every case, so the
    cases stay few and small; the chapter's own prompts are longer than either, so a length copied from the notebook
    fails too."""
    if chapter_model:
        s = _short(device)
        yield Case((s.model, s.bad_tokens, s.clean_cache, s.metric),
                   label=_label(s, "swapped names (prompts cut short)"))
    if other_model:
        s = _ioi(device, name="attn2l", frames=(1,), corruption="abc", cut=7)
        yield Case((s.model, s.bad_tokens, s.clean_cache, s.metric),
                   label="attn2l, " + _label(s, "ABC names (prompts cut short)"))


@chapter.exercise(dims="layer pos", tol=METRIC, judge=_judge_against("get_act_patch_resid_pre"))
def get_act_patch_resid_pre(device):
    yield from _loop_cases(device)


@chapter.exercise(dims="act layer pos", tol=METRIC, judge=_judge_against("get_act_patch_block_every"))
def get_act_patch_block_every(device):
    yield from _loop_cases(device, other_model=False)  # attn2l has no MLPs


# The loops over heads run on attn2l alone (4 and 20 passes; mlp4l would take 16 and 80): every known mistake fails
# there, and so does a head or layer count copied from the chapter's model. The batched engine patches heads on both.
@chapter.exercise(dims="layer head", tol=METRIC, judge=_judge_against("get_act_patch_attn_head_out_all_pos"))
def get_act_patch_attn_head_out_all_pos(device):
    yield from _loop_cases(device, chapter_model=False)


@chapter.exercise(dims="act layer head", tol=METRIC, judge=_judge_against("get_act_patch_attn_head_all_pos_every"))
def get_act_patch_attn_head_all_pos_every(device):
    yield from _loop_cases(device, chapter_model=False)


# ------------------------------------------------------------------------------------------------ batched engine
def _bounded(s, chunk_size=32, corrupted=None):
    """The case's metric, bounded to ``chunk_size`` patches per forward pass (``utils.data.ChunkBoundMetric``);
    ``corrupted`` replaces the corrupted baseline (a metric that is not 0 on the corrupted run)."""
    batch, pos = s.bad_tokens.shape
    return ChunkBoundMetric(s.data.answer_tokens, s.bad_ld if corrupted is None else corrupted, s.clean_ld,
                            max_floats=chunk_size * batch * pos * s.model.cfg.d_vocab)


class PassCountCase(Case):
    """A case on which the judge also counts the engine's forward passes (see ``_judge_batched``)."""


def _judge_batched(attempt):
    """The engine's numbers, then (on a :class:`PassCountCase`) where its forward passes start: an engine that runs
    every chunk from the tokens returns the right numbers, at the cost of the layers before each patch. The passes
    are counted where the learner's code runs (in the grading worker too: ``count_forward_passes``)."""
    attempt.compare()
    if not isinstance(attempt.case, PassCountCase):
        return
    _, passes = count_forward_passes(attempt.fn, *clone_inputs(attempt.case.args), **clone_inputs(attempt.case.kwargs))
    first, last = passes.first_block, passes.last_block
    if last and first >= last:
        raise CheckFailure(Status.WRONG_VALUES, f"the right numbers, but all {last} forward passes of your engine ran "
                           f"layer 0, including those that patch a later layer: {NO_START_AT_LAYER}")


@chapter.exercise(dims="layer index", tol=METRIC, judge=_judge_batched)
def get_act_patch_batched(device):
    s = _short(device)  # the loops' case: 2 or 3 positions per layer change the run, 4 heads
    rest = (s.model, s.bad_tokens, s.clean_cache)
    yield Case((*rest, _bounded(s, 2), "resid_pre"), {"chunk_size": 2},
               label=_label(s, 'act_name="resid_pre", chunk_size=2'))
    yield Case((*rest, _bounded(s), "z"), label=_label(s, 'act_name="z", default chunk_size'))
    yield Case((*rest, _bounded(s, 3), "pattern"), {"chunk_size": 3},
               label=_label(s, 'act_name="pattern", chunk_size=3'))
    yield Case((*rest, _bounded(s, 64), "mlp_out"), {"chunk_size": 64},
               label=_label(s, 'act_name="mlp_out", chunk_size=64'))
    t = _ioi(device, name="attn2l", frames=(2,), n_pairs=2, corruption="abc")
    rest = (t.model, t.bad_tokens, t.clean_cache)
    shifted = _bounded(t, 7, corrupted=t.bad_ld - 2.0)  # the corrupted run scores 2 / (clean - corrupted + 2)
    yield Case((*rest, shifted, "attn_out"), {"chunk_size": 7},
               label="attn2l, " + _label(t, f'ABC names, act_name="attn_out", chunk_size=7, a metric that is '
                                            f"{2 / (t.clean_ld - t.bad_ld + 2):.2f} (not 0) on the corrupted run"))
    yield Case((*rest, _bounded(t, 1), "k"), {"chunk_size": 1},
               label="attn2l, " + _label(t, 'ABC names, act_name="k", chunk_size=1'))
    yield PassCountCase((*rest, _bounded(t), "v"), label="attn2l, " + _label(t, 'act_name="v"'))


# ------------------------------------------------------------------------------------------------ attribution patching
def _attribution_cases(device):
    """As the loop exercises' cases, plus one whose metric is not 0 on the corrupted run."""
    yield from _loop_cases(device)
    s = _ioi(device, frames=(3,), n_pairs=2, seed=4)
    shifted = LogitDiffMetric(s.data.answer_tokens, s.bad_ld - 2.0, s.clean_ld)
    yield Case((s.model, s.bad_tokens, s.clean_cache, shifted),
               label=_label(s, f"a metric that is {2 / (s.clean_ld - s.bad_ld + 2):.2f} (not 0) on the corrupted run"))


@chapter.exercise(dims="layer pos", tol=METRIC)
def get_attr_patch_resid_pre(device):
    yield from _attribution_cases(device)


@chapter.exercise(dims="layer head", tol=METRIC)
def get_attr_patch_attn_head_out(device):
    yield from _attribution_cases(device)


# ------------------------------------------------------------------------------------------------ roles
def _name_tokens(model, names):
    return torch.tensor([model.to_single_token(" " + n) for n in names], device=model.cfg.device)


@chapter.exercise(dims="sign layer head")
def get_copying_scores(device):
    model = chapter_model(chapter, device)
    names = single_token_names(model, TRAIN_NAMES)
    yield Case((model, _name_tokens(model, names)), label=f"mlp4l, {len(names)} training names, default k=5")
    yield Case((model, _name_tokens(model, names[::3]), 1), label=f"mlp4l, {len(names[::3])} names, k=1")
    yield Case((model, _name_tokens(model, names[1::2]), 20), label=f"mlp4l, {len(names[1::2])} names, k=20")


@functools.cache
def _rep_cache(device, name, seq_len, batch, seed):
    model = shipped_model(name, device)
    with torch.no_grad():
        _, cache = model.run_with_cache(repeated_tokens(model, seq_len, batch, seed=seed),
                                        names_filter=lambda n: n.endswith("hook_pattern"))
    return cache


@chapter.exercise(dims="layer head")
def get_attn_scores(device):
    for name, seq_len, batch in [("mlp4l", 20, 4), ("attn2l", 12, 3)]:
        cache = _rep_cache(device, name, seq_len, batch, 0)
        for kind in ("duplicate", "induction", "prev"):
            yield Case((cache, seq_len, kind), label=f"{name}, [BOS] + r + r with seq_len={seq_len}, batch={batch}, "
                                                    f"head_type={kind!r}")


# ------------------------------------------------------------------------------------------------ path patching
@chapter.exercise(dims="layer head", tol=METRIC)
def get_path_patch_head_to_final_resid_post(device):
    s = _ioi(device, corruption="abc")
    yield Case((s.model, s.metric, s.tokens, s.bad_cache, s.clean_cache), label=_label(s, "ABC sender outputs"))
    t = _ioi(device, name="attn2l", frames=(2,), n_pairs=1)
    yield Case((t.model, t.metric, t.tokens, t.bad_cache, t.clean_cache),
               label="attn2l, " + _label(t, "swapped-names sender outputs"))


@chapter.exercise(dims="layer head", tol=METRIC)
def get_path_patch_head_to_heads(device):
    s = _ioi(device, corruption="abc")
    rest = (s.model, s.metric, s.tokens, s.bad_cache, s.clean_cache)
    yield Case(([(1, 3), (2, 0)], "k", *rest), label=_label(s, 'receivers 1.3 and 2.0, receiver_input="k"'))
    t = _ioi(device, name="attn2l", frames=(2,), n_pairs=1)
    rest = (t.model, t.metric, t.tokens, t.bad_cache, t.clean_cache)
    yield Case(([(1, 0)], "q", *rest), label="attn2l, " + _label(t, 'swapped names, receiver 1.0, receiver_input="q"'))
    yield Case(([(1, 1)], "v", *rest), label="attn2l, " + _label(t, 'swapped names, receiver 1.1, receiver_input="v"'))


# ------------------------------------------------------------------------------------ direct logit attribution
@chapter.exercise(tol=METRIC)
def logit_diff_attribution(device):
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    yield Case((s.model, s.clean_cache, s.data.answer_tokens), label=_label(s, "the clean cache"))
    t = _ioi(device, frames=(2, 3), n_pairs=2, corruption="abc", seed=2)
    yield Case((t.model, t.bad_cache, t.data.answer_tokens), label=_label(t, "the ABC cache, the clean answers"))


# ------------------------------------------------------------------------------------------------ mean ablation
def _positions(data):
    return {"IO": data.positions.io, "S1": data.positions.s1, "S1+1": data.positions.s1 + 1, "S2": data.positions.s2,
            "end": data.positions.end}


KEEP_AT = {"s2 inhibition": "end", "name mover": "end", "induction": "S2", "duplicate token": "S2",
           "previous token": "S1+1"}


@chapter.exercise(dims="layer batch pos head")
def get_heads_and_posns_to_keep(device):
    s = _ioi(device, frames=(0, 1, 2, 3), n_pairs=1)
    seq_len = s.tokens.shape[1]
    circuit = {"s2 inhibition": [(0, 0)], "name mover": [(1, 0), (1, 2)], "induction": [(1, 3)],
               "previous token": [(0, 1)]}
    yield Case((_positions(s.data), circuit, KEEP_AT, 4, 4, seq_len), label="4 roles, 8 prompts of 4 frames, mlp4l")
    gpt2_like = {"name mover": [(9, 9), (10, 0)], "duplicate token": [(0, 1), (3, 0)], "previous token": [(2, 2)]}
    yield Case((_positions(s.data), gpt2_like, KEEP_AT, 12, 12, seq_len),
               label="GPT-2-sized (12 layers, 12 heads), 3 roles")
    yield Case((_positions(s.data), {"name mover": [(2, 1)]}, {"name mover": "IO"}, 3, 2, seq_len),
               label="one role kept at the IO, 3 layers, 2 heads")


def _frames_tensor(data, device):
    return torch.tensor(data.frames, device=device)


@chapter.exercise(dims="layer batch pos head d_head")
def compute_means_by_frame(device):
    s = _ioi(device, frames=(0, 1, 2, 3), n_pairs=1, corruption="abc")
    yield Case((s.bad_cache, _frames_tensor(s.data, device)), label="ABC cache of 8 prompts, 4 frames in blocks of 2")
    t = _ioi(device, frames=(1, 3), n_pairs=2, corruption="abc", seed=3)
    order = torch.tensor([0, 4, 1, 5, 2, 6, 3, 7], device=device)  # interleave the two frames' prompts
    cache = ActivationCache({k: v[order] for k, v in t.bad_cache.items()}, t.model)
    yield Case((cache, _frames_tensor(t.data, device)[order]), label="8 prompts of 2 frames, interleaved")


def _random_means_keep(device, s, seed):
    generator = seeded(seed)
    z_shape = s.bad_cache["z", 0].shape
    means = torch.randn(s.model.cfg.n_layers, *z_shape, generator=generator).to(device)
    keep = (torch.rand(s.model.cfg.n_layers, *z_shape[:-1], generator=generator) < 0.3).to(device)
    return means, keep


@chapter.exercise(dims="batch pos head d_head")
def mean_ablation_hook(device):
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    means, keep = _random_means_keep(device, s, 0)
    for name in ("blocks.1.attn.hook_z", "blocks.3.attn.hook_z", "blocks.0.attn.hook_z"):
        yield Case((s.clean_cache[name], _hook(s.model, name), means, keep), label=f"{name}, random means, 30% kept")


@chapter.exercise(tol=METRIC)
def circuit_faithfulness(device):
    s = _ioi(device, frames=(0, 1, 2, 3), n_pairs=1)
    abc = _ioi(device, frames=(0, 1, 2, 3), n_pairs=1, corruption="abc")
    from solutions.ch05_patching import compute_means_by_frame as means_of
    from solutions.ch05_patching import get_heads_and_posns_to_keep as keep_of

    means = means_of(abc.bad_cache, _frames_tensor(abc.data, device))
    seq_len = s.tokens.shape[1]
    keep = keep_of(_positions(s.data), {"s2 inhibition": [(0, 0)], "name mover": [(1, 0), (1, 1), (1, 2)]}, KEEP_AT,
                   4, 4, seq_len)
    yield Case((s.model, s.tokens, s.data.answer_tokens, means, keep), label="8 prompts, 4 heads kept at END")
    keep_more = keep_of(_positions(s.data), {"name mover": [(1, 2), (2, 0)], "previous token": [(0, 1)]}, KEEP_AT,
                        4, 4, seq_len)
    yield Case((s.model, s.tokens, s.data.answer_tokens, means, keep_more), label="8 prompts, another circuit")
    random_means, random_keep = _random_means_keep(device, s, 1)
    yield Case((s.model, s.tokens, s.data.answer_tokens, random_means[:, :8], random_keep[:, :8]),
               label="8 prompts, random means and mask")


# ------------------------------------------------------------------------------------------------ the engine
LIBRARY = ["get_act_patch_resid_pre", "get_act_patch_block_every", "get_act_patch_attn_head_out_all_pos",
           "get_act_patch_attn_head_all_pos_every"]


# ------------------------------------------------------------------------------------------------ the story
# What the chapter's prose says about the shipped model, computed as its cells compute it (with the reference
# solutions, on CPU). Each test names the section and the sentence it checks; a retrained model that breaks one makes
# the test fail, naming the sentence that became false.
@functools.cache
def _story():
    from solutions import ch05_patching as ref

    model = shipped_model("mlp4l", torch.device("cpu"))
    names = single_token_names(model, TRAIN_NAMES)
    data = ioi_same_length(model, ref.FRAMES, names, n_pairs=2, seed=0)
    swapped, abc = data.swapped(model), data.abc(model, names)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(data.tokens)
        swapped_ld = _ld(model(swapped.tokens), data.answer_tokens)
        abc_logits, abc_cache = model.run_with_cache(abc.tokens)
        clean_ld, abc_ld = _ld(clean_logits, data.answer_tokens), _ld(abc_logits, data.answer_tokens)
        per_prompt = clean_logits[:, -1].gather(-1, data.answer_tokens)
        per_prompt = per_prompt[:, 0] - per_prompt[:, 1]
        metric = LogitDiffMetric(data.answer_tokens, swapped_ld, clean_ld)
        abc_metric = LogitDiffMetric(data.answer_tokens, abc_ld, clean_ld)
        one = ioi_same_length(model, ref.FRAMES[:1], names, n_pairs=4, seed=1)
        _, one_cache = model.run_with_cache(one.tokens)
        one_swapped = one.swapped(model)
        one_metric = LogitDiffMetric(one.answer_tokens, _ld(model(one_swapped.tokens), one.answer_tokens),
                                     _ld(model(one.tokens), one.answer_tokens))
        block = ref.fast.get_act_patch_block_every(model, one_swapped.tokens, one_cache, one_metric).cpu()
        every = ref.fast.get_act_patch_attn_head_all_pos_every(model, swapped.tokens, clean_cache, metric).cpu()
        rows = torch.arange(len(data))
        end_attention = torch.stack([torch.stack([
            clean_cache["pattern", layer][rows, :, data.positions.end, where].mean(0)
            for layer in range(model.cfg.n_layers)]) for where in (data.positions.io, data.positions.s1,
                                                                   data.positions.s2)]).cpu()
        copying = ref.get_copying_scores(model, _name_tokens(model, names)).cpu()
        rep = repeated_tokens(model, 20, batch=8, seed=0)
        _, rep_cache = model.run_with_cache(rep, names_filter=lambda n: n.endswith("hook_pattern"))
        role_scores = {k: ref.get_attn_scores(rep_cache, 20, k).cpu() for k in ("duplicate", "prev", "induction")}
        direct = 1 - ref.get_path_patch_head_to_final_resid_post(model, abc_metric, data.tokens, abc_cache,
                                                                 clean_cache).cpu()
        head_dla, mlp_dla = (t.cpu() for t in ref.logit_diff_attribution(model, clean_cache, data.answer_tokens))
    head_out = every[0]
    ranked = sorted(((head_out[layer, h].item(), (layer, h)) for layer in range(model.cfg.n_layers)
                     for h in range(model.cfg.n_heads)), reverse=True)
    important = [head for value, head in ranked if value >= 0.1] or [head for _, head in ranked[:3]]
    return SimpleNamespace(**locals())


def _one_frame_labels(s):
    """Positions of the one-frame dataset: the names (N1, N2, S2) and END."""
    pos = s.one.positions
    return {int(pos.io[0]), int(pos.s1[0]), int(pos.s2[0])}, int(pos.end[0])


def _roles(s):
    """§8: each important head's role, as the chapter's ``role_of`` names it."""
    roles = {}
    for layer, h in s.important:
        attention = s.end_attention[:, layer, h]  # from END to IO, S1, S2
        if attention.sum() >= 0.3:
            mover = "name mover" if s.head_dla[layer, h] > 0 else "negative name mover"
            roles[layer, h] = "subject mover" if int(attention.argmax()) == 2 else (
                mover if s.copying[0, layer, h] >= 0.3 else "other")
        else:
            kinds = [("induction", "induction"), ("duplicate", "duplicate token"), ("prev", "previous token")]
            roles[layer, h] = next((role for kind, role in kinds if s.role_scores[kind][layer, h] >= 0.3), "other")
    return roles


# ------------------------------------------------------------------------------------------------ §11 attribution
@functools.cache
def _atp_story():
    from solutions import ch05_patching as ref

    s = _story()
    with torch.no_grad():
        resid = ref.get_attr_patch_resid_pre(s.model, s.one_swapped.tokens, s.one_cache, s.one_metric).cpu()
        heads = ref.get_attr_patch_attn_head_out(s.model, s.swapped.tokens, s.clean_cache, s.metric).cpu()
    return resid, heads


def _corr(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
