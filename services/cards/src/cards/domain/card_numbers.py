"""Card numbers: three letters and five digits, easy to read aloud and type.

Letters that look like digits or each other (I, O, Q, B, G, S, Z) are left out.
"""

from __future__ import annotations

import random

LETTERS = "ACDEFHJKLMNPRTUVWXY"


def card_number_candidates(seed: str | None = None):
    """Endless candidates; seeded (from an idempotency key) they repeat exactly."""
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    while True:
        letters = "".join(rng.choice(LETTERS) for _ in range(3))
        yield f"{letters}-{rng.randrange(100000):05d}"
