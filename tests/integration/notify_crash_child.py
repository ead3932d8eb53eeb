"""Child process for the SIGKILL tests: queue an alert then die, send it (and be killed
by the test while the receiver holds the request), or restart and deliver.

    python -m tests.integration.notify_crash_child queue STATE_URL RECEIVER_URL
    python -m tests.integration.notify_crash_child send STATE_URL RECEIVER_URL
    python -m tests.integration.notify_crash_child deliver STATE_URL RECEIVER_URL [AHEAD_S]

AHEAD_S runs the restarted process's clock that many seconds ahead of the wall clock,
as if it restarted after the dead process's outbox lease ran out.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta

from tests.integration.notify_setup import make_alerting
from tests.integration.notify_setup import signal as make_signal


def main(phase: str, state_url: str, receiver_url: str, ahead_s: str = "0") -> int:
    channels = {"hook": {"type": "webhook", "urls": [f"{receiver_url}/hook"]}}
    alerting, store, _ = make_alerting(None, channels, state_url=state_url)
    ahead = timedelta(seconds=float(ahead_s))
    alerting.clock = lambda: datetime.now(UTC) + ahead
    # The detector keeps reporting the incident after the restart, as it would.
    notes = alerting.evaluate([make_signal(at=alerting.clock())], deliver=False)
    if phase == "queue":
        print(f"queued {len(notes)}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # between queueing and delivery
    if phase == "send":
        print(f"queued {len(notes)}", flush=True)  # the test kills us during the send
    attempts = alerting.deliver_pending()
    print(f"queued {len(notes)} delivered {sum(a.result == 'delivered' for a in attempts)}",
          flush=True)
    alerting.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
