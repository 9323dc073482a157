"""Known mistakes for chapter 1 (tokenization and the forward pass). Each one is a mistake learners really
make; its description is shown to a learner whose output matches it."""

import torch
import torch.nn.functional as F

from checks.mutants.ch00_pytorch_einops import log_probs_no_shift, log_probs_probabilities, log_probs_raw_logits
from utils.checking import Mutant, Status


# count_tokens -------------------------------------------------------------------------------------------
def count_tokens_ignores_prepend_bos(model, texts, prepend_bos=True):
    return [model.to_tokens(text).shape[-1] for text in texts]


def count_tokens_characters(model, texts, prepend_bos=True):
    return [len(text) + int(prepend_bos) for text in texts]


def count_tokens_padded_batch(model, texts, prepend_bos=True):
    tokens = model.to_tokens(texts, prepend_bos=prepend_bos)
    return [tokens.shape[-1]] * len(texts)


def count_tokens_words(model, texts, prepend_bos=True):
    return [len(text.split()) + int(prepend_bos) for text in texts]


# multi_token_words --------------------------------------------------------------------------------------
def multi_token_words_no_space(model, words):
    return [w for w in words if len(model.to_str_tokens(w, prepend_bos=False)) != 1]


def multi_token_words_counts_bos(model, words):
    return [w for w in words if len(model.to_str_tokens(" " + w)) != 1]


def multi_token_words_inverted(model, words):
    return [w for w in words if len(model.to_str_tokens(" " + w, prepend_bos=False)) == 1]


def multi_token_words_sorted(model, words):
    return sorted(w for w in words if len(model.to_str_tokens(" " + w, prepend_bos=False)) != 1)


# token_position -----------------------------------------------------------------------------------------
def token_position_no_bos(model, prompt, token_str, prepend_bos=True):
    return model.to_str_tokens(prompt, prepend_bos=False).index(token_str)


def token_position_ignores_prepend_bos(model, prompt, token_str, prepend_bos=True):
    return model.to_str_tokens(prompt).index(token_str)


def token_position_last(model, prompt, token_str, prepend_bos=True):
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)[0]
    return int((tokens == model.to_single_token(token_str)).nonzero()[-1].item())


def token_position_character_offset(model, prompt, token_str, prepend_bos=True):
    return prompt.find(token_str)


def token_position_tensor(model, prompt, token_str, prepend_bos=True):
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)[0]
    return (tokens == model.to_single_token(token_str)).nonzero()[0, 0]


# get_log_probs (the same exercise as chapter 0's next_token_log_probs, on a real model's logits: the same
# mistakes, imported from there) -------------------------------------------------------------------------
def log_probs_shifted_backwards(logits, tokens):
    return logits[:, 1:].log_softmax(-1).gather(-1, tokens[:, :-1].unsqueeze(-1)).squeeze(-1)


def log_probs_softmax_over_positions(logits, tokens):
    return logits[:, :-1].log_softmax(1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def log_probs_of_top_token(logits, tokens):
    return logits[:, :-1].log_softmax(-1).max(-1).values


# cross_entropy_loss -------------------------------------------------------------------------------------
def _log_probs(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def loss_no_minus(logits, tokens):
    return _log_probs(logits, tokens).mean()


def loss_sum(logits, tokens):
    return -_log_probs(logits, tokens).sum()


def loss_no_shift(logits, tokens):
    return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def loss_last_position_only(logits, tokens):
    return F.cross_entropy(logits[:, -2], tokens[:, -1])


def loss_item(logits, tokens):
    return -_log_probs(logits, tokens).mean().item()


# prediction_accuracy ------------------------------------------------------------------------------------
def accuracy_no_shift(logits, tokens):
    return (logits.argmax(-1) == tokens).float().mean().item()


def accuracy_count(logits, tokens):
    return float((logits[:, :-1].argmax(-1) == tokens[:, 1:]).sum().item())


def accuracy_last_position(logits, tokens):
    return (logits[:, -2].argmax(-1) == tokens[:, -1]).float().mean().item()


def accuracy_tensor(logits, tokens):
    return (logits[:, :-1].argmax(-1) == tokens[:, 1:]).float().mean()


# greedy_generate ----------------------------------------------------------------------------------------
def _greedy(model, prompt, n_new_tokens, prepend_bos=True, position=-1, stop_at_eos=True, append_eos=False):
    tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)
    for _ in range(n_new_tokens):
        next_token = model(tokens)[0, position].argmax()
        if append_eos:
            tokens = torch.cat([tokens, next_token.view(1, 1)], dim=-1)
        if stop_at_eos and next_token.item() == model.tokenizer.eos_token_id:
            break
        if not append_eos:
            tokens = torch.cat([tokens, next_token.view(1, 1)], dim=-1)
    return tokens


def generate_keeps_bos(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, n_new_tokens)[0])


def generate_new_text_only(model, prompt, n_new_tokens):
    n_prompt = model.to_tokens(prompt).shape[-1]
    return model.to_string(_greedy(model, prompt, n_new_tokens)[0, n_prompt:])


def generate_one_too_few(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, max(n_new_tokens - 1, 0))[0, 1:])


def generate_first_position(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, n_new_tokens, position=0)[0, 1:])


def generate_without_bos(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, n_new_tokens, prepend_bos=False)[0])


def generate_past_eos(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, n_new_tokens, stop_at_eos=False)[0, 1:])


def generate_appends_eos(model, prompt, n_new_tokens):
    return model.to_string(_greedy(model, prompt, n_new_tokens, append_eos=True)[0, 1:])


MUTANTS = {
    "count_tokens": [
        Mutant(count_tokens_ignores_prepend_bos, "ignoring the prepend_bos argument (always counting the BOS token)"),
        Mutant(count_tokens_characters, "counting characters (len(text)) instead of tokens"),
        Mutant(count_tokens_padded_batch, "tokenizing the whole list at once, so every prompt is padded to the "
               "longest"),
        Mutant(count_tokens_words, "counting words (text.split()) instead of tokens"),
    ],
    "multi_token_words": [
        Mutant(multi_token_words_no_space, "forgetting the leading space (' ' + word)", Status.WRONG_SHAPE),
        Mutant(multi_token_words_counts_bos, "counting the BOS token (to_str_tokens with the default "
               "prepend_bos=True)", Status.WRONG_SHAPE),
        Mutant(multi_token_words_inverted, "returning the single-token words instead of the multi-token ones",
               Status.WRONG_SHAPE),
        Mutant(multi_token_words_sorted, "sorting the words instead of keeping their order"),
    ],
    "token_position": [
        Mutant(token_position_no_bos, "forgetting the BOS offset (positions counted without the BOS token)"),
        Mutant(token_position_ignores_prepend_bos, "ignoring the prepend_bos argument (always tokenizing with BOS)"),
        Mutant(token_position_last, "returning the last occurrence instead of the first"),
        Mutant(token_position_character_offset, "returning the character offset in the string (prompt.find) "
               "instead of the token position"),
        Mutant(token_position_tensor, "returning a tensor instead of a Python int (use .item())",
               Status.WRONG_TYPE),
    ],
    "get_log_probs": [
        Mutant(log_probs_no_shift, "forgetting the shift: logits at position p predict tokens[:, p + 1]"),
        Mutant(log_probs_shifted_backwards, "shifting the wrong way (logits[:, 1:] with tokens[:, :-1]): the logits "
               "at position p predict tokens[:, p + 1], so drop the LAST position of the logits"),
        Mutant(log_probs_probabilities, "taking softmax instead of log_softmax"),
        Mutant(log_probs_raw_logits, "gathering the raw logits without log_softmax"),
        Mutant(log_probs_softmax_over_positions, "taking log_softmax over the positions instead of the vocabulary"),
        Mutant(log_probs_of_top_token, "taking the log-prob of the top predicted token instead of the actual next "
               "token"),
    ],
    "cross_entropy_loss": [
        Mutant(loss_no_minus, "forgetting the minus sign (the loss is the NEGATIVE mean log-prob)"),
        Mutant(loss_sum, "summing the negative log-probs instead of taking their mean"),
        Mutant(loss_no_shift, "forgetting the shift: logits at position p predict tokens[:, p + 1]"),
        Mutant(loss_last_position_only, "using the last prediction only instead of every position"),
        Mutant(loss_item, "returning a Python float (.item()) instead of a 0-dimensional tensor", Status.WRONG_TYPE),
    ],
    "prediction_accuracy": [
        Mutant(accuracy_no_shift, "forgetting the shift: logits at position p predict tokens[:, p + 1]"),
        Mutant(accuracy_count, "returning the number of correct predictions instead of the fraction"),
        Mutant(accuracy_last_position, "scoring the last prediction only instead of every position"),
        Mutant(accuracy_tensor, "returning a tensor instead of a Python float (use .item())", Status.WRONG_TYPE),
    ],
    "greedy_generate": [
        Mutant(generate_keeps_bos, "keeping the BOS token in the returned text (decode tokens[0, 1:])"),
        Mutant(generate_new_text_only, "returning only the new text instead of the prompt followed by it"),
        Mutant(generate_one_too_few, "an off-by-one in the loop: generating n_new_tokens - 1 tokens"),
        Mutant(generate_first_position, "taking the prediction at the first position instead of the last"),
        Mutant(generate_without_bos, "tokenizing the prompt without the BOS token"),
        Mutant(generate_past_eos, "not stopping at the end-of-text token (model.tokenizer.eos_token_id)"),
        Mutant(generate_appends_eos, "appending the end-of-text token before stopping (stop before appending it)"),
    ],
}
