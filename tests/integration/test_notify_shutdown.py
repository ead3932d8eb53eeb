"""A stopping leader's last delivery attempt is bounded, and leaves the rest queued."""

from __future__ import annotations

import threading
import time

from tests.integration.notify_servers import HttpReceiver, wait_until
from tests.integration.notify_setup import make_alerting, signal


def test_finish_waits_at_most_its_deadline_and_close_stops_after_the_current_row(tmp_path):
    hold = threading.Event()
    receiver = HttpReceiver(respond=lambda _: (200, b""), hold=hold).start()
    al, store, _ = make_alerting(
        tmp_path, {"hook": {"type": "webhook", "urls": [f"{receiver.url}/hook"],
                            "options": {"timeout": "20s"}}},
        group_by=["category"])
    try:
        al.evaluate([signal(category=c) for c in ("system_fault", "compliance",
                                                  "supply_shortage")], deliver=False)
        assert al.outbox.pending_count() == 3
        started = time.monotonic()
        al.finish(0.5)  # the receiver holds the first request for up to 30 s
        assert time.monotonic() - started < 5
        wait_until(lambda: receiver.count() == 1, 10, "the first request")
        hold.set()
        al.close()  # waits for the row in flight, starts no other
        assert receiver.count() == 1
        assert al.outbox.pending_count() == 2  # left for the next leader
    finally:
        hold.set()
        receiver.stop()
        store.close()
