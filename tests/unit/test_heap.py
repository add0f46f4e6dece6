"""heap: what exists after a load leaves the collector's sight; an unload brings it back."""

from __future__ import annotations

import gc
import weakref

from hfserve.runtime.lifecycle import heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> tuple[Node, weakref.ref]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


def test_settle_freezes_live_objects_and_collects_garbage_first():
    gc.unfreeze()
    try:
        garbage, garbage_ref = _cycle()
        del garbage
        kept, _ = _cycle()
        heap.settle()
        assert garbage_ref() is None              # collected before the freeze
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())   # frozen: out of sight
    finally:
        gc.unfreeze()


def test_release_frees_cycles_that_were_frozen():
    gc.unfreeze()
    try:
        kept, kept_ref = _cycle()
        heap.settle()
        del kept                                  # an unloaded model's cycle
        gc.collect()
        assert kept_ref() is not None             # frozen: a collection does not see it
        heap.release()
        assert kept_ref() is None
        assert gc.get_freeze_count() > 0          # frozen again afterwards
    finally:
        gc.unfreeze()
