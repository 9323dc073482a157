"""Chapter 5 beyond the per-exercise checks: the batched patching engine agrees with ``transformer_lens.patching``,
and the story tests of every claim the lesson makes about the IOI circuit of the shipped model."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching

from checks.ch05_patching import (
    KEEP_AT,
    LIBRARY,
    _atp_story,
    _corr,
    _ioi,
    _one_frame_labels,
    _positions,
    _roles,
    _story,
    chapter,
)
from checks.helpers import METRIC
from utils.checking import CheckFailure, Status, tolerance_for


@pytest.mark.parametrize("name", LIBRARY)
def test_reference_engine_equals_transformer_lens_patching(name, device, monkeypatch):
    """The batched engine (``fast``) and the loop reference return exactly what ``transformer_lens.patching`` returns
    (atol 1e-4 on CPU; looser on CUDA/MPS, where batch size changes the kernels)."""
    from solutions import ch05_patching as ref

    monkeypatch.setenv("TQDM_DISABLE", "1")  # the library's progress bars
    s = _ioi(device, frames=(0, 1), n_pairs=1)
    args = (s.model, s.bad_tokens, s.clean_cache, s.metric)
    atol, _ = tolerance_for(device, METRIC)
    with torch.no_grad():
        library = getattr(patching, name)(*args)
        ours, loop = getattr(ref.fast, name)(*args), getattr(ref, name)(*args)
    assert ours.shape == library.shape and ours.dtype == library.dtype and ours.device == library.device
    assert torch.allclose(ours, library, atol=atol, rtol=0), (ours - library).abs().max()
    assert torch.allclose(loop, library, atol=atol, rtol=0), (loop - library).abs().max()



@pytest.mark.parametrize("act_name", ["resid_pre", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern"])
def test_engine_equals_the_library_on_every_activation_and_chunk_size(act_name, device, monkeypatch):
    from solutions.ch05_patching import get_act_patch_batched

    monkeypatch.setenv("TQDM_DISABLE", "1")
    s = _ioi(device, frames=(2,), n_pairs=1, corruption="abc")
    args = (s.model, s.bad_tokens, s.clean_cache, s.metric)
    library = {"resid_pre": patching.get_act_patch_resid_pre, "attn_out": patching.get_act_patch_attn_out,
               "mlp_out": patching.get_act_patch_mlp_out, "z": patching.get_act_patch_attn_head_out_all_pos,
               "q": patching.get_act_patch_attn_head_q_all_pos, "k": patching.get_act_patch_attn_head_k_all_pos,
               "v": patching.get_act_patch_attn_head_v_all_pos,
               "pattern": patching.get_act_patch_attn_head_pattern_all_pos}[act_name]
    atol, _ = tolerance_for(device, METRIC)
    with torch.no_grad():
        expected = library(*args)
        for chunk_size in (1, 3, 64):
            got = get_act_patch_batched(*args, act_name, chunk_size=chunk_size)
            assert torch.allclose(got, expected, atol=atol, rtol=0), (chunk_size, (got - expected).abs().max())



def test_engine_with_out_of_place_hooks_passes(device, monkeypatch):
    """A hook may return a new tensor instead of patching its input in place (both are valid TransformerLens hooks):
    an engine that assigns what the hook returns passes with such hooks."""
    from solutions import ch05_patching as ref

    for name in ("patch_residual_component", "patch_head_vector", "patch_attn_patterns"):
        in_place = getattr(ref, name)
        monkeypatch.setattr(ref, name, lambda act, hook, *args, _hook=in_place, **kwargs: _hook(act.clone(), hook,
                                                                                                  *args, **kwargs))
    exercise = chapter.exercises["get_act_patch_batched"]
    assert exercise.check(ref.get_act_patch_batched, device) == len(exercise.public_cases(device))



def test_metric_object_matches_the_exercise():
    """``LogitDiffMetric`` (what the checkers pass) computes the chapter's ``ioi_metric``."""
    from solutions.ch05_patching import ioi_metric

    s = _ioi(torch.device("cpu"))
    for logits in (s.clean_logits, s.bad_logits):
        assert torch.allclose(s.metric(logits), ioi_metric(logits, s.data.answer_tokens, s.bad_ld, s.clean_ld))



def test_checker_rejects_a_learner_who_ignores_the_metric(device):
    """The loop checkers compare with the engine on the metric they pass: a hard-coded metric cannot pass."""
    def hard_coded(model, corrupted_tokens, clean_cache, patching_metric):
        from solutions.ch05_patching import get_act_patch_resid_pre as ref

        return ref(model, corrupted_tokens, clean_cache, lambda logits: logits[:, -1].mean())

    with pytest.raises(CheckFailure) as caught:
        chapter.exercises["get_act_patch_resid_pre"].check(hard_coded, device)
    assert caught.value.status == Status.WRONG_VALUES



@pytest.fixture
def story():
    return _story()  # skips while models/mlp4l is not shipped



def test_story_the_model_does_ioi_on_the_chapter_prompts(story):
    """§1: the model prefers the IO in both orders (the chapter's premise); on the swapped prompts the clean logit
    difference is "negative, the model now prefers the clean S"; on the ABC prompts it is "near 0"."""
    s = story
    abba = s.per_prompt[[o == "ABBA" for o in s.data.orders]].mean().item()
    baba = s.per_prompt[[o == "BABA" for o in s.data.orders]].mean().item()
    assert s.clean_ld > 2 and abba > 1 and baba > 1, (s.clean_ld, abba, baba)
    assert s.swapped_ld < 0, s.swapped_ld
    assert abs(s.abc_ld) < 0.25 * s.clean_ld, s.abc_ld  # "near 0: neither name is in the ABC prompts"



def test_story_resid_pre_names_first_then_end(story):
    """§3: "before layer 0 only the name positions matter; by the last layers everything sits at END"."""
    s = story
    names, end = _one_frame_labels(s)
    resid_pre = s.block[0]
    others = [p for p in range(resid_pre.shape[1]) if p not in names]
    assert resid_pre[0, sorted(names)].max() > 0.5 and resid_pre[0, others].abs().max() < 0.1, resid_pre[0]
    assert resid_pre[-1, end] > 0.9 and resid_pre[-1, :end].abs().max() < 0.1, resid_pre[-1]
    # chapter 6, section 5: "patching the residual stream at END before layer 2 brings back the whole clean answer"
    assert resid_pre[2, end] > 0.9, resid_pre[2]



def test_story_top_head_is_in_layer_0_looks_at_s2_and_moves_it_through_its_values(story):
    """§10, "Who knows the subject" / "Who writes the answer": the head with the largest effect sits in layer 0 and
    attends from END to S2; patching its values alone recovers about as much as patching its output."""
    s = story
    (layer, head), value = s.important[0], s.head_out.max().item()
    assert layer == 0 and value >= 0.5, s.head_out
    assert s.end_attention[2, layer, head] >= 0.5 and s.end_attention[2, layer, head] == s.end_attention[
        :, layer, head].max(), s.end_attention[:, layer, head]
    z, q, k, v, pattern = s.every[:, layer, head].tolist()
    assert v >= 0.8 * z and max(abs(q), abs(k), abs(pattern)) < 0.1, (z, q, k, v, pattern)



def test_story_previous_token_and_induction_heads_but_no_duplicate_token_head(story):
    """§10: "The model has previous-token and induction heads ... but no duplicate-token head"."""
    s = story
    assert s.role_scores["prev"].max() >= 0.5 and s.role_scores["induction"].max() >= 0.5, s.role_scores
    assert s.role_scores["duplicate"].max() < 0.1, s.role_scores["duplicate"]



def test_story_top_head_acts_mostly_through_the_logits_path_and_the_first_mlp(story):
    """§10, "Who writes the answer": path patching to the logits puts most of the top head's effect there; its own
    direct logit attribution is small; patching the first MLP's output at END recovers most of the answer."""
    s = story
    layer, head = s.important[0]
    assert s.direct[layer, head] >= 0.5, s.direct
    assert s.head_dla[layer, head] < 0.25 * s.clean_ld, (s.head_dla, s.clean_ld)
    _, end = _one_frame_labels(s)
    assert s.block[2, 0, end] >= 0.5, s.block[2, :, end]



def test_story_layer_1_heads_are_induction_heads_that_look_at_the_earlier_names(story):
    """§10, "Who knows the subject": the top head is a subject mover (§8's roles); "the other important heads, all in
    layer 1, *are* its induction heads: each scores at least 0.5 on repeated tokens. In the IOI prompts they look from
    END at the two earlier names, IO and S1, far more than at S2"."""
    s = story
    (top_layer, top_head), *others = s.important
    roles = _roles(s)
    assert roles[top_layer, top_head] == "subject mover", roles
    assert others, s.important
    for layer, head in others:
        names_before = s.end_attention[0, layer, head] + s.end_attention[1, layer, head]
        assert layer == 1 and names_before > 2 * s.end_attention[2, layer, head], (layer, head, s.end_attention)
        assert s.role_scores["induction"][layer, head] >= 0.5, (layer, head, s.role_scores["induction"])



def test_story_the_mlps_write_the_answer_and_no_head_writes_much(story):
    """§10, "Who writes the answer": "The MLPs. Direct logit attribution puts most of the logit difference on the
    MLPs' outputs at END, and no head writes more than a small share of it directly"."""
    s = story
    assert s.mlp_dla.sum() > 0.5 * s.clean_ld, (s.mlp_dla, s.clean_ld)
    assert s.head_dla.abs().max() < 0.15 * s.clean_ld, (s.head_dla, s.clean_ld)



def test_story_name_copying_heads_write_against_the_answer_yet_help(story):
    """§10: "The layer-1 heads that copy names write *against* the answer directly (a negative direct logit
    attribution: negative name movers), yet patching each of them recovers part of the answer (section 5)"."""
    s = story
    copiers = [(layer, h) for layer, h in s.important[1:] if s.copying[0, layer, h] >= 0.3]
    assert copiers, s.copying
    for layer, h in copiers:
        assert _roles(s)[layer, h] == "negative name mover", _roles(s)
        assert s.head_dla[layer, h] < 0 < s.head_out[layer, h], (layer, h, s.head_dla, s.head_out)



def test_story_much_less_goes_through_the_name_movers_inputs(story):
    """§10: "Much less goes through the name movers' queries, keys and values" than through the top head's path to
    the logits."""
    from solutions.ch05_patching import get_path_patch_head_to_heads

    s = story
    (top_layer, top_head), *_ = s.important
    movers = [head for head, role in _roles(s).items() if role.endswith("name mover") and head[0] > 0]
    with torch.no_grad():
        via = {kind: 1 - get_path_patch_head_to_heads(movers, kind, s.model, s.abc_metric, s.data.tokens,
                                                      s.abc_cache, s.clean_cache).cpu() for kind in "qkv"}
    largest = max(table.max().item() for table in via.values())
    assert largest < 0.5 * s.direct[top_layer, top_head], (via, s.direct)



def test_story_the_circuit_keeps_most_of_the_logit_difference(story):
    """§9: the important heads, each kept where its role works (everything else mean-ablated per frame over ABC
    prompts), keep at least 80% of the full model's logit difference; with every head mean-ablated, far less is
    left."""
    from solutions import ch05_patching as ref

    s = story
    with torch.no_grad():
        means = ref.compute_means_by_frame(s.abc_cache, torch.tensor(s.data.frames))
        circuit = {}
        for head, role in _roles(s).items():
            circuit.setdefault(role, []).append(head)
        keep_at = {**KEEP_AT, "other": "end", "subject mover": "end", "negative name mover": "end"}
        keep = ref.get_heads_and_posns_to_keep(_positions(s.data), circuit, keep_at, s.model.cfg.n_layers,
                                               s.model.cfg.n_heads, s.data.tokens.shape[1])
        kept = ref.circuit_faithfulness(s.model, s.data.tokens, s.data.answer_tokens, means, keep)
        none = ref.circuit_faithfulness(s.model, s.data.tokens, s.data.answer_tokens, means, torch.zeros_like(keep))
    assert kept >= 0.8 and none < 0.5, (kept, none)



def test_story_attribution_patching_agrees_but_gets_the_layer_1_heads_sign_wrong(story):
    """§11: the correlations with the exact results are high (over 0.9 for resid_pre and for the heads), "but ... the
    estimate gets the layer-1 heads' *sign* wrong" (each important layer-1 head: exact > 0, estimate < 0)."""
    resid, heads = _atp_story()
    assert _corr(story.block[0], resid) > 0.9 and _corr(story.head_out, heads) > 0.9, (resid, heads)
    for layer, h in story.important[1:]:
        assert layer == 1 and story.head_out[layer, h] > 0 > heads[layer, h], (layer, h, story.head_out, heads)



def test_story_saturated_attention_atp_misses_q_and_k_and_atp_star_fixes_the_sign(story):
    """§11: the top head attends from END to S2 with nearly all of its attention; "Plain AtP gets both small patches
    wrong, down to the sign; AtP* recovers their sign and part of their size"."""
    from solutions.ch05_patching import atp_qk

    s = story
    (layer, head), *_ = s.important
    assert s.end_attention[2, layer, head] > 0.9, s.end_attention[:, layer, head]
    with torch.no_grad():
        qk = atp_qk(s.model, s.swapped.tokens, s.clean_cache, s.metric, layer, head)
    for i, kind in [(1, "q"), (2, "k")]:
        exact, (plain, star) = s.every[i, layer, head].item(), qk[kind]
        assert exact > 0 > plain and 0 < star <= exact and abs(star - exact) < abs(plain - exact), (kind, exact, qk)



def test_story_filter_then_verify_finds_positions_from_a_short_list_heads_need_a_longer_one(story):
    """§11: AtP's top 2k positions, verified exactly, are the exact sweep's top k (k = the number of important heads);
    for heads the top 2k miss one, the top 3k find them all."""
    from solutions.ch05_patching import filter_then_verify

    s = story
    resid, heads = _atp_story()
    k = len(s.important)

    def top(table):
        return {divmod(int(i), table.shape[1]) for i in table.flatten().topk(k).indices}

    with torch.no_grad():
        found = {n: set(filter_then_verify(s.model, s.one_swapped.tokens, s.one_cache, s.one_metric, resid,
                                           "resid_pre", k, n)) for n in (2 * k,)}
        assert found[2 * k] == top(s.block[0]), found
        found = {n: set(filter_then_verify(s.model, s.swapped.tokens, s.clean_cache, s.metric, heads, "z", k, n))
                 for n in (2 * k, 3 * k)}
    assert found[2 * k] != top(s.head_out) and found[3 * k] == top(s.head_out), (found, top(s.head_out))
