"""Loads the network's reference data shipped with the package."""

import json
from functools import lru_cache
from importlib.resources import files

from ..domain.network import Network


@lru_cache(maxsize=1)
def load_network() -> Network:
    data = json.loads(files("cards.reference").joinpath("network.json").read_text("utf-8"))
    return Network.from_dict(data)
