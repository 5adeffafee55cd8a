"""Which Fashion-MNIST classes a detector's class name corresponds to (for the "models disagree" flag).

The demo detector's classes ARE the Fashion-MNIST classes; COCO, iMaterialist and CCP names map by
meaning where a Fashion-MNIST class covers them ("jeans" -> Trouser, "shoe" -> Sandal/Sneaker/Ankle
boot). Names with no counterpart (hair, belt, sleeve...) map to nothing, and are never flagged.
"""

from __future__ import annotations

from fashionviewer.core.data.fmnist import CLASSES as FMNIST_CLASSES

_SHOES = ("Sandal", "Sneaker", "Ankle boot")
# Keys are lower-case detector class names (COCO, iMaterialist 2019, CCP) or single words of them.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("T-shirt/top",),
    "tshirt": ("T-shirt/top",),
    "top": ("T-shirt/top", "Shirt"),
    "top, t-shirt, sweatshirt": ("T-shirt/top", "Pullover"),
    "sweatshirt": ("Pullover", "T-shirt/top"),
    "tank": ("T-shirt/top",),
    "bodysuit": ("T-shirt/top",),
    "shirt": ("Shirt", "T-shirt/top"),
    "blouse": ("Shirt", "T-shirt/top"),
    "shirt, blouse": ("Shirt", "T-shirt/top"),
    "sweater": ("Pullover",),
    "jumper": ("Pullover", "Dress"),
    "hoodie": ("Pullover", "Coat"),
    "pullover": ("Pullover",),
    "cardigan": ("Pullover", "Coat"),
    "coat": ("Coat",),
    "jacket": ("Coat",),
    "blazer": ("Coat",),
    "cape": ("Coat",),
    "vest": ("Coat", "Shirt"),
    "dress": ("Dress",),
    "romper": ("Dress",),
    "jumpsuit": ("Dress", "Trouser"),
    "pants": ("Trouser",),
    "trousers": ("Trouser",),
    "trouser": ("Trouser",),
    "jeans": ("Trouser",),
    "leggings": ("Trouser",),
    "tights": ("Trouser",),
    "shorts": ("Trouser",),
    "shoe": _SHOES,
    "shoes": _SHOES,
    "sandal": ("Sandal",),
    "sandals": ("Sandal",),
    "sneaker": ("Sneaker",),
    "sneakers": ("Sneaker",),
    "boot": ("Ankle boot",),
    "boots": ("Ankle boot",),
    "ankle boot": ("Ankle boot",),
    "heels": ("Sandal", "Ankle boot"),
    "pumps": ("Sandal",),
    "wedges": ("Sandal",),
    "flats": ("Sandal", "Sneaker"),
    "loafers": ("Sneaker",),
    "clogs": ("Sandal",),
    "bag": ("Bag",),
    "handbag": ("Bag",),
    "backpack": ("Bag",),
    "suitcase": ("Bag",),
    "purse": ("Bag",),
    "bag, wallet": ("Bag",),
    "wallet": ("Bag",),
}


def fmnist_classes_for(class_name: str) -> tuple[str, ...]:
    """The Fashion-MNIST classes that agree with detector class ``class_name`` (empty: no counterpart)."""
    name = class_name.strip()
    if name in FMNIST_CLASSES:
        return (name,)
    key = name.lower()
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    for fm in FMNIST_CLASSES:  # "T-shirt/top" written differently, "Ankle boot" vs "ankle_boot"
        if key.replace("_", " ") == fm.lower():
            return (fm,)
    return ()


def disagreement(class_name: str, cnn_top1: str) -> bool | None:
    """True when the CNN's top-1 contradicts the detector, False when it agrees, None when the
    detector's class has no Fashion-MNIST counterpart (nothing to compare)."""
    accepted = fmnist_classes_for(class_name)
    if not accepted:
        return None
    return cnn_top1 not in accepted
