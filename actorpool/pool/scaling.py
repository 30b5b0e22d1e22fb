"""When to grow or shrink the pool: a load monitor with hysteresis.

Load is ``(busy connections + waiting requests) / pool size``, integrated
over time (not sampled), so short bursts between ticks still count. The
pool grows by ``pool_growth_factor`` when load has stayed above
``load_threshold`` for a whole ``load_window``, and shrinks one step toward
``min_pool_size`` when it has stayed below half the threshold for a whole
``idle_timeout``. The gap between the two thresholds and the two windows,
plus a cool-down after every change, is what keeps a steady load from
making the pool flap.
"""

from __future__ import annotations

import collections
import math

import attrs

from actorpool.messages import ScalingDecision

__all__ = ["LoadMonitor"]


@attrs.define
class LoadMonitor:
    """Integrates the pool's load and decides resizes. Owned by the router (one thread).

    Attributes:
        threshold: Grow above this load; shrink below half of it.
        window: Seconds the load must stay high before growing.
        idle_window: Seconds the load must stay low before shrinking.
        growth: Factor applied to the size when growing.
        min_size: Never shrink below this.
        max_size: Never grow above this.
    """

    threshold: float
    window: float
    idle_window: float
    growth: float
    min_size: int
    max_size: int
    _level: float = 0.0
    _since: float | None = None
    _integral: float = 0.0
    _tick_start: float | None = None
    _samples: collections.deque[tuple[float, float, float]] = attrs.field(
        factory=lambda: collections.deque(maxlen=4096)
    )
    _last_change: float = -math.inf
    decisions: collections.deque[ScalingDecision] = attrs.field(
        factory=lambda: collections.deque(maxlen=16)
    )

    def update(self, now: float, busy: int, waiting: int, size: int) -> None:
        """Record that the load level changed at ``now``."""
        self._accumulate(now)
        self._level = (busy + waiting) / size if size else 0.0

    def _accumulate(self, now: float) -> None:
        if self._since is not None:
            self._integral += self._level * (now - self._since)
        self._since = now
        if self._tick_start is None:
            self._tick_start = now

    @property
    def load(self) -> float:
        """The load averaged over the most recent tick (0 before the first)."""
        return self._samples[-1][2] if self._samples else 0.0

    def tick(self, now: float, size: int) -> ScalingDecision | None:
        """Close the current sample and return a resize to make, if any."""
        self._accumulate(now)
        start = self._tick_start if self._tick_start is not None else now
        if now > start:
            self._samples.append((start, now, self._integral / (now - start)))
        self._integral = 0.0
        self._tick_start = now
        if now - self._last_change >= self.window and size < self.max_size:
            high = self._all_over(now, self.window, lambda load: load > self.threshold)
            if high is not None:
                target = min(self.max_size, max(size + 1, math.ceil(size * self.growth)))
                return self._decide(now, "up", size, target, f"load {high:.2f} > {self.threshold}")
        if now - self._last_change >= self.idle_window and size > self.min_size:
            low = self._all_over(now, self.idle_window, lambda load: load < self.threshold / 2)
            if low is not None:
                target = max(self.min_size, min(size - 1, math.floor(size / self.growth)))
                return self._decide(
                    now, "down", size, target, f"load {low:.2f} < {self.threshold / 2}"
                )
        return None

    def _all_over(self, now: float, span: float, test: object) -> float | None:
        # The mean load over the last `span` seconds, if every sample in it passes `test`
        # and the samples cover the whole span; else None.
        assert callable(test)
        covered, total = 0.0, 0.0
        for start, end, load in reversed(self._samples):
            if end <= now - span:
                break
            if not test(load):
                return None
            part = end - max(start, now - span)
            covered += part
            total += load * part
        if covered < span * 0.95:
            return None
        return total / covered

    def _decide(
        self, now: float, direction: str, size: int, target: int, reason: str
    ) -> ScalingDecision:
        decision = ScalingDecision(now, direction, size, target, reason, self.load)
        self.decisions.append(decision)
        self._last_change = now
        return decision

    def resized(self, now: float) -> None:
        """The pool changed size for another reason (a retirement): restart the cool-down."""
        self._last_change = now
