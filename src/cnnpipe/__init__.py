"""cnnpipe: a reproducible CNN pipeline (DVC) and the inference core its services share."""

__version__ = "0.1.0"
