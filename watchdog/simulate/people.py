"""Fake but well-formed personal data: names, ID numbers, phones, addresses.

Every value is synthetic; ID numbers carry a valid GB 11643 check digit so that
validators and maskers see realistic input.
"""

from __future__ import annotations

from datetime import date
from random import Random

from .catalog import ALL_PREFIXES, ESTATES, GIVEN_CHARS, STREETS, SURNAMES, Province
from .sampling import pick

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits of an ID number."""
    return _ID_CHECK[sum(map(int.__mul__, map(int, first17), _ID_WEIGHTS)) % 11]


def is_valid_id_number(value: str) -> bool:
    return (
        len(value) == 18
        and value[:17].isdigit()
        and value[17] == id_check_digit(value[:17])
    )


def fake_id_number(rng: Random, area_code: str, on: date, age: int) -> str:
    birth = date.fromordinal(on.toordinal() - age * 365 - int(rng.random() * 365))
    first17 = (
        f"{area_code}{birth.year:04d}{birth.month:02d}{birth.day:02d}"
        f"{int(rng.random() * 1000):03d}"
    )
    return first17 + id_check_digit(first17)


def fake_age(rng: Random) -> int:
    # Flow-card buyers skew young; a few are under age or elderly (compliance rejects).
    return min(75, max(14, int(rng.lognormvariate(3.3, 0.28))))


def fake_name(rng: Random) -> str:
    given = pick(rng, GIVEN_CHARS)
    if rng.random() < 0.7:
        given += pick(rng, GIVEN_CHARS)
    return pick(rng, SURNAMES) + given


def fake_phone(rng: Random, prefixes: tuple[str, ...] = ALL_PREFIXES) -> str:
    return f"{pick(rng, prefixes)}{int(rng.random() * 100_000_000):08d}"


def fake_address(rng: Random, province: Province, city: str, district: str) -> str:
    city_part = "" if province.full.startswith(city) else f"{city}市"
    r = rng.random
    return (
        f"{province.full}{city_part}{district}{pick(rng, STREETS)}{int(r() * 998) + 1}号"
        f"{pick(rng, ESTATES)}{int(r() * 29) + 1}栋{int(r() * 32) + 1}{int(r() * 4) + 1:02d}"
    )


def distributor_id(rank: int) -> str:
    """Id of the distributor with volume rank `rank` (0 = largest); stable across seeds.

    The multiplication scatters ids so that an id does not reveal a distributor's size.
    """
    if not 0 <= rank < 90_000:
        raise ValueError("distributor rank must be in 0..89999")
    return f"D{(rank * 7919) % 90_000 + 10_000}"
