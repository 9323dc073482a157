"""The quick reference (``reference/src/quick_reference.py``, built by ``utils/build_reference.py``).

- its generated notebook and one-page HTML are fresh;
- every code block runs, in order, in one namespace, on the shipped models; each online (gpt2-small) statement
  is well formed and fails only at the network boundary (``HF_HUB_OFFLINE=1``);
- the reference's own code raises no deprecation warning, except the one a note documents;
- each stale snippet of the two commissioning sheets has a note, and each note we can demonstrate is still true
  (the sheet's line still fails, or still gives the wrong shape or number, with the pinned versions);
- every "Learn it" link names a real exercise of its chapter, or a planned one (``build_reference.PLANNED``);
  every link of the HTML resolves; the HTML needs no network and renders in headless Chromium.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import inspect
import os
import re
import shutil
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import torch

from tests.tooling.browser import needs_chromium, screenshot
from utils import build, build_reference
from utils.build_reference import PLANNED, ROOT
from utils.models import ModelUnavailableError

pytestmark = pytest.mark.tooling

REF = build_reference.parse()
SECTIONS = [s.title for s in REF.sections]
NETWORK_BOUNDARY = (OSError, ModelUnavailableError)  # huggingface_hub's offline errors are OSErrors
ALLOWED_WARNING = re.compile(r"HookedTransformer(\.from_pretrained)? is deprecated")  # the "Loading a model" note


@dataclass
class Outcome:
    where: str
    error: str | None = None  # a traceback, or why an online statement is wrong
    warnings: list[str] = field(default_factory=list)  # deprecation warnings raised by the block's own lines
    seconds: float = 0.0


@dataclass
class Run:
    namespace: dict
    outcomes: dict[str, list[Outcome]]  # section title -> one outcome per code cell
    seconds: float


def _bind_strictly(call: ast.Call, namespace: dict) -> None:
    """The online call's argument names must be real parameters of the function (``**kwargs`` does not count)."""
    function = eval(compile(ast.Expression(call.func), "<online>", "eval"), namespace)
    signature = inspect.signature(function)
    named = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    signature.replace(parameters=named).bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords})


def _run_online(cell: build_reference.Cell, namespace: dict) -> str | None:
    """Run each statement of an online cell; each must call something real and stop at the network boundary."""
    for statement in ast.parse(cell.source).body:
        line = ast.get_source_segment(cell.source, statement).splitlines()[0]
        call = getattr(statement, "value", None)
        if not isinstance(call, ast.Call):
            return f"{line!r}: an online cell holds only calls (or assignments of one)"
        try:
            _bind_strictly(call, namespace)
        except TypeError as e:
            return f"{line!r}: {e}"
        try:
            exec(compile(ast.Module([statement], []), cell.where, "exec"), namespace)
        except NETWORK_BOUNDARY:
            continue
        except Exception as e:
            return f"{line!r} failed before the network boundary: {type(e).__name__}: {e}"
        return f"{line!r} did not reach the network (HF_HUB_OFFLINE=1)"
    return None


def _run_cell(cell: build_reference.Cell, namespace: dict) -> Outcome:
    outcome, start = Outcome(cell.where), time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cell.tagged("online"):
            outcome.error = _run_online(cell, namespace)
        else:
            try:
                exec(compile(cell.source, cell.where, "exec"), namespace)
            except Exception:
                outcome.error = traceback.format_exc(limit=-3)
    outcome.warnings = [f"{w.category.__name__}: {w.message}" for w in caught
                        if w.filename == cell.where and issubclass(w.category, (DeprecationWarning, FutureWarning))]
    outcome.seconds = time.perf_counter() - start
    return outcome


@pytest.fixture(scope="module")
def executed():
    """Every code cell of the reference, run once in order in one namespace (torch's global state restored)."""
    saved = (torch.is_grad_enabled(), torch.random.get_rng_state(), torch.get_default_dtype(), os.getcwd(),
             os.environ.get("HF_HUB_OFFLINE"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.chdir(ROOT)
    namespace: dict = {"__name__": "quick_reference"}
    outcomes: dict[str, list[Outcome]] = {}
    start = time.perf_counter()
    try:
        for title, cells in [("", REF.preamble), *((s.title, s.cells) for s in REF.sections)]:
            outcomes[title] = [_run_cell(c, namespace) for c in cells if c.kind == "code"]
        yield Run(namespace, outcomes, time.perf_counter() - start)
    finally:
        torch.set_grad_enabled(saved[0])
        torch.random.set_rng_state(saved[1])
        torch.set_default_dtype(saved[2])
        os.chdir(saved[3])
        if saved[4] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[4]
        for value in namespace.values():
            if isinstance(value, torch.nn.Module) and hasattr(value, "reset_hooks"):
                value.reset_hooks(including_permanent=True)


# --- generated files --------------------------------------------------------------------------------------------

def test_generated_files_are_fresh():
    stale = build.stale_files(build_reference.render_all())
    assert not stale, "stale generated files (run `make build`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale)


def test_editing_the_source_without_rebuilding_is_detected(tmp_path):
    for path in [build_reference.SOURCE, build_reference.NOTEBOOK, build_reference.HTML_PAGE, Path("requirements.txt"),
                 *(p.relative_to(ROOT) for p in build.sources())]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    assert build.stale_files(build_reference.render_all(tmp_path)) == []
    source = tmp_path / build_reference.SOURCE
    source.write_text(source.read_text().replace("## Tokenization", "## Tokenization (edited)"))
    stale = build.stale_files(build_reference.render_all(tmp_path))
    assert {p.name for p in stale} == {"quick_reference.ipynb", "quick_reference.html"}


def test_notebook_form_is_clean_and_guards_the_online_lines():
    nb = nbformat.read(ROOT / build_reference.NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert "do not edit" in nb.cells[1].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    online = [c for c in code if "from_pretrained(" in c.source]
    assert online and all(c.source.startswith("if ONLINE:") for c in online)
    assert len(code) == sum(c.kind == "code" for c in REF.cells())


@pytest.mark.parametrize("source, error", [
    ("# %% [markdown]\n# no title\n", "title"),
    ("# %% [markdown]\n# # T\n\n# %% tags=[\"online\"]\nx = 1\n", "followed by its shipped-model equivalent"),
    ("# %% [markdown]\n# # T\n\n# %% [markdown]\n# ## S\n# **Learn it:** ch99/nothing\n", "no chapter 99"),
    ("# %% [markdown]\n# # T\n\n# %% [markdown]\n# ## S\n# **Learn it:** chapter two\n", "not chNN"),
    ("# %% [markdown]\n# # T\n\n# %% [markdown] tags=[\"changed\"]\n# **Sheet:** `x`\n", "Now"),
    ("# %% [markdown]\n# # T\n\n# %% tags=[\"online-only\"]\nx = 1\n", "unknown tags"),
])
def test_source_conventions_are_strict(tmp_path, source, error):
    path = tmp_path / "reference.py"
    path.write_text(source)
    with pytest.raises(build_reference.BuildError, match=error):
        build_reference.parse(path)


# --- every code block runs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("section", SECTIONS)
def test_section_runs(section, executed):
    for outcome in executed.outcomes[section]:
        assert outcome.error is None, f"{outcome.where}:\n{outcome.error}"


def test_setup_runs_and_the_whole_reference_is_quick(executed):
    assert all(o.error is None for o in executed.outcomes[""])
    assert executed.seconds < 120, f"the reference took {executed.seconds:.0f} s to run (budget: well under a minute)"


def test_online_lines_are_tested_up_to_the_network_boundary():
    online = [c for c in REF.cells() if c.tagged("online")]
    calls = " ".join(c.source for c in online)
    for name in ["HookedTransformer.from_pretrained", "HookedSAETransformer.from_pretrained", "SAE.from_pretrained"]:
        assert name + "(" in calls, f"no online line calls {name}"


@pytest.mark.parametrize("line, error", [
    ('m = HookedTransformer.from_pretrained("gpt2-small", fold_layernorm=True)', "fold_layernorm"),
    ('m = HookedTransformer.from_pretrained("gpt2-smal")', "failed before the network boundary: ValueError"),
    ('s = SAE.from_pretrained(release="gpt2-small-res-jb", sae_id="blocks.99.hook_resid_pre")', "ValueError"),
    ("x = 1", "only calls"),
])
def test_a_wrong_online_line_is_caught(executed, line, error):
    cell = build_reference.Cell("code", line, ("online",), "probe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # HookedTransformer.from_pretrained: see its note
        assert error in (_run_online(cell, dict(executed.namespace)) or "")


def test_reference_code_uses_current_spellings(executed):
    found = [f"{o.where}: {w}" for outcomes in executed.outcomes.values() for o in outcomes for w in o.warnings
             if not ALLOWED_WARNING.search(w)]
    assert not found, "the reference's own code raises deprecation warnings:\n" + "\n".join(found)


# --- stale snippets: each has a note, and the note is still true ---------------------------------------------------

def _utils_import_warns(ns):
    """Import transformer_lens/utils.py afresh (without touching sys.modules) and catch its warning."""
    import transformer_lens.utilities

    path = Path(transformer_lens.utilities.__file__).parent.parent / "utils.py"
    spec = importlib.util.spec_from_file_location("transformer_lens_utils_probe", path)
    with pytest.warns(DeprecationWarning, match="utilities"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def _sae_from_pretrained_returns_the_sae_alone(ns, monkeypatch):
    from sae_lens import SAE

    real_sparsity = torch.zeros(ns["sae"].cfg.d_sae)
    monkeypatch.setattr(SAE, "from_pretrained_with_cfg_and_sparsity",  # stands in for the download
                        classmethod(lambda cls, *args, **kwargs: (ns["sae"], {"d_sae": 1}, real_sparsity)))
    assert SAE.from_pretrained(release="gpt2-small-res-jb", sae_id="blocks.7.hook_resid_pre") is ns["sae"]
    with pytest.warns(DeprecationWarning, match="Unpacking"):
        sae, cfg, sparsity = SAE.from_pretrained(release="gpt2-small-res-jb", sae_id="blocks.7.hook_resid_pre")
    assert sae is ns["sae"] and sparsity is None, "the sheet's unpacking loses the sparsity"



def _sae_cfg_has_no_hook_name(ns):
    with pytest.raises(AttributeError):
        ns["sae"].cfg.hook_name
    lost = copy.deepcopy(ns["sae"])
    lost.cfg.metadata.hook_name = "blocks.1.hook_nowhere"
    ns["sae_model"].add_sae(lost)  # skipped, with only a log message
    assert ns["sae_model"].acts_to_saes == {}


def _attention_patterns_takes_no_head_names(ns):
    with pytest.raises(TypeError):
        ns["cv"].attention.attention_patterns(tokens=ns["str_tokens"], attention=ns["short_cache"]["pattern", 1][0],
                                              attention_head_names=["a", "b"])


def _w_k_dot_t_fails_on_4d(ns):
    model = ns["model"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: ".T on more than 2 dimensions is deprecated"
        with pytest.raises(RuntimeError):
            model.W_Q @ model.W_K.T


def _batched_diagonal_takes_batch_and_head(ns):
    pattern, seq_len = ns["rep_cache"]["pattern", 1], ns["seq_len"]
    stale = pattern.diagonal(-seq_len + 1)
    assert stale.shape[:2] == pattern.shape[2:], "diagonal() no longer defaults to dimensions 0 and 1"


def _result_needs_set_use_attn_result(ns):
    _, fresh = ns["model"].run_with_cache(ns["ioi_tokens"])  # (ns["cache"] has it: stack_head_results added it)
    with pytest.raises(KeyError):
        fresh["result", 0]


def _full_ov_of_every_head_is_4d(ns):
    model = ns["model"]
    meta = {name: getattr(model, name).to("meta") for name in ["W_E", "W_V", "W_O", "W_U"]}
    shape = (meta["W_E"] @ (meta["W_V"] @ meta["W_O"]) @ meta["W_U"]).shape
    assert shape == (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_vocab, model.cfg.d_vocab)


def _dla_without_the_final_layernorm_does_not_add_up(ns):
    stack = ns["dla_cache"].decompose_resid(layer=-1, pos_slice=-1)  # [component, batch, d_model], unscaled
    sheet = torch.einsum("cbd,db->cb", stack, ns["logit_dir"]).sum(0) + ns["b_U_diff"]
    assert not torch.allclose(sheet, ns["ioi_diff"], atol=1e-1), "the final LayerNorm's scale no longer matters?"


def _hooked_transformer_warns(ns):
    from transformer_lens import HookedTransformer

    with pytest.warns(DeprecationWarning, match="HookedTransformer is deprecated"):
        HookedTransformer(ns["tiny_cfg"])


# The stale snippets of the commissioning sheets (plus those we found), the text their note quotes, and how to
# show the note is still true (None: nothing offline can show it).
STALE = {
    "from transformer_lens import utils": _utils_import_warns,
    "sae, cfg, sparsity = SAE.from_pretrained": _sae_from_pretrained_returns_the_sae_alone,
    "sae.cfg.hook_name": _sae_cfg_has_no_hook_name,
    "attention_head_names": _attention_patterns_takes_no_head_names,
    "W_Q @ W_K.T": _w_k_dot_t_fails_on_4d,
    "pattern.diagonal(-seq_len+1)": _batched_diagonal_takes_batch_and_head,
    'cache["result", layer]': _result_needs_set_use_attn_result,
    "full_OV = W_E @ W_OV @ W_U": _full_ov_of_every_head_is_4d,
    "einops.einsum(head_outputs[:, -1], logit_dir": _dla_without_the_final_layernorm_does_not_add_up,
    "HookedTransformer.from_pretrained": _hooked_transformer_warns,
    't.device("mps"': None,
}


@pytest.mark.parametrize("snippet", STALE)
def test_stale_snippet_has_a_note(snippet):
    notes = [n for n in REF.notes() if snippet in n.sheet]
    assert notes, f"no 'changed' note quotes {snippet!r}"
    for note in notes:
        source = next(c.source for c in REF.cells() if c.tagged("changed") and note.sheet in c.source)
        assert source.rstrip().endswith(note.now.split()[-1]), "a note's **Now:** is its last paragraph"
        assert 40 < len(note.now) < 320, f"a note's **Now:** is one line of what changed: {note.now!r}"


@pytest.mark.parametrize("snippet", [s for s, demo in STALE.items() if demo is not None])
def test_stale_snippet_note_is_still_true(snippet, executed, monkeypatch):
    demo = STALE[snippet]
    if "monkeypatch" in inspect.signature(demo).parameters:
        demo(executed.namespace, monkeypatch)
    else:
        demo(executed.namespace)


def test_every_note_is_checked_here():
    unchecked = [n.sheet for n in REF.notes() if not any(s in n.sheet for s in STALE)]
    assert not unchecked, f"add these notes' snippets to STALE: {unchecked}"


# --- links -------------------------------------------------------------------------------------------------------

def test_every_section_links_to_the_course():
    assert all(s.links for s in REF.sections), [s.title for s in REF.sections if not s.links]


def test_links_name_real_or_planned_exercises():
    """A link into a chapter whose source exists must name one of its exercises; otherwise the chapter and the
    exercise must be in ``build_reference.PLANNED`` (chapters 05 and 06 while they are being written)."""
    sources = {src.stem[:2]: src for src in build.sources()}
    exercises = {number: build.exercise_names(src) for number, src in sources.items()}
    for link in REF.links():
        if link.chapter in sources:
            assert link.stem == sources[link.chapter].stem
            if link.exercise:
                assert link.exercise in exercises[link.chapter], \
                    f"{link.text}: no such exercise in {sources[link.chapter].name}"
        else:
            assert link.chapter in PLANNED, f"{link.text}: chapter {link.chapter} neither exists nor is planned"
            stem, planned = PLANNED[link.chapter]
            assert link.stem == stem and link.exercise in [None, *planned], f"{link.text} is not in PLANNED"
    assert set(PLANNED) <= {"05", "06"}, "only chapters being written may be planned"


def _hrefs(page: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', page)


def test_html_links_resolve():
    page = (ROOT / build_reference.HTML_PAGE).read_text()
    anchors = set(re.findall(r'id="([^"]+)"', page))
    planned = {f"../chapters/{stem}.ipynb" for stem, _ in PLANNED.values()}
    for href in _hrefs(page):
        if href.startswith("#"):
            assert href[1:] in anchors, f"no element with id {href[1:]!r}"
        else:
            assert not re.match(r"[a-z]+:", href), f"{href}: the page links only to the repository's own files"
            target = (ROOT / build_reference.HTML_PAGE).parent / href.split("#")[0]
            assert target.exists() or href in planned, f"{href} does not exist"


def test_html_is_self_contained():
    page = (ROOT / build_reference.HTML_PAGE).read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r'\s(src|href)="(https?:)?//', page), "the page must not need the network"
    assert "do not edit" in page.split("\n", 3)[1]


@needs_chromium
def test_html_renders_offline_in_headless_chromium(tmp_path):
    shot = tmp_path / "page.png"
    screenshot(ROOT / build_reference.HTML_PAGE, shot)
    assert shot.exists() and shot.stat().st_size > 50_000, "chromium rendered nothing"
