"""The runnable example in docs/api.md runs."""

from __future__ import annotations

import re

from conftest import ROOT


def test_api_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    runnable = [b for b in blocks if "FakeWinRMServer" in b]
    assert runnable
    exec(compile(runnable[0], "docs/api.md", "exec"), {})
    assert "'status': 'ok'" in capsys.readouterr().out
