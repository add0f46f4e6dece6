"""Keeping Python's cyclic garbage collector off what a server process keeps for good.

A process that serves models imports torch, transformers and a web stack and holds a model and
its tokenizer: about half a million objects that live as long as it does. Every full collection
walks all of them (135 ms on a 2-core test machine) and, holding the interpreter lock, stops
every stream for that long; streaming allocates fast enough (a few objects per token) to set
one off every few seconds. So once a model is loaded, everything alive is moved out of the
collector's sight (``gc.freeze``, as vLLM does after start-up); objects made later are still
collected, and frozen ones are still freed when nothing refers to them any more. After an
unload the frozen objects are handed back and collected once, so the reference cycles of an
unloaded model do not stay for good."""

from __future__ import annotations

import gc


def settle() -> None:
    """After a load: collect what loading left behind, then freeze what remains."""
    gc.collect()
    gc.freeze()


def release() -> None:
    """After an unload: let the collector see everything again, collect, freeze again."""
    gc.unfreeze()
    settle()
