"""``fashionviewer annotations export|import``: a folder's annotations to and from other tools' formats.

``export FOLDER --to FORMAT --out DIR`` writes the folder's project file (``annotations.fashionviewer.json``)
as COCO, labelme, YOLO segmentation, Pascal VOC masks, CVAT for images 1.1 XML, iMaterialist's CSV or,
with the optional Datumaro, any format it writes (``datumaro:FORMAT``);
``import SRC --into FOLDER [--from FORMAT]`` adds another tool's annotations to it (the format is detected
when not named). The work is :mod:`fashionviewer.core.data.formats`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from tqdm import tqdm

from fashionviewer.core.data.formats import (
    FORMATS,
    IMPORT_FORMATS,
    export_steps,
    import_annotations,
)
from fashionviewer.core.data.formats.common import CATEGORY_ID_MODES
from fashionviewer.core.data.formats.datumaro_bridge import PREFIX

EPILOG = """formats:
  coco          OUT/annotations/instances_default.json, OUT/images/ (COCO instances; unknown keys are kept)
  labelme       one labelme/X-AnyLabeling JSON per image (polygons), imagePath pointing at the image
  yolo          Ultralytics segmentation: OUT/images/, OUT/labels/*.txt (normalised polygons), OUT/data.yaml
  voc           OUT/SegmentationClass/*.png, OUT/SegmentationObject/*.png, OUT/labelmap.txt, OUT/JPEGImages/
  cvat          OUT/annotations.xml and OUT/images/ (CVAT for images 1.1, masks; polygons and boxes are read too)
  imaterialist  OUT/train.csv (iMaterialist-Fashion 2019; needs its 46 categories)
  datumaro:FMT  any format Datumaro writes (export) or reads (import): datumaro:cityscapes,
                datumaro:kitti_segmentation, datumaro:ade20k2020 (import), ... Needs the optional
                extra: pip install 'fashionviewer[datumaro]'. Datumaro converts from or to COCO.

exit status: 0 done, 2 a user error (one "error:" line naming the file or row; nothing is written)."""


def _format_type(names: Sequence[str]) -> Callable[[str], str]:
    """One of ``names`` or ``datumaro:NAME`` (checked when used: Datumaro is an optional extra)."""

    def check(value: str) -> str:
        if value in names or (value.startswith(PREFIX) and len(value) > len(PREFIX)):
            return value
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {', '.join(names)}, {PREFIX}FORMAT)"
        )

    return check


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashionviewer annotations",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a folder's annotations to other tools, or import theirs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sub = {"epilog": EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
    export = commands.add_parser(
        "export", help="write FOLDER's annotations in another format", **sub
    )
    export.add_argument(
        "folder", help="the annotated folder (holding annotations.fashionviewer.json)"
    )
    export.add_argument(
        "--to",
        required=True,
        type=_format_type(FORMATS),
        metavar="FORMAT",
        help=f"the format to write: {', '.join(FORMATS)} or datumaro:FORMAT (see below)",
    )
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument(
        "--category-ids",
        choices=CATEGORY_ID_MODES,
        default="dataset",
        help="coco: the dataset's own ids (default) or 1..K for tools that reserve id 0 "
        "(recorded in the file's info)",
    )
    imp = commands.add_parser("import", help="add another tool's annotations to FOLDER", **sub)
    imp.add_argument(
        "source",
        help="the file or folder to read (FOLDER's own project file, when another tool wrote it, is "
        "converted in place: the original is kept as .bak)",
    )
    imp.add_argument("--into", required=True, help="the folder of images the annotations describe")
    imp.add_argument(
        "--from",
        dest="fmt",
        type=_format_type(IMPORT_FORMATS),
        metavar="FORMAT",
        help=f"the source's format: {', '.join(IMPORT_FORMATS)} or datumaro:FORMAT "
        "(default: detected)",
    )
    imp.add_argument(
        "--replace",
        action="store_true",
        help="drop the existing annotations of the images the source describes",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit as exc:  # -h or a usage error (argparse already printed why)
        return int(exc.code or 0)
    if args.command == "export":
        # one step per image on stderr (off when stderr is not a terminal); Ctrl+C writes nothing into --out
        steps = export_steps(args.folder, args.out, args.to, category_ids=args.category_ids)
        with tqdm(desc=f"export {args.to}", unit="image", file=sys.stderr, disable=None) as bar:
            while True:
                try:
                    done, bar.total = next(steps)
                except StopIteration as stop:
                    written = stop.value
                    break
                bar.update(done - bar.n)
        print(f"wrote {len(written)} file(s) to {args.out} ({args.to})")
        return 0
    path, images, instances, problems = import_annotations(
        args.source, args.into, args.fmt, replace=args.replace
    )
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    print(f"imported {instances} instance(s) on {images} image(s) into {path}")
    return 0


if __name__ == "__main__":
    from fashionviewer.cli import run_command

    sys.exit(run_command(main, sys.argv[1:]))
