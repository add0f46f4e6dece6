"""Model specs: resolve sources, classify architectures, pick skills, discover models."""

from hfserve.registry.spec import build_spec

__all__ = ["build_spec"]
