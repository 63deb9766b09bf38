"""Every snippet of docs/testing.md runs, and its tables match the code.

Python blocks run as they are (a block with a ``test_`` function runs under pytest, with the
plugin); shell blocks run with bash in a scratch directory, the YAML files the page names beside
them; the cluster-file example loads; the profile and default-cluster tables are the code's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from conftest import CANARY_PASSWORD, ROOT
from hvjob.testing.sim import SWITCHES, default, load_cluster_file

PAGE = (ROOT / "docs" / "testing.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", PAGE, re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code for lang, code in BLOCKS if lang == "sh"]
YAML = [code for lang, code in BLOCKS if lang == "yaml"]
BIN = Path(sys.executable).parent


def test_the_page_has_the_snippets_this_test_runs() -> None:
    assert len(PYTHON) == 2 and len(SHELL) == 2 and len(YAML) == 3


def test_the_script_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (script,) = [code for code in PYTHON if "def test_" not in code]
    exec(compile(script, "docs/testing.md", "exec"), {})
    assert "'state': 'Killed'" in capsys.readouterr().out


def test_the_pytest_example_runs(pytester: pytest.Pytester) -> None:
    (example,) = [code for code in PYTHON if "def test_" in code]
    pytester.makepyfile(test_example=example)
    registered = any(e.name == "hvjob" for e in entry_points(group="pytest11"))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *([] if registered else ["-p", "hvjob.testing.pytest_plugin"])
    )
    result.assert_outcomes(passed=1)


def _environment(tmp_path: Path, password: str | None = CANARY_PASSWORD) -> dict[str, str]:
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        **({"HVJOB_PASSWORD": password} if password is not None else {}),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }


def _run_shell(code: str, tmp_path: Path, password: str | None = CANARY_PASSWORD) -> subprocess.CompletedProcess[str]:
    for block in YAML:
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith((".yml", ".yaml")):
            (tmp_path / first[2:].strip()).write_text(block)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,
        env=_environment(tmp_path, password),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="the shell example uses curl")
@pytest.mark.parametrize("password", [CANARY_PASSWORD, None], ids=["HVJOB_PASSWORD set", "HVJOB_PASSWORD unset"])
def test_the_start_example_runs(tmp_path: Path, password: str | None) -> None:
    (start,) = [code for code in SHELL if "ansible-playbook" not in code]
    proc = _run_shell(start, tmp_path, password)
    assert proc.returncode == 0, proc.stderr
    assert '"jobs": [' in proc.stdout and default.RUNNING in proc.stdout
    assert "Running" in proc.stdout.rsplit("}", 1)[-1]  # hvjob list's table, after the ground truth's JSON
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="the shell example uses curl")
def test_the_playbook_example_runs_and_the_ground_truth_shows_one_stop(tmp_path: Path) -> None:
    if not (BIN / "ansible-playbook").exists():
        pytest.skip("ansible-playbook not found beside this Python")
    (playbook,) = [code for code in SHELL if "ansible-playbook" in code]
    proc = _run_shell(playbook, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = re.findall(r"^(HVNODE\d+)\s+: ok=\d+\s+changed=(\d)\s+unreachable=0\s+failed=0", proc.stdout, re.M)
    assert sorted(recap) == [("HVNODE01", "1"), ("HVNODE02", "0"), ("HVNODE03", "0")], proc.stdout
    assert '"state": "Killed"' in proc.stdout
    assert proc.stdout.count('"method": "RequestStateChange"') == 1
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr


def test_the_cluster_file_example_loads(tmp_path: Path) -> None:
    (example,) = [code for code in YAML if code.startswith("cluster:")]
    path = tmp_path / "cluster.yml"
    path.write_text(example)
    spec = load_cluster_file(path)
    assert spec.nodes == ("HVNODE01", "HVNODE02", "HVNODE03") and len(spec.jobs) == 1
    assert spec.start is not None and spec.profile.request_state_change == "async"


def test_the_profile_table_is_the_code() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ((?:`[\w-]+`(?:, )?)+) \|", PAGE, re.M)
    documented = {name: tuple(re.findall(r"`([\w-]+)`", values)) for name, values in rows if name in SWITCHES}
    assert documented == SWITCHES


def test_the_default_cluster_table_is_the_code() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| `([0-9A-F-]{36})` \| (HVNODE\d+) \|", PAGE, re.M)
    by_id = {job.id: job for job in default.default_cluster_spec().jobs}
    assert len(rows) == 6
    for name, instance_id, node in rows:
        assert getattr(default, name) == instance_id
        assert by_id[instance_id].node == node
