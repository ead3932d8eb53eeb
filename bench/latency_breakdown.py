"""Where an incident's alert latency goes, from the daemon's JSON log.

The daemon logs, in order within one poll job: `signal` (detection found the burst,
after the poll read, classified and committed it), `alerts_queued` (the lifecycle
transaction put the notification in the outbox; delivery starts at once), then
`notification_delivered` once the webhook answered.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's JSON events that matter here, each with `ts` as a Unix time."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") in ("signal", "alerts_queued", "notification_delivered"):
            e["ts"] = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
            out.append(e)
    return out


def breakdown(events: list[dict[str, Any]], incident: dict[str, Any]) -> dict[str, Any]:
    """commit -> signal logged -> notification queued -> received, in seconds."""
    committed, received = incident["committed"], incident["received"]
    if received is None:
        return {}
    signal = next((e for e in events if e["event"] == "signal" and e["ts"] > committed
                   and e.get("status") == "firing"
                   and e.get("labels", {}).get("category") == incident["category"]), None)
    if signal is None:
        return {}
    queued = next((e for e in events if e["event"] == "alerts_queued"
                   and e["ts"] >= signal["ts"]), None)
    out: dict[str, Any] = {"to_signal": signal["ts"] - committed, "kind": signal.get("kind")}
    if queued is not None:
        out["signal_to_queued"] = queued["ts"] - signal["ts"]
        out["queued_to_received"] = received - queued["ts"]
    return out
