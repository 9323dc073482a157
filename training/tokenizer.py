"""Train the shipped byte-level BPE tokenizer (vocab 2048) on the generated corpus.

``<|endoftext|>`` (id 0) is BOS, EOS and pad, as in GPT-2. Every IOI name (train and held-out) is a
single token with a leading space (" Mary"), which ``build_tokenizer`` asserts.

The tokenizer is saved with ``PreTrainedTokenizerFast.save_pretrained`` and must be loaded back with
``AutoTokenizer.from_pretrained(folder)``: a tokenizer built in memory has no ``name_or_path`` and
fails inside ``HookedTransformer(cfg, tokenizer=...)``.

Usage::

    python -m training.tokenizer --out models/tokenizer
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from utils.corpus import HELDOUT_NAMES, TRAIN_NAMES, generate_documents

VOCAB_SIZE = 2048
SPECIAL = "<|endoftext|>"
TOKENIZER_SEED = 1234  # corpus seed for the tokenizer's training text
N_DOCS = 40_000


def build_tokenizer(out_dir: str | Path, n_docs: int = N_DOCS, vocab_size: int = VOCAB_SIZE):
    """Train the BPE tokenizer, save it to ``out_dir`` and return it loaded back via AutoTokenizer.

    Args:
        out_dir: folder to write ``tokenizer.json``, ``tokenizer_config.json``, ...
        n_docs: number of corpus documents to train on.
        vocab_size: size of the vocabulary, special token included.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``len(tok) == vocab_size``.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    docs = generate_documents(n_docs, seed=TOKENIZER_SEED)
    tok.train_from_iterator(docs, trainer=trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL, unk_token=SPECIAL
    )
    fast.model_max_length = 128
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    check_tokenizer(loaded, vocab_size)
    return loaded


def check_tokenizer(tok, vocab_size: int = VOCAB_SIZE) -> None:
    """Assert the vocabulary size, the special token's id and that every name is one token."""
    assert len(tok) == vocab_size, f"vocab {len(tok)} != {vocab_size}"
    assert tok.convert_tokens_to_ids(SPECIAL) == 0 and tok.bos_token_id == 0
    multi = [n for n in TRAIN_NAMES + HELDOUT_NAMES if len(tok.encode(" " + n)) != 1]
    assert not multi, f"names that are not a single token with a leading space: {multi}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/tokenizer")
    args = ap.parse_args()
    t = build_tokenizer(args.out)
    print(f"saved tokenizer ({len(t)} tokens) to {args.out}")
    print(t.tokenize("When Mary and John went to the store, John gave a drink to Mary."))
