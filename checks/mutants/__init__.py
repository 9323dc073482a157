"""Plausible wrong implementations of each exercise, one module per chapter (see utils.checking.Mutant)."""
