"""Colab, simulated: the setup cell every notebook starts with, run as Colab would run it, plus the install logic
of ``utils/colab.py`` and the README's "Open in Colab" links.

The simulation (``test_setup_cell_on_simulated_colab``): a fresh directory; a git repository holding the current
working tree (committed or not) stands in for GitHub, reached through ``$CIRCUIT_SCHOOL_REPO``; a stub
``google.colab`` module is imported first, as in a Colab kernel. Colab's own packages are simulated by metadata
shadows (``*.dist-info`` folders ahead of the real site-packages claiming Colab-like versions of torch, ipykernel,
numpy, ...), and pip runs for real in ``--dry-run --report`` mode, offline: its index is a folder of stand-in
wheels, one per runtime pin (torch and ipykernel included, so pip *could* install them if we asked it to). Then a
second fresh process, where every pin is installed (this venv: Colab after the install and a restart), reruns the
cell: nothing to install, and every chapter's imports and a check cell work from the clone.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from utils import build, colab
from utils.colab import Pin

pytestmark = pytest.mark.tooling

ROOT = colab.ROOT
# Colab-like versions (an illustrative snapshot, not a promise about today's Colab): torch and ipykernel differ
# from our pins and must be kept; the others differ and must be installed.
COLAB = {"torch": "2.6.0+cu124", "ipykernel": "6.17.1", "numpy": "2.0.2", "plotly": "5.24.1", "tqdm": "4.67.1",
         "pytest": "8.3.5", "einops": "0.8.1"}


# --- the install logic -------------------------------------------------------------------------------------------

def test_runtime_and_dev_requirements_are_one_list_of_pins():
    runtime = colab.read_pins(ROOT / "requirements.txt")
    dev = colab.read_pins(ROOT / "requirements-dev.txt")
    assert dev[:len(runtime)] == runtime, "requirements-dev.txt starts with -r requirements.txt"
    names = [p.name for p in dev]
    assert len(names) == len(set(names)), "a package is pinned twice"
    assert {"torch", "transformer-lens", "sae-lens", "circuitsvis", "pytest"} <= {p.name for p in runtime}
    assert not {"ipykernel", "ruff", "jupytext", "nbclient"} & {p.name for p in runtime}, "dev tools at run time"
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements-dev.txt" in makefile and "$(STAMP): requirements.txt requirements-dev.txt" in makefile


def test_read_pins_rejects_anything_but_exact_pins(tmp_path):
    (tmp_path / "r.txt").write_text("# comment\nSae_Lens==6.54.12  # trailing\n\ntorch>=2\n")
    with pytest.raises(ValueError, match="line 4.*not an exact pin"):
        colab.read_pins(tmp_path / "r.txt")


@pytest.mark.parametrize("pinned, installed, same", [
    ("2.6.0", "2.6.0+cu124", True), ("1.0", "1.0.0", True), ("2.4.6", "2.0.2", False), ("0.8.2", "0.8.20", False),
    ("2.6.0+cpu", "2.6.0+cu124", False),
])
def test_same_version(pinned, installed, same):
    assert colab.same_version(pinned, installed) is same


def test_plan_never_installs_torch_or_ipykernel_and_skips_what_matches():
    pins = colab.read_pins(ROOT / "requirements.txt") + [Pin("ipykernel", "7.4.0")]
    installed = {**{p.name: p.version for p in pins}, **COLAB}
    plan = colab.plan_install(pins, installed)
    assert {p.name for p in plan.install} == {"numpy", "plotly", "tqdm", "pytest", "einops"}
    assert {p.name for p in plan.kept} == {"torch", "ipykernel"}
    assert sorted(plan.constraints) == ["ipykernel==6.17.1", "torch==2.6.0+cu124"]
    command = colab.pip_command(plan, "c.txt", "r.json", python="python")
    assert command[:4] == ["python", "-m", "pip", "install"] and "--dry-run" not in command
    assert command[-5:] == [p.requirement for p in plan.install] and not any("torch" in a for a in command[-5:])
    assert command[command.index("--constraint") + 1] == "c.txt"


def test_missing_packages_are_installed_and_nothing_when_all_match():
    pins = [Pin("einops", "0.8.2"), Pin("torch", "2.13.0")]
    assert [p.name for p in colab.plan_install(pins, {}).install] == ["einops"]
    assert colab.plan_install(pins, {}).constraints == []  # no torch installed: nothing to hold
    assert colab.plan_install(pins, {"einops": "0.8.2", "torch": "2.13.0+cpu"}).install == []


def _fake_pip(report: dict, calls: list):
    def run(command, check):
        calls.append(command)
        Path(command[command.index("--report") + 1]).write_text(json.dumps(report))
    return run


def test_a_changed_package_already_imported_asks_for_a_restart(tmp_path, monkeypatch):
    """numpy is imported here; 'installing' another numpy over it must stop the cell and say to restart."""
    (tmp_path / "requirements.txt").write_text("numpy==99.0\nsome-new-package==1.0\ntorch==2.13.0\n")
    monkeypatch.setattr(colab, "installed_versions", lambda: {"numpy": "2.4.6", "torch": "2.6.0"})
    report = {"install": [{"metadata": {"name": "numpy", "version": "99.0"}},
                          {"metadata": {"name": "some_new_package", "version": "1.0"}}]}
    calls, printed = [], []
    with pytest.raises(colab.RestartRequired, match="Restart the runtime"):
        colab.install_runtime_requirements(tmp_path, run=_fake_pip(report, calls), log=printed.append)
    [command] = calls
    assert command[-2:] == ["numpy==99.0", "some-new-package==1.0"] and "--dry-run" not in command
    said = "\n".join(printed)
    assert said.startswith("Circuit School: installing numpy==99.0 some-new-package==1.0")
    assert "numpy 2.4.6 → 99.0" in said and "some-new-package (new) → 1.0" in said
    assert "Kept Colab's own torch 2.6.0" in said and "Runtime → Restart session" in said


def test_a_new_package_needs_no_restart(tmp_path, monkeypatch):
    (tmp_path / "requirements.txt").write_text("some-new-package==1.0\n")
    monkeypatch.setattr(colab, "installed_versions", lambda: {})
    report = {"install": [{"metadata": {"name": "some-new-package", "version": "1.0"}}]}
    result = colab.install_runtime_requirements(tmp_path, run=_fake_pip(report, []), log=lambda _: None)
    assert result.changed == {"some-new-package": (None, "1.0")} and result.restart_for == []


def test_nothing_to_install_runs_no_pip(tmp_path, monkeypatch):
    (tmp_path / "requirements.txt").write_text("einops==0.8.2\ntorch==2.13.0\n")
    monkeypatch.setattr(colab, "installed_versions", lambda: {"einops": "0.8.2", "torch": "2.6.0"})
    printed = []
    result = colab.install_runtime_requirements(tmp_path, run=lambda *a, **k: pytest.fail("pip ran"),
                                                log=printed.append)
    assert result.changed == {} and printed == [printed[0]] and "already installed" in printed[0]


# --- the repository URL: one place, overridable -------------------------------------------------------------------

def test_repo_url_lives_in_one_place_and_the_environment_overrides_it(monkeypatch):
    holders = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
               if ".venv" not in p.parts and colab.REPO_URL in p.read_text(errors="ignore")]
    assert holders == ["utils/colab.py"], holders
    assert build.REPO_URL == colab.REPO_URL
    monkeypatch.setenv("CIRCUIT_SCHOOL_REPO", "file:///somewhere/else")
    assert colab.repo_url() == "file:///somewhere/else"
    for src in build.sources():
        setup = nbformat.read(build.outputs_for(src)["learner"], as_version=4).cells[2].source
        assert f'os.environ.get("CIRCUIT_SCHOOL_REPO", "{colab.REPO_URL}")' in setup
        assert "install_runtime_requirements(COURSE)" in setup and "torch==" not in setup


def test_readme_links_every_chapter_to_colab():
    readme = (ROOT / "README.md").read_text()
    for line in colab.readme_colab_lines():
        assert line in readme, f"README lacks {line!r} (python -m utils.colab --readme prints the lines)"
    links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", readme)
    expected = {colab.colab_url(f"chapters/{nb.name}") for nb in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")}
    assert set(links) == expected, "a Colab link in the README points at a notebook that does not exist"
    for target in re.findall(r"\]\((reference/[^)]+)\)", readme):
        assert (ROOT / target).exists(), target


def test_colab_url_needs_a_github_repository():
    assert colab.colab_url("a.ipynb", "https://github.com/o/r.git", "dev") == \
        "https://colab.research.google.com/github/o/r/blob/dev/a.ipynb"
    with pytest.raises(ValueError, match="GitHub"):
        colab.colab_url("a.ipynb", "file:///tmp/repo")


# --- the simulation -----------------------------------------------------------------------------------------------

def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args], cwd=cwd,
                   check=True, capture_output=True)


def _snapshot_repository(dest: Path) -> Path:
    """A git repository holding the working tree as it is now (tracked and untracked files, not ignored ones)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    _git("init", "-q", "-b", "main", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("commit", "-q", "-m", "snapshot of the working tree", cwd=dest)
    return dest


def _shadow(site: Path, name: str, version: str) -> None:
    """A ``*.dist-info`` claiming ``name==version`` is installed (metadata only: imports still find the real one)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("colab-simulation\n")


def _stand_in_wheel(folder: Path, pin: Pin) -> None:
    """An empty wheel for ``pin``: enough for pip to resolve ``pin.requirement`` offline."""
    stem = f"{pin.name.replace('-', '_')}-{pin.version}"
    files = {f"{stem}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {pin.name}\nVersion: {pin.version}\n",
             f"{stem}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n"}

    def digest(text: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},sha256={digest(text)},{len(text.encode())}\n" for path, text in files.items())
    record += f"{stem}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
        for path, text in {**files, f"{stem}.dist-info/RECORD": record}.items():
            wheel.writestr(path, text)


def _chapter_imports(course: Path) -> str:
    """Every import statement of every chapter source of the clone."""
    lines = []
    for src in sorted((course / "chapters" / "src").glob("[0-9][0-9]_*.py")):
        tree = ast.parse(src.read_text())
        lines += [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(dict.fromkeys(lines))


@pytest.mark.timeout(600)
def test_setup_cell_on_simulated_colab(tmp_path):
    origin = _snapshot_repository(tmp_path / "origin")
    course = tmp_path / "content" / "circuit-school"
    (tmp_path / "stubs" / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: a namespace portion
    (tmp_path / "stubs" / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s module."""\n')
    wheels, shadows = tmp_path / "wheels", tmp_path / "colab-site"
    wheels.mkdir()
    for pin in colab.read_pins(ROOT / "requirements.txt") + [Pin("ipykernel", "7.4.0")]:
        _stand_in_wheel(wheels, pin)
    for name, version in COLAB.items():
        _shadow(shadows, name, version)
    setup_cell = nbformat.read(ROOT / "chapters" / "00_pytorch_einops.ipynb", as_version=4).cells[2].source
    env = {**os.environ, "CIRCUIT_SCHOOL_REPO": origin.as_uri(), "CIRCUIT_SCHOOL_DIR": str(course),
           "CIRCUIT_SCHOOL_PIP_DRY_RUN": str(tmp_path / "pip-report.json"), "HF_HUB_OFFLINE": "1",
           "CS_DEVICE": "cpu", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_CONFIG_FILE": os.devnull,
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "content").mkdir()

    # 1. First run on "Colab": clone, then pip resolves (dry run) only what differs; never torch or ipykernel.
    env_colab = {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path / "stubs"), str(shadows)])}
    first = subprocess.run([sys.executable, "-c", "import google.colab\n" + setup_cell], cwd=tmp_path / "content",
                           env=env_colab, capture_output=True, text=True, timeout=300)
    print("first run:", first.stdout, first.stderr[-2000:], sep="\n")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (course / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    report = json.loads((tmp_path / "pip-report.json").read_text())
    would_install = {colab.normalize(item["metadata"]["name"]): item["metadata"]["version"]
                     for item in report["install"]}
    pins = {p.name: p.version for p in colab.read_pins(ROOT / "requirements.txt")}
    expected = {name: pins[name] for name, version in COLAB.items() if name in pins and name not in colab.NEVER_INSTALL}
    assert would_install == expected, first.stdout
    assert "torch" not in would_install and "ipykernel" not in would_install
    assert "would install" in first.stdout, first.stdout
    assert "Kept Colab's own torch 2.6.0+cu124, ipykernel 6.17.1" in first.stdout, first.stdout
    assert "Device: cpu" in first.stdout, first.stdout  # start_chapter ran, from the clone

    # 2. After the install and a restart (every pin installed: this venv): the cell installs nothing, and every
    # chapter's imports, a shipped model and a check cell work from the clone.
    (tmp_path / "pip-report.json").unlink()
    after = (f"import google.colab\n{setup_cell}\n{_chapter_imports(course)}\n"
             "import utils\nassert Path(utils.__file__).resolve().parent.parent == COURSE.resolve(), utils.__file__\n"
             "from utils.models import load_model\nload_model('attn2l', device='cpu')\n"
             "from solutions.ch00_pytorch_einops import split_heads\ncheck(split_heads)\n")
    second = subprocess.run([sys.executable, "-c", after], cwd=tmp_path / "content", env={**env, "PYTHONPATH": str(
        tmp_path / "stubs")}, capture_output=True, text=True, timeout=300)
    print("second run:", second.stdout, second.stderr[-2000:], sep="\n")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "already installed" in second.stdout and not (tmp_path / "pip-report.json").exists(), second.stdout
    assert "✅ split_heads passed" in second.stdout, second.stdout
