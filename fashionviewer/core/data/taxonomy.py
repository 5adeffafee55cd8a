"""The project's fashion taxonomy (iMaterialist-Fashion 2019 / Fashionpedia) and CCP's labels in it.

FashionViewer names garments with the 46 apparel categories of iMaterialist-Fashion 2019
(FGVC6; Fashionpedia uses the same list): ids 0-45, in the order of its
``label_descriptions.json`` (``resources/taxonomies/imaterialist2019.json``). In files
(COCO results, ground truth) a category id is that ClassId; inside a model, label ``k``
(1..46) is ClassId ``k - 1`` because label 0 is the background.

Fashion-MNIST's 10 classes stay the classifier's own and are not mapped.

Clothing Co-Parsing (CCP) labels its pixels with 59 names. :data:`CCP_TO_IMATERIALIST`
maps every one of them either to one iMaterialist category or to ``None`` with the reason
in :data:`CCP_DROPPED`: ``null`` (background), ``skin`` and ``hair`` (the body, not an
item), and the items the 46 categories have no place for (jewellery, underwear,
swimwear, the catch-all ``accessories``, and ``suit``, which is two garments under one
label). Several CCP labels may share a category (``jeans``, ``pants`` and ``leggings``
are all ``pants``); in a CCP photo their pixels then form one instance, as one CCP label
does.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Sequence

import numpy as np

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import RESOURCES_DIR

TAXONOMY_FILE = RESOURCES_DIR / "taxonomies" / "imaterialist2019.json"
IMATERIALIST = "imaterialist"  # the taxonomy's name in run.json, model cards and --taxonomy
CCP = "ccp"
TAXONOMIES = (CCP, IMATERIALIST)

# CCP label -> iMaterialist category name (None: dropped, see CCP_DROPPED)
CCP_TO_IMATERIALIST: dict[str, str | None] = {
    "null": None,
    "accessories": None,
    "bag": "bag, wallet",
    "belt": "belt",
    "blazer": "jacket",
    "blouse": "shirt, blouse",
    "bodysuit": "top, t-shirt, sweatshirt",
    "boots": "shoe",
    "bra": None,
    "bracelet": None,
    "cape": "cape",
    "cardigan": "cardigan",
    "clogs": "shoe",
    "coat": "coat",
    "dress": "dress",
    "earrings": None,
    "flats": "shoe",
    "glasses": "glasses",
    "gloves": "glove",
    "hair": None,
    "hat": "hat",
    "heels": "shoe",
    "hoodie": "top, t-shirt, sweatshirt",  # Fashionpedia files hoodies under sweatshirts
    "intimate": None,
    "jacket": "jacket",
    "jeans": "pants",
    "jumper": "sweater",  # CCP's jumper is the British one: a pullover
    "leggings": "pants",
    "loafers": "shoe",
    "necklace": None,
    "panties": None,
    "pants": "pants",
    "pumps": "shoe",
    "purse": "bag, wallet",
    "ring": None,
    "romper": "jumpsuit",  # rompers/playsuits are one-piece like jumpsuits
    "sandals": "shoe",
    "scarf": "scarf",
    "shirt": "shirt, blouse",
    "shoes": "shoe",
    "shorts": "shorts",
    "skin": None,
    "skirt": "skirt",
    "sneakers": "shoe",
    "socks": "sock",
    "stockings": "tights, stockings",
    "suit": None,
    "sunglasses": "glasses",
    "sweater": "sweater",
    "sweatshirt": "top, t-shirt, sweatshirt",
    "swimwear": None,
    "t-shirt": "top, t-shirt, sweatshirt",
    "tie": "tie",
    "tights": "tights, stockings",
    "top": "top, t-shirt, sweatshirt",
    "vest": "vest",
    "wallet": "bag, wallet",
    "watch": "watch",
    "wedges": "shoe",
}

_NO_CATEGORY = "no iMaterialist category for it"
CCP_DROPPED: dict[str, str] = {
    "null": "background, not an item",
    "skin": "the body, not an item",
    "hair": "the body, not an item",
    "accessories": "a catch-all for any accessory; no single category fits",
    "bracelet": f"jewellery: {_NO_CATEGORY}",
    "earrings": f"jewellery: {_NO_CATEGORY}",
    "necklace": f"jewellery: {_NO_CATEGORY}",
    "ring": f"jewellery: {_NO_CATEGORY}",
    "bra": f"underwear: {_NO_CATEGORY}",
    "intimate": f"underwear: {_NO_CATEGORY}",
    "panties": f"underwear: {_NO_CATEGORY}",
    "swimwear": f"swimwear: {_NO_CATEGORY}",
    "suit": "a jacket and trousers under one label; no single category fits",
}
BODY_LABELS = ("skin", "hair")


@lru_cache(maxsize=1)
def imaterialist_categories() -> tuple[dict[str, object], ...]:
    """The 46 categories ``{"id", "name", "supercategory", ...}`` in ClassId order."""
    try:
        data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
        categories = tuple(data["categories"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{TAXONOMY_FILE}: unreadable taxonomy file ({exc})") from exc
    if [c.get("id") for c in categories] != list(range(len(categories))):
        raise DataError(f"{TAXONOMY_FILE}: category ids are not 0..{len(categories) - 1} in order")
    return categories


def imaterialist_names() -> list[str]:
    """The 46 category names; ``names[i]`` is ClassId ``i``."""
    return [str(c["name"]) for c in imaterialist_categories()]


def ccp_class_id(ccp_label: str) -> int | None:
    """The iMaterialist ClassId of a CCP label, ``None`` when dropped (KeyError for a name CCP lacks)."""
    target = CCP_TO_IMATERIALIST[ccp_label]
    return None if target is None else imaterialist_names().index(target)


def ccp_value_lut(label_list: Sequence[str], *, body: bool = False) -> np.ndarray:
    """A 256-entry lookup from CCP pixel values to model labels in the iMaterialist taxonomy.

    Label ``k`` (1..46) is ClassId ``k - 1``; 0 is background (and every dropped label).
    With ``body=True`` skin and hair get labels 47 and 48 (a parsing model learns them as
    not-garment classes of their own). A name outside the mapping raises DataError.
    """
    lut = np.zeros(256, dtype=np.int64)
    count = len(imaterialist_names())
    for value, name in enumerate(label_list):
        if name not in CCP_TO_IMATERIALIST:
            raise DataError(
                f"CCP label {name!r} (value {value}) is not in the iMaterialist mapping"
            )
        class_id = ccp_class_id(name)
        if class_id is not None:
            lut[value] = class_id + 1
        elif body and name in BODY_LABELS:
            lut[value] = count + 1 + BODY_LABELS.index(name)
    return lut
