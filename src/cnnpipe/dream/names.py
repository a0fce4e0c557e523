"""DeepDream's names, without torch: the backbones, their default layers and the presets.

The command line offers them as choices and the servers check them before a net is loaded;
importing them from here keeps ``cnnpipe --help`` and ``cnnpipe compare`` from importing torch
(two seconds a start on a CPU).
"""

from __future__ import annotations

TORCHVISION_BACKBONES = ("vgg19", "googlenet", "resnet50")
# Default layers: the seeds' VGG19 layer 26 (the ReLU after conv4_4) and common picks elsewhere.
DEFAULT_LAYER = {"vgg19": "features.26", "classifier": "features.3", "googlenet": "inception4c", "resnet50": "layer3"}
# cnnpipe.dream.presets.PRESETS has one DreamParams per name (tests/test_presets.py checks).
PRESET_NAMES = ("quick", "detailed", "classic")
DEFAULT_PRESET = "quick"
