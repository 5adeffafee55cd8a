"""Inference defaults every layer above reads (no torch import: the command line shows them in --help)."""

# Detections scoring below this are not computed. The viewer predicts at this floor and filters with
# its slider; ``fashionviewer predict`` predicts at it too and filters at --min-score when writing, so
# each reuses what the other cached.
SCORE_FLOOR = 0.05

# torchvision's COCO Mask R-CNN, when its weights are in the torch cache: load_predictor(COCO_MODEL)
# serves ``fashionviewer predict --model coco`` and the viewer's model bar alike.
COCO_MODEL = "coco"

# Bump when a Predictor's output changes for the same weights and settings: it is part of every cache
# key (Predictor.settings). 2: channels-last on the CPU; 3: instances carry detector_score; 4: test-time
# augmentation and the re-scorer's mirroring in the key; 5: load_predictor folds batch norms; 6: folded by
# torch's fuse_conv_bn_weights (its float rounding differs by about 1e-7); 7: a parsing model's regions are
# also offered under their alternative classes.
PIPELINE_VERSION = 7
