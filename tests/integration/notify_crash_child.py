"""Child process for the SIGKILL test: queue an alert then die, or restart and deliver.

    python -m tests.integration.notify_crash_child queue STATE_URL RECEIVER_URL
    python -m tests.integration.notify_crash_child deliver STATE_URL RECEIVER_URL
"""

from __future__ import annotations

import os
import signal
import sys

from tests.integration.notify_setup import make_alerting
from tests.integration.notify_setup import signal as make_signal


def main(phase: str, state_url: str, receiver_url: str) -> int:
    channels = {"hook": {"type": "webhook", "urls": [f"{receiver_url}/hook"]}}
    alerting, store, _ = make_alerting(None, channels, state_url=state_url)
    # The detector keeps reporting the incident after the restart, as it would.
    notes = alerting.evaluate([make_signal()], deliver=False)
    if phase == "queue":
        print(f"queued {len(notes)}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # between queueing and delivery
    attempts = alerting.deliver_pending()
    print(f"queued {len(notes)} delivered {sum(a.result == 'delivered' for a in attempts)}",
          flush=True)
    alerting.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
