"""Scripts that build Circuit School's shipped, offline models.

- ``corpus.py``: a deterministic generator of English-like training text (IOI sentences included).
- ``tokenizer.py``: the byte-level BPE tokenizer trained on that text.
- ``train_model.py``: trains a HookedTransformer and writes ``models/<name>/``.
- ``evaluate.py``: the measurements the chapters rely on (induction, previous-token heads, IOI).
"""
