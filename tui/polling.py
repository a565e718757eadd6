"""Polling off the UI thread, one poll at a time: the pattern every live panel shares.

File reads and device probes can block (a slow shared filesystem, a hung driver),
so they run in a worker thread and their result is applied on the UI thread. A
timer tick that arrives while the previous poll is still running is skipped, not
queued, so a slow disk never builds a backlog of reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from textual.dom import DOMNode

T = TypeVar("T")


class BackgroundPoll(Generic[T]):
    """Call it from a timer; `read` runs in a thread, then `apply(result)` on the UI thread.

    `on_error` turns an exception from `read` into a result to apply (e.g. a one-line
    message naming the file), so a failed poll is shown, never fatal, and the next
    tick polls again.
    """

    def __init__(
        self,
        node: DOMNode,
        read: Callable[[], T],
        apply: Callable[[T], None],
        group: str,
        on_error: Callable[[Exception], T] | None = None,
    ) -> None:
        self.node, self.read, self.apply, self.group, self.on_error = (
            node,
            read,
            apply,
            group,
            on_error,
        )
        self.busy = False

    def __call__(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.node.run_worker(self._work, thread=True, group=self.group, exit_on_error=False)

    def _work(self) -> None:
        try:
            result = self.read()
        except Exception as exc:
            if self.on_error is None:
                self.node.app.call_from_thread(self._release)
                raise
            result = self.on_error(exc)
        self.node.app.call_from_thread(self._done, result)

    def _release(self) -> None:
        self.busy = False

    def _done(self, result: T) -> None:
        self.busy = False
        self.apply(result)
