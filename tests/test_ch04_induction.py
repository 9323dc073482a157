"""Chapter 4's story on the shipped models: every claim the lesson makes about the induction circuit, computed."""

import math

import torch
from transformer_lens.utilities import get_act_name

from checks.ch04_induction import _heads_mask, _key_heads, _rep, _second_copy_loss, _top_pair, chapter
from checks.helpers import seeded
from checks.mutants.ch04_induction import NO_CHANGE
from utils.data import induction_scores, repeat_losses, zero_ablation_hook


def test_story_induction_heads_have_the_highest_scores(attn2l, device):
    from solutions.ch04_induction import induction_attn_detector as detect

    tokens, cache = _rep(device, 50, 10, 0)
    found = detect(cache)
    scores = induction_scores(attn2l, tokens)
    assert found, f"no induction head above 0.4: scores {scores}"
    mask = _heads_mask(found, attn2l).to(scores.device)
    assert scores[mask].min() > scores[~mask].max() if (~mask).any() else True
    best = divmod(int(scores.argmax()), attn2l.cfg.n_heads)
    assert f"{best[0]}.{best[1]}" in found



def test_story_ablating_induction_heads_hurts_far_more(attn2l, device):
    """Zero-ablating the detected induction heads together wipes out the second copy's advantage, and hurts the
    second copy far more than ablating any single head outside the circuit's two key parts (the induction heads
    and the previous-token head they depend on)."""
    from solutions.ch04_induction import induction_attn_detector as detect

    tokens, cache = _rep(device, 50, 10, 0)
    clean_first, clean = repeat_losses(attn2l, tokens)[0], _second_copy_loss(attn2l, tokens)
    found = [tuple(int(x) for x in name.split(".")) for name in detect(cache)]
    together = _second_copy_loss(attn2l, tokens,
                                 [(get_act_name("z", layer), zero_ablation_hook(h)) for layer, h in found])
    assert clean < clean_first / 3 and together > 0.9 * clean_first, (clean_first, clean, together)
    prev, _ = _key_heads(device)
    others = [(layer, h) for layer in range(attn2l.cfg.n_layers) for h in range(attn2l.cfg.n_heads)
              if (layer, h) not in found and (layer, h) != (0, prev)]
    other_increase = max([_second_copy_loss(attn2l, tokens, [(get_act_name("z", layer), zero_ablation_hook(h))]) - clean
                          for layer, h in others] or [0.0])
    assert together - clean > 2 * max(other_increase, 0.1), (clean, together, other_increase)



def test_story_K_composition_stands_out_from_the_random_baseline(attn2l, device):
    from solutions.ch04_induction import get_batched_comp_scores, random_comp_scores

    prev, ind = _key_heads(device)
    random_scores = random_comp_scores(attn2l.cfg.d_model, attn2l.cfg.d_head, generator=seeded(0))
    baseline, spread = random_scores.mean().item(), random_scores.std().item()
    with torch.no_grad():
        k_comp = get_batched_comp_scores(attn2l.OV[0], attn2l.QK[1].T)
    # random matrices score baseline +- spread (about 0.088 +- 0.0015 in 128 dimensions)
    assert k_comp[prev, ind] > max(1.3 * baseline, baseline + 10 * spread), (k_comp, baseline, spread)
    assert int(k_comp[:, ind].argmax()) == prev, k_comp



def test_story_induction_OV_circuit_copies(attn2l, device):
    """§6 and §9: the induction head's OV circuit copies, and the K-composition circuit is large on its diagonal,
    read by rows (each query token's best key token is itself) and by columns."""
    from solutions.ch04_induction import find_K_comp_full_circuit, full_ov_circuit, top_1_acc

    prev, ind = _key_heads(device)
    chance = 1 / attn2l.cfg.d_vocab
    with torch.no_grad():
        assert top_1_acc(full_ov_circuit(attn2l, 1, ind)) > 100 * chance
        circuit = find_K_comp_full_circuit(attn2l, prev, ind)
        assert top_1_acc(circuit) > 100 * chance and top_1_acc(circuit.T) > 100 * chance



def test_story_first_copy_costs_more_than_a_uniform_guess(attn2l, device):
    """§1: the first copy's loss is above log(d_vocab), and the model's predictions there are less spread out than
    uniform (entropy below log(d_vocab)): confidently wrong."""
    tokens, _ = _rep(device, 50, 10, 0)
    with torch.no_grad():
        logits = attn2l(tokens)
    first_loss = repeat_losses(attn2l, tokens)[0]
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)[:, :50].mean().item()
    log_d_vocab = math.log(attn2l.cfg.d_vocab)
    assert first_loss > log_d_vocab > entropy, (first_loss, log_d_vocab, entropy)



def test_story_W_pos_is_much_smaller_than_the_layernorm_output(attn2l):
    """§7: the entries of W_pos are much smaller than those of a LayerNorm output (root mean square 1)."""
    assert attn2l.W_pos.pow(2).mean().sqrt() < 0.25



def test_story_the_head_that_rewrites_the_token_feeds_the_query_not_the_logits(attn2l, device):
    """§7-§8 and §10: the other layer-0 head attends to its own position, its OV copying accuracy is at chance (it
    does not write the token where the unembedding reads it), yet it is the induction head's top query piece (with
    the previous-token head as key piece), and its Q-composition score with the induction head is below the random
    baseline; most Q- and V-composition scores are below the baseline."""
    from solutions.ch04_induction import full_ov_circuit, get_batched_comp_scores, pos_by_pos_pattern
    from solutions.ch04_induction import random_comp_scores, top_1_acc

    prev, ind = _key_heads(device)
    q_piece, k_piece = _top_pair(attn2l, device)
    assert k_piece == 2 + prev and q_piece >= 2 and q_piece != 2 + prev, (q_piece, k_piece)
    other = q_piece - 2
    with torch.no_grad():
        own = pos_by_pos_pattern(attn2l, 0, other)
        assert own.diagonal(0).mean() > 0.5 > own.diagonal(-1).mean()
        assert top_1_acc(full_ov_circuit(attn2l, 0, other)) <= 3 / attn2l.cfg.d_vocab
        baseline = random_comp_scores(attn2l.cfg.d_model, attn2l.cfg.d_head, generator=seeded(0)).mean().item()
        q_comp = get_batched_comp_scores(attn2l.OV[0], attn2l.QK[1])
        v_comp = get_batched_comp_scores(attn2l.OV[0], attn2l.OV[1])
    assert q_comp[other, ind] < baseline, (q_comp, baseline)
    assert (q_comp < baseline).float().mean() >= 0.5 and (v_comp < baseline).float().mean() >= 0.5, (q_comp, v_comp)



def test_story_ablation_mistakes_that_change_nothing_give_the_unablated_score(attn2l, device):
    """The known mistakes whose symptom is "your ablation changed nothing" really give the score without ablation,
    on every case where they are wrong (so the diagnosis says what the learner observes)."""
    from solutions.ch04_induction import ablation_induction_score as reference

    exercise = chapter.exercises["ablation_induction_score"]
    for mutant in (m for m in exercise.mutants if m.symptom == NO_CHANGE):
        for case in exercise.public_cases(device):
            wrong = mutant.fn(*case.args, **case.kwargs)
            if not math.isclose(wrong, reference(*case.args, **case.kwargs), rel_tol=1e-4, abs_tol=1e-5):
                unablated = reference(*case.args[:3], None, *case.args[4:], **case.kwargs)
                assert math.isclose(wrong, unablated, rel_tol=1e-4, abs_tol=1e-5), (mutant.name, case.label)



def test_story_previous_token_head_feeds_the_induction_head(attn2l, device):
    from solutions.ch04_induction import ablation_induction_score

    prev, ind = _key_heads(device)
    tokens, _ = _rep(device, 50, 10, 0)
    clean = ablation_induction_score(attn2l, tokens, 50, None, ind)
    ablated = ablation_induction_score(attn2l, tokens, 50, prev, ind)
    assert ablated < 0.5 * clean, (clean, ablated)
