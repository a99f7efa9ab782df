"""Keeping the supervisor's lease while it works."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from longrun.store import lease
from longrun.store.db import Store
from longrun.store.errors import LongrunError


class LeaseKeeper:
    """Renews the supervisor's lease from a thread of its own, a few times per time to live, so a
    tick that takes long (a first tick over many runs) never lets it lapse."""

    def __init__(
        self,
        store: Store,
        holder: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
        every: float | None = None,
    ) -> None:
        self.store, self.holder, self.ttl, self.clock = store, holder, ttl, clock
        self.every = every if every is not None else ttl.total_seconds() / 4
        """Seconds between renewals."""
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="longrun-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> bool:
        if not lease.acquire(self.store, self.holder, self.ttl, self.clock()):
            self.lost.set()
        return not self.lost.is_set()

    def _keep(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.renew():
                    return
            except LongrunError:
                continue  # a busy store: the next try, well within the time to live

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
