"""Colab: what to install over Colab's own packages, and the repository URL the notebooks clone from.

The setup cell of every notebook (``utils/build.py: SETUP_CELL``) clones the course on Colab, then calls
:func:`install_runtime_requirements`. This module is standard library only, so it runs before anything is
installed. The rules:

- ``requirements.txt`` holds the runtime pins (what a notebook imports); ``requirements-dev.txt`` includes it
  and adds the development tools (pytest plugins for CI, ruff, jupytext, nbclient, ipykernel, ...). Colab
  only ever reads ``requirements.txt``.
- Only the pins whose installed version differs are installed; ``torch`` and ``ipykernel`` never are (Colab's
  CUDA build of torch and the kernel running the notebook stay). pip gets a constraints file that holds them
  at their installed versions, so no dependency can pull in another torch either.
- When pip replaced a package that this runtime has already imported, the learner must restart the runtime:
  :func:`install_runtime_requirements` says so and stops the cell (:class:`RestartRequired`).

Environment variables (all optional):

- ``CIRCUIT_SCHOOL_REPO``: the URL to clone instead of :data:`REPO_URL` (a fork, a local ``file://`` clone);
- ``CIRCUIT_SCHOOL_DIR``: where to clone (default ``/content/circuit-school``);
- ``CIRCUIT_SCHOOL_PIP_DRY_RUN``: a file path; pip then only resolves (``--dry-run``) and writes its JSON
  report there (used by the Colab simulation test, ``tests/tooling/test_colab.py``).

Example:
    >>> pins = [Pin("torch", "2.13.0"), Pin("einops", "0.8.2"), Pin("numpy", "2.4.6")]
    >>> plan = plan_install(pins, {"torch": "2.6.0+cu124", "einops": "0.8.2", "numpy": "2.0.2"})
    >>> [p.requirement for p in plan.install], [p.name for p in plan.kept], [p.name for p in plan.satisfied]
    (['numpy==2.4.6'], ['torch'], ['einops'])
    >>> colab_url("chapters/00_pytorch_einops.ipynb", "https://github.com/circuit-school/circuit-school")
    'https://colab.research.google.com/github/circuit-school/circuit-school/blob/main/chapters/00_pytorch_einops.ipynb'
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

REPO_URL = "https://github.com/circuit-school/circuit-school"  # the one place; $CIRCUIT_SCHOOL_REPO overrides it
BRANCH = "main"  # the branch "Open in Colab" links point at
NEVER_INSTALL = ("torch", "ipykernel")  # Colab's CUDA torch, and the kernel that runs the notebook
RUNTIME_REQUIREMENTS = "requirements.txt"
ROOT = Path(__file__).resolve().parents[1]


class RestartRequired(RuntimeError):
    """pip replaced packages this runtime had already imported: restart the runtime, then rerun the cell."""


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a requirements file (``name`` normalized as pip does: ``sae-lens``)."""

    name: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class InstallPlan:
    """What to do with each runtime pin, given what is installed.

    ``install``: pins missing or at another version (these go to pip); ``satisfied``: already at the pinned
    version; ``kept``: pins never installed here (``NEVER_INSTALL``). ``constraints`` holds every installed
    ``NEVER_INSTALL`` package at its version, so that pip cannot replace it while resolving the others.
    """

    install: list[Pin]
    satisfied: list[Pin]
    kept: list[Pin]
    installed: dict[str, str] = field(repr=False)  # name -> version before the install

    @property
    def constraints(self) -> list[str]:
        return [f"{name}=={self.installed[name]}" for name in NEVER_INSTALL if name in self.installed]


@dataclass(frozen=True)
class InstallResult:
    """What pip did (or, in a dry run, would do): ``changed`` maps name -> (old version or None, new version);
    ``restart_for`` lists the changed packages this runtime had already imported."""

    plan: InstallPlan
    changed: dict[str, tuple[str | None, str]]
    restart_for: list[str]
    dry_run: bool


def normalize(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): ``Sae_Lens`` -> ``sae-lens``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str | Path) -> list[Pin]:
    """The ``name==version`` pins of a requirements file, following ``-r other.txt`` includes.

    Comments and blank lines are skipped; anything else that is not an exact pin is an error (the course pins
    every requirement exactly).
    """
    path = Path(path)
    pins: list[Pin] = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            pins += read_pins(path.parent / line.split(maxsplit=1)[1])
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise ValueError(f"{path.name}, line {n}: {raw.strip()!r} is not an exact pin (name==version)")
        pins.append(Pin(normalize(match[1]), match[2]))
    return pins


def installed_versions() -> dict[str, str]:
    """Every installed distribution -> its version, as this interpreter sees them (the first on sys.path wins)."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(normalize(name), dist.version)
    return versions


def same_version(pinned: str, installed: str) -> bool:
    """Whether ``installed`` satisfies ``==pinned`` (PEP 440 for the cases we meet: ``2.6.0+cu124`` matches
    ``2.6.0``; ``1.0`` matches ``1.0.0``)."""
    if "+" not in pinned:
        installed = installed.split("+", 1)[0]

    def release(v: str) -> str:
        return re.sub(r"(\.0)+$", "", v)

    return release(pinned) == release(installed)


def plan_install(pins: Iterable[Pin], installed: Mapping[str, str]) -> InstallPlan:
    """Split the pins into to-install / already satisfied / never installed (``NEVER_INSTALL``)."""
    install, satisfied, kept = [], [], []
    for pin in pins:
        if pin.name in NEVER_INSTALL:
            kept.append(pin)
        elif pin.name in installed and same_version(pin.version, installed[pin.name]):
            satisfied.append(pin)
        else:
            install.append(pin)
    return InstallPlan(install, satisfied, kept, dict(installed))


def pip_command(plan: InstallPlan, constraints_file: str | Path, report_file: str | Path,
                dry_run: bool = False, python: str = sys.executable) -> list[str]:
    """The pip command line that installs ``plan.install`` while holding ``NEVER_INSTALL`` at its installed versions.

    Example:
        >>> plan = plan_install([Pin("torch", "2.13.0"), Pin("einops", "0.8.2")], {"torch": "2.6.0"})
        >>> pip_command(plan, "c.txt", "r.json", python="python")
        ['python', '-m', 'pip', 'install', '--quiet', '--report', 'r.json', '--constraint', 'c.txt', 'einops==0.8.2']
    """
    command = [python, "-m", "pip", "install", "--quiet", "--report", str(report_file)]
    if dry_run:
        command.append("--dry-run")
    if plan.constraints:
        command += ["--constraint", str(constraints_file)]
    return command + [p.requirement for p in plan.install]


def changes_from_report(report: dict, before: Mapping[str, str]) -> dict[str, tuple[str | None, str]]:
    """``{name: (version before or None, version pip installs)}`` from a ``pip install --report`` JSON."""
    changed = {}
    for item in report.get("install", []):
        meta = item["metadata"]
        name = normalize(meta["name"])
        changed[name] = (before.get(name), meta["version"])
    return changed


def modules_of(names: Iterable[str]) -> dict[str, set[str]]:
    """The top-level import names of each installed distribution in ``names`` (``numpy`` -> {"numpy"})."""
    wanted = set(names)
    modules: dict[str, set[str]] = {name: set() for name in wanted}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            if normalize(dist) in wanted:
                modules[normalize(dist)].add(module)
    return modules


def needs_restart(changed: Mapping[str, tuple[str | None, str]], modules: Mapping[str, set[str]],
                  loaded: Iterable[str]) -> list[str]:
    """The changed distributions that were installed before and whose modules are already imported.

    Example:
        >>> needs_restart({"numpy": ("2.0.2", "2.4.6"), "einops": (None, "0.8.2")},
        ...               {"numpy": {"numpy"}, "einops": {"einops"}}, loaded={"numpy", "sys"})
        ['numpy']
    """
    loaded = set(loaded)
    return sorted(name for name, (old, new) in changed.items()
                  if old is not None and old != new and modules.get(name, set()) & loaded)


def describe(result: InstallResult) -> str:
    """What the learner reads under the setup cell."""
    plan, verb = result.plan, ("would install" if result.dry_run else "installed")
    lines = []
    if result.changed:
        lines.append(f"Circuit School: {verb} " + ", ".join(
            f"{name} {old or '(new)'} → {new}" for name, (old, new) in sorted(result.changed.items())))
    else:
        lines.append(f"Circuit School: the {len(plan.satisfied)} runtime pins Colab needs are already installed.")
    if plan.constraints:
        lines.append("Kept Colab's own " + ", ".join(c.replace("==", " ") for c in plan.constraints)
                     + " (never reinstalled).")
    if result.restart_for:
        lines.append("⚠️ Restart the runtime now (Runtime → Restart session), then run this cell again: "
                     + ", ".join(result.restart_for) + " changed after being imported.")
    return "\n".join(lines)


def install_runtime_requirements(course_dir: str | Path = ROOT, dry_run_report: str | Path | None = None,
                                 run: Callable = subprocess.run, log: Callable[[str], None] = print,
                                 ) -> InstallResult:
    """Install the runtime pins of ``course_dir/requirements.txt`` that differ from what is installed.

    Never installs ``torch`` or ``ipykernel``. ``dry_run_report`` (default: ``$CIRCUIT_SCHOOL_PIP_DRY_RUN``)
    makes pip only resolve and write its JSON report there. Prints what changed; raises
    :class:`RestartRequired` when an already-imported package changed.
    """
    dry_run_report = dry_run_report or os.environ.get("CIRCUIT_SCHOOL_PIP_DRY_RUN") or None
    plan = plan_install(read_pins(Path(course_dir) / RUNTIME_REQUIREMENTS), installed_versions())
    changed: dict[str, tuple[str | None, str]] = {}
    if plan.install:
        if not dry_run_report:
            log(f"Circuit School: installing {' '.join(p.requirement for p in plan.install)} (a minute or two) ...")
        with tempfile.TemporaryDirectory() as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("\n".join(plan.constraints) + "\n")
            report = Path(dry_run_report) if dry_run_report else Path(tmp) / "report.json"
            run(pip_command(plan, constraints, report, dry_run=bool(dry_run_report)), check=True)
            changed = changes_from_report(json.loads(report.read_text()), plan.installed)
    importlib.invalidate_caches()
    restart = [] if dry_run_report else needs_restart(changed, modules_of(changed), sys.modules)
    result = InstallResult(plan, changed, restart, dry_run=bool(dry_run_report))
    log(describe(result))
    if restart:
        raise RestartRequired(describe(result).splitlines()[-1])
    return result


def repo_url() -> str:
    """The repository to clone: ``$CIRCUIT_SCHOOL_REPO`` if set, else :data:`REPO_URL`."""
    return os.environ.get("CIRCUIT_SCHOOL_REPO") or REPO_URL


def colab_url(notebook: str, repo: str = REPO_URL, branch: str = BRANCH) -> str:
    """The "Open in Colab" address of a notebook of a GitHub repository (``notebook`` relative to its root)."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repo)
    if not match:
        raise ValueError(f"Colab opens notebooks from GitHub; {repo!r} is not a https://github.com/owner/name URL")
    return f"https://colab.research.google.com/github/{match[1]}/{match[2]}/blob/{branch}/{notebook}"


def readme_colab_lines(root: Path = ROOT, repo: str = REPO_URL) -> list[str]:
    """The README's "Open in Colab" lines, one per ready chapter (``chapters/chapters.toml``)."""
    from utils.chapters import chapters

    return [f"- [chapter {c.number:02d} · {c.slug}]({colab_url(f'chapters/{c.stem}.ipynb', repo)})"
            for c in chapters(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="print what Colab's setup cell would install here")
    parser.add_argument("--readme", action="store_true", help="print the README's Open-in-Colab lines")
    args = parser.parse_args(argv)
    if args.readme:
        print("\n".join(readme_colab_lines()))
    if args.plan or not args.readme:
        plan = plan_install(read_pins(ROOT / RUNTIME_REQUIREMENTS), installed_versions())
        print("install:", " ".join(p.requirement for p in plan.install) or "nothing")
        print("kept:", " ".join(plan.constraints) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
