"""Grading exercises that take a model, a cache or a hook point: they reach the worker by reference, and a hook a
learner leaves attached, or data it leaves in a hook point's ctx, is reported (CHANGED_MODEL) and removed before the
next exercise."""


import nbformat
import pytest
import torch

from utils.checking import CheckFailure, Status
from utils.wire import CacheRef, HookRef, ModelRef, from_wire, to_wire
from utils.worker import LearnerText, RemoteFunction, Worker

pytestmark = pytest.mark.tooling

LEARNER = '''
def logits_sum(model, tokens):
    return model(tokens).sum()

def leaves_a_hook(model, tokens):
    model.add_hook("blocks.0.hook_resid_post", lambda resid, hook: resid * 0, is_permanent=True)
    return model(tokens).sum()

def reads_cache(cache):
    return cache["pattern", 0][:, 0]

def leaves_ctx(model, tokens):
    def keep(resid, hook):
        hook.ctx["resid"] = resid
    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", keep)]).sum()

def reads_ctx(model):
    return len(model.hook_dict["blocks.0.hook_resid_post"].ctx)

def scales(resid, hook):
    return resid * 2 if hook.name == "blocks.0.hook_resid_post" else resid
'''


@pytest.fixture(scope="module")
def worker():
    w = Worker("cpu")
    yield w
    w.stop()


def test_references_round_trip(attn2l):
    tokens = torch.tensor([[0, 5, 6, 7]])
    _, cache = attn2l.run_with_cache(tokens)
    hook = attn2l.hook_dict["blocks.1.attn.hook_z"]
    wired = to_wire((attn2l, cache, hook))
    assert isinstance(wired[0], ModelRef) and isinstance(wired[1], CacheRef) and isinstance(wired[2], HookRef)
    class Resolve:
        def model(self, ref):
            return attn2l

    model, cache2, hook2 = from_wire(wired, Resolve())
    assert model is attn2l and hook2 is hook and torch.equal(cache2["pattern", 0], cache["pattern", 0])


def test_model_exercises_run_in_the_worker_and_hooks_do_not_leak(attn2l, worker, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LEARNER)]
    learner = LearnerText("learner", nbformat.writes(nb))
    tokens = attn2l.to_tokens("When Mary and John went to the store")
    _, cache = attn2l.run_with_cache(tokens)

    def remote(name):
        return RemoteFunction(worker, learner, name, 60)

    expected = attn2l(tokens).sum()
    assert torch.allclose(remote("logits_sum")(attn2l, tokens), expected, atol=1e-3)
    with pytest.raises(CheckFailure) as caught:
        remote("leaves_a_hook")(attn2l, tokens)
    assert caught.value.status == Status.CHANGED_MODEL
    assert "hooks left on blocks.0.hook_resid_post" in caught.value.message
    assert torch.allclose(remote("logits_sum")(attn2l, tokens), expected, atol=1e-3)  # the hook was removed
    with pytest.raises(CheckFailure) as caught:
        remote("leaves_ctx")(attn2l, tokens)
    assert caught.value.status == Status.CHANGED_MODEL
    assert "data left in hook.ctx of blocks.0.hook_resid_post" in caught.value.message
    assert remote("reads_ctx")(attn2l) == 0  # the next call cannot read it
    assert torch.equal(remote("reads_cache")(cache), cache["pattern", 0][:, 0])
    resid = cache["resid_post", 0]
    assert torch.equal(remote("scales")(resid, attn2l.hook_dict["blocks.0.hook_resid_post"]), resid * 2)
    with pytest.raises(CheckFailure) as caught:
        remote("absent")(attn2l, tokens)
    assert caught.value.status == Status.MISSING


def test_a_notebook_sent_ahead_is_the_one_the_calls_use_even_after_the_worker_died(attn2l, worker):
    """The grader sends each learner's notebook before it builds the cases (``Worker.expect``, so that the worker
    imports what the notebook imports meanwhile): the calls then run that notebook, and a worker that died in
    between is replaced and sent it again."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LEARNER)]
    tokens = attn2l.to_tokens("When Mary and John went to the store")
    expected = attn2l(tokens).sum()
    for key in ("sent ahead", "sent ahead to a worker that died"):
        learner = LearnerText(key, nbformat.writes(nb))
        worker.expect(learner)
        assert worker.learner == key and worker.alive()
        assert torch.allclose(RemoteFunction(worker, learner, "logits_sum", 60)(attn2l, tokens), expected, atol=1e-3)
        worker.process.kill()  # the next learner finds the worker dead
        worker.process.wait()


# Mistakes a judge can only see by watching the learner's code run (forward passes counted where it runs): graded in
# the worker, each gets the very verdict the in-notebook check gives.
WATCHED = [("ch03_hooks", "03_hooks", "cache_some", "cache_one_pass_per_name"),
           ("ch05_patching", "05_patching", "get_act_patch_batched", "batched_from_tokens")]


@pytest.mark.parametrize("chapter, stem, exercise, mutant", WATCHED, ids=[w[3] for w in WATCHED])
def test_a_mistake_seen_only_while_the_code_runs_is_seen_in_the_worker(chapter, stem, exercise, mutant, worker):
    import importlib
    import inspect

    from utils.build import ROOT
    from utils.chapters import checker
    from utils.device import get_device

    mutants = importlib.import_module(f"checks.mutants.{chapter}")
    nb = nbformat.read(ROOT / "chapters" / "solutions" / f"{stem}_solutions.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        inspect.getsource(mutants) + f"\n\ndef {exercise}(*args, **kwargs):\n    return {mutant}(*args, **kwargs)\n"))
    learner = LearnerText(mutant, nbformat.writes(nb))
    checks = checker(chapter).exercises[exercise]
    graded = checks.verdict(RemoteFunction(worker, learner, exercise, 120), get_device("cpu"))
    assert graded.status == Status.WRONG_VALUES, graded.message
    assert "right numbers, but" in graded.message or "right activations, but" in graded.message, graded.message
    known = next(m for m in checks.mutants if m.name == mutant)
    assert known.mistake in graded.message  # named, as in the notebook (the mutant suite proves that one)
