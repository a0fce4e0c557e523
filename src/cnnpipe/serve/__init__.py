"""Serving only: the inference core both servers share, upload decoding, request limits, the gRPC
server and its generated stubs (``make proto``)."""
