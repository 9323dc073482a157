"""How the values of a learner call are copied, sent to the grading worker and brought back: one codec per kind.

A learner's function receives tensors, models, caches, hook points, factored matrices and SAEs. Each *kind* has one
:class:`Codec` (chosen by ``isinstance``) that knows, for that kind:

- ``clone``: a copy for one call in this process (a model is shared, not copied: the isolation guard watches it);
- ``to_wire``: what is sent to the grading worker (a model goes by name as a :class:`ModelRef`, the worker loads
  its own copy; a cache goes as its tensors and its model's name);
- ``from_wire``: the worker's (or the grader's) side of ``to_wire``;
- ``modules``: the modules the value gives access to, which the isolation guard (``utils/isolation.py``) checks.

Outputs come back from learner code, which is hostile while grading, so they cross in one safe format:
:func:`output_wire` (in the worker) keeps tensors, plain numbers, strings, containers and the kinds below, and
turns anything else into a :class:`Foreign` that names the type; :func:`encode_plain` serializes it and
:func:`decode_output` (in the grader) reads it with
``torch.load(weights_only=True)``, which builds nothing but tensors, containers and the wire types listed here: no
learner class, no function call, whatever bytes the worker sends.

Example:
    >>> to_wire((model, cache))                      # (ModelRef('attn2l', ...), CacheRef({...}, ModelRef(...)))
    >>> decode_output(encode_plain(output_wire([torch.ones(2), 3])))
    [tensor([1., 1.]), 3]
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

# --------------------------------------------------------------------------------------------------------
# What crosses the pipe
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A model loaded by ``utils.models.load_model``, by name and processing options."""

    name: str
    processing: tuple
    sae_transformer: bool = False


@dataclass(frozen=True)
class SAERef:
    """An SAE loaded by ``utils.models.load_sae``, by name."""

    name: str


@dataclass(frozen=True)
class SAEState:
    """Any other SAE (e.g. one a checker built with random weights): its config and weights (SAE-Lens keeps
    lambdas on an SAE, which cannot be pickled)."""

    cfg: dict
    state_dict: dict


@dataclass(frozen=True)
class HookRef:
    model: ModelRef
    name: str


@dataclass(frozen=True)
class CacheRef:
    tensors: dict
    model: ModelRef
    has_batch_dim: bool


@dataclass(frozen=True)
class FactoredRef:
    A: torch.Tensor
    B: torch.Tensor


@dataclass(frozen=True)
class LinearRef:
    """A returned ``torch.nn.Linear`` (the grader rebuilds a plain one from its weights)."""

    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class Record:
    """A returned SAE-Lens dataclass (e.g. a training config): its class path and attributes. The grader rebuilds
    the library class without calling any code of it."""

    type_path: str
    attributes: dict


@dataclass(frozen=True)
class Foreign:
    """An output of a type the grader does not read (a learner's class, a generator, a numpy array, ...)."""

    type_name: str


@dataclass(frozen=True)
class Store:
    """A large input sent once: the worker keeps ``value`` under ``token`` and gives each call a fresh copy."""

    token: int
    value: Any


@dataclass(frozen=True)
class Stored:
    """An input the worker already keeps (see :class:`Store`)."""

    token: int


WIRE_TYPES = (ModelRef, SAERef, SAEState, HookRef, CacheRef, FactoredRef, LinearRef, Record, Foreign)
RECORD_MODULES = ("sae_lens.",)  # libraries whose dataclasses an output may contain


def type_name(x: Any) -> str:
    """``module.Class`` of ``x`` (builtins without a module); a :class:`Foreign`'s own type name."""
    if isinstance(x, Foreign):
        return x.type_name
    return f"{type(x).__module__}.{type(x).__qualname__}".replace("builtins.", "")


def _library_class(module: str, name: str) -> type | None:
    """A library class if its module is already imported (no value can be an instance of a class never imported)."""
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


# --------------------------------------------------------------------------------------------------------
# The codecs
# --------------------------------------------------------------------------------------------------------
Wire = Callable[[Any], Any]  # the recursive to_wire / from_wire, for values inside values


class Codec:
    """How one kind of value is copied, sent, received and watched (see the module docstring)."""

    module: str = ""
    name: str = ""
    wire_type: type | None = None

    def kind(self) -> type | None:
        return _library_class(self.module, self.name)

    def accepts(self, value: Any) -> bool:
        cls = self.kind()
        return cls is not None and isinstance(value, cls)

    def clone(self, value: Any) -> Any:
        return value

    def to_wire(self, value: Any, wire: Wire) -> Any:
        raise NotImplementedError

    def from_wire(self, ref: Any, resolve: "Resolver", wire: Wire) -> Any:
        raise NotImplementedError

    def modules(self, value: Any) -> list[torch.nn.Module]:
        return []


class Resolver:
    """Where the side that receives a value finds models and SAEs by name (the worker's cache, the grader's)."""

    def __init__(self, device: str | None = None):
        self.device = device

    def model(self, ref: ModelRef):
        from utils.models import cached_model

        return cached_model(ref.name, self.device, sae_transformer=ref.sae_transformer, **dict(ref.processing))

    def sae(self, ref: SAERef):
        from utils.models import cached_sae

        return cached_sae(ref.name, self.device)


class TensorCodec(Codec):
    def kind(self):
        return torch.Tensor

    def clone(self, value):
        return value.detach().clone()

    def to_wire(self, value, wire):
        # Tensors cross a multiprocessing pipe in shared memory: send a copy, or learner code could change the
        # checker's own inputs. A tensor subclass arrives as a plain tensor.
        return value.detach().as_subclass(torch.Tensor).clone()


class FactoredMatrixCodec(Codec):
    module, name, wire_type = "transformer_lens.FactoredMatrix", "FactoredMatrix", FactoredRef

    def clone(self, value):
        return type(value)(value.A.detach().clone(), value.B.detach().clone())

    def to_wire(self, value, wire):
        return FactoredRef(value.A.detach().clone(), value.B.detach().clone())

    def from_wire(self, ref, resolve, wire):
        from transformer_lens import FactoredMatrix

        return FactoredMatrix(ref.A, ref.B)


class ModelCodec(Codec):
    module, name, wire_type = "transformer_lens.HookedTransformer", "HookedTransformer", ModelRef

    def to_wire(self, value, wire):
        from utils.models import ModelSpec, origin_of

        spec = origin_of(value)
        if not isinstance(spec, ModelSpec):
            raise RuntimeError("only models loaded with utils.models.load_model can be sent to the grading worker")
        return ModelRef(spec.name, tuple(sorted(spec.processing.items())), spec.sae_transformer)

    def from_wire(self, ref, resolve, wire):
        return resolve.model(ref)

    def modules(self, value):
        return [value]


class CacheCodec(Codec):
    module, name, wire_type = "transformer_lens.ActivationCache", "ActivationCache", CacheRef

    def clone(self, value):
        return type(value)({k: v.detach().clone() for k, v in value.cache_dict.items()}, value.model,
                           has_batch_dim=value.has_batch_dim)

    def to_wire(self, value, wire):
        return CacheRef({k: v.detach().clone() for k, v in value.cache_dict.items()}, wire(value.model),
                        value.has_batch_dim)

    def from_wire(self, ref, resolve, wire):
        from transformer_lens import ActivationCache

        return ActivationCache(dict(ref.tensors), resolve.model(ref.model), has_batch_dim=ref.has_batch_dim)

    def modules(self, value):
        return [value.model] if isinstance(value.model, torch.nn.Module) else []


class HookPointCodec(Codec):
    module, name, wire_type = "transformer_lens.hook_points", "HookPoint", HookRef

    def to_wire(self, value, wire):
        model = _owner(value)
        if model is None:
            raise RuntimeError(f"hook point {value.name} does not belong to a model loaded with load_model")
        return HookRef(wire(model), value.name)

    def from_wire(self, ref, resolve, wire):
        return resolve.model(ref.model).hook_dict[ref.name]

    def modules(self, value):
        model = _owner(value)
        return [model if model is not None else value]


class SAECodec(Codec):
    module, name, wire_type = "sae_lens", "SAE", SAERef

    def to_wire(self, value, wire):
        from utils.models import SAESpec, origin_of

        spec = origin_of(value)
        if isinstance(spec, SAESpec):
            return SAERef(spec.name)
        return SAEState(value.cfg.to_dict(), {k: v.detach().clone() for k, v in value.state_dict().items()})

    def from_wire(self, ref, resolve, wire):
        if isinstance(ref, SAERef):
            return resolve.sae(ref)
        from sae_lens import SAE

        sae = SAE.from_dict({**ref.cfg, "device": str(next(iter(ref.state_dict.values())).device)})
        sae.load_state_dict(ref.state_dict)
        return sae.eval()

    def modules(self, value):
        return [value]


class SAEStateCodec(SAECodec):
    """Only decodes (an :class:`SAEState` is what :class:`SAECodec` sends for an SAE that was not loaded by name)."""

    wire_type = SAEState

    def accepts(self, value):
        return False


class ModuleCodec(Codec):
    """Any other ``torch.nn.Module``: shared by a call in this process; a returned ``nn.Linear`` comes back as its
    weights."""

    wire_type = LinearRef

    def kind(self):
        return torch.nn.Module

    def to_wire(self, value, wire):
        if type(value) is torch.nn.Linear:
            bias = value.bias.detach().clone() if value.bias is not None else None
            return LinearRef(value.weight.detach().clone(), bias)
        return value  # an input module of the course's own (pickled by reference)

    def from_wire(self, ref, resolve, wire):
        linear = torch.nn.Linear(ref.weight.shape[1], ref.weight.shape[0], bias=ref.bias is not None,
                                 device=ref.weight.device, dtype=ref.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(ref.weight)
            if ref.bias is not None:
                linear.bias.copy_(ref.bias)
        return linear

    def modules(self, value):
        return [value]


# Most specific first: a HookedTransformer, an SAE and a HookPoint are also torch.nn.Modules.
CODECS: list[Codec] = [TensorCodec(), FactoredMatrixCodec(), CacheCodec(), ModelCodec(), HookPointCodec(),
                       SAECodec(), ModuleCodec()]
_DECODERS: dict[type, Codec] = {c.wire_type: c for c in [*CODECS, SAEStateCodec()] if c.wire_type is not None}


def codec_for(value: Any) -> Codec | None:
    for codec in CODECS:
        if codec.accepts(value):
            return codec
    return None


def _owner(hook_point) -> torch.nn.Module | None:
    from utils.isolation import owner_of

    return owner_of(hook_point)


# --------------------------------------------------------------------------------------------------------
# The three walks: clone, to the wire, from the wire; and the modules a value reaches
# --------------------------------------------------------------------------------------------------------
def clone_inputs(value: Any) -> Any:
    """A deep copy of call arguments; models and hook points are shared, not copied, and an ActivationCache gets
    cloned tensors around the same model."""
    import copy

    codec = codec_for(value)
    if codec is not None:
        return codec.clone(value)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(clone_inputs(v) for v in value)
    if isinstance(value, dict):
        return {k: clone_inputs(v) for k, v in value.items()}
    return copy.deepcopy(value)


class SentOnce:
    """The grader's side of :class:`Store`: which large inputs (tensors, caches) this worker already has.

    Checkers build their cases once per run, so a class of learners passes the same tensor and cache objects again
    and again: each is pickled to the worker once. The worker keeps a :class:`Store` before it does anything else
    with a request, so an input is never marked as sent unless the worker has it.
    """

    MIN_ELEMENTS = 4096

    def __init__(self):
        self.tokens: dict[int, tuple[Any, int]] = {}  # id(object) -> (object, token); the object keeps the id taken

    def wrap(self, value: Any, wire: Callable[[], Any]) -> Any:
        known = self.tokens.get(id(value))
        if known is not None and known[0] is value:
            return Stored(known[1])
        token = len(self.tokens) + 1
        self.tokens[id(value)] = (value, token)
        return Store(token, wire())


def to_wire(value: Any, sent: SentOnce | None = None) -> Any:
    """Call arguments as the worker receives them (see :class:`Codec`); with ``sent``, a large tensor or cache the
    worker already has goes as a :class:`Stored` token."""
    def wire(v):
        return to_wire(v, sent)

    codec = codec_for(value)
    if codec is not None:
        large = isinstance(codec, CacheCodec) or (isinstance(codec, TensorCodec) and
                                                  value.numel() >= SentOnce.MIN_ELEMENTS)
        if sent is not None and large:
            return sent.wrap(value, lambda: codec.to_wire(value, wire))
        return codec.to_wire(value, wire)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(wire(v) for v in value)
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any, resolve: Resolver, store: dict[int, Any] | None = None) -> Any:
    """The receiving side of :func:`to_wire`: models and SAEs by name through ``resolve``, large inputs from
    ``store`` (each call gets its own copy)."""
    def wire(v):
        return from_wire(v, resolve, store)

    if isinstance(value, Stored):
        return wire(_fresh(store[value.token]))
    if isinstance(value, Store):  # kept by absorb() already; a caller without a store gets the value itself
        return wire(_fresh(value.value))
    codec = _DECODERS.get(type(value))
    if codec is not None:
        return codec.from_wire(value, resolve, wire)
    if isinstance(value, Record):
        return _rebuild_record(value, wire)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(wire(v) for v in value)
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


def absorb(value: Any, store: dict[int, Any]) -> Any:
    """The worker's first step with a request: keep every :class:`Store` and leave :class:`Stored` tokens."""
    if isinstance(value, Store):
        store[value.token] = value.value
        return Stored(value.token)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(absorb(v, store) for v in value)
    if isinstance(value, dict):
        return {k: absorb(v, store) for k, v in value.items()}
    return value


def _fresh(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, CacheRef):
        return CacheRef({k: v.clone() for k, v in value.tensors.items()}, value.model, value.has_batch_dim)
    return value


def modules_in(values: Any, depth: int = 0) -> list[torch.nn.Module]:
    """The modules a call can reach through its arguments (inside lists, tuples and dicts too), each once."""
    found: dict[int, torch.nn.Module] = {}

    def visit(value: Any, depth: int) -> None:
        if depth > 4:
            return
        codec = codec_for(value)
        if codec is not None:
            for module in codec.modules(value):
                found.setdefault(id(module), module)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v, depth + 1)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v, depth + 1)

    for v in values:
        visit(v, depth)
    return list(found.values())


# --------------------------------------------------------------------------------------------------------
# Outputs: from hostile code to the grader
# --------------------------------------------------------------------------------------------------------
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def output_wire(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return Foreign("a structure nested more than 32 levels deep")
    if type(value) in _PLAIN or isinstance(value, (torch.dtype, torch.device)):
        return value
    codec = codec_for(value)
    if codec is not None:
        try:
            wired = codec.to_wire(value, lambda v: output_wire(v, depth + 1))
        except Exception:
            return Foreign(type_name(value))
        return Foreign(type_name(value)) if isinstance(wired, torch.nn.Module) else wired
    if isinstance(value, (list, tuple)):  # a NamedTuple (torch.return_types.topk, ...) arrives as a tuple
        items = [output_wire(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k if type(k) in _PLAIN else type_name(k): output_wire(v, depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__module__.startswith(
            RECORD_MODULES):
        attributes = {k: output_wire(v, depth + 1) for k, v in vars(value).items() if type(k) is str}
        return Record(f"{type(value).__module__}:{type(value).__qualname__}", attributes)
    return Foreign(type_name(value))


def encode_plain(value: Any) -> bytes:
    """Serialize a message made only of plain data and wire types (the worker's own replies)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def decode_output(data: bytes, resolve: Resolver | None = None) -> Any:
    """Read what :func:`encode_plain` wrote (from :func:`output_wire`), building nothing but tensors, plain data and
    the wire types (raises ``pickle.UnpicklingError`` on anything else); then resolve the wire types."""
    with torch.serialization.safe_globals(list(WIRE_TYPES)):
        value = torch.load(io.BytesIO(data), weights_only=True, map_location=None)
    return from_wire(value, resolve or Resolver())


def _rebuild_record(record: Record, wire: Wire) -> Any:
    """The SAE-Lens dataclass a :class:`Record` describes, built without running any of its code."""
    module_name, _, qualname = record.type_path.partition(":")
    if not module_name.startswith(RECORD_MODULES):
        return Foreign(module_name + "." + qualname)
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        return Foreign(module_name + "." + qualname)
    instance = object.__new__(obj)
    for key, value in record.attributes.items():
        object.__setattr__(instance, key, wire(value))
    return instance
