"""Pristine state for every call into learner code.

A learner's function receives the shipped model itself (not a copy: copying a model per call would cost more than
the check). Whatever the function does to it — ``model.W_E.data.zero_()``, ``model.cfg.default_prepend_bos =
False``, ``model.tokenizer.padding_side = "left"``, ``model.train()``, a hook left behind, a parameter or a whole
block replaced — must not reach the next call, the next exercise or the next learner. So around each call:

1. every ``torch.nn.Module`` among the arguments (and the model behind an ``ActivationCache`` or a ``HookPoint``)
   is compared, after the call, with a **snapshot taken when it was loaded** (:func:`register`, called by
   ``utils.models.load_model`` / ``load_sae``; a module seen for the first time is snapshotted before the call):
   parameters and buffers (the same objects, bit-identical values, ``requires_grad``), the module tree,
   train/eval flags, ``cfg`` and the tokenizer's settings, hooks, and data left in a hook point's ``ctx``;
2. anything that changed is **restored** and named in a :class:`ModelChanged` report;
3. torch's global state (default dtype, grad mode, threads, deterministic flags, TF32 switches, the CPU random
   generator) is set to :data:`BASELINE` for the call and put back as it was afterwards, so a learner's
   ``torch.set_grad_enabled(False)`` or ``torch.set_default_dtype(torch.float64)`` affects nobody else.

Detecting by exact comparison (``torch.equal`` against the snapshot) costs about as much as a fingerprint and
names the change exactly: ``make bench`` (``bench/bench_isolation.py``) measures the alternatives.

Example:
    >>> model = load_model("attn2l")                      # registered: snapshot taken
    >>> with pristine([model]) as report:
    ...     model.W_E.data.zero_()                        # learner code
    >>> report.changes                                    # restored already
    ['W_E (embed.W_E): values']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import torch

# --------------------------------------------------------------------------------------------------------
# Torch's global state
# --------------------------------------------------------------------------------------------------------
BASELINE_SEED = 0


@dataclass(frozen=True)
class GlobalState:
    """The torch settings a learner can change from any line of code, an import or a constant."""

    default_dtype: torch.dtype
    grad_enabled: bool
    num_threads: int
    deterministic: bool
    deterministic_warn_only: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    matmul_tf32: bool
    cudnn_tf32: bool
    anomaly: bool

    @classmethod
    def current(cls) -> "GlobalState":
        return cls(torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
                   torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                   torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                   torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                   torch.is_anomaly_enabled())

    def apply(self) -> None:
        torch.set_default_dtype(self.default_dtype)
        torch.set_grad_enabled(self.grad_enabled)
        if self.num_threads and torch.get_num_threads() != self.num_threads:  # 0: keep the caller's count
            torch.set_num_threads(self.num_threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.deterministic_warn_only)
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32
        torch.set_anomaly_enabled(self.anomaly)


# torch's defaults (threads: 0 = the caller's count; the grading worker sets 1). Every learner call runs under
# these settings, and the caller's come back afterwards.
BASELINE = dataclasses.replace(
    GlobalState.current(), num_threads=0, default_dtype=torch.float32, grad_enabled=True, deterministic=False,
    deterministic_warn_only=False, cudnn_deterministic=False, cudnn_benchmark=False, matmul_tf32=False,
    cudnn_tf32=True, anomaly=False,
)


def set_baseline_threads(n: int) -> None:
    """Make ``n`` the thread count of :data:`BASELINE` (the grading worker runs learner code on one thread)."""
    global BASELINE
    BASELINE = dataclasses.replace(BASELINE, num_threads=n)


# --------------------------------------------------------------------------------------------------------
# Snapshots of modules
# --------------------------------------------------------------------------------------------------------
_TOKENIZER_SKIP = {"_tokenizer", "deprecation_warnings", "_in_target_context_manager"}


def _plain_state(obj: Any) -> dict:
    """The attributes of a config or tokenizer, deep-copied (what :func:`_restore_attrs` puts back)."""
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if k not in _TOKENIZER_SKIP}


def _tokenizer_backend(tokenizer) -> tuple:
    """The vocabulary size with added tokens, and the backend as JSON to rebuild it from. (The backend's padding
    and truncation are not compared: the tokenizer sets them from its arguments on every call.)"""
    backend = getattr(tokenizer, "_tokenizer", None)
    return len(tokenizer), (backend.to_str() if hasattr(backend, "to_str") else None)


@dataclass
class Snapshot:
    """A module as it was loaded: what :func:`find_changes` compares with and :func:`restore` puts back."""

    modules: dict[str, torch.nn.Module]
    params: dict[str, tuple[torch.nn.Parameter, torch.Tensor, bool]]
    buffers: dict[str, tuple[torch.Tensor, torch.Tensor]]
    training: dict[str, bool]
    cfg: tuple[Any, dict] | None
    tokenizer: tuple[Any, dict, tuple] | None


def take_snapshot(module: torch.nn.Module) -> Snapshot:
    cfg = getattr(module, "cfg", None)
    tokenizer = getattr(module, "tokenizer", None)
    return Snapshot(
        modules=dict(module.named_modules(remove_duplicate=False)),
        params={n: (p, p.detach().clone(), p.requires_grad)
                for n, p in module.named_parameters(remove_duplicate=False)},
        buffers={n: (b, b.detach().clone()) for n, b in module.named_buffers(remove_duplicate=False)},
        training={n: m.training for n, m in module.named_modules(remove_duplicate=False)},
        cfg=None if cfg is None else (cfg, _plain_state(cfg)),
        tokenizer=None if tokenizer is None else (tokenizer, _plain_state(tokenizer), _tokenizer_backend(tokenizer)),
    )


_SNAPSHOTS: "weakref.WeakKeyDictionary[torch.nn.Module, Snapshot]" = weakref.WeakKeyDictionary()
_MODELS: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()  # registered models with hook points


def register(module: torch.nn.Module) -> torch.nn.Module:
    """Record ``module`` as pristine (call right after loading it). Returns the module (anything else unchanged)."""
    if not isinstance(module, torch.nn.Module):
        return module
    _SNAPSHOTS[module] = take_snapshot(module)
    if hasattr(module, "hook_dict"):
        _MODELS.add(module)
    return module


def owner_of(hook_point: torch.nn.Module) -> torch.nn.Module | None:
    """The registered model a ``HookPoint`` belongs to, if any."""
    for model in list(_MODELS):
        if model.hook_dict.get(getattr(hook_point, "name", None)) is hook_point:
            return model
    return None


def _short(name: str, module: torch.nn.Module) -> str:
    """``embed.W_E`` -> ``W_E (embed.W_E)``: the TransformerLens attribute a learner typed, where there is one."""
    leaf = name.rsplit(".", 1)[-1]
    for alias in ("W_E", "W_pos", "W_U", "b_U"):
        if leaf == alias or name.endswith("." + alias):
            return f"{alias} ({name})" if name != alias else alias
    return name


def _fresh_hook_point(now: Any, original: torch.nn.Module) -> bool:
    """``now`` is a new, hook-free ``HookPoint`` where ``original`` was one: what SAE-Lens's ``HookedSAETransformer``
    leaves behind when it takes an SAE out (``run_with_saes``, the end of ``saes()``, ``reset_saes``). Not a change."""
    return (type(original).__name__ == "HookPoint" and type(now) is type(original) and not now._forward_hooks
            and not now._forward_pre_hooks and not now._backward_hooks)


def put_back_hook_points(module: torch.nn.Module, snap: Snapshot) -> None:
    """Put the original hook points back where SAE-Lens swapped in fresh ones, and rebuild ``hook_dict``."""
    now = dict(module.named_modules(remove_duplicate=False))
    swapped = [n for n, original in snap.modules.items() if now.get(n) is not original
               and _fresh_hook_point(now.get(n), original)]
    for name in swapped:
        _set_child(module, name, snap.modules[name], "_modules")
    if swapped and hasattr(module, "setup"):
        module.setup()


def find_changes(module: torch.nn.Module, snap: Snapshot) -> list[str]:
    """What differs between ``module`` now and ``snap``, in words (empty when nothing does)."""
    changes = []
    now_modules = dict(module.named_modules(remove_duplicate=False))
    replaced = [name for name, original in snap.modules.items() if now_modules.get(name) is not original
                and not _fresh_hook_point(now_modules.get(name), original)]
    replaced = [n for n in replaced if not any(n.startswith(r + ".") for r in replaced if r != n)]  # top-most only
    changes += [f"{name}: module replaced" for name in replaced]
    changes += [f"{name}: module added" for name in sorted(now_modules.keys() - snap.modules.keys())
                if not any(name.startswith(r + ".") for r in replaced)]
    now_params = dict(module.named_parameters(remove_duplicate=False))
    for name, (original, values, requires_grad) in snap.params.items():
        current = now_params.get(name)
        if any(name.startswith(r + ".") for r in replaced):
            continue
        if current is not original:
            changes.append(f"{_short(name, module)}: parameter replaced")
        elif original.shape != values.shape or original.dtype != values.dtype or original.device != values.device:
            changes.append(f"{_short(name, module)}: shape, dtype or device changed")
        elif not torch.equal(original.detach(), values):
            changes.append(f"{_short(name, module)}: values")
        elif original.requires_grad != requires_grad:
            changes.append(f"{_short(name, module)}: requires_grad")
    now_buffers = dict(module.named_buffers(remove_duplicate=False))
    for name, (original, values) in snap.buffers.items():
        current = now_buffers.get(name)
        if any(name.startswith(r + ".") for r in replaced):
            continue
        if current is not original or current.shape != values.shape or not torch.equal(current.detach(), values):
            changes.append(f"{name}: buffer")
    flipped = [n for n, m in now_modules.items() if n in snap.training and m.training != snap.training[n]
               and not any(n == r or n.startswith(r + ".") for r in replaced)]
    if flipped:
        changes.append("train/eval mode (model.train() or .eval())")
    if snap.cfg is not None:
        cfg, state = snap.cfg
        if getattr(module, "cfg", None) is not cfg:
            changes.append("cfg: replaced")
        else:
            changes += [f"cfg.{k}" for k in sorted(set(state) | set(vars(cfg)))
                        if vars(cfg).get(k, _MISSING) != state.get(k, _MISSING)]
    if snap.tokenizer is not None:
        tokenizer, state, backend = snap.tokenizer
        if getattr(module, "tokenizer", None) is not tokenizer:
            changes.append("tokenizer: replaced")
        else:
            changes += [f"tokenizer.{k.lstrip('_')}" for k in sorted(state)
                        if vars(tokenizer).get(k, _MISSING) != state[k]]
            if len(tokenizer) != backend[0]:
                changes.append("tokenizer: tokens added")
    hooked = sorted(name for name, m in now_modules.items()
                    if getattr(m, "fwd_hooks", None) or getattr(m, "bwd_hooks", None)
                    or m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    if hooked:
        changes.append(f"hooks left on {', '.join(hooked[:3])}{' …' if len(hooked) > 3 else ''}")
    kept = sorted(name for name, m in now_modules.items() if _hook_context(m))
    if kept:  # the next function (or check) could read it
        changes.append(f"data left in hook.ctx of {', '.join(kept[:3])}{' …' if len(kept) > 3 else ''} "
                       "(clear it: model.reset_hooks() or hook.clear_context())")
    return changes


def _hook_context(module: torch.nn.Module) -> dict | None:
    """A ``HookPoint``'s ``ctx`` (the dict hooks may store into), else None."""
    ctx = vars(module).get("ctx")
    return ctx if isinstance(ctx, dict) else None


_MISSING = object()


def _set_child(root: torch.nn.Module, name: str, value: Any, kind: str) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    getattr(parent, kind)[leaf] = value


def restore(module: torch.nn.Module, snap: Snapshot) -> None:
    """Put ``module`` back exactly as in ``snap`` (objects, values, flags, cfg, tokenizer settings, no hooks, every
    hook point's ``ctx`` empty)."""
    for name, original in sorted(snap.modules.items(), key=lambda kv: kv[0].count(".")):
        if name and dict(module.named_modules(remove_duplicate=False)).get(name) is not original:
            _set_child(module, name, original, "_modules")
    for name, (original, values, requires_grad) in snap.params.items():
        if dict(module.named_parameters(remove_duplicate=False)).get(name) is not original:
            _set_child(module, name, original, "_parameters")
        with torch.no_grad():
            if original.shape != values.shape or original.dtype != values.dtype or original.device != values.device:
                original.data = values.clone()
            elif not torch.equal(original.detach(), values):
                original.copy_(values)
        original.requires_grad_(requires_grad)
        original.grad = None
    for name, (original, values) in snap.buffers.items():
        _set_child(module, name, original, "_buffers")
        if original.shape != values.shape or not torch.equal(original, values):
            original.data = values.clone()
    if hasattr(module, "_acts_to_saes"):  # a HookedSAETransformer with an SAE left attached (add_sae)
        module._acts_to_saes.clear()
        module._transcoder_output_hooks.clear()
    if hasattr(module, "setup"):  # HookedRootModule: hook_dict / mod_dict must name the restored hook points
        module.setup()
    for name, m in module.named_modules(remove_duplicate=False):
        if name in snap.training:
            m.training = snap.training[name]
        if hasattr(m, "fwd_hooks") and hasattr(m, "remove_hooks"):
            m.remove_hooks("both", including_permanent=True)
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
        m._backward_hooks.clear()
        if _hook_context(m):
            m.ctx = {}  # a new dict: a reference the learner kept cannot reach the model
    if snap.cfg is not None:
        cfg, state = snap.cfg
        module.cfg = cfg
        _restore_attrs(cfg, state)
    if snap.tokenizer is not None:
        tokenizer, state, (size, backend_json) = snap.tokenizer
        module.tokenizer = tokenizer
        _restore_attrs(tokenizer, state, keep=_TOKENIZER_SKIP)
        if len(tokenizer) != size and backend_json is not None:
            from tokenizers import Tokenizer

            tokenizer._tokenizer = Tokenizer.from_str(backend_json)


def _restore_attrs(obj: Any, state: dict, keep: Iterable[str] = ()) -> None:
    for k in [k for k in vars(obj) if k not in state and k not in keep]:
        delattr(obj, k)
    for k, v in state.items():
        if vars(obj).get(k, _MISSING) != v:
            setattr(obj, k, copy.deepcopy(v))


# --------------------------------------------------------------------------------------------------------
# The guard around a call
# --------------------------------------------------------------------------------------------------------
def modules_in(values: Iterable[Any]) -> list[torch.nn.Module]:
    """The modules a call can reach through its arguments (each kind's codec says which, ``utils/wire.py``)."""
    from utils.wire import modules_in as reached

    return reached(values)


@dataclass
class Report:
    """What a guarded call changed (already undone)."""

    changes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def pristine(values: Iterable[Any]) -> Iterator[Report]:
    """Run the body with torch's :data:`BASELINE` global state and the modules among ``values`` checked and
    restored afterwards; the caller's global state comes back too. The :class:`Report` lists what changed."""
    modules = modules_in(values)
    snaps = []
    for module in modules:
        if module not in _SNAPSHOTS:
            register(module)
        snaps.append(_SNAPSHOTS[module])
    report = Report()
    saved = GlobalState.current()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BASELINE_SEED)
        BASELINE.apply()
        try:
            yield report
        finally:
            saved.apply()
            for module, snap in zip(modules, snaps):
                put_back_hook_points(module, snap)
                changes = find_changes(module, snap)
                if changes:
                    restore(module, snap)
                    report.changes += changes
