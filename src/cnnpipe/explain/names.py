"""The attribution methods' names, without torch (the command line offers them as choices)."""

from __future__ import annotations

from typing import Literal

Method = Literal["gradcam", "guided-gradcam", "guided-backprop", "deconvnet"]
METHODS: tuple[Method, ...] = ("gradcam", "guided-gradcam", "guided-backprop", "deconvnet")
