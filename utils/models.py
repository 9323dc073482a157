"""Loading models by name: the shipped offline models, or ``gpt2-small`` when online.

Every chapter loads models through this module. Shipped models live in ``models/<name>/``
(``config.json`` + ``model.safetensors`` + tokenizer files) and are loaded through TransformerLens's
real code path: ``HookedTransformer(cfg, tokenizer=AutoTokenizer.from_pretrained(folder))`` followed by
``model.load_and_process_state_dict(...)`` with the processing options and defaults that
``HookedTransformer.from_pretrained`` uses.

Example:
    >>> from utils.models import available_models, load_model
    >>> sorted(available_models())               # doctest: +SKIP
    ['attn2l', 'gpt2-small', 'mlp4l']
    >>> model = load_model("attn2l")             # on utils.device.get_device()
    >>> model.cfg.n_layers, model.cfg.d_vocab
    (2, 2048)
    >>> logits = model("When Mary and John went to the store, John gave a drink to")
    >>> logits.shape                             # [batch, pos, d_vocab]
    torch.Size([1, 15, 2048])
"""

from __future__ import annotations

import functools
import json
import os
import threading
import warnings
import weakref
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from utils.isolation import register

# TransformerLens 3.x warns that HookedTransformer is deprecated in favour of TransformerBridge; this
# course uses HookedTransformer on purpose (transformer-lens is pinned < 4).
warnings.filterwarnings(
    "ignore", message=r"HookedTransformer(\.from_pretrained)? is deprecated", category=DeprecationWarning
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

SHIPPED = {
    "attn2l": "2-layer attention-only transformer (d_model 128, 2 heads of d_head 64) with induction heads; "
              "shipped, offline",
    "mlp4l": "4-layer transformer with MLPs (d_model 128, 4 heads per layer) with induction heads and indirect object "
             "identification on unseen sentence frames; shipped, offline",
}
ONLINE = {
    "gpt2-small": "GPT-2 small (12 layers, d_model 768) from the Hugging Face hub; needs network access",
}
ALTERNATIVES = {"gpt2-small": "attn2l (2 layers, attention only) or mlp4l (4 layers with MLPs)"}

SAES_DIR = MODELS_DIR / "saes"
# Online SAEs are named "<SAE-Lens release>/<sae_id>" (SAE.from_pretrained(release, sae_id)).
ONLINE_SAE_RELEASES = {
    "gpt2-small-hook-z-kk": (
        [f"blocks.{layer}.hook_z" for layer in range(12)],
        "GPT-2 small attention-output SAE (Kissane & Krzyzanowski, 24576 latents) on {sae_id}; for "
        "load_model('gpt2-small'); needs network access",
    ),
    "gpt2-small-res-jb": (
        [f"blocks.{layer}.hook_resid_pre" for layer in range(12)] + ["blocks.11.hook_resid_post"],
        "GPT-2 small residual-stream SAE (Joseph Bloom, 24576 latents) on {sae_id}; for load_model('gpt2-small'); "
        "needs network access",
    ),
}
SAE_ALTERNATIVE = "mlp4l-res1"  # the shipped SAE to suggest when an online one cannot be loaded

# The processing options of HookedTransformer.from_pretrained, with its defaults.
PROCESSING_DEFAULTS = dict(
    fold_ln=True,
    center_writing_weights=True,
    center_unembed=True,
    fold_value_biases=True,
    refactor_factored_attn_matrices=False,
)


class ModelSpec(NamedTuple):
    """How a model was loaded (:func:`origin_of`): the grading worker loads the same model from it."""

    name: str
    processing: dict
    sae_transformer: bool = False


class SAESpec(NamedTuple):
    """How an SAE was loaded (:func:`origin_of`): ``load_sae(name)``."""

    name: str


# What we know about each model and SAE this process loaded, kept beside the library objects instead of on them.
_ORIGINS: "weakref.WeakKeyDictionary[Any, ModelSpec | SAESpec]" = weakref.WeakKeyDictionary()


def origin_of(module) -> ModelSpec | SAESpec | None:
    """How ``module`` was loaded (:func:`load_model` / :func:`load_sae`), or None for any other module."""
    try:
        return _ORIGINS.get(module)
    except TypeError:  # not weak-referenceable: not ours
        return None


class ModelUnavailableError(RuntimeError):
    """Raised when a model cannot be loaded here (e.g. an online model while offline)."""


def available_models() -> dict[str, str]:
    """All model names ``load_model`` accepts, each with a one-line description.

    Shipped models are listed when their folder exists in ``models/``; online models always.

    Returns:
        ``{name: description}``, e.g. ``{"attn2l": "2-layer attention-only ...", "gpt2-small": "..."}``.
    """
    shipped = {n: d for n, d in SHIPPED.items() if (MODELS_DIR / n / "config.json").exists()}
    return {**shipped, **ONLINE}


def _default_device():
    """``utils.device.get_device()`` when that module exists, else ``"cpu"``."""
    try:
        from utils.device import get_device
    except ImportError:
        return "cpu"
    return get_device()


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub can be reached: False at once if ``HF_HUB_OFFLINE`` is set.

    Otherwise tries a TCP connection to the hub's host, giving up after ``timeout`` seconds (DNS
    included, so the answer comes within ``timeout`` seconds whatever the network does).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname
    except Exception:
        return False
    result = []

    def probe():
        import socket

        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _processing(processing: dict) -> dict:
    unknown = set(processing) - set(PROCESSING_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown processing options {sorted(unknown)}; allowed: {sorted(PROCESSING_DEFAULTS)}")
    return {**PROCESSING_DEFAULTS, **processing}


def load_model(name: str, device=None, *, sae_transformer: bool = False, **processing):
    """Load a model by name as a ``HookedTransformer`` in eval mode on ``device``.

    Args:
        name: a key of ``available_models()``: a shipped model (``"attn2l"``, ``"mlp4l"``) or
            ``"gpt2-small"`` (online only).
        device: ``"cpu"``, ``"cuda"``, a ``torch.device`` or None for ``utils.device.get_device()``.
        **processing: the weight-processing options of ``HookedTransformer.from_pretrained``, with its
            defaults: ``fold_ln=True``, ``center_writing_weights=True``, ``center_unembed=True``,
            ``fold_value_biases=True``, ``refactor_factored_attn_matrices=False``. Pass all False for
            the raw trained weights (like ``from_pretrained_no_processing``).
        sae_transformer: build SAE-Lens's ``HookedSAETransformer`` (a ``HookedTransformer`` that can splice SAEs
            in: ``run_with_saes``, ``run_with_cache_with_saes``, ``saes()``) instead.

    Returns:
        A ``HookedTransformer``. ``model(tokens)`` maps ``[batch, pos]`` token ids to
        ``[batch, pos, d_vocab]`` logits.

    Raises:
        ModelUnavailableError: an online model while the hub is unreachable (within ~2 s), naming the
            shipped alternative; or an unknown name.

    Example:
        >>> import torch
        >>> model = load_model("attn2l", device="cpu")
        >>> raw = load_model("attn2l", device="cpu", fold_ln=False, center_writing_weights=False,
        ...                  center_unembed=False, fold_value_biases=False)
        >>> tokens = model.to_tokens("Mary went to the store.")   # [1, pos], BOS first
        >>> torch.allclose(model(tokens).log_softmax(-1), raw(tokens).log_softmax(-1), atol=1e-4)
        True
    """
    opts = _processing(processing)
    device = _default_device() if device is None else device
    if name in ONLINE:
        model = _load_online(name, device, opts, sae_transformer)
    else:
        folder = MODELS_DIR / name
        if not (folder / "config.json").exists():
            raise ModelUnavailableError(
                f"unknown model {name!r} (no {folder}/config.json); available: {sorted(available_models())}"
            )
        model = load_model_folder(folder, device, sae_transformer=sae_transformer, **opts)
    _ORIGINS[model] = ModelSpec(name, opts, sae_transformer)  # the grader's worker loads the same model by name
    return register(_with_bos_generate(model))


def generate(model, *args, **kwargs):
    """``model.generate(*args, **kwargs)`` with the tokenizer's padding side set to "left" for the call.

    TransformerLens 3.9's ``generate`` masks trailing tokens equal to the pad token when the padding side is
    "right". Our tokenizers (as GPT-2's) use ``<|endoftext|>`` as BOS *and* pad, so a prompt that is BOS alone —
    ``model.generate()`` or ``model.generate("")`` — is masked out entirely and the model samples from an empty
    context (noise such as "kendkendkend"). With "left" TransformerLens unmasks the BOS (its own rule for
    BOS == pad); for one prompt nothing else changes, and batched string prompts are left-padded by ``generate``
    anyway. ``load_model`` installs this as the models' ``generate``.
    """
    tokenizer = model.tokenizer
    side = tokenizer.padding_side if tokenizer is not None else None
    if tokenizer is not None:
        tokenizer.padding_side = "left"
    try:
        return type(model).generate(model, *args, **kwargs)
    finally:
        if tokenizer is not None:
            tokenizer.padding_side = side


def _with_bos_generate(model):
    """Make ``model.generate`` :func:`generate` (an instance attribute: the class's method stays as it is)."""
    model.generate = functools.partial(generate, model)
    model.generate.__doc__ = generate.__doc__
    return model


def load_model_folder(folder: Path, device, *, sae_transformer: bool = False, **processing):
    """Build the model saved in ``folder`` (``config.json`` + ``model.safetensors`` + tokenizer files) through
    TransformerLens's ``load_and_process_state_dict``; ``processing`` as in ``load_model``. For model folders
    outside ``models/`` (training runs); chapters use ``load_model(name)``."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    opts = _processing(processing)
    cfg_kwargs = json.loads((folder / "config.json").read_text())
    cfg = HookedTransformerConfig(**cfg_kwargs, device=str(device))
    tokenizer = AutoTokenizer.from_pretrained(folder)  # from disk: has name_or_path, which TL needs
    cls = HookedTransformer
    if sae_transformer:
        from sae_lens import HookedSAETransformer as cls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = cls(cfg, tokenizer=tokenizer, move_to_device=False)
    state_dict = load_file(folder / "model.safetensors")
    model.load_and_process_state_dict(state_dict, **opts)
    model.to(device, print_details=False)
    model.eval()
    return model


def _load_online(name: str, device, opts: dict, sae_transformer: bool = False):
    """Delegate to ``HookedTransformer.from_pretrained``; fail fast with a clear message when offline."""
    hint = (
        f"{name!r} needs the Hugging Face hub, which is not reachable here (offline, HF_HUB_OFFLINE=1, "
        f"or no network). Use a shipped model instead: {ALTERNATIVES[name]}, e.g. load_model('attn2l')."
    )
    if not hub_reachable():
        raise ModelUnavailableError(hint)
    from transformer_lens import HookedTransformer

    cls = HookedTransformer
    if sae_transformer:
        from sae_lens import HookedSAETransformer as cls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            model = cls.from_pretrained(name, device=str(device), **opts)
        except OSError as e:  # e.g. the hub went away mid-download
            raise ModelUnavailableError(f"{hint}\n(cause: {e})") from e
    model.eval()
    return register(model)


def available_saes() -> dict[str, str]:
    """All SAE names ``load_sae`` accepts, each with a one-line description.

    Shipped SAEs are the folders of ``models/saes/`` that hold a ``cfg.json`` (their description comes from
    ``train_info.json``); online SAEs are named ``"<release>/<sae_id>"`` after SAE-Lens's pretrained
    releases (e.g. ``"gpt2-small-res-jb/blocks.8.hook_resid_pre"``) and are always listed.

    Returns:
        ``{name: description}``, e.g. ``{"mlp4l-res1": "TopK SAE (k=16, ...) on mlp4l's blocks.1.hook_resid_post;
        shipped, offline", "gpt2-small-res-jb/blocks.0.hook_resid_pre": "GPT-2 small ...", ...}``.
    """
    shipped = {}
    if SAES_DIR.is_dir():
        for folder in sorted(SAES_DIR.iterdir()):
            if not (folder / "cfg.json").exists():
                continue
            try:
                info = json.loads((folder / "train_info.json").read_text())
                shipped[folder.name] = info.get("description") or (
                    f"SAE on {info['model']}'s {info['hook_name']}; shipped, offline")
            except (OSError, ValueError, KeyError):
                cfg = json.loads((folder / "cfg.json").read_text())
                meta = cfg.get("metadata") or {}
                shipped[folder.name] = (f"{cfg.get('architecture', '?')} SAE on {meta.get('model_name')}'s "
                                        f"{meta.get('hook_name')}; shipped, offline")
    online = {f"{release}/{sae_id}": desc.format(sae_id=sae_id)
              for release, (ids, desc) in ONLINE_SAE_RELEASES.items() for sae_id in ids}
    return {**shipped, **online}


def load_sae(name: str, device=None):
    """Load a sparse autoencoder by name as an SAE-Lens ``SAE`` on ``device``.

    Shipped SAEs (``models/saes/<name>/``, SAE-Lens's disk format) load through ``SAE.load_from_disk``;
    online ones (``"<release>/<sae_id>"``) through ``SAE.from_pretrained(release, sae_id)`` when the hub is
    reachable. The hook point the SAE reads is ``sae.cfg.metadata.hook_name``; its model is
    ``sae.cfg.metadata.model_name``, loaded with ``load_model``'s default processing.

    Args:
        name: a key of ``available_saes()``: a shipped SAE (``"mlp4l-res1"``) or an online one
            (``"gpt2-small-res-jb/blocks.8.hook_resid_pre"``).
        device: ``"cpu"``, ``"cuda"``, a ``torch.device`` or None for ``utils.device.get_device()``.

    Returns:
        An ``sae_lens.SAE``. ``sae.encode(acts)`` maps ``[batch, pos, d_in]`` activations to
        ``[batch, pos, d_sae]`` latents, ``sae.decode(latents)`` maps them back, ``sae(acts)`` does both.

    Raises:
        ModelUnavailableError: an online SAE while the hub is unreachable (within ~2 s), naming the shipped
            alternative; or an unknown name.

    Example:
        >>> model = load_model("mlp4l", device="cpu")
        >>> sae = load_sae("mlp4l-res1", device="cpu")
        >>> hook = sae.cfg.metadata.hook_name                    # "blocks.1.hook_resid_post"
        >>> _, cache = model.run_with_cache("When Mary and John went to the store")
        >>> feats = sae.encode(cache[hook])                      # [1, pos, d_sae], k active per position
        >>> feats.shape, (feats[0, -1] != 0).sum().item()
        (torch.Size([1, 9, 1024]), 16)
        >>> sae.decode(feats).shape                              # [1, pos, d_model]
        torch.Size([1, 9, 128])
    """
    device = str(_default_device() if device is None else device)
    release, _, sae_id = name.partition("/")
    if release in ONLINE_SAE_RELEASES and sae_id in ONLINE_SAE_RELEASES[release][0]:
        return _load_online_sae(name, release, sae_id, device)
    folder = SAES_DIR / name
    if "/" in name or not (folder / "cfg.json").exists():
        raise ModelUnavailableError(f"unknown SAE {name!r} (no {folder}/cfg.json); available: "
                                    f"{sorted(available_saes())}")
    from sae_lens import SAE

    sae = SAE.load_from_disk(folder, device=device)
    sae.eval()
    _ORIGINS[sae] = SAESpec(name)  # lets the grader's worker process load the same SAE by name
    return register(sae)


def _load_online_sae(name: str, release: str, sae_id: str, device: str):
    """Delegate to ``SAE.from_pretrained``; fail fast with a clear message when offline."""
    hint = (
        f"{name!r} needs the Hugging Face hub, which is not reachable here (offline, HF_HUB_OFFLINE=1, "
        f"or no network). Use a shipped SAE instead: load_sae({SAE_ALTERNATIVE!r}) on load_model('mlp4l') "
        f"(all SAEs: available_saes())."
    )
    if not hub_reachable():
        raise ModelUnavailableError(hint)
    from sae_lens import SAE

    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except OSError as e:  # e.g. the hub went away mid-download
        raise ModelUnavailableError(f"{hint}\n(cause: {e})") from e
    sae.eval()
    _ORIGINS[sae] = SAESpec(name)
    return register(sae)


_CACHED: dict[tuple, Any] = {}


def cached_model(name: str, device=None, *, sae_transformer: bool = False, **processing):
    """``load_model(name, device, **processing)``, loaded once per process and shared.

    Sharing is safe for learner code: every call into it starts from the model as loaded (``utils/isolation.py``
    restores anything a call changed). Checkers, story tests and the grading worker all use this one cache.
    """
    import torch

    device = torch.device(_default_device() if device is None else device)
    key = (name, str(device), sae_transformer, tuple(sorted(_processing(processing).items())))
    if key not in _CACHED:
        _CACHED[key] = load_model(name, device=device, sae_transformer=sae_transformer, **processing)
    return _CACHED[key]


def cached_sae(name: str, device=None):
    """``load_sae(name, device)``, loaded once per process and shared (restored after learner calls, as models)."""
    import torch

    device = torch.device(_default_device() if device is None else device)
    key = ("sae", name, str(device))
    if key not in _CACHED:
        _CACHED[key] = load_sae(name, device=device)
    return _CACHED[key]
