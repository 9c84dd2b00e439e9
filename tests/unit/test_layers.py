"""The house's structure: ruff and the import contracts of pyproject.toml, dvc.yaml's code
deps against what each stage's command imports, and the model catalogue."""

import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("recmill", "pipelines", exclude_type_checking_imports=True)


def source_file(module: str) -> Path:
    path = Path(*module.split("."))
    return path / "__init__.py" if (REPO / path / "__init__.py").exists() else path.with_suffix(".py")


def imported_files(graph, roots: set[str]) -> set[str]:
    """The files of every module the roots import, directly or not. recmill.models.model_class
    imports the model it is asked for by name, which no import statement shows: code that
    calls it (or build_model) may import any model. Empty files are left out."""
    modules = set(roots).union(*(graph.find_upstream_modules(r) for r in roots))
    callers = modules - {"recmill.models"}  # the catalogue itself, which defines them
    calls_a_model = any(re.search(r"\b(model_class|build_model)\(", (REPO / source_file(m)).read_text()) for m in callers)
    if calls_a_model:
        models = {m for m in graph.modules if m.startswith("recmill.models.")}
        modules |= models.union(*(graph.find_upstream_modules(m) for m in models))
    return {str(source_file(m)) for m in modules if (REPO / source_file(m)).read_text().strip()}


def stage_commands():
    """(stage, deps) of every dvc.yaml stage, a foreach stage once per model of params.yaml."""
    models = yaml.safe_load((REPO / "params.yaml").read_text())["train"]["models"]
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in stage:
            for model in models:
                yield name, [d.replace("${item}", model) for d in stage["do"]["deps"]]
        else:
            yield name, stage["deps"]


def test_each_dvc_stage_depends_on_the_code_its_command_imports(graph):
    for stage, deps in stage_commands():
        needed = imported_files(graph, {"pipelines.__main__", f"pipelines.{stage}"})
        uncovered = sorted(f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
        assert not uncovered, f"dvc.yaml's {stage} stage leaves out code its command imports: {uncovered}"
        missing = sorted(d for d in deps if d.startswith(("recmill", "pipelines")) and not (REPO / d).exists())
        assert not missing, f"dvc.yaml's {stage} stage names code that does not exist: {missing}"


def test_a_stage_that_runs_no_model_does_not_depend_on_the_models(graph):
    # the catalogue is names only: reading settings imports no model
    assert "recmill/models/base.py" not in imported_files(graph, {"pipelines.__main__", "pipelines.validate"})


def test_the_catalogue_holds_every_model_and_each_has_its_settings_section():
    from recmill.config import ModelsConfig
    from recmill.models import CATALOGUE, MODEL_NAMES, model_class

    assert set(MODEL_NAMES) == set(ModelsConfig.model_fields)
    assert [model_class(name).name for name in MODEL_NAMES] == list(MODEL_NAMES)
    defined = {m.group(1) for f in (REPO / "recmill" / "models").glob("*.py") for m in re.finditer(r'^    name = "(\w+)"', f.read_text(), re.M)}
    assert defined == set(MODEL_NAMES) == set(CATALOGUE)
    with pytest.raises(KeyError, match="no model named 'nope'"):
        model_class("nope")
