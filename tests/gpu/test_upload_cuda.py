"""Uploads through the ring of pinned buffers: every upload arrives intact, also when the
ring comes round to buffers whose copies were queued earlier, and when values outgrow a
buffer."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_uploads_through_the_pinned_ring_arrive_intact() -> None:
    import torch

    from hfserve.engines.torch_lm.upload import RING, upload, upload_into

    device = torch.device("cuda")
    expected = [list(range(i, 2 * i + 5)) for i in range(3 * RING)] + [list(range(2000))]
    got = [upload(values, device) for values in expected]
    target = torch.zeros(300, dtype=torch.long, device=device)
    upload_into(target, list(range(300, 600)))
    floats = upload([0.5, 1.5], device)
    torch.cuda.synchronize()
    assert [t.tolist() for t in got] == expected
    assert target.tolist() == list(range(300, 600))
    assert floats.dtype == torch.float32 and floats.tolist() == [0.5, 1.5]
