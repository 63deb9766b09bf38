"""The canary password must not appear in anything the project ships or generates."""

from __future__ import annotations

import subprocess

import pytest

from conftest import CANARY_PASSWORD, ROOT


def test_no_committed_file_outside_the_test_suite_holds_the_canary() -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    files = listed.stdout.split() if listed.returncode == 0 else []
    if not files:  # not a git checkout (an unpacked sdist): walk the tree
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert len(files) > 50
    holders = [f for f in files if (ROOT / f).is_file() and CANARY_PASSWORD.encode() in (ROOT / f).read_bytes()]
    assert holders == ["tests/conftest.py"]  # where it is defined, and nowhere else


def test_the_canary_checks_can_fail(pytester) -> None:  # type: ignore[no-untyped-def]
    """The report hook really fails a test whose log shows the canary (a check that cannot fail is no check)."""
    inner = "Inner-Canary-4242"  # the real canary would leak into this test's own output
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text().replace(CANARY_PASSWORD, inner))
    pytester.makepyfile(
        test_leak=f"""
import logging

def test_leaks():
    logging.getLogger("hvjob.demo").debug("password=%s", {inner!r})

def test_clean():
    logging.getLogger("hvjob.demo").debug("password=********")

def test_writes_a_recording(tmp_path):
    (tmp_path / "recorded.yml").write_text("password: {inner}")
    (tmp_path / "users.txt").write_text(":alice:{inner}")  # a credential store: allowed
"""
    )
    result = pytester.runpytest("-o", "log_level=DEBUG", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*canary password found in files*"])
    result.stdout.fnmatch_lines(["*canary password appeared*test_leaks*"])
    assert "recorded.yml" in result.stdout.str() and "users.txt" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
