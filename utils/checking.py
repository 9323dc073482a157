"""The one shared checking helper: compare a learner's output with the reference and explain what is wrong.

Every checker in ``tests/`` goes through :func:`check_cases`, which, for each case:

1. calls the reference and the learner's function on *separate clones* of the inputs
   (so a function that mutates its inputs cannot change the expected value or the next case),
2. compares the outputs with :func:`compare`, which checks, in this order and stopping at the first problem:
   type → shape (with named dims) → dtype → device → NaN/Inf → values (max abs/rel diff, worst index,
   tolerance),
3. on a failure, runs every known mistake (a :class:`Mutant`) on the same inputs and, if the learner's output
   matches one, names it: "your output matches a known mistake: forgetting the 1/sqrt(d_head) scale"; when
   several mistakes give that same output, it names them all (and the symptom they share) and blames none.

Failures are raised as :class:`CheckFailure`, which carries one grading :class:`Status` and a message meant
for a learner (no traceback wall).

Example:
    >>> compare(torch.zeros(2, 3), torch.zeros(2, 4), dims="batch pos")
    CheckFailure: WRONG_SHAPE: output has shape (batch=2, pos=3), expected (batch=2, pos=4)
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
import numbers
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

import torch

from utils.wire import clone_inputs, type_name


class Status(str, enum.Enum):
    """Grading statuses (the table in README.md, "For instructors"). Exactly one per (learner, exercise); only PASS
    earns points."""

    PASS = "PASS"
    WRONG_VALUES = "WRONG_VALUES"
    WRONG_SHAPE = "WRONG_SHAPE"
    WRONG_DTYPE = "WRONG_DTYPE"
    WRONG_DEVICE = "WRONG_DEVICE"
    WRONG_TYPE = "WRONG_TYPE"
    NAN = "NAN"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    CRASHED = "CRASHED"
    MISSING = "MISSING"
    NOT_ATTEMPTED = "NOT_ATTEMPTED"
    UNREADABLE = "UNREADABLE"
    CHANGED_MODEL = "CHANGED_MODEL"  # the function changed a model it was given (undone before anything else ran)
    INCOMPLETE = "INCOMPLETE"  # not graded: the grading run was interrupted before this exercise


class CheckFailure(AssertionError):
    """A learner-facing failure: one :class:`Status` and a message that says what and why."""

    def __init__(self, status: Status, message: str, mistake: str | None = None):
        super().__init__(f"{status.value}: {message}")
        self.status = status
        self.message = message
        self.mistake = mistake  # the known mistake the output matches, when the diagnosis found one

    def with_context(self, prefix: str = "", suffix: str = "", mistake: str | None = None) -> "CheckFailure":
        return CheckFailure(self.status, f"{prefix}{self.message}{suffix}", mistake or self.mistake)


Tolerances = dict[str, tuple[float, float]]  # device type -> (atol, rtol); every table is in checks/helpers.py


def tolerance_for(device: torch.device | str, table: Tolerances) -> tuple[float, float]:
    """``(atol, rtol)`` of ``table`` for ``device``'s type (a device type the table does not name: its CPU entry)."""
    kind = torch.device(device).type
    return table.get(kind, table["cpu"])


# --------------------------------------------------------------------------------------------------------
# Calling learner code
# --------------------------------------------------------------------------------------------------------
def _learner_frame(tb: traceback.StackSummary) -> str:
    """The last frame that belongs to learner code (a notebook cell or a submission), else the last frame."""
    frames = [f for f in tb if f.filename.startswith("<") or "ipykernel_" in f.filename]
    frame = (frames or list(tb))[-1] if len(tb) else None
    if frame is None:
        return ""
    where = f"{frame.filename}, line {frame.lineno}, in {frame.name}"
    return f" (at {where}: {frame.line.strip()})" if frame.line else f" (at {where})"


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the process ran out of memory: ``MemoryError``, CUDA/MPS out-of-memory errors, or
    the CPU allocator's ``RuntimeError`` when an address-space limit is hit (it has no type of its own)."""
    if isinstance(error, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def blocked_by_sandbox(error: BaseException) -> str | None:
    """While grading (in the sandboxed worker), what an error means when the sandbox caused it, else None."""
    import errno
    import os
    import socket

    if not os.environ.get("CS_GRADING_WORKER") or not isinstance(error, OSError):
        return None
    path = getattr(error, "filename", None)
    if isinstance(path, str) and error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"tried to write `{_course_relative(path)}`: learner code may not write outside its temporary folder "
                "while grading")
    if isinstance(path, str) and error.errno == errno.ENOENT and os.path.isabs(path):
        return (f"tried to open `{path}`, which learner code cannot see while grading (only the course code, the "
                "packages and the models are visible)")
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ("filled its temporary folder: learner code may write only a few hundred MB, and only there, while "
                "grading")
    network = (errno.ENETUNREACH, errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)
    if isinstance(error, socket.gaierror) or error.errno in network:
        return "tried to open a network connection: learner code has no network while grading"
    return None


def _course_relative(path: str) -> str:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


def call_learner(fn: Callable, *args, **kwargs) -> Any:
    """Call learner code in a pristine state and classify what went wrong.

    The call runs under torch's baseline global state, and any model among the arguments is checked and restored
    afterwards (``utils/isolation.py``). Raises :class:`CheckFailure`: NOT_ATTEMPTED for ``NotImplementedError``,
    CRASHED when it ran out of memory, CHANGED_MODEL when it changed a model (undone already), ERROR for any other
    exception (with the learner's line).
    """
    from utils.isolation import pristine

    failure = None
    with pristine([*args, *kwargs.values()]) as report:
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError:
            failure = CheckFailure(
                Status.NOT_ATTEMPTED, "still raises NotImplementedError: replace the stub with your implementation.")
        except CheckFailure as e:
            failure = e
        except Exception as e:  # learner code may raise anything
            if is_out_of_memory(e):
                failure = CheckFailure(Status.CRASHED, f"ran out of memory ({type(e).__name__}: {str(e)[:200]})")
            else:
                where = _learner_frame(traceback.extract_tb(e.__traceback__))
                failure = CheckFailure(Status.ERROR, blocked_by_sandbox(e) or f"raised {type(e).__name__}: {e}{where}")
    if report.changes:
        shown = "; ".join(report.changes[:4]) + (f"; and {len(report.changes) - 4} more" if len(report.changes) > 4
                                                  else "")
        also = f" (it also {failure.status.value}: {failure.message})" if failure is not None else ""
        raise CheckFailure(Status.CHANGED_MODEL, f"your function changed the model it was given, in place: {shown}. "
                           "Work on copies (W = model.W_E.clone()), pass settings as arguments (prepend_bos=...), "
                           f"and add hooks only with run_with_hooks or `with model.hooks(...)`. (The model has been "
                           f"restored.){also}")
    if failure is not None:
        raise failure
    return result


class Passes(NamedTuple):
    """How often a call ran each model's embedding (one per forward pass from the tokens), first block and last block
    (an engine that starts at a later layer runs the last block more often than the first)."""

    embed: int = 0
    first_block: int = 0
    last_block: int = 0


def count_forward_passes(fn: Callable, *args, **kwargs) -> tuple[Any, Passes]:
    """:func:`call_learner`, also counting the passes through the embedding, first and last blocks of the models
    among the arguments (torch hooks the function cannot see, removed before the models are checked for changes).
    A function graded in the worker (``utils.worker.RemoteFunction``) is counted there."""
    remote = getattr(fn, "forward_passes", None)
    if remote is not None:
        output, counts = remote(*args, **kwargs)
        return output, Passes(*counts)
    from utils.wire import modules_in

    counts = [0, 0, 0]
    watched = []
    for model in modules_in([*args, *kwargs.values()]):
        blocks = getattr(model, "blocks", None)
        if isinstance(getattr(model, "embed", None), torch.nn.Module) and blocks is not None and len(blocks):
            watched += [(model.embed, 0), (blocks[0], 1), (blocks[-1], 2)]

    def counted(*a, **k):
        handles = [module.register_forward_pre_hook(lambda m, inputs, i=i: counts.__setitem__(i, counts[i] + 1))
                   for module, i in watched]
        try:
            return fn(*a, **k)
        finally:
            for handle in handles:
                handle.remove()

    counted.__name__ = getattr(fn, "__name__", "counted")
    output = call_learner(counted, *args, **kwargs)
    return output, Passes(*counts)


# --------------------------------------------------------------------------------------------------------
# Comparing outputs
# --------------------------------------------------------------------------------------------------------
def _shape_str(shape: Iterable[int], dims: list[str] | None) -> str:
    shape = tuple(shape)
    if dims and len(dims) == len(shape):
        return "(" + ", ".join(f"{d}={s}" for d, s in zip(dims, shape)) + ")"
    return str(shape)


def _index_str(index: tuple[int, ...], dims: list[str] | None) -> str:
    if dims and len(dims) == len(index):
        return "[" + ", ".join(f"{d}={i}" for d, i in zip(dims, index)) + "]"
    return str(list(index))


def _type_name(x: Any) -> str:
    return type_name(x)


def compare(
    got: Any,
    expected: Any,
    *,
    name: str = "output",
    dims: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    values: bool = True,
) -> None:
    """Raise :class:`CheckFailure` unless ``got`` matches ``expected`` (computed by the checker).

    Tensors are checked for type, shape (``dims`` names the dimensions, e.g. ``"batch head dest src"``),
    dtype, device, NaN/Inf and values (floats with ``atol``/``rtol``, integers and bools exactly);
    ``values=False`` stops before the values (for outputs that are checked by what they do, e.g. a probe).
    Python numbers, strings and (nested) lists/tuples/dicts are compared element by element.
    """
    if isinstance(expected, torch.Tensor):
        _compare_tensor(got, expected, name=name, dims=dims.split() if dims else None, atol=atol, rtol=rtol,
                        values=values)
    elif isinstance(expected, bool) or isinstance(expected, str):
        if type(got) is not type(expected):
            raise CheckFailure(Status.WRONG_TYPE, f"{name} is {_type_name(got)}, expected {type(expected).__name__}")
        if got != expected:
            raise CheckFailure(Status.WRONG_VALUES, f"{name} is {got!r}, expected {expected!r}")
    elif isinstance(expected, numbers.Real):
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            hint = " (use .item() to turn a one-element tensor into a Python number)" if isinstance(
                got, torch.Tensor) else ""
            raise CheckFailure(
                Status.WRONG_TYPE, f"{name} is {_type_name(got)}, expected a Python {type(expected).__name__}{hint}"
            )
        got_f, exp_f = float(got), float(expected)
        if math.isnan(got_f) and not math.isnan(exp_f):
            raise CheckFailure(Status.NAN, f"{name} is NaN, expected {exp_f:.6g}")
        if not math.isclose(got_f, exp_f, rel_tol=rtol, abs_tol=atol):
            raise CheckFailure(
                Status.WRONG_VALUES,
                f"{name} is {got_f:.6g}, expected {exp_f:.6g} (diff {abs(got_f - exp_f):.3g}; "
                f"tolerance atol={atol:g}, rtol={rtol:g})",
            )
    elif isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            raise CheckFailure(Status.WRONG_TYPE, f"{name} is {_type_name(got)}, expected {type(expected).__name__}")
        if len(got) != len(expected):
            raise CheckFailure(
                Status.WRONG_SHAPE, f"{name} has {len(got)} elements, expected {len(expected)}: {_preview(got)} vs "
                f"expected {_preview(expected)}",
            )
        for i, (g, e) in enumerate(zip(got, expected)):
            compare(g, e, name=f"{name}[{i}]", dims=dims, atol=atol, rtol=rtol)
    elif isinstance(expected, dict):
        if not isinstance(got, dict):
            raise CheckFailure(Status.WRONG_TYPE, f"{name} is {_type_name(got)}, expected dict")
        if set(got) != set(expected):
            missing, extra = sorted(set(expected) - set(got), key=str), sorted(set(got) - set(expected), key=str)
            raise CheckFailure(Status.WRONG_VALUES, f"{name} keys differ: missing {missing}, unexpected {extra}")
        for k in expected:
            compare(got[k], expected[k], name=f"{name}[{k!r}]", dims=dims, atol=atol, rtol=rtol)
    else:
        raise TypeError(f"compare() does not know how to compare {type(expected).__name__}")


def _preview(x: Any, n: int = 6) -> str:
    items = list(x)
    return repr(items[:n])[:-1] + (", ...]" if len(items) > n else "]")


def _compare_tensor(got, expected: torch.Tensor, *, name, dims, atol, rtol, values=True) -> None:
    if not isinstance(got, torch.Tensor):
        hint = " (convert with torch.as_tensor(...))" if _type_name(got).startswith("numpy") else ""
        raise CheckFailure(Status.WRONG_TYPE, f"{name} is {_type_name(got)}, expected a torch.Tensor{hint}")
    got = got.detach().as_subclass(torch.Tensor)  # never trust learner objects beyond plain tensor data
    if got.shape != expected.shape:
        raise CheckFailure(
            Status.WRONG_SHAPE,
            f"{name} has shape {_shape_str(got.shape, dims)}, expected {_shape_str(expected.shape, dims)}",
        )
    if got.dtype != expected.dtype:
        raise CheckFailure(Status.WRONG_DTYPE, f"{name} has dtype {got.dtype}, expected {expected.dtype}")
    if got.device.type != expected.device.type:
        raise CheckFailure(
            Status.WRONG_DEVICE,
            f"{name} is on {got.device}, expected {expected.device} (create new tensors with device=x.device)",
        )
    got, expected = got.cpu(), expected.detach().cpu()
    if got.is_floating_point() or got.is_complex():
        bad_nan = got.isnan() & ~expected.isnan()
        if bad_nan.any():
            first = tuple(int(i) for i in bad_nan.nonzero()[0])
            raise CheckFailure(
                Status.NAN,
                f"{name} has {int(bad_nan.sum())} NaN value(s) where the expected output has none "
                f"(first at {_index_str(first, dims)}, expected {expected[first].item():.6g})",
            )
        if not values:
            return
        close = torch.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    elif not values:
        return
    else:
        close = got == expected
    if bool(close.all()):
        return
    n_bad = int((~close).sum())
    if got.is_floating_point():
        diff = (got - expected).abs().nan_to_num(nan=math.inf, posinf=math.inf)
        diff[close] = 0  # matching infinities give inf - inf = nan: not a difference
        worst = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        rel = (diff / expected.abs().clamp_min(1e-12))[close.logical_not()].max().item()
        detail = (
            f"max abs diff {diff.max().item():.3g}, max rel diff {rel:.3g}; worst at {_index_str(worst, dims)}: "
            f"got {got[worst].item():.6g}, expected {expected[worst].item():.6g} (tolerance atol={atol:g}, "
            f"rtol={rtol:g})"
        )
    else:
        worst = tuple(int(i) for i in (~close).nonzero()[0])
        detail = f"first at {_index_str(worst, dims)}: got {got[worst].item()}, expected {expected[worst].item()}"
    raise CheckFailure(Status.WRONG_VALUES, f"{name}: {n_bad} of {close.numel()} values differ; {detail}")


def matches(got: Any, expected: Any, **kwargs) -> bool:
    """True where :func:`compare` would accept ``got`` (and where both are None: a hook that returns nothing)."""
    if expected is None:
        return got is None
    try:
        compare(got, expected, **kwargs)
        return True
    except (CheckFailure, TypeError):  # TypeError: expected is of a kind compare() does not know (e.g. None)
        return False


# --------------------------------------------------------------------------------------------------------
# Cases, mutants and the checking loop
# --------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One input to an exercise. ``label`` is shown to the learner (never for hidden cases).

    ``reference_output`` memoizes the reference's output on this case: checkers build their cases once per
    session, so a class of learners (or a learner's repeated checks) costs one reference run per case.
    ``mutant_outputs`` does the same for the known mistakes the diagnosis has run on it.
    """

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    hidden: bool = False
    reference_output: Any = field(default=None, repr=False, compare=False)
    mutant_outputs: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Mutant:
    """A plausible wrong implementation, used to test the checker and to diagnose learners' mistakes.

    ``mistake`` is the one-line description a learner sees ("forgetting the 1/sqrt(d_head) scale");
    ``expect`` is the failure kind the checker must report for it.
    """

    fn: Callable
    mistake: str
    expect: Status = Status.WRONG_VALUES
    only_on: tuple[str, ...] | None = None  # device types on which the mistake shows (e.g. ("cuda", "mps"))
    symptom: str = ""  # what the learner observes, shared by mistakes that give the same output ("your ablation
    # changed nothing: the score is the unablated one"); said first when every matching mistake shares it

    @property
    def name(self) -> str:
        return self.fn.__name__


@dataclass
class Attempt:
    """One call of the learner's function on one case, as a custom judge sees it.

    ``got`` is the learner's output after the exercise's ``transform`` (``raw`` before it); ``expected`` runs the
    reference on fresh copies of the case's inputs when first read; ``call_again`` calls the learner's function
    once more (through :func:`call_learner`) on fresh copies, with keyword arguments overridden.
    """

    case: Case
    raw: Any
    got: Any
    fn: Callable
    reference: Callable
    transform: Callable[[Any], Any] | None
    device: Any
    dims: str | None
    atol: float
    rtol: float

    @functools.cached_property
    def expected(self) -> Any:
        if self.case.reference_output is None:
            self.case.reference_output = _call_reference(self.reference, self.case)
        out = clone_inputs(self.case.reference_output)  # the memo stays as the reference made it
        return self.transform(out) if self.transform is not None else out

    def call_again(self, **kwargs) -> Any:
        return call_learner(self.fn, *clone_inputs(self.case.args), **{**clone_inputs(self.case.kwargs), **kwargs})

    def compare(self, got: Any = None, expected: Any = None, **kwargs) -> None:
        """:func:`compare` with this exercise's dims and tolerances (defaults: ``self.got`` vs ``self.expected``)."""
        options = dict(dims=self.dims, atol=self.atol, rtol=self.rtol) | kwargs
        compare(self.got if got is None else got, self.expected if expected is None else expected, **options)


Judge = Callable[[Attempt], None]  # raises CheckFailure when the attempt is wrong
_NO_ANSWER = object()


def _transformed(transform: Callable | None, output: Any) -> Any:
    """``transform(output)``; a learner output the transform cannot read is the learner's WRONG_TYPE."""
    if transform is None:
        return output
    try:
        return transform(output)
    except CheckFailure:
        raise
    except Exception as e:
        raise CheckFailure(Status.WRONG_TYPE, f"returned {_type_name(output)}, which cannot be read as the expected "
                           f"output ({type(e).__name__}: {e})") from None


def _call_reference(reference: Callable, case: Case) -> Any:
    """The reference's output on fresh copies of the case's inputs (it must leave every model as it was)."""
    from utils.isolation import pristine

    with pristine([*case.args, *case.kwargs.values()]) as report:
        out = reference(*clone_inputs(case.args), **clone_inputs(case.kwargs))
    assert not report.changes, f"the reference changed the model: {report.changes}"
    return out


def _run_mutant(mutant: Mutant, case: Case, transform: Callable | None) -> Any:
    """A known mistake's output on fresh copies of a case (models restored afterwards, whatever it did), memoized on
    the case (an exception too: it is raised again)."""
    from utils.isolation import pristine

    # the transform by name: transform_for makes a new closure per check, the same for every case of one device
    key = (mutant.fn, None if transform is None else getattr(transform, "__qualname__", type(transform).__qualname__))
    if key not in case.mutant_outputs:
        try:
            with pristine([*case.args, *case.kwargs.values()]):
                out = mutant.fn(*clone_inputs(case.args), **clone_inputs(case.kwargs))
            case.mutant_outputs[key] = transform(out) if transform is not None else out
        except Exception as e:
            case.mutant_outputs[key] = _Raised(e)
    out = case.mutant_outputs[key]
    if isinstance(out, _Raised):
        raise out.error
    return out


@dataclass
class _Raised:
    error: Exception


def diagnose(answers: list[tuple[Case, Any]], mutants: Iterable[Mutant], transform: Callable | None = None,
             **compare_kwargs) -> list[Mutant]:
    """Every known mistake whose output matches the learner's on *every* answered case (a mistake that would have
    failed a case the learner passed is not theirs). Several mistakes can give the same output on these cases: all
    are returned, none is blamed alone.

    Each mistake stops at the first case where it differs, so ``answers`` come cheapest first (``check_cases`` orders
    them by the learner's time on each, the failing case counted at half: almost every mistake differs from the
    learner's wrong output there). The verdict does not depend on the order, only the time it takes.
    """
    found = []
    for mutant in mutants:
        try:
            if all(matches(got, _run_mutant(mutant, case, transform), **compare_kwargs) for case, got in answers):
                found.append(mutant)
        except Exception:
            continue
    return found


def explain(answers: list[tuple[Case, Any]], mutants: Iterable[Mutant], hint: str, *, transform=None,
            **compare_kwargs) -> tuple[str, str | None]:
    """The sentence appended to a failure: the matching known mistake (every one, with the symptom they share,
    when several give the learner's output), else the exercise's hint; and the mistake for the gradebook (several
    coinciding ones: their shared symptom, else all of them)."""
    found = diagnose(answers, mutants, transform, **compare_kwargs) if answers else []
    if len(found) == 1:
        symptom = f"{_sentence(found[0].symptom)} " if found[0].symptom else ""
        return f"\n  {symptom}Your output matches a known mistake: {found[0].mistake}.", found[0].mistake
    if found:
        symptoms = {m.symptom for m in found}
        shared = symptoms.pop() if len(symptoms) == 1 and "" not in symptoms else ""
        lead = f"{_sentence(shared)} " if shared else ""
        listed = "; ".join(f"({i}) {m.mistake}" for i, m in enumerate(found, 1))
        return (f"\n  {lead}Your output matches {len(found)} known mistakes, which give the same output on these "
                f"cases (any of them, or another): {listed}.", shared or " / ".join(m.mistake for m in found))
    return (f"\n  Hint: {hint}" if hint else ""), None


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def check_cases(
    fn: Callable,
    reference: Callable,
    cases: Iterable[Case],
    *,
    dims: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    mutants: Iterable[Mutant] = (),
    hint: str = "",
    transform: Callable[[Any], Any] | None = None,
    judge: Judge | None = None,
    answer_every_case: bool = False,
    device: Any = None,
) -> int:
    """Check ``fn`` against ``reference`` on every case; return the number of cases checked.

    For each case the learner's function is called on fresh copies of the inputs (:func:`call_learner`); its
    output, after ``transform``, goes to ``judge`` (a custom check, see :class:`Attempt`) or, by default, is
    compared with the reference's. The first failure is raised as :class:`CheckFailure`, prefixed with the case
    label (hidden cases say only "on a hidden case"), and followed by the known mistakes that match the learner
    on every case answered so far, else ``hint``. With ``answer_every_case`` the learner answers every case
    before the diagnosis (for answers that many mistakes share on one case, such as an empty list of heads). The
    diagnosis runs each known mistake on the cheapest cases first (the failing case counted at half its cost), so a
    wrong answer costs about one cheap call per mistake.
    """
    if not callable(fn):
        raise CheckFailure(Status.WRONG_TYPE, f"expected a function, got {_type_name(fn)}")
    with one_cpu_thread():
        return _check_cases(fn, reference, cases, dims=dims, atol=atol, rtol=rtol, mutants=mutants, hint=hint,
                            transform=transform, judge=judge, answer_every_case=answer_every_case, device=device)


@contextlib.contextmanager
def one_cpu_thread():
    """Run the body on one CPU thread (torch's intra-op threads), then restore the caller's count.

    Checks run on the shipped small models, where a second thread gains little; on a machine whose cores are busy
    with other work, each multi-threaded kernel waits for a core per thread, and a check that takes 0.05 s can take
    5-15 s (``bench/bench_failing_checks.py`` measures both; the grading worker runs on one thread anyway).
    """
    n = torch.get_num_threads()
    if n != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n != 1:
            torch.set_num_threads(n)


def _check_cases(fn, reference, cases, *, dims, atol, rtol, mutants, hint, transform, judge, answer_every_case,
                 device) -> int:
    answers: list[tuple[Case, Any]] = []  # (case, transformed output) the diagnosis compares with each mutant
    seconds: dict[int, float] = {}  # id(case) -> how long the learner's call took: what a mutant's call costs there
    first: tuple[Case, CheckFailure] | None = None
    n = 0
    for case in cases:
        got = _NO_ANSWER
        args, kwargs = (case.args, case.kwargs) if getattr(fn, "copies_inputs", False) else (
            clone_inputs(case.args), clone_inputs(case.kwargs))
        try:
            start = time.perf_counter()
            raw = call_learner(fn, *args, **kwargs)
            seconds[id(case)] = time.perf_counter() - start
            got = _transformed(transform, raw)
            attempt = Attempt(case, raw, got, fn, reference, transform, device, dims, atol, rtol)
            judge(attempt) if judge is not None else attempt.compare()
            n += 1
        except CheckFailure as failure:
            if first is None:
                first = (case, failure)
            elif got is _NO_ANSWER:
                break
        if got is not _NO_ANSWER:
            answers.append((case, got))
        if first is not None and not answer_every_case:
            break
    if first is None:
        return n
    case, failure = first
    answered = any(c is case for c, _ in answers)  # False: the call itself failed (error, time-out, ...)
    if answered:  # cheapest first, the failing case at half its cost: it tells almost every mistake apart
        answers.sort(key=lambda a: seconds.get(id(a[0]), 0.0) * (0.5 if a[0] is case else 1.0))
    advice, mistake = explain(answers, mutants, hint, transform=transform, dims=dims, atol=atol,
                              rtol=rtol) if answered else ("", None)
    if case.hidden:  # never reveal a hidden case's inputs or expected values
        raise CheckFailure(failure.status, f"on a hidden case: {failure.status.value.lower().replace('_', ' ')}"
                           f" (the public cases may not cover this input){advice}", mistake) from None
    prefix = f"on {case.label}: " if case.label and not failure.message.startswith("on ") else ""
    raise failure.with_context(prefix, advice, mistake) from None


@dataclass(frozen=True)
class Verdict:
    """The outcome of one exercise's check, as a check cell prints it and a gradebook records it."""

    status: Status
    message: str = ""
    cases: int | None = None
    mistake: str | None = None  # the known mistake the output matches, when one does

    @property
    def passed(self) -> bool:
        return self.status == Status.PASS

    def line(self, exercise: str) -> str:
        """The one-line verdict, in the same words in notebooks (check cells) and in grading feedback."""
        if self.passed:
            return f"✅ {exercise} passed" + (f" ({self.cases} cases)" if self.cases is not None else "")
        return f"❌ {exercise} — {self.status.value}: {self.message}"
