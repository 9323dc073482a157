"""The chapter-1 references agree with TransformerLens: the loss, greedy generation and token positions."""

import pytest
import torch

from checks.ch01_tokenization import GENERATE_CASES, IOI_BATCH, IOI_PROMPT, _logits_and_tokens, _reference, chapter
from checks.helpers import chapter_model


def test_reference_loss_equals_transformer_lens(device):
    logits, tokens = _logits_and_tokens(device, IOI_BATCH)
    with torch.no_grad():
        expected = chapter_model(chapter, device)(tokens, return_type="loss")
    got = _reference().cross_entropy_loss(logits, tokens)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)



@pytest.mark.parametrize("prompt, n", GENERATE_CASES)
def test_reference_greedy_equals_model_generate(device, prompt, n):
    model = chapter_model(chapter, device)
    expected = model.generate(prompt, max_new_tokens=n, do_sample=False, verbose=False)
    assert _reference().greedy_generate(model, prompt, n) == expected



@pytest.mark.parametrize("prepend_bos", [True, False])
def test_reference_token_position_equals_get_token_position(device, prepend_bos):
    model = chapter_model(chapter, device)
    expected = model.get_token_position(" John", IOI_PROMPT, mode="first", prepend_bos=prepend_bos)
    assert _reference().token_position(model, IOI_PROMPT, " John", prepend_bos=prepend_bos) == expected
