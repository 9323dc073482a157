"""Scripts that build Circuit School's shipped, offline models.

- ``tokenizer.py``: the byte-level BPE tokenizer trained on the course's generated text (``utils/corpus.py``).
- ``train_model.py``: trains a HookedTransformer and writes ``models/<name>/``.
- ``evaluate.py``: the model cards' measurements (induction, previous-token heads, IOI), on ``utils.data``'s scores.

``training`` imports ``utils``; ``utils``, the chapters and their solutions never import ``training``.
"""
