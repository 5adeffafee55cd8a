"""What the Train menu offers for each trainer, declared as data: the dialog's rows and the flag each
one becomes on ``python -m trainers.X``.

The core never imports ``trainers`` (import-linter), so the declarations live here, keyed by the
trainer's module name, and each trainer names its own entry (``MENU = TRAINER_MENUS["maskrcnn"]``
beside its ``get_args_parser``); ``tests/trainers/test_menu_options.py`` parses every declared flag
with that trainer's own parser, so a declaration cannot drift from the trainer. The dialog
(``qt/dialogs/training.py``) builds its rows from :attr:`TrainerMenu.options` and
:meth:`TrainerMenu.command_line` builds the command line: adding a trainer to the menu is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

INT, CHOICE, FOLDER = "int", "choice", "folder"


@dataclass(frozen=True)
class MenuOption:
    """One row of the Train dialog and the flag it becomes."""

    key: str  # the dialog's field (and TrainingRequest's, see ``field``)
    flag: str  # the trainer's command-line flag
    label: str
    kind: str = INT  # INT | CHOICE | FOLDER
    default: Any = 0
    # CHOICE: the fixed items (the dialog may add live ones, e.g. COCO weights)
    choices: tuple[str, ...] = ()
    minimum: int = 0
    maximum: int = 10_000_000
    step: int = 1
    skip: Any = 0  # this value leaves the flag out (the trainer's own default then applies)
    special: str = ""  # INT: what the minimum is shown as ("model default", "all")
    field: str = ""  # TrainingRequest's field when it differs from ``key``
    # left out when this other field is set (``--weights`` when fine-tuning ``--init-from``)
    unless: str = ""
    # also pass FLAG max(value, N) (a quick run is scored quickly)
    companion: tuple[str, int] | None = None
    shown: bool = True  # False: set by another row (fine-tuning is an item of "Start from weights")
    tip: str = ""  # the row's tooltip: what the choices mean

    @property
    def request_field(self) -> str:
        return self.field or self.key


@dataclass(frozen=True)
class TrainerMenu:
    """One trainer in the Train menu."""

    trainer: str  # python -m trainers.<trainer>
    title: str
    family: str  # the model family it trains (fine-tuning: the family's declared capability)
    options: tuple[MenuOption, ...]
    # datasets with no default location
    datasets_need_folder: tuple[str, ...] = field(default_factory=tuple)

    def option(self, key: str) -> MenuOption | None:
        return next((option for option in self.options if option.key == key), None)

    def command_line(self, values: Mapping[str, Any]) -> list[str]:
        """``-m trainers.X`` and the declared flags of ``values`` (TrainingRequest fields), in declared order."""
        args = ["-m", f"trainers.{self.trainer}"]
        for option in self.options:
            value = values.get(option.request_field, option.default)
            if (
                value is None
                or value == option.skip
                or (option.unless and values.get(option.unless))
            ):
                continue
            args += [option.flag, str(value)]
            if option.companion is not None:
                flag, floor = option.companion
                args += [flag, str(max(int(value), floor))]
        return args


def _common(
    model_flag: str, models: tuple[str, ...], default_model: str, epochs: int
) -> list[MenuOption]:
    return [
        MenuOption("model", model_flag, "Model", CHOICE, default_model, models, skip=None),
        MenuOption("epochs", "--epochs", "Epochs", INT, epochs, minimum=1, maximum=500, skip=None),
    ]


def _steps_per_epoch(step: int = 100, special: str = "all") -> MenuOption:
    return MenuOption(
        "limit",
        "--steps-per-epoch",
        "Steps per epoch",
        INT,
        0,
        step=step,
        special=special,
        field="limit_train",
    )


def _fine_tune() -> MenuOption:
    """Set by "Start from weights" / the fine-tune menu item, not a row of its own."""
    return MenuOption("init_from", "--init-from", "Fine-tune", FOLDER, "", skip="", shown=False)


def _tail() -> list[MenuOption]:
    return [
        MenuOption(
            "batch_size",
            "--batch-size",
            "Batch size",
            INT,
            0,
            maximum=4096,
            special="trainer default",
        ),
        MenuOption("device", "--device", "Device", CHOICE, "cpu", skip=None),
        MenuOption("out", "--out", "Output folder", FOLDER, "", skip=None),
    ]


# core.models.cnn.ARCHITECTURES (checked by the menu test)
FMNIST_MODELS = ("cnn1", "cnn2", "cnn3", "fvnet")
MASKRCNN_MODELS = (
    "maskrcnn_mobilenet_v3_light",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
)
MASKRCNN_DATASETS = ("fmnist-scenes", "imaterialist", "coco", "ccp")  # core.data.datasets names
PARSING_ARCHITECTURES = ("parsing_resunet",)
# core.models.parsing.INSTANCE_RULES (checked by the menu test; the menu does not import torch)
INSTANCE_RULES = ("per_class", "components", "borders")
# core.models.interactive_net's (checked by the menu test)
INTERACTIVE_ARCHITECTURES = ("interactive_unet",)

TRAINER_MENUS: dict[str, TrainerMenu] = {
    menu.trainer: menu
    for menu in (
        TrainerMenu(
            "fmnist",
            "Fashion-MNIST CNN",
            "fmnist-classifier",
            tuple(
                _common("--model", FMNIST_MODELS, "cnn3", 5)
                + [
                    MenuOption("data_path", "--data-dir", "Data folder", FOLDER, "", skip=""),
                    MenuOption(
                        "limit",
                        "--limit-train",
                        "Training images",
                        INT,
                        0,
                        step=100,
                        special="all",
                        field="limit_train",
                        companion=("--limit-test", 500),
                    ),
                ]
                + _tail()
            ),
        ),
        TrainerMenu(
            "maskrcnn",
            "Mask R-CNN",
            "maskrcnn",
            tuple(
                _common("--model", MASKRCNN_MODELS, "maskrcnn_mobilenet_v3_light", 2)
                + [
                    MenuOption(
                        "dataset",
                        "--dataset",
                        "Dataset",
                        CHOICE,
                        MASKRCNN_DATASETS[0],
                        MASKRCNN_DATASETS,
                        skip="",
                    ),
                    MenuOption("data_path", "--data-path", "Data folder", FOLDER, "", skip=""),
                    MenuOption(
                        "image_size",
                        "--image-size",
                        "Image size (shorter side)",
                        INT,
                        0,
                        maximum=2048,
                        step=32,
                        special="model default",
                    ),
                    _steps_per_epoch(),
                    _fine_tune(),
                    MenuOption(
                        "weights",
                        "--weights",
                        "Start from weights",
                        CHOICE,
                        "none",
                        ("none",),
                        skip="",
                        unless="init_from",
                    ),
                ]
                + _tail()
            ),
            datasets_need_folder=("fmnist-scenes", "imaterialist", "coco"),
        ),
        TrainerMenu(
            "parsing",
            "Garment parsing network",
            "parsing",
            tuple(
                _common("--architecture", PARSING_ARCHITECTURES, "parsing_resunet", 8)
                + [
                    MenuOption("dataset", "--dataset", "Dataset", CHOICE, "ccp", ("ccp",), skip=""),
                    MenuOption("data_path", "--data-path", "Data folder", FOLDER, "", skip=""),
                    MenuOption(
                        "image_size",
                        "--image-width",
                        "Image width",
                        INT,
                        0,
                        maximum=2048,
                        step=32,
                        special="trainer default (224)",
                    ),
                    _steps_per_epoch(),
                    _fine_tune(),
                    MenuOption(
                        "new_classes",
                        "--new-classes",
                        "Classes the model lacks (fine-tuning)",
                        CHOICE,
                        "extend",
                        ("extend", "branch"),
                        skip="extend",
                        tip="extend: rows added to the model's head, the whole network learns; branch: a "
                        "decoder branch of their own, the loaded model frozen so its classes predict as before",
                    ),
                    MenuOption(
                        "instances",
                        "--instances",
                        "One instance is (fine-tuning)",
                        CHOICE,
                        "auto",
                        ("auto", *INSTANCE_RULES),
                        skip="auto",
                        tip="per_class: all pixels of a class (one shirt per photo); components: each "
                        "connected part (two shoes); borders: each item, touching ones split along item "
                        "borders learnt from your masks; auto: borders when the folder often shows a class twice",
                    ),
                    MenuOption(
                        "items_init",
                        "--items-init",
                        "Item classifier starts from (fine-tuning on items)",
                        CHOICE,
                        "auto",
                        ("auto", "scratch"),
                        skip="auto",
                        tip="auto: the bundled Fashion-MNIST classifier when it knows some of your class "
                        "names (it keeps what it knows of them), else from scratch; scratch: a small CNN "
                        "trained on your cut-out items alone",
                    ),
                ]
                + _tail()
            ),
        ),
        TrainerMenu(
            "interactive",
            "Interactive segmentation (box / click tools)",
            "interactive",
            tuple(
                _common("--architecture", INTERACTIVE_ARCHITECTURES, "interactive_unet", 20)
                + [
                    MenuOption("data_path", "--data-path", "CCP folder", FOLDER, "", skip=""),
                    _steps_per_epoch(step=50, special="trainer default (200)"),
                    *_tail()[:2],  # batch size, device
                    MenuOption(
                        "threads",
                        "--threads",
                        "CPU threads",
                        INT,
                        1,
                        maximum=256,
                        skip=None,
                        special="torch default",
                    ),
                    MenuOption(
                        "resume",
                        "--resume",
                        "Resume (auto: the output folder's last epoch)",
                        CHOICE,
                        "no",
                        ("no", "auto"),
                        skip="no",
                    ),
                    _tail()[2],  # output folder
                ]
            ),
        ),
    )
}
