"""The simulated clock: real time times a speed factor, plus whatever was advanced explicitly.

Simulated time is kept as seconds since the clock's start (a UTC datetime), so the model does
plain arithmetic and only the rendering turns seconds into CIM datetimes. Tests use speed 0 and
advance the clock themselves: nothing then depends on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(
        self,
        speed: float = 1.0,
        start: dt.datetime | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("the clock's speed cannot be negative")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.start = (start or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        self._initial_speed = speed
        self._speed = speed
        self._base_real = monotonic()
        self._base_sim = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError("the clock's speed cannot be negative")
        with self._lock:
            self._rebase()
            self._speed = value

    def _rebase(self) -> None:
        real = self._monotonic()
        self._base_sim += (real - self._base_real) * self._speed
        self._base_real = real

    def now(self) -> float:
        """Simulated seconds since the start."""
        with self._lock:
            return self._base_sim + (self._monotonic() - self._base_real) * self._speed

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock cannot go back")
        with self._lock:
            self._rebase()
            self._base_sim += seconds
            return self._base_sim

    def datetime_at(self, seconds: float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=seconds)

    def reset(self) -> None:
        with self._lock:
            self._base_real = self._monotonic()
            self._base_sim = 0.0
            self._speed = self._initial_speed
