"""The hvjob.hyperv collection's metadata, read by the tools that consume it: ansible-builder (the
execution environment; no container runtime is here, so its `introspect` and `create` steps),
bindep, antsibull-changelog, and ansible-core's own version for meta/runtime.yml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import ROOT
from test_ansible import ansible_env, docs_block

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytest.importorskip("ansible", reason="ansible-core is not installed")
COLLECTION = ROOT / "ansible_collections" / "hvjob" / "hyperv"
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed beside this Python (pip install -e '.[test]')")
    return str(path)


def build_collection(tmp_path: Path) -> Path:
    subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=120, check=True,
    )  # fmt: skip
    return tmp_path / f"hvjob-hyperv-{GALAXY['version']}.tar.gz"


def test_runtime_metadata_fits_this_ansible_and_groups_every_module() -> None:
    from ansible.release import __version__ as ansible_version

    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert ansible_version in SpecifierSet(runtime["requires_ansible"])
    modules = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py"))
    assert sorted(runtime["action_groups"]["hyperv"]) == modules == ["job", "job_info"]
    actions = sorted(p.stem for p in (COLLECTION / "plugins" / "action").glob("*.py"))
    assert actions == modules  # each module runs through its action plugin


def test_requirements_name_hvjob_with_extras_it_has() -> None:
    lines = [line for line in (COLLECTION / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    requirements = [Requirement(line) for line in lines]
    assert [r.name for r in requirements] == ["hvjob"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert requirements[0].extras == {"kerberos", "credssp"} and requirements[0].extras <= set(extras)
    assert PYPROJECT["project"]["version"] in requirements[0].specifier


def test_ansible_builder_reads_the_python_and_system_requirements(tmp_path: Path) -> None:
    """``ansible-builder introspect``, the step an EE build runs inside the image, on the collection
    as ansible-galaxy installs it."""
    tarball = build_collection(tmp_path)
    installed = tmp_path / "collections"
    subprocess.run(
        [tool("ansible-galaxy"), "collection", "install", "--force", str(tarball), "-p", str(installed)],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=120, check=True,
    )  # fmt: skip
    assert (installed / "ansible_collections" / "hvjob" / "hyperv" / "meta" / "execution-environment.yml").is_file()
    done = subprocess.run(
        [tool("ansible-builder"), "introspect", str(installed)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = yaml.safe_load(done.stdout.split("\n", 1)[1])  # after its "# Dependency data" line
    assert found["python"] == ["hvjob[kerberos,credssp]>=0.1.0  # from collection hvjob.hyperv"]
    system = [entry.split("  #")[0] for entry in found["system"]]
    assert {"krb5-libs [platform:rpm]", "krb5-workstation [platform:rpm]", "krb5-devel [compile platform:rpm]"} <= set(
        system
    )
    assert {"libkrb5-3 [platform:dpkg]", "krb5-user [platform:dpkg]", "libkrb5-dev [compile platform:dpkg]"} <= set(
        system
    )


def test_bindep_parses_the_system_requirements_per_platform_and_profile() -> None:
    from bindep.depends import Depends  # type: ignore[import-untyped]

    depends = Depends((COLLECTION / "bindep.txt").read_text())

    def active(*profiles: str) -> set[str]:
        return {rule[0] for rule in depends.active_rules(list(profiles))}

    assert active("platform:rpm") == {"krb5-libs", "krb5-workstation"}
    assert active("platform:rpm", "compile") == {"krb5-libs", "krb5-workstation", "gcc", "krb5-devel", "python3-devel"}
    assert active("platform:dpkg") == {"libkrb5-3", "krb5-user"}
    assert active("platform:dpkg", "compile") == {"libkrb5-3", "krb5-user", "gcc", "libkrb5-dev", "python3-dev"}


def test_the_docs_execution_environment_definition_builds_a_context(tmp_path: Path) -> None:
    """``ansible-builder create`` on the definition in docs/ansible.md, with the wheel and the
    collection tarball it names built for real: the build context a container runtime would build."""
    definition = docs_block("execution-environment.yml")
    (tmp_path / "execution-environment.yml").write_text(definition)
    dist = tmp_path / "dist"
    dist.mkdir()
    shutil.copy(build_collection(tmp_path), dist)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    for entry in yaml.safe_load(definition)["additional_build_files"]:
        assert (tmp_path / entry["src"]).is_file(), f"the docs name {entry['src']}, which the build does not make"
    done = subprocess.run(
        [tool("ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context", "--output-filename", "Containerfile"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ENV PIP_FIND_LINKS=/wheels" in containerfile and "COPY _build/wheels /wheels" in containerfile
    assert "introspect" in containerfile  # the step the test above runs
    wheel = f"hvjob-{PYPROJECT['project']['version']}-py3-none-any.whl"
    assert (tmp_path / "context" / "_build" / "wheels" / wheel).is_file()
    assert (tmp_path / "context" / "_build" / "collections" / f"hvjob-hyperv-{GALAXY['version']}.tar.gz").is_file()


def test_the_changelog_lints_and_regenerates_offline_as_committed(tmp_path: Path) -> None:
    lint = subprocess.run(
        [tool("antsibull-changelog"), "lint"], capture_output=True, text=True, cwd=COLLECTION, timeout=120
    )
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr
    copy = tmp_path / "ansible_collections" / "hvjob" / "hyperv"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("output", "__pycache__"))
    (copy / "CHANGELOG.rst").unlink()
    generate = subprocess.run(
        [tool("antsibull-changelog"), "generate"],
        capture_output=True, text=True, cwd=copy, timeout=120, env={**ansible_env(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)},
    )  # fmt: skip
    assert generate.returncode == 0, generate.stdout + generate.stderr
    assert (copy / "CHANGELOG.rst").read_text() == (COLLECTION / "CHANGELOG.rst").read_text()
    releases = yaml.safe_load((COLLECTION / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert GALAXY["version"] in releases  # the version galaxy.yml builds is released in the changelog
    assert "cluster" in [p["name"] for p in releases[GALAXY["version"]]["plugins"]["inventory"]]


def test_the_collection_readme_has_the_conventional_sections() -> None:
    headings = [
        line.lstrip("#").strip()
        for line in (COLLECTION / "README.md").read_text().splitlines()
        if line.startswith("## ")
    ]
    for wanted in (
        "Requirements",
        "Installation",
        "Included content",
        "Using this collection",
        "Testing",
        "Release notes",
        "Licensing",
    ):
        assert wanted in headings, f"the collection README has no '## {wanted}' ({headings})"


def test_the_integration_targets_are_runnable_scripts() -> None:
    targets = sorted(p for p in (COLLECTION / "tests" / "integration" / "targets").iterdir() if p.is_dir())
    assert [t.name for t in targets] == ["inventory_cluster", "job", "job_info", "setup_hvjob_simulator"]
    for target in targets:
        aliases = (target / "aliases").read_text()
        if target.name.startswith("setup_"):
            assert "hidden" in aliases
            continue
        assert "needs/target/setup_hvjob_simulator" in aliases and "context/controller" in aliases
        runme = target / "runme.sh"
        assert runme.stat().st_mode & 0o111 and "set -euo pipefail" in runme.read_text()
