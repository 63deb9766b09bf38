"""The canary password must not appear in anything the project ships or generates."""

from __future__ import annotations

import subprocess

import pytest

from conftest import CANARY_PASSWORD, ROOT, leaks


def test_no_committed_file_outside_the_test_suite_holds_the_canary() -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    files = listed.stdout.split() if listed.returncode == 0 else []
    if not files:  # not a git checkout (an unpacked sdist): walk the tree
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert len(files) > 50
    holders = [f for f in files if (ROOT / f).is_file() and CANARY_PASSWORD.encode() in (ROOT / f).read_bytes()]
    assert holders == ["tests/conftest.py"]  # where it is defined, and nowhere else
    # No committed file holds its NT hash or an authentication token either.
    texts = {f: (ROOT / f).read_bytes().decode("latin-1") for f in files if (ROOT / f).is_file()}
    assert [f for f, text in texts.items() if leaks(text) and f != "tests/conftest.py"] == []


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
    result.stdout.fnmatch_lines(["*secrets found in files*"])
    result.stdout.fnmatch_lines(["*secret appeared*test_leaks*the canary password*"])
    assert "recorded.yml" in result.stdout.str() and "users.txt" not in result.stdout.str()
    assert inner not in result.stdout.str()  # the failure report withholds what it found
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_tokens_and_the_nt_hash_fail_a_test_too(pytester) -> None:  # type: ignore[no-untyped-def]
    """NTLM tokens (raw or inside SPNEGO), Authorization values and the canary's NT hash, in logs,
    output, failures or written files, fail the test or the session; the report does not repeat them.

    The inner run is a subprocess (its log records must not reach this test's own capture), and
    builds every token at run time, so that no file on disk holds one but the planted capture.log.
    """
    inner = "Inner-Canary-5151"
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text().replace(CANARY_PASSWORD, inner))
    pytester.makepyfile(
        test_tokens=f"""
import base64
import logging
import sys

from hvjob.transport import nt_hash

log = logging.getLogger("hvjob.transport")
AUTHENTICATE = b"NTLM" + b"SSP\\x00\\x03\\x00\\x00\\x00" + bytes(range(64))
RAW = base64.b64encode(AUTHENTICATE).decode()
SPNEGO = base64.b64encode(b"\\xa1\\x81\\x9f0\\x81\\x9c\\xa2\\x81\\x99\\x04\\x81\\x96" + AUTHENTICATE).decode()
KERBEROS = "YII" + "Bx" * 40  # a GSS-API initial token (0x60 0x82 ...)
BASIC = base64.b64encode(("alice:" + {inner!r}).encode()).decode()

def test_raw_ntlm_token_in_a_log():
    log.debug("step output: %s", RAW)

def test_spnego_wrapped_ntlm_token_on_stdout():
    print("token", SPNEGO)

def test_authorization_header_on_stderr():
    sys.stderr.write("Authorization: Negotiate " + KERBEROS + "\\n")

def test_www_authenticate_in_a_failure():
    assert False, "WWW-Authenticate: Kerberos " + KERBEROS

def test_nt_hash_in_a_log():
    log.info("hash %s", nt_hash({inner!r}).upper())

def test_basic_credentials_in_a_log():
    log.warning("Authorization: Basic %s", BASIC)

def test_clean_negotiate_challenge_without_token():
    log.debug("WWW-Authenticate: Negotiate")
    log.debug("authenticated with ntlm (Negotiate), 2 legs; NTLM negotiate/authenticate legs")

def test_writes_a_token(tmp_path):
    (tmp_path / "capture.log").write_text(RAW)
"""
    )
    result = pytester.runpytest_subprocess("-o", "log_level=DEBUG", "-p", "no:cacheprovider")
    for planted in pytester.path.rglob("capture.log"):
        planted.unlink()  # found by the inner session; this session must not find it again
    result.assert_outcomes(passed=2, failed=6)
    for name, kind in [
        ("test_raw_ntlm_token_in_a_log", "an NTLM token"),
        ("test_spnego_wrapped_ntlm_token_on_stdout", "an NTLM token"),
        ("test_authorization_header_on_stderr", "an authentication token"),
        ("test_www_authenticate_in_a_failure", "an authentication token"),
        ("test_nt_hash_in_a_log", "NT hash"),
        ("test_basic_credentials_in_a_log", "Basic credentials"),
    ]:
        result.stdout.fnmatch_lines([f"*secret appeared*{name}*{kind}*"])
    result.stdout.fnmatch_lines(["*secrets found in files*", "*capture.log (an NTLM token)"])
    assert "[withheld: it held a secret]" in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
