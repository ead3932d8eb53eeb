"""The simulated platform for one seed: weighted catalog, distributors, order factory."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from random import Random

from .catalog import CARRIER_PREFIXES, CHANNELS, PRODUCTS, PROVINCES, UPSTREAMS, Product
from .clock import DAY, EPOCH, EPOCH_ORDINAL
from .people import (
    distributor_id,
    fake_address,
    fake_age,
    fake_id_number,
    fake_name,
    fake_phone,
)
from .records import Order
from .sampling import pick, weighted_index

ZIPF_EXPONENT = 1.07
HOME_PROVINCE_SHARE = 0.4
"""Share of a distributor's customers from its home province (local promotion)."""


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    id_number: str
    phone: str
    age: int


@dataclass(frozen=True, slots=True)
class Draft:
    """An order with the internal facts the lifecycle needs besides the row values."""

    order: Order
    created: int
    product: Product
    person: Person
    timeline: bool
    """Whether this order's upstream writes its remark as a JSON timeline."""


class World:
    """Weighted choices over the catalog and the distributor population for one seed.

    Built once per `generate` call; read-only afterwards.
    """

    def __init__(self, seed: int, distributors: int) -> None:
        if distributors < 1:
            raise ValueError("distributors must be at least 1")
        rng = Random(f"world:{seed}")
        self.distributors = distributors
        self.products = PRODUCTS
        self.product_cum = list(itertools.accumulate(p.weight for p in PRODUCTS))
        self.province_cum = list(itertools.accumulate(p.weight for p in PROVINCES))
        self.distributor_ids = [distributor_id(r) for r in range(distributors)]
        self.distributor_cum = list(
            itertools.accumulate(1 / (r + 1) ** ZIPF_EXPONENT for r in range(distributors))
        )
        self.home = [
            rng.choices(range(len(PROVINCES)), cum_weights=self.province_cum)[0]
            for _ in range(distributors)
        ]
        channels = [c for c, _ in CHANNELS]
        channel_cum = list(itertools.accumulate(w for _, w in CHANNELS))
        self.main_channel = [
            rng.choices(channels, cum_weights=channel_cum)[0] for _ in range(distributors)
        ]
        self.timeline_share = {u.name: u.timeline_share for u in UPSTREAMS}
        self.rank_of = {d: r for r, d in enumerate(self.distributor_ids)}

    def pick_product(self, rng: Random, *, carrier: str | None = None,
                     upstream: str | None = None) -> int:
        if carrier is None and upstream is None:
            return weighted_index(rng, self.product_cum)
        idx = [
            i for i, p in enumerate(self.products)
            if carrier in (None, p.carrier) and upstream in (None, p.upstream)
        ]
        if not idx:
            raise ValueError(f"no product for carrier={carrier!r} upstream={upstream!r}")
        return rng.choices(idx, weights=[self.products[i].weight for i in idx])[0]

    def product_index(self, name: str) -> int:
        for i, p in enumerate(self.products):
            if p.name == name:
                return i
        raise ValueError(f"unknown product {name!r}")

    def pick_distributor(self, rng: Random) -> int:
        return weighted_index(rng, self.distributor_cum)

    def new_person(self, rng: Random, created: int, area_code: str) -> Person:
        age = fake_age(rng)
        on = date.fromordinal(EPOCH_ORDINAL + created // DAY)
        return Person(fake_name(rng), fake_id_number(rng, area_code, on, age), fake_phone(rng), age)

    def draft(
        self,
        rng: Random,
        created: int,
        order_id: int,
        *,
        product: int | None = None,
        carrier: str | None = None,
        upstream: str | None = None,
        distributor: int | None = None,
        province: int | None = None,
        person: Person | None = None,
    ) -> Draft:
        """A new order created at sim second `created`; keyword arguments pin dimensions."""
        if product is None:
            product = self.pick_product(rng, carrier=carrier, upstream=upstream)
        prod = self.products[product]
        if distributor is None:
            distributor = self.pick_distributor(rng)
        if province is None:
            province = (
                self.home[distributor] if rng.random() < HOME_PROVINCE_SHARE
                else weighted_index(rng, self.province_cum)
            )
        prov = PROVINCES[province]
        city, district, area = pick(rng, prov.cities)
        if person is None:
            # most customers live where they were born; some moved for work
            home_area = area if rng.random() < 0.7 else pick(rng, pick(rng, PROVINCES).cities)[2]
            person = self.new_person(rng, created, home_area)
        channel = self.main_channel[distributor] if rng.random() < 0.8 else pick(rng, CHANNELS)[0]
        created_at = EPOCH + timedelta(seconds=created)
        order = Order(
            id=order_id,
            order_no=f"HK{created_at:%y%m%d}{order_id:011d}",
            carrier=prod.carrier,
            upstream=prod.upstream,
            product=prod.name,
            distributor_id=self.distributor_ids[distributor],
            province=prov.name,
            city=city,
            channel=channel,
            customer_name=person.name,
            id_number=person.id_number,
            phone=person.phone,
            address=fake_address(rng, prov, city, district),
            created_at=created_at,
        )
        timeline = rng.random() < self.timeline_share[prod.upstream]
        return Draft(order, created, prod, person, timeline)

    def new_number(self, rng: Random, carrier: str) -> str:
        return fake_phone(rng, CARRIER_PREFIXES[carrier])
