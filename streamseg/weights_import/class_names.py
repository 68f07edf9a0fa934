"""Class names of the datasets published Mask2Former / MinVIS checkpoints were trained on.

A detectron2 checkpoint carries no metadata, only a class head of K+1 outputs; the names come
from the dataset, in the contiguous-id order detectron2 trains with (COCO: the 80 thing
categories sorted by COCO id; YouTube-VIS and OVIS: category ids 1..K). Spellings are the
datasets' own (``giant_panda``, OVIS's ``Vehical``), so that evaluation against the dataset's
annotation files maps names to categories.
"""
from __future__ import annotations

from streamseg.errors import CheckpointError

COCO = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")

YTVIS19 = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake",
    "monkey", "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck",
    "zebra", "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle",
    "earless_seal", "tennis_racket")

YTVIS21 = (
    "airplane", "bear", "bird", "boat", "car", "cat", "cow", "deer", "dog", "duck", "earless_seal",
    "elephant", "fish", "flying_disc", "fox", "frog", "giant_panda", "giraffe", "horse", "leopard",
    "lizard", "monkey", "motorbike", "mouse", "parrot", "person", "rabbit", "shark", "skateboard",
    "snake", "snowboard", "squirrel", "surfboard", "tennis_racket", "tiger", "train", "truck",
    "turtle", "whale", "zebra")

OVIS = (
    "Person", "Bird", "Cat", "Dog", "Horse", "Sheep", "Cow", "Elephant", "Bear", "Zebra", "Giraffe",
    "Poultry", "Giant_panda", "Lizard", "Parrot", "Monkey", "Rabbit", "Tiger", "Fish", "Turtle",
    "Bicycle", "Motorcycle", "Airplane", "Boat", "Vehical")

DATASETS: dict[str, tuple[str, ...]] = {"coco": COCO, "ytvis19": YTVIS19, "ytvis21": YTVIS21, "ovis": OVIS}


def class_names(dataset: str | None, num_classes: int) -> list[str]:
    """The names of ``dataset`` for a class head of ``num_classes``; without a dataset, the one
    whose size is unambiguous (80 = COCO, 25 = OVIS)."""
    if dataset is None:
        fits = [d for d, names in DATASETS.items() if len(names) == num_classes]
        if len(fits) != 1:
            hint = f"one of {', '.join(fits)}" if fits else "none of the known datasets has that many"
            raise CheckpointError(f"the checkpoint has {num_classes} classes: say which with --classes "
                                  f"({hint})")
        dataset = fits[0]
    if dataset not in DATASETS:
        raise CheckpointError(f"unknown class set {dataset!r} (choose from {', '.join(DATASETS)})")
    names = DATASETS[dataset]
    if len(names) != num_classes:
        raise CheckpointError(f"--classes {dataset} has {len(names)} names but the checkpoint's class "
                              f"head has {num_classes} classes")
    return list(names)
