"""Deployment of the HTTP service: the BentoML service, its settings and middleware, the proto,
and helpers that start both servers for tests and benchmarks."""
