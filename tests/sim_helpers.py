"""Typed helpers for the front and simulator tests (mypy --strict clean, unlike conftest's)."""

from __future__ import annotations

from typing import Any

from conftest import CANARY_PASSWORD
from hvjob.transport import ConnectionOptions


def connection_options(**overrides: Any) -> ConnectionOptions:
    """alice's options with short timeouts; ``overrides`` replace any field."""
    base: dict[str, Any] = {
        "username": "alice",
        "password": CANARY_PASSWORD,
        "connect_timeout": 5.0,
        "operation_timeout": 5.0,
        "read_timeout_margin": 2.0,
    }
    base.update(overrides)
    return ConnectionOptions(**base)
