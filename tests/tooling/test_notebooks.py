"""Every chapter's solutions notebook executes end to end, offline, on CPU (what `make notebooks` does), passes its
check cells, is quiet and shows every figure in its HTML export without the network (notebook_checks.py); chapter 4
runs unchanged on the 4-layer model with one parameter."""

import json

import nbformat
import pytest

from tests.tooling.notebook_checks import check_figures_offline, check_quiet
from utils import run_notebooks
from utils.chapters import chapters
from utils.models import MODELS_DIR

pytestmark = pytest.mark.tooling

# every ready chapter on its own model, and once more on each model it must also run on (chapters/chapters.toml)
RUNS = [pytest.param(f"{c.stem}_solutions.ipynb", {}, id=c.stem) for c in chapters()]
RUNS += [pytest.param(f"{c.stem}_solutions.ipynb", {"MODEL_NAME": f'"{model}"'}, id=f"{c.stem}-{model}")
         for c in chapters() for model in c.also_on]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name, params", RUNS)
def test_solutions_notebook_runs(name, params, tmp_path, monkeypatch):
    model = params.get("MODEL_NAME", '""').strip('"')
    if model and not (MODELS_DIR / model / "config.json").exists():
        pytest.skip(f"models/{model} is not shipped yet")
    monkeypatch.setenv("CS_DEVICE", "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["--only", name.removesuffix("_solutions.ipynb"), "--report-dir", str(tmp_path)]
    args += [f"--param={k}={v}" for k, v in params.items()]
    assert run_notebooks.main(args) == 0, json.loads((tmp_path / "notebooks.json").read_text())
    [result] = json.loads((tmp_path / "notebooks.json").read_text())
    assert result["ok"] and result["checks_passed"] > 0 and result["checks_failed"] == 0, result
    [path] = (tmp_path / "executed").glob("*.ipynb")  # the same run, checked for every viewer
    executed = nbformat.read(path, as_version=4)
    check_quiet(executed)
    check_figures_offline(executed, name, render=not params)  # drawn in Chromium once, on the chapter's own model


def test_parameters_are_injected_after_the_parameters_cell():
    nb = nbformat.read(run_notebooks.ROOT / "chapters" / "solutions" / "04_induction_solutions.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    run_notebooks.inject_parameters(nb, {"MODEL_NAME": '"mlp4l"'})
    assert nb.cells[index + 1].source.endswith('MODEL_NAME = "mlp4l"')


def test_a_notebook_without_a_parameters_cell_cannot_take_parameters():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="parameters"):
        run_notebooks.inject_parameters(nb, {"x": "2"})
