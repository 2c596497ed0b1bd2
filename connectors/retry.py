"""The retry policy every connector shares (tenacity).

Only ``RetriableAPIError`` is retried — rate limits, 5xx, dropped connections — and only for
calls that are safe to repeat (reads, and writes made idempotent by the caller). A server's
``Retry-After`` is honoured; the total time spent waiting is bounded, after which the last
error is raised for the caller to report.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from core.errors import RetriableAPIError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5                # tries in all, the first included
    max_total_wait: float = 120.0    # seconds of waiting across all retries
    max_single_wait: float = 60.0    # a longer Retry-After is cut to this
    initial_wait: float = 1.0        # backoff start when the server names no wait
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn`` and retry retriable failures within the policy's bounds."""
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetriableAPIError) and exc.retry_after is not None:
                chosen = min(max(exc.retry_after, 0.0), self.max_single_wait)
            else:  # exponential backoff with jitter
                chosen = min(self.initial_wait * 2 ** (state.attempt_number - 1)
                             + random.uniform(0, self.initial_wait), self.max_single_wait)
            chosen = min(chosen, max(self.max_total_wait - state.idle_for, 0.0))
            log.warning("retrying in %.1f s after: %s", chosen, exc)
            return chosen

        def waited_enough(state: RetryCallState) -> bool:
            return state.idle_for >= self.max_total_wait

        retrying = Retrying(
            retry=retry_if_exception_type(RetriableAPIError),
            stop=stop_after_attempt(self.attempts) | waited_enough,
            wait=wait, sleep=self.sleep, reraise=True)
        return retrying(fn, *args, **kwargs)
