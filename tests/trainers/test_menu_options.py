"""The Train menu's declarations (core.viewer.trainer_menu) agree with the trainers: every declared flag
parses with the trainer's own parser into the value the dialog chose, the model lists are the trainers'
own, and the menu offers every trainer, the parsing one included."""

from __future__ import annotations

import importlib

import pytest

from fashionviewer.core.inference.families import FAMILIES
from fashionviewer.core.inference.protocol import Capability
from fashionviewer.core.viewer.trainer_menu import CHOICE, FOLDER, TRAINER_MENUS
from fashionviewer.core.viewer.training import TRAINERS, TrainingRequest, fine_tune_checkpoint


def _chosen(option) -> object:
    """A value the dialog could send that is not the option's "leave it out" value."""
    if option.kind == CHOICE:
        return option.choices[-1] if option.choices else "cpu"
    if option.kind == FOLDER:
        return f"/data/{option.key}"
    return max(option.minimum, 1) + 2


@pytest.mark.parametrize("name", sorted(TRAINER_MENUS))
def test_every_declared_flag_parses_with_the_trainers_own_parser(name: str) -> None:
    menu = TRAINER_MENUS[name]
    module = importlib.import_module(f"trainers.{name}")
    assert module.MENU is menu  # the trainer names its own declaration
    values = {option.request_field: _chosen(option) for option in menu.options if not option.unless}
    request = TrainingRequest(trainer=name, **values)
    args = request.arguments()
    assert args[:2] == ["-m", f"trainers.{name}"] and args[-2:] == ["--events", "-"]
    parsed = module.get_args_parser().parse_args(args[2:])
    for option in menu.options:
        if option.unless:
            assert option.flag not in args  # left out while the other field is set
            continue
        dest = option.flag.lstrip("-").replace("-", "_")
        assert str(getattr(parsed, dest)) == str(values[option.request_field]), option.flag


def test_skipped_values_leave_the_trainers_defaults() -> None:
    args = TrainingRequest("maskrcnn", "maskrcnn_mobilenet_v3_light", "/o").arguments()
    assert "--image-size" not in args and "--batch-size" not in args and "--weights" not in args
    quick = TrainingRequest("fmnist", "cnn3", "/o", limit_train=64).arguments()
    assert quick[quick.index("--limit-test") + 1] == "500"  # a quick run is also scored quickly


def test_interactive_resume_and_threads_reach_the_trainer() -> None:
    from trainers.interactive import get_args_parser

    quick = TrainingRequest("interactive", "interactive_unet", "/o", limit_train=2, threads=0)
    args = quick.arguments()
    assert "--resume" not in args  # "no" (the default) leaves the flag out: a fresh run
    parsed = get_args_parser().parse_args(args[2:])
    assert (parsed.steps_per_epoch, parsed.threads, parsed.resume) == (2, 0, None)
    resumed = TrainingRequest("interactive", "interactive_unet", "/o", resume="auto").arguments()
    assert get_args_parser().parse_args(resumed[2:]).resume == "auto"


def test_declared_models_are_the_trainers_own() -> None:
    from fashionviewer.core.models import cnn
    from fashionviewer.core.models.interactive_net import INTERACTIVE_ARCHITECTURES
    from fashionviewer.core.models.parsing import PARSING_ARCHITECTURES
    from fashionviewer.core.models.registry import list_models

    own = {
        "fmnist": sorted(cnn.ARCHITECTURES),
        "maskrcnn": list_models(),
        "parsing": list(PARSING_ARCHITECTURES),
        "interactive": list(INTERACTIVE_ARCHITECTURES),
    }
    assert {name: list(menu.option("model").choices) for name, menu in TRAINER_MENUS.items()} == own
    from fashionviewer.core.models.parsing import INSTANCE_RULES

    assert TRAINER_MENUS["parsing"].option("instances").choices == ("auto", *INSTANCE_RULES)


def test_parsing_fine_tune_choices_reach_the_trainer_and_defaults_leave_them_out() -> None:
    from trainers.parsing import get_args_parser

    plain = TrainingRequest("parsing", "parsing_resunet", "/o", init_from="fashion").arguments()
    assert "--new-classes" not in plain and "--instances" not in plain
    chosen = TrainingRequest(
        "parsing",
        "parsing_resunet",
        "/o",
        init_from="fashion",
        new_classes="branch",
        instances="components",
    ).arguments()
    parsed = get_args_parser().parse_args(chosen[2:])
    assert (parsed.init_from, parsed.new_classes, parsed.instances) == (
        "fashion",
        "branch",
        "components",
    )


def test_the_menu_offers_every_trainer_and_fine_tuning_is_declared_by_the_family() -> None:
    assert set(TRAINERS) == {"fmnist", "maskrcnn", "parsing", "interactive"}
    for menu in TRAINER_MENUS.values():
        family = FAMILIES.get(menu.family)
        # a model family names its own trainer
        assert family is None or family.trainer == menu.trainer
    maskrcnn = FAMILIES["maskrcnn"]
    assert (
        fine_tune_checkpoint("maskrcnn", "maskrcnn", maskrcnn.capabilities, "/r/model.pt")
        == "/r/model.pt"
    )
    assert (
        fine_tune_checkpoint(
            "maskrcnn", "parsing", FAMILIES["parsing"].capabilities, "/r/fashion.pt"
        )
        == ""
    )
    parsing = FAMILIES["parsing"].capabilities
    # trainers.parsing
    assert fine_tune_checkpoint("parsing", "parsing", parsing, "/m/fashion.pt") == "/m/fashion.pt"
    # not declared: not offered
    assert fine_tune_checkpoint("parsing", "parsing", frozenset(), "/r/fashion.pt") == ""
    assert (
        fine_tune_checkpoint("parsing", "parsing", frozenset({Capability.FINE_TUNE}), "/r/f.pt")
        == "/r/f.pt"
    )
    # e.g. torchvision's COCO
    assert fine_tune_checkpoint("maskrcnn", "maskrcnn", maskrcnn.capabilities, None) == ""
