"""The one shared checking helper: compare a learner's output with the reference and explain what is wrong.

Every checker in ``tests/`` goes through :func:`check_cases`, which, for each case:

1. calls the reference and the learner's function on *separate clones* of the inputs
   (so a function that mutates its inputs cannot change the expected value or the next case),
2. compares the outputs with :func:`compare`, which checks, in this order and stopping at the first problem:
   type → shape (with named dims) → dtype → device → NaN/Inf → values (max abs/rel diff, worst index,
   tolerance),
3. on a failure, runs every known mistake (a :class:`Mutant`) on the same inputs and, if the learner's output
   matches one, names it: "your output matches a known mistake: forgetting the 1/sqrt(d_head) scale".

Failures are raised as :class:`CheckFailure`, which carries one grading :class:`Status` and a message meant
for a learner (no traceback wall).

Example:
    >>> compare(torch.zeros(2, 3), torch.zeros(2, 4), dims="batch pos")
    CheckFailure: WRONG_SHAPE: output has shape (batch=2, pos=3), expected (batch=2, pos=4)
"""

from __future__ import annotations

import copy
import enum
import math
import numbers
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch


class Status(str, enum.Enum):
    """Grading statuses (DESIGN §7). Exactly one per (learner, exercise); only PASS earns points."""

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


class CheckFailure(AssertionError):
    """A learner-facing failure: one :class:`Status` and a message that says what and why."""

    def __init__(self, status: Status, message: str):
        super().__init__(f"{status.value}: {message}")
        self.status = status
        self.message = message

    def with_context(self, prefix: str = "", suffix: str = "") -> "CheckFailure":
        return CheckFailure(self.status, f"{prefix}{self.message}{suffix}")


# Default tolerances (atol, rtol) per device type. CPU float32 kernels are deterministic up to summation
# order, so 1e-5 absolute covers a learner who sums in another order. CUDA may reorder reductions and use
# other kernels (and TF32 where a learner enables it); MPS has the loosest float32 arithmetic of the three.
# Exercises whose outputs are large (logits, losses) or accumulated (training) pass their own.
TOLERANCES: dict[str, tuple[float, float]] = {"cpu": (1e-5, 1e-4), "cuda": (1e-4, 1e-3), "mps": (1e-3, 1e-2)}


def tolerance_for(device: torch.device | str, overrides: dict[str, tuple[float, float]] | None = None):
    kind = torch.device(device).type
    return (overrides or {}).get(kind, TOLERANCES.get(kind, TOLERANCES["cpu"]))


# --------------------------------------------------------------------------------------------------------
# Calling learner code
# --------------------------------------------------------------------------------------------------------
def clone_inputs(value: Any) -> Any:
    """A deep copy of call arguments; modules (models, hook points) are shared, not copied, and an
    ActivationCache gets cloned tensors around the same model."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.nn.Module):
        return value
    if hasattr(value, "cache_dict") and hasattr(value, "model"):  # transformer_lens.ActivationCache
        return type(value)(clone_inputs(value.cache_dict), value.model, has_batch_dim=value.has_batch_dim)
    if isinstance(value, (list, tuple)):
        return type(value)(clone_inputs(v) for v in value)
    if isinstance(value, dict):
        return {k: clone_inputs(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _learner_frame(tb: traceback.StackSummary) -> str:
    """The last frame that belongs to learner code (a notebook cell or a submission), else the last frame."""
    frames = [f for f in tb if f.filename.startswith("<") or "ipykernel_" in f.filename]
    frame = (frames or list(tb))[-1] if len(tb) else None
    if frame is None:
        return ""
    where = f"{frame.filename}, line {frame.lineno}, in {frame.name}"
    return f" (at {where}: {frame.line.strip()})" if frame.line else f" (at {where})"


def _reset_hooks(values: Iterable[Any]) -> None:
    """Remove every hook (permanent ones too) a learner left on a model or hook point among ``values``."""
    for value in values:
        if hasattr(value, "reset_hooks") and isinstance(value, torch.nn.Module):
            value.reset_hooks(including_permanent=True)
        elif hasattr(value, "model") and hasattr(value.model, "reset_hooks"):  # an ActivationCache
            value.model.reset_hooks(including_permanent=True)


def call_learner(fn: Callable, *args, **kwargs) -> Any:
    """Call learner code; map ``NotImplementedError`` to NOT_ATTEMPTED and other exceptions to ERROR.

    Afterwards, hooks left on any model among the arguments are removed, so they cannot affect the next check.
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise CheckFailure(
            Status.NOT_ATTEMPTED, "still raises NotImplementedError: replace the stub with your implementation."
        ) from e
    except (CheckFailure, MemoryError):
        raise  # a MemoryError is the grader's CRASHED, not the learner's ERROR
    except Exception as e:  # learner code may raise anything
        where = _learner_frame(traceback.extract_tb(e.__traceback__))
        raise CheckFailure(Status.ERROR, f"raised {type(e).__name__}: {e}{where}") from e
    finally:
        _reset_hooks([*args, *kwargs.values()])


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
    return f"{type(x).__module__}.{type(x).__qualname__}".replace("builtins.", "")


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
        hint = " (convert with torch.as_tensor(...))" if type(got).__module__.startswith("numpy") else ""
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
    """True where :func:`compare` would accept ``got``."""
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
    """One input to an exercise. ``label`` is shown to the learner (never for hidden cases)."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    hidden: bool = False


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

    @property
    def name(self) -> str:
        return self.fn.__name__


def diagnose(got: Any, case: Case, mutants: Iterable[Mutant], **compare_kwargs) -> Mutant | None:
    """The first known mistake whose output on ``case`` matches the learner's output, if any."""
    for mutant in mutants:
        try:
            out = mutant.fn(*clone_inputs(case.args), **clone_inputs(case.kwargs))
        except Exception:
            continue
        if matches(got, out, **compare_kwargs):
            return mutant
    return None


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
) -> int:
    """Check ``fn`` against ``reference`` on every case; return the number of cases checked.

    ``transform`` post-processes both outputs before comparison (e.g. ``sorted`` for an unordered list).
    Raises :class:`CheckFailure` at the first failing case, with the case label, a diagnosis from
    ``mutants`` when one matches, else ``hint``.
    """
    if not callable(fn):
        raise CheckFailure(Status.WRONG_TYPE, f"expected a function, got {_type_name(fn)}")
    mutants = list(mutants)
    n = 0
    for case in cases:
        expected = reference(*clone_inputs(case.args), **clone_inputs(case.kwargs))
        got = call_learner(fn, *clone_inputs(case.args), **clone_inputs(case.kwargs))
        if transform is not None:
            expected = transform(expected)
            try:
                got = transform(got)
            except Exception:
                pass  # leave as is: compare() reports the wrong type
        try:
            compare(got, expected, dims=dims, atol=atol, rtol=rtol)
        except CheckFailure as failure:
            advice = explain(got, case, mutants, hint, transform=transform, dims=dims, atol=atol, rtol=rtol)
            if case.hidden:  # never reveal a hidden case's inputs or expected values
                raise CheckFailure(failure.status, f"on a hidden case: {failure.status.value.lower().replace('_', ' ')}"
                                   f" (the public cases may not cover this input){advice}") from None
            prefix = f"on {case.label}: " if case.label else ""
            raise failure.with_context(prefix, advice) from None
        n += 1
    return n


def explain(got: Any, case: Case, mutants: list[Mutant], hint: str, *, transform=None, **compare_kwargs) -> str:
    """The sentence appended to a failure: the matching known mistake, else the exercise's hint."""
    candidates = mutants
    if transform is not None:
        candidates = [Mutant(lambda *a, _m=m, **k: transform(_m.fn(*a, **k)), m.mistake) for m in mutants]
    found = diagnose(got, case, candidates, **compare_kwargs)
    if found is not None:
        return f"\n  Your output matches a known mistake: {found.mistake}."
    return f"\n  Hint: {hint}" if hint else ""
