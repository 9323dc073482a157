"""Checkers for chapter 99 (the template). Copy to ``checks/chNN_topic.py`` and rename ``ch99_template``.

One case factory per exercise, named after it: it yields :class:`Case`s built on the checker's ``device``, with a
label the learner sees. The framework calls the learner's function on fresh copies of each case, on the
pristine model, compares with ``solutions.<chapter>`` (type, shape with ``dims``, dtype, device, NaN, values with
the tolerances of ``tol``), and names the known mistake (``checks/mutants/<chapter>.py``) the output matches, or
shows the exercise's hint cell. For outputs that cannot be compared with the reference's (random, trained,
unordered), pass ``judge=`` (see ``utils/checkers.py``). Random inputs, the chapter's model and the usual
tolerances come from ``checks/helpers.py``.
"""

from checks.helpers import chapter_model, randn
from checks.mutants.ch99_template import MUTANTS
from utils.checkers import Chapter
from utils.checking import Case

chapter = Chapter("ch99_template", mutants=MUTANTS)


@chapter.exercise(dims="batch d")
def normalize_rows(device):
    yield Case((randn(4, 8, device=device),), label="batch=4, d=8")
    yield Case((randn(1, 3, device=device, seed=1) * 100,), label="one row of large values")


# Logits are sums over d_model: another summation order moves them by ~1e-6, which can swap near-ties; the
# cases use prompts whose top tokens are well separated.
@chapter.exercise()
def top_next_tokens(device):
    model = chapter_model(chapter, device)  # the model chapters.toml declares for the chapter
    yield Case((model, "When Mary and John went to the store, John gave a drink to"), label="an IOI prompt, k=3")
    yield Case((model, "The train to London leaves at"), {"k": 5}, label="another prompt, k=5")
