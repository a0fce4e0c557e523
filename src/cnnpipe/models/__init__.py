"""The networks (classifiers, super-resolution) and their checkpoints, and running them:
PyTorch inference, tiled upscaling, ONNX Runtime sessions."""
