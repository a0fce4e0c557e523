"""Thin DVC stage entry points: each reads params.yaml, calls the library, writes its outputs."""
