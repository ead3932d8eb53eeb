"""Configuration of spike detection (`detect:` in the config file).

Defaults are tuned on the simulated platform in tests/scenarios (see docs/detection.md):
they catch the incidents listed in DOMAIN.md within two polls and stay within two false
alerts a week on a clean month.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from ..configtypes import Duration, Strict


class SpikeConfig(Strict):
    """A burst: the count in a short window far above the seasonal baseline."""

    window: Duration = Field(default=timedelta(minutes=4),
                             description="Trailing window whose count is tested (exact "
                             "real time ending at the poll).")
    min_count: int = Field(default=8, ge=1, description="Never alert below this count.")
    min_ratio: float = Field(default=3.0, ge=1.0,
                             description="Observed / expected must reach this.")
    min_excess: float = Field(default=6.0, ge=0.0,
                              description="Observed - expected must reach this.")
    alpha: float = Field(default=1e-6, gt=0, lt=1,
                         description="Tail probability (negative binomial) to alert at.")
    slice_window: Duration = Field(
        default=timedelta(minutes=2),
        description="A slice (one carrier, product, distributor...) is also tested on this "
        "shorter window: its own baseline is tiny, so a few events are already significant.")
    slice_min_count: int = Field(default=5, ge=1,
                                 description="Never alert a slice's short window below this.")
    traffic_window: Duration = Field(
        default=timedelta(minutes=15),
        description="How much busier than usual a scope is (its other categories, its "
        "orders) is also judged over this trailing window, and the larger factor is used: "
        "in a spike window of a few minutes a busy slice's other categories are a handful "
        "of events, so a promotion burst whose mix happened to lean to one category for "
        "four minutes looked like a spike of it. The expectation is also taken at this "
        "window's average rate when that is higher (a sparse slice's baseline falling off "
        "a cliff at an hour boundary).")


class CategoryThresholds(Strict):
    """Per-category overrides of the spike thresholds (unset keys keep `detect.spike`)."""

    min_count: int | None = Field(default=None, ge=1)
    min_ratio: float | None = Field(default=None, ge=1.0)
    min_excess: float | None = Field(default=None, ge=0.0)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    slice_min_count: int | None = Field(default=None, ge=1)
    enabled: bool = Field(default=True, description="false: never alert on this category.")


class StepConfig(Strict):
    """A sustained shift (policy change): a long window moderately above baseline."""

    enabled: bool = True
    window: Duration = Field(default=timedelta(hours=1))
    sustain: Duration = Field(default=timedelta(minutes=20),
                              description="The shift must hold this long before alerting.")
    min_count: int = Field(default=25, ge=1)
    min_ratio: float = Field(default=1.8, ge=1.0)
    alpha: float = Field(default=1e-6, gt=0, lt=1)
    accept_after: Duration = Field(
        default=timedelta(hours=6),
        description="After firing this long, the new level becomes the baseline (the "
        "episode then resolves).")


class TemplatesConfig(Strict):
    """A reason template (normalised text, numbers folded) never seen before, in volume."""

    enabled: bool = True
    window: Duration = Field(default=timedelta(minutes=30),
                             description="How long a template counts as new.")
    min_count: int = Field(default=10, ge=1)
    learn_for: Duration = Field(
        default=timedelta(days=1),
        description="No template alerts until templates have been learned this long.")
    cluster_window: Duration = Field(
        default=timedelta(minutes=5),
        description="Never-seen wordings of one category on one slice within this window "
        "alert together (a cluster), before any one wording reaches min_count.")
    cluster_dimensions: list[str] = Field(
        default_factory=lambda: ["product", "carrier", "distributor"],
        description="Dimensions whose values collect clusters.")
    cluster_categories: list[str] = Field(
        default_factory=lambda: ["supply_shortage", "compliance", "system_fault"],
        description="Categories that collect clusters: wordings a counterpart (carrier, "
        "upstream, number pool) writes when its rules change. Customer and operator "
        "wordings drift by themselves (the nightly jobs bring new ones every few days).")
    default_cluster_min_count: int = Field(default=3, ge=2)
    cluster_min_count: dict[str, int] = Field(
        default_factory=lambda: {"supply_shortage": 2, "compliance": 2},
        description="Per-category cluster size (supply and compliance wordings are rare "
        "per slice once wrappings are folded: two different new ones on one product or "
        "carrier within minutes are already telling).")
    max_templates: int = Field(default=50_000, ge=100,
                               description="Known templates kept (least recently seen go).")


class SilenceConfig(Strict):
    """An upstream or carrier whose cancellations (and orders) stop."""

    enabled: bool = True
    dimensions: list[str] = Field(default_factory=lambda: ["upstream", "carrier"])
    min_expected: float = Field(
        default=20.0, gt=0,
        description="Alert when at least this many events were expected during the gap "
        "(about this many normal gaps).")
    min_gap: Duration = Field(
        default=timedelta(minutes=10),
        description="The gap at which a value is silent while its usual longest gap is "
        "not learned yet (cold): the small carriers and upstreams (广电) go quiet for 4-5 "
        "minutes at noon on a clean stream, more than their learned rate says.")
    gap_factor: float = Field(
        default=2.0, ge=1.0,
        description="Once learned, a value is silent after this many times its usual "
        "longest gap (the largest of the current and the neighbouring hours of the day; "
        "a busy upstream's is 1 minute, a quiet carrier's at night half an hour).")
    gap_floor: Duration = Field(
        default=timedelta(minutes=2),
        description="Never call a gap shorter than this silent, however busy the value "
        "(2m: one whole empty minute after the value's last event).")
    gap_min_expected: float = Field(
        default=12.0, gt=0,
        description="With a learned usual gap, the gap's whole empty minutes (all but the "
        "last event's own minute) must also have expected at least this many events (a "
        "Poisson chance of e^-12, 6e-6, per empty minute): one empty minute is a silence "
        "only for a value that sends about 12 events a minute then.")
    gap_decay: float = Field(
        default=0.98, gt=0.0, le=1.0,
        description="Per day, the learned usual longest gap of an hour sinks by this factor "
        "towards what that hour shows now (it rises at once). Slow on purpose: a busy "
        "value misses a whole minute a few times a month, and at 0.9 (a week) it had "
        "forgotten the last one before the next (two false silences in a clean month).")
    gap_warm_days: int = Field(
        default=3, ge=1,
        description="Days an hour of the day must have been learned before its usual "
        "longest gap is used (before, `min_gap` applies).")


class VolumeConfig(Strict):
    """One value's new orders x10 with cancellations leaning to compliance/duplicate
    (distributor abuse). Needs its orders counted: `source.count_orders_by: [distributor]`."""

    enabled: bool = True
    dimension: str = Field(default="distributor",
                           description="The dimension whose values' volumes are tested.")
    window: Duration = Field(default=timedelta(minutes=15),
                             description="Trailing window of the order and lean counts.")
    min_orders: int = Field(default=8, ge=1,
                            description="Never alert below this many new orders in the window.")
    min_ratio: float = Field(
        default=10.0, ge=1.0,
        description="New orders must reach this many times the value's usual share of the "
        "platform's orders in the window.")
    prior_share: float = Field(
        default=0.001, gt=0, lt=1,
        description="The usual share of a value never seen (or evicted from the table).")
    share_half_life: Duration = Field(
        default=timedelta(days=1),
        description="Half-life of the learned per-value order volume (its usual share).")
    lean_categories: list[str] = Field(
        default_factory=lambda: ["compliance", "duplicate"],
        description="Categories an abuser's cancellations lean to.")
    min_lean: int = Field(default=4, ge=1,
                          description="At least this many lean cancellations in the window.")
    alpha: float = Field(
        default=0.05, gt=0, lt=1,
        description="The lean must be unlikely at the platform's usual lean share of "
        "cancellations: binomial tail at most this (k of k at 0.42: 3% for k=4).")
    ratio_window: Duration = Field(
        default=timedelta(minutes=30),
        description="Window of the lean cancellations per new order (orders are cancelled "
        "minutes after they are created).")
    min_per_order: float = Field(
        default=0.2, ge=0.0,
        description="At least this many lean cancellations per new order over "
        "`ratio_window`: a promotion burst's orders are mostly kept.")
    max_values: int = Field(
        default=1000, ge=10,
        description="Values kept in the table (the busiest; the least used are evicted): "
        "memory stays bounded with tens of thousands of distributors.")


class DetectConfig(Strict):
    """Spike, step, new-template, silence and volume detection on classified
    cancellations (and new orders)."""

    enabled: bool = True
    dimensions: list[str] | None = Field(
        default=None,
        description="Dimensions to build series for (default: every source dimension).")
    top_k: dict[str, int] = Field(
        default_factory=dict,
        description="Per-dimension number of values with a series of their own; the rest "
        "are pooled as `other` (default_top_k when unset).")
    default_top_k: int = Field(default=20, ge=1, le=1000)
    settle: Duration = Field(
        default=timedelta(minutes=10),
        description="Baselines learn a 5-minute slot this long after it ends (late rows).")
    resolve_after: Duration | None = Field(
        default=None, description="Normal this long resolves an episode (default: the "
        "spike window, or the step window for steps).")
    update_growth: float = Field(
        default=1.5, gt=1.0,
        description="A firing episode reports again when its excess grows by this factor.")
    spike: SpikeConfig = Field(default_factory=SpikeConfig)
    categories: dict[str, CategoryThresholds] = Field(default_factory=dict)
    step: StepConfig = Field(default_factory=StepConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    silence: SilenceConfig = Field(default_factory=SilenceConfig)
    volume: VolumeConfig = Field(default_factory=VolumeConfig)
    save_interval: Duration = Field(default=timedelta(minutes=1),
                                    description="How often baselines are saved.")

    @model_validator(mode="after")
    def _windows(self) -> DetectConfig:
        if self.spike.window < timedelta(minutes=1):
            raise ValueError("spike.window must be at least 1m")
        if self.step.window < self.spike.window:
            raise ValueError("step.window must not be shorter than spike.window")
        if self.volume.ratio_window < self.volume.window:
            raise ValueError("volume.ratio_window must not be shorter than volume.window")
        return self

    def thresholds(self, category: str) -> SpikeConfig:
        """The spike thresholds for one category, overrides applied."""
        o = self.categories.get(category)
        if o is None:
            return self.spike
        update = {k: v for k, v in o.model_dump(exclude={"enabled"}).items() if v is not None}
        return self.spike.model_copy(update=update) if update else self.spike

    def category_enabled(self, category: str) -> bool:
        o = self.categories.get(category)
        return o is None or o.enabled
