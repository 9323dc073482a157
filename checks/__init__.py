"""The course's checkers: one module per chapter (``checks/chNN_slug.py``, its known mistakes in
``checks/mutants/chNN_slug.py``), found through the chapter registry (``utils.chapters.checker``).

Library code: the in-notebook ``check``, the grader and the pytest suite (``tests/test_exercises.py``) all import
it; it never imports ``tests`` or pytest. Shared pieces live in :mod:`checks.helpers`.
"""
