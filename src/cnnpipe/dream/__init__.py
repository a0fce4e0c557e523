"""DeepDream: the on-device engine, frozen backbones, named presets, the gallery."""
