"""Spike, step, new-template, silence and volume detection on classified cancellations.

Pure core: `Detector` (detector.py) composes window counts and top-K series (series.py),
seasonal robust baselines (baseline.py), count tails (stats.py), the tests (spike.py,
silence.py, templates.py, volume.py with its per-distributor table volumes.py),
drill-down (drilldown.py) and hysteresis (episodes.py).
Persistence lives in state.py, the per-poll glue shared by daemon and replay in stage.py.
"""

from .config import DetectConfig
from .detector import NEW_TEMPLATE, SILENCE, SPIKE, STEP, VOLUME, Detector
from .episodes import FIRING, RESOLVED, UPDATED, Transition

__all__ = [
    "FIRING",
    "NEW_TEMPLATE",
    "RESOLVED",
    "SILENCE",
    "SPIKE",
    "STEP",
    "UPDATED",
    "VOLUME",
    "DetectConfig",
    "Detector",
    "Transition",
]
