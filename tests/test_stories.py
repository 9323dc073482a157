"""Story tests: what the chapters' prose says about the shipped models is true of the committed weights.

Every number a chapter states about a model is printed by one of its cells; what the prose says in words
("most bars are positive", "the previous-token head sits in layer 0", "both layer-1 heads attend more to the
answer than to the subject") is asserted here, on ``attn2l`` (chapters 1-4), so that retraining a model makes a
test fail instead of a sentence silently false. Each test names the chapter and section of the claim it checks.
The computations mirror the chapters' cells and use the reference solutions, or the course's own measurement
where a chapter's exercise computes one (``utils.data.induction_scores``: chapter 4's ``induction_scores`` is tested
to agree with it); no head index is hard-coded beyond what a chapter's own cell hard-codes.
"""

from __future__ import annotations

import functools
from functools import partial

import pytest
import torch

from transformer_lens import ActivationCache
from transformer_lens.utilities import get_act_name

from solutions import ch01_tokenization as ch1
from solutions import ch02_caching as ch2
from solutions import ch03_hooks as ch3
from solutions import ch04_induction as ch4
from tests.framework import shipped_model
from utils.data import (
    induction_scores,
    ioi_dataset,
    non_special_ids,
    repeat_losses,
    repeated_tokens,
    zero_ablation_hook,
)
from utils.models import MODELS_DIR

PROMPT = "When Mary and John went to the store, John gave a drink to"


def attn2l():
    """The cached shipped model (skips while it is not shipped)."""
    return shipped_model("attn2l", torch.device("cpu"))


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_attn2l_is_the_model_the_chapters_describe():
    """Chapters 1-4, intro: 2 layers, attention only, d_model 128, 2 heads of d_head 64, a 2048-token vocabulary,
    a context of 128 tokens."""
    cfg = attn2l().cfg
    assert (cfg.n_layers, cfg.attn_only, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_vocab, cfg.n_ctx) == (
        2, True, 128, 2, 64, 2048, 128)


# --------------------------------------------------------------------------------------------------------
# Chapter 1
# --------------------------------------------------------------------------------------------------------
def test_ch1_training_words_are_single_tokens_only_with_their_space():
    """§2: names, places and objects are single tokens with their leading space, pieces without it;
    "interpretability" falls apart into many pieces."""
    model = attn2l()
    for word in ["Mary", "store", "necklace"]:
        assert len(model.to_str_tokens(" " + word, prepend_bos=False)) == 1, word
    for word in ["store", "necklace"]:  # the words the cell prints without their space
        assert len(model.to_str_tokens(word, prepend_bos=False)) > 1, word
    assert len(model.to_str_tokens(" interpretability", prepend_bos=False)) >= 5


def test_ch1_held_out_names_make_the_model_less_sure():
    """§4: on "Victoria and Arthur" (held out of the IOI sentences) the model is much less sure than on
    "Mary and John"."""
    model = attn2l()
    top = [model(p)[0, -1].softmax(-1).max().item()
           for p in [PROMPT, "When Victoria and Arthur went to the park, Arthur gave a ball to"]]
    assert top[0] > 0.9 and top[1] < 0.75, top


def test_ch1_template_tokens_are_easy_free_choices_costly_and_bos_matters():
    """§4 figure: with BOS, the tokens the template determines (" to", " the", " a") are near 0 and the free
    choices (which name, place, object) are costly; without BOS the model does worse at most positions."""
    model = attn2l()
    sentence = "When Mary and John went to the store, John gave a drink to Mary."
    str_tokens = model.to_str_tokens(sentence)[1:]
    with_bos = ch1.get_log_probs(model(sentence), model.to_tokens(sentence))[0]
    tokens = model.to_tokens(sentence, prepend_bos=False)
    without_bos = ch1.get_log_probs(model(tokens), tokens)[0]
    by_token = dict(zip(str_tokens, with_bos.tolist()))  # later occurrences overwrite earlier ones
    assert all(by_token[t] > -0.1 for t in [" to", " the", " a"]), by_token
    first = {t: with_bos[str_tokens.index(t)].item() for t in [" Mary", " John", " store", " drink"]}
    assert all(v < -2 for v in first.values()), first
    assert (without_bos < with_bos[1:]).float().mean() > 0.5


def test_ch1_loss_is_far_below_a_uniform_guess():
    """§4: a uniform guess scores log(2048) = 7.6 nats; attn2l does far better on text like its training data."""
    model = attn2l()
    tokens = model.to_tokens([PROMPT + " Mary", "When Tom and Lisa went to the park, Lisa gave a ball to Tom"])
    assert model(tokens, return_type="loss").item() < 0.5 * torch.log(torch.tensor(2048.0)).item()


# --------------------------------------------------------------------------------------------------------
# Chapter 2
# --------------------------------------------------------------------------------------------------------
SENTENCES = [  # chapter 2, section 3
    "Then, Tom and James went to the park. James gave a ball to",
    "Friends Lisa and Paul found a book at the market. Paul gave it to",
    "The small cat slept on the warm chair in the kitchen.",
    "The old man sat in the garden and read a long letter.",
]
@functools.cache
def ioi():
    """Chapter 2, section 4 (its dataset, from the chapter's constants): prompts (ABBA at even, BABA at odd
    indices), answers, answer tokens, logits, cache."""
    model = attn2l()
    data = ioi_dataset(model, [ch2.IOI_TEMPLATE], pairs=ch2.IOI_PAIRS)
    answers = [(" " + io, " " + s) for io, s in zip(data.io_names, data.s_names)]
    logits, cache = model.run_with_cache(data.tokens)
    return data.prompts, answers, data.answer_tokens, logits, cache


def _directions(answer_tokens):
    directions = attn2l().tokens_to_residual_directions(answer_tokens)
    return directions[:, 0] - directions[:, 1]


def test_ch2_detectors_find_previous_and_current_token_heads_in_layer_0_first_token_heads_in_layer_1():
    """§3: each detector finds at least one head; the previous-token and current-token heads sit in layer 0,
    the first-token heads in layer 1."""
    _, cache = attn2l().run_with_cache(attn2l().to_tokens(SENTENCES))
    found = {"prev": ch2.prev_attn_detector(cache), "current": ch2.current_attn_detector(cache),
             "first": ch2.first_attn_detector(cache)}
    layers = {kind: {int(head.split(".")[0]) for head in heads} for kind, heads in found.items()}
    assert layers == {"prev": {0}, "current": {0}, "first": {1}}, found


def test_ch2_one_layer_1_first_token_head_passes_only_thanks_to_bos():
    """§3: every first-token score includes destination 0 (BOS attending to itself, one of 16 destinations); counted
    from destination 1 on, one of the two layer-1 heads falls below 0.4."""
    model = attn2l()
    tokens = model.to_tokens(SENTENCES)
    _, cache = model.run_with_cache(tokens)
    last = model.cfg.n_layers - 1
    assert tokens.shape[1] == 16 and model.cfg.n_heads == 2
    assert ch2.first_attn_detector(cache) == [f"{last}.{head}" for head in range(model.cfg.n_heads)]
    assert torch.equal(cache["pattern", last][:, :, 0, 0], torch.ones(len(SENTENCES), model.cfg.n_heads))
    from_destination_1 = cache["pattern", last][:, :, 1:, 0].mean((0, -1))
    assert int((from_destination_1 > 0.4).sum()) == 1, from_destination_1


def test_ch2_model_prefers_the_indirect_object_on_training_names_in_both_orders():
    """§4: most bars are positive and large, in both name orders; the mean logit difference is several logits."""
    _, _, answer_tokens, logits, _ = ioi()
    diff = ch2.logits_to_ave_logit_diff(logits, answer_tokens, per_prompt=True)
    assert (diff > 0).sum() >= len(diff) - 1, diff
    assert diff.mean() > 3, diff
    assert diff[0::2].mean() > 1 and diff[1::2].mean() > 1, diff


def test_ch2_held_out_names_near_chance_with_a_first_name_bias():
    """§4, held-out names: the mean is near zero, ABBA prompts score higher than BABA prompts (the model leans
    towards the first name); the model card's held-out names x templates accuracy is close to chance."""
    model = attn2l()
    held_out = ioi_dataset(model, [ch2.IOI_TEMPLATE], pairs=ch2.HELD_OUT_PAIRS)
    diff = ch2.logits_to_ave_logit_diff(model(held_out.tokens), held_out.answer_tokens, per_prompt=True)
    assert abs(diff.mean()) < 1.0, diff
    assert diff[0::2].mean() > 0 > diff[1::2].mean(), diff
    from training import evaluate

    heldout = evaluate.ioi_metrics(model)  # the model card's "held-out names x held-out frames" row
    assert 0.25 <= heldout["ioi_acc"] <= 0.65, heldout
    card = (MODELS_DIR / "attn2l" / "README.md").read_text()
    assert f"held-out names x held-out frames (ABBA / BABA accuracy) | {heldout['ioi_acc']:.1%}" in card, (
        "the model card is stale: python -m training.train_model --config attn2l --card-only")


def test_ch2_logit_lens_the_decision_is_made_in_the_last_layer():
    """§5: the two curves start at the same value, have barely separated after layer 0 and are far apart
    after the last layer."""
    model = attn2l()
    _, _, answer_tokens, _, cache = ioi()
    diff = (ch2.logit_lens(model, cache, answer_tokens[:, 0]) - ch2.logit_lens(model, cache, answer_tokens[:, 1]))
    diff = diff.mean(-1)
    assert abs(diff[0]) < 1e-4 and diff[-1] > 2 and diff[1] < 0.25 * diff[-1], diff


def test_ch2_direct_attribution_comes_from_the_last_layer_mostly_one_head():
    """§6: almost all of the logit difference comes directly from the last layer, the largest share from one
    of its heads."""
    model = attn2l()
    _, _, answer_tokens, _, cache = ioi()
    directions = _directions(answer_tokens)
    decomposed = ch2.residual_stack_to_logit_diff(cache.decompose_resid(layer=-1, pos_slice=-1), cache, directions)
    assert decomposed[-1] > 0.8 * decomposed.sum(), decomposed
    dla = ch2.head_direct_logit_attribution(model, cache, directions)
    top_layer, top_head = divmod(int(dla.argmax()), model.cfg.n_heads)
    assert top_layer == model.cfg.n_layers - 1 and dla.max() > 0.4 * decomposed.sum(), dla


def test_ch2_last_layer_heads_attend_more_to_the_answer_than_to_the_subject():
    """§6: from the final token, both last-layer heads look more at the correct name than at the subject, in the
    first two prompts."""
    model = attn2l()
    prompts, answers, _, _, cache = ioi()
    last = model.cfg.n_layers - 1
    for i in range(2):
        str_tokens = model.to_str_tokens(prompts[i])
        row = cache["pattern", last][i, :, -1]
        io, s = answers[i]
        on_io = row[:, [j for j, t in enumerate(str_tokens) if t == io]].sum(-1)
        on_s = row[:, [j for j, t in enumerate(str_tokens) if t == s]].sum(-1)
        assert (on_io > on_s).all(), (prompts[i], on_io, on_s)


@functools.cache
def dla_per_order():
    """Chapter 2, section 6: the head attribution table of the ABBA prompts and of the BABA prompts."""
    model = attn2l()
    prompts, _, answer_tokens, _, _ = ioi()
    tokens = model.to_tokens(prompts)
    directions = _directions(answer_tokens)
    per_order = {}
    for order, rows in [("ABBA", slice(0, None, 2)), ("BABA", slice(1, None, 2))]:
        _, cache = model.run_with_cache(tokens[rows])
        per_order[order] = ch2.head_direct_logit_attribution(model, cache, directions[rows])
    return per_order


def test_ch2_abba_one_head_does_most_baba_both_share_and_layer_0_contributes_little():
    """§6, by name order: both last-layer heads help in both orders; on ABBA one of them does most of the work,
    on BABA the two share it and the model is less sure; layer 0 contributes little directly."""
    _, _, answer_tokens, logits, _ = ioi()
    per_order = dla_per_order()
    for order, dla in per_order.items():
        assert (dla[-1] > 0).all(), (order, dla)
        assert dla[0].sum().abs() < 0.25 * dla[-1].sum(), (order, dla)
    abba, baba = per_order["ABBA"][-1], per_order["BABA"][-1]
    assert abba.max() > 1.5 * abba.min() and baba.max() < 1.3 * baba.min(), per_order
    diff = ch2.logits_to_ave_logit_diff(logits, answer_tokens, per_prompt=True)
    assert diff[0::2].mean() > diff[1::2].mean(), diff


def test_ch2_layer_0_heads_contribute_less_and_one_cancels_between_the_orders():
    """§6: each layer-0 head contributes less directly than either last-layer head, in both orders; one layer-0 head
    pushes towards the answer in one order and away from it in the other, by similar amounts, so that it almost
    vanishes in the table over all prompts."""
    model = attn2l()
    _, _, answer_tokens, _, cache = ioi()
    per_order = dla_per_order()
    for order, dla in per_order.items():
        assert dla[0].abs().max() < dla[-1].min(), (order, dla)
    overall = ch2.head_direct_logit_attribution(model, cache, _directions(answer_tokens))[0]
    abba, baba = per_order["ABBA"][0], per_order["BABA"][0]
    smaller, larger = torch.minimum(abba.abs(), baba.abs()), torch.maximum(abba.abs(), baba.abs())
    cancelling = (abba * baba < 0) & (smaller > 0.3) & (smaller > 0.5 * larger) & (overall.abs() < 0.25 * smaller)
    assert cancelling.any(), (abba, baba, overall)


# --------------------------------------------------------------------------------------------------------
# Chapter 3
# --------------------------------------------------------------------------------------------------------
TEXT = ("When Mary and John went to the store, John gave a drink to Mary. "
        "Then Alice and Tom went to the park, and Tom gave a ball to Alice.")


@functools.cache
def rep_tokens(seq_len=20, batch=4, seed=0):
    """Chapter 3's repeated tokens (utils.data, as in the chapter)."""
    return repeated_tokens(attn2l(), seq_len, batch, seed=seed)


@functools.cache
def ablation_scores():
    model, text = attn2l(), attn2l().to_tokens(TEXT)
    return {(name, kind): ch3.get_ablation_scores(model, tokens, fn)
            for name, tokens in [("rep", rep_tokens()), ("text", text)]
            for kind, fn in [("zero", ch3.head_zero_ablation_hook), ("mean", ch3.head_mean_ablation_hook)]}


def test_ch3_second_copy_is_far_more_predictable():
    """§1: the first copy is unpredictable; the second is predicted far better."""
    loss = attn2l()(rep_tokens(), return_type="loss", loss_per_token=True)
    assert loss[:, 20:].mean() < 0.25 * loss[:, :20].mean()


def test_ch3_first_copy_costs_more_than_a_uniform_guess_whose_entropy_is_higher():
    """§1: the first copy's loss is above a uniform guess's log(d_vocab), and the model's predictions there are not
    uniform (their entropy is lower than log(d_vocab))."""
    model = attn2l()
    uniform = torch.tensor(float(model.cfg.d_vocab)).log()
    loss = model(rep_tokens(), return_type="loss", loss_per_token=True)[:, :20].mean()
    log_probs = model(rep_tokens()).log_softmax(dim=-1)[:, :20]
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    assert loss > uniform > entropy, (loss, uniform, entropy)


def test_ch3_the_model_card_measures_longer_sequences_than_the_chapter():
    """§4: the model card measures the repeat losses on 50 random tokens repeated, in a batch of 20 (the chapter: 20
    tokens, a batch of 4), so its numbers differ from the chapter's."""
    card = (MODELS_DIR / "attn2l" / "README.md").read_text()
    assert "r = 50 random tokens, batch 20" in card
    assert rep_tokens().shape == (4, 1 + 2 * 20)


def test_ch3_detach_shares_memory_clone_copies():
    """§6: a tensor kept with detach() changes when a later hook writes into the activation in place; one kept with
    detach().clone() does not. cache_some with an in-place ablation keeps z as it arrived, and later activations
    show the ablation."""
    model = attn2l()
    tokens = model.to_tokens(TEXT)
    kept = {}

    def keep(resid, hook):
        kept["detach"], kept["clone"] = resid.detach(), resid.detach().clone()

    def zero_in_place(resid, hook):
        return resid.zero_()

    name = get_act_name("resid_pre", 0)
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(name, keep), (name, zero_in_place)])
    assert (kept["detach"] == 0).all() and not (kept["clone"] == 0).all()
    names = [get_act_name("z", 0), get_act_name("resid_pre", 1)]
    _, clean = model.run_with_cache(tokens)
    ablate = (names[0], partial(ch3.head_zero_ablation_hook, head_index_to_ablate=1))
    ablated = ch3.cache_some(model, tokens, names, fwd_hooks=[ablate])
    assert torch.equal(ablated[names[0]], clean[names[0]]) and not torch.equal(ablated[names[1]], clean[names[1]])


def test_ch3_induction_head_needs_layer_0_and_matters_less_on_text():
    """§4: the layer-1 head with the larger score is the main induction head; ablating layer 0's heads hurts as
    well; on text the induction head matters less; zero and mean ablation disagree, in both directions."""
    scores = ablation_scores()
    induction_head = int(scores["rep", "zero"][1].argmax())
    assert (scores["rep", "zero"][0] > 0.5).all(), scores["rep", "zero"]
    assert scores["text", "zero"][1, induction_head] < 0.5 * scores["rep", "zero"][1, induction_head]
    gaps = torch.cat([(scores[name, "zero"] - scores[name, "mean"]).flatten() for name in ["rep", "text"]])
    assert gaps.max() > 0.5 and gaps.min() < -0.5, gaps


def test_ch3_both_layer_1_heads_attend_sharply_yet_ablating_one_costs_more():
    """§5: the induction head has a low entropy on repeated tokens; both layer-1 heads put most of their
    attention on the induction target, yet ablating one costs more than ablating the other."""
    model = attn2l()
    entropy = ch3.attention_entropy(model, rep_tokens())
    induction_head = int(ablation_scores()["rep", "zero"][1].argmax())
    assert entropy[1, induction_head] == entropy.min(), entropy
    seq_len = 20
    _, cache = model.run_with_cache(rep_tokens(), names_filter=get_act_name("pattern", 1))
    to_next = cache["pattern", 1].diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)[..., 2:].mean((0, 2))
    assert (to_next > 0.8).all(), to_next
    layer_1 = ablation_scores()["rep", "zero"][1]
    assert layer_1.max() - layer_1.min() > 0.2, layer_1


def test_ch3_steering_from_mary_to_john():
    """§7: without a hook the model answers " Mary"; at coeff 1 at Mary's position it answers " John"; adding the
    vector everywhere changes the answer too."""
    model = attn2l()
    tokens = model.to_tokens(PROMPT)
    mary, john = model.to_single_token(" Mary"), model.to_single_token(" John")
    mary_pos = model.to_str_tokens(PROMPT).index(" Mary")
    steering = model.W_E[john] - model.W_E[mary]

    def top(coeff, pos):
        hook = partial(ch3.add_steering_vector_hook, vector=steering, coeff=coeff, pos=pos)
        return int(model.run_with_hooks(tokens, fwd_hooks=[(get_act_name("resid_pre", 0), hook)])[0, -1].argmax())

    assert int(model(tokens)[0, -1].argmax()) == mary
    assert top(1.0, mary_pos) == john
    assert top(1.0, None) != mary and top(2.0, None) != mary


# --------------------------------------------------------------------------------------------------------
# Chapter 4
# --------------------------------------------------------------------------------------------------------
SEQ_LEN, BATCH = 50, 10


@functools.cache
def induction():
    """Chapter 4's sections 1-3: tokens, logits, cache, the induction and previous-token heads it computes."""
    model = attn2l()
    tokens, logits, cache = ch4.run_and_cache_model_repeated_tokens(model, SEQ_LEN, BATCH,
                                                                    generator=torch.Generator().manual_seed(0))
    scores = induction_scores(model, tokens)
    prev_scores = torch.stack([cache["pattern", layer].diagonal(-1, -2, -1)[..., 1:].mean(dim=(0, 2))
                               for layer in range(model.cfg.n_layers)])
    ind_layer, ind_head = divmod(int(scores.argmax()), model.cfg.n_heads)
    prev_layer, prev_head = divmod(int(prev_scores[:ind_layer].argmax()), model.cfg.n_heads)
    return tokens, logits, cache, (ind_layer, ind_head), (prev_layer, prev_head)


@pytest.mark.parametrize("name", ["attn2l", "mlp4l"])
def test_ch4_the_solutions_measure_what_the_course_measures(name):
    """The chapter's reference solutions agree with the course's one definition of each measurement (the model cards,
    the story tests and the checkers use ``utils.data``): ``generate_repeated_tokens`` draws the tokens
    ``repeated_tokens`` draws (from ``non_special_ids``), ``induction_scores`` and ``ablation_induction_score`` give
    ``utils.data.induction_scores`` (clean and with a head zero-ablated), and ``induction_attn_detector`` finds the
    heads whose score is above its threshold."""
    model = shipped_model(name, torch.device("cpu"))
    for seq_len, batch, seed in [(50, 10, 0), (7, 3, 2)]:
        tokens = ch4.generate_repeated_tokens(model, seq_len, batch, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(tokens, repeated_tokens(model, seq_len, batch, seed=seed))
        assert torch.isin(tokens[:, 1:], non_special_ids(model)).all()
        scores = induction_scores(model, tokens)
        torch.testing.assert_close(ch4.induction_scores(model, tokens, seq_len), scores)
        _, cache = model.run_with_cache(tokens)
        n_heads = model.cfg.n_heads
        above = (scores.flatten() > 0.4).nonzero().flatten().tolist()  # the detector's default threshold
        assert ch4.induction_attn_detector(cache) == [f"{i // n_heads}.{i % n_heads}" for i in above]
        layers = dict(prev_layer=model.cfg.n_layers - 2, ind_layer=model.cfg.n_layers - 1)
        for prev in [None, 0, n_heads - 1]:
            hooks = [] if prev is None else [(get_act_name("z", layers["prev_layer"]), zero_ablation_hook(prev))]
            expected = induction_scores(model, tokens, hooks)[layers["ind_layer"], n_heads - 1].item()
            got = ch4.ablation_induction_score(model, tokens, seq_len, prev, n_heads - 1, **layers)
            assert got == pytest.approx(expected, abs=1e-6), (prev, got, expected)


def _second_copy_loss(tokens, hooks=()):
    return repeat_losses(attn2l(), tokens, hooks)[1]


def test_ch4_ablations_previous_token_head_other_layer_0_head_and_shared_induction():
    """§4: ablating the previous-token head makes the second copy as unpredictable as the first; in attn2l the
    other layer-0 head matters too; ablating one induction head hurts much less than ablating all of them."""
    model = attn2l()
    tokens, logits, cache, (ind_layer, ind_head), (prev_layer, prev_head) = induction()
    log_probs = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    first, clean = -log_probs[:, :SEQ_LEN].mean().item(), _second_copy_loss(tokens)
    assert _second_copy_loss(tokens, [(get_act_name("z", prev_layer), zero_ablation_hook(prev_head))]) > 0.8 * first
    other = 1 - prev_head if model.cfg.n_heads == 2 else None
    assert other is not None
    assert _second_copy_loss(tokens, [(get_act_name("z", prev_layer), zero_ablation_hook(other))]) > clean + 1
    heads = [tuple(map(int, name.split("."))) for name in ch4.induction_attn_detector(cache)]
    assert len(heads) >= 2
    together = _second_copy_loss(tokens, [(get_act_name("z", layer), zero_ablation_hook(h)) for layer, h in heads])
    alone = max(_second_copy_loss(tokens, [(get_act_name("z", layer), zero_ablation_hook(h))]) for layer, h in heads)
    assert together - clean > 3 * (alone - clean), (together, alone, clean)


def test_ch4_induction_head_copies_and_positions_explain_the_layer_0_heads():
    """§6-7: the induction head's OV circuit copies (accuracy well above chance); the previous-token head's
    positional pattern sits below the diagonal, the other layer-0 head's on its own position."""
    model = attn2l()
    *_, (ind_layer, ind_head), (prev_layer, prev_head) = induction()
    assert ch4.top_1_acc(ch4.full_ov_circuit(model, ind_layer, ind_head)) > 100 / model.cfg.d_vocab
    prev = ch4.pos_by_pos_pattern(model, prev_layer, prev_head)
    other = ch4.pos_by_pos_pattern(model, prev_layer, 1 - prev_head)
    assert prev.diagonal(-1).mean() > 0.5 > prev.diagonal(0).mean()
    assert other.diagonal(0).mean() > 0.5 > other.diagonal(-1).mean()


def test_ch4_k_composition_is_the_dominant_pair_and_far_above_the_baseline():
    """§8-11: the dominant key piece of the induction head's score is the previous-token head's output (with the
    other layer-0 head, which re-writes the current token, as query piece); its K-composition score is far above
    the random baseline; ablating the previous-token head lowers the induction score."""
    model = attn2l()
    tokens, _, cache, (ind_layer, ind_head), (prev_layer, prev_head) = induction()
    single = ActivationCache({k: v[:1] for k, v in cache.items()}, model).remove_batch_dim()
    pieces = ch4.decompose_qk_input(single, prev_layer=prev_layer, ind_layer=ind_layer)
    pair_scores = ch4.decompose_attn_scores(ch4.decompose_q(pieces, ind_head, model, ind_layer=ind_layer),
                                            ch4.decompose_k(pieces, ind_head, model, ind_layer=ind_layer), model)
    causal = torch.tril(torch.ones(pair_scores.shape[-2:], dtype=torch.bool))
    q_piece, k_piece = divmod(int(pair_scores[..., causal].std(-1).argmax()), pieces.shape[0])
    assert k_piece == 2 + prev_head and q_piece == 2 + (1 - prev_head), (q_piece, k_piece)
    random_scores = ch4.random_comp_scores(model.cfg.d_model, model.cfg.d_head,
                                           generator=torch.Generator().manual_seed(0))
    k_score = ch4.get_batched_comp_scores(model.OV[prev_layer], model.QK[ind_layer].T)[prev_head, ind_head].item()
    assert (k_score - random_scores.mean()) / random_scores.std() > 10
    clean = ch4.ablation_induction_score(model, tokens, SEQ_LEN, None, ind_head, prev_layer=prev_layer,
                                         ind_layer=ind_layer)
    ablated = ch4.ablation_induction_score(model, tokens, SEQ_LEN, prev_head, ind_head, prev_layer=prev_layer,
                                           ind_layer=ind_layer)
    assert ablated < 0.25 * clean, (clean, ablated)
