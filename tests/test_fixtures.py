"""The fixture set: in sync with its generator, loadable, and every response a usable WS-Man reply."""

from __future__ import annotations

import importlib.util
import re

from conftest import FIXTURES, SCENARIOS
from hvjob.scenario import load_scenario, load_scenarios
from hvjob.testing import demo_fixtures_dir
from hvjob.wire.parse import describe


def test_committed_fixtures_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("generate_handwritten", FIXTURES / "generate_handwritten.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert len(rendered) > 40
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run fixtures/generate_handwritten.py"
    # A committed hand-written file the generator no longer writes is stale too (recordings are not
    # generated: they say "recorded" in their origin).
    committed = {p for d in (SCENARIOS, demo_fixtures_dir()) for p in d.glob("*.yml")}
    orphans = sorted(str(p) for p in committed - set(rendered) if load_scenario(p).origin.startswith("hand-written"))
    assert not orphans, f"hand-written fixtures the generator does not write: {orphans}"


def test_every_fixture_response_decodes_and_says_its_origin() -> None:
    scenarios = load_scenarios(SCENARIOS) + load_scenarios(demo_fixtures_dir())
    kinds = set()
    for scenario in scenarios:
        assert scenario.origin.startswith(("hand-written", "recorded by hvjob ")), scenario.name
        for exchange in scenario.exchanges:
            kinds.add(describe(exchange.body.encode())["kind"])
            # Shapes follow the real captures: compact, xml:lang on the envelope, RelatesTo to rewrite.
            assert "\n" not in exchange.body and 'xml:lang="en-US"' in exchange.body
            assert re.search(r"<a:RelatesTo>uuid:0{8}-", exchange.body), scenario.name
    assert kinds == {"instance", "method_output", "fault", "enumeration", "empty"}
