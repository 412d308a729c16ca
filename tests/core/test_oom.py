"""Out of memory during inference (simulated): smaller tiles, then the CPU, with a notice."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core import oom
from cellviewer.core.errors import SegmentationError
from cellviewer.core.jobs import Progress, run_job
from cellviewer.core.oom import FallbackLog, fallback_plan, is_out_of_memory, predict_with_fallback

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.7 GiB total capacity)"


def fake_run(fits):
    """``run(tile, batch, device)`` that runs out of memory unless ``fits(tile, device)``."""
    calls = []

    def run(tile, batch, device):
        calls.append((tile, batch, device))
        yield Progress(0.5, "tile 1/2")
        if not fits(tile, device):
            raise RuntimeError(CUDA_OOM if device == "cuda" else "DefaultCPUAllocator: not enough memory")
        return f"logits at {tile} on {device}"

    return run, calls


def test_plan_halves_tiles_then_goes_to_the_cpu():
    assert fallback_plan(1024, 2, "cuda") == [(1024, 2, "cuda"), (512, 1, "cuda"), (256, 1, "cuda"), (1024, 1, "cpu")]
    assert fallback_plan(600, 2, "cpu") == [(600, 2, "cpu"), (300, 1, "cpu")]


def test_gpu_out_of_memory_falls_back_to_smaller_tiles_then_cpu_with_notices():
    run, calls = fake_run(lambda tile, device: device == "cpu")
    log = FallbackLog()
    messages = []
    out = run_job(predict_with_fallback(run, 1024, 2, "cuda", log), lambda p: messages.append(p.message))
    assert out == "logits at 1024 on cpu" and log.device == "cpu"
    assert [c[2] for c in calls] == ["cuda", "cuda", "cuda", "cpu"]
    assert len(log.notices) == 3 and "512 px tiles" in log.notices[0] and "on the CPU" in log.notices[-1]
    assert all(n in messages for n in log.notices)  # every step is also a progress message


def test_smaller_tiles_are_enough_and_other_errors_are_not_swallowed():
    run, calls = fake_run(lambda tile, device: tile <= 512)
    log = FallbackLog()
    assert run_job(predict_with_fallback(run, 1024, 4, "cuda", log)) == "logits at 512 on cuda"
    assert log.tile == 512 and log.device == "cuda" and len(log.notices) == 1

    def broken(tile, batch, device):
        raise RuntimeError("size mismatch")
        yield  # noqa: unreachable - a generator

    with pytest.raises(RuntimeError, match="size mismatch"):
        run_job(predict_with_fallback(broken, 1024, 2, "cuda"))


def test_nothing_fits_is_a_clear_segmentation_error():
    run, _ = fake_run(lambda tile, device: False)
    with pytest.raises(SegmentationError, match="Out of memory even with") as ei:
        run_job(predict_with_fallback(run, 512, 2, "cuda"))
    assert ei.value.hint
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(ValueError("out of memory"))


def test_net_segmenter_retries_with_smaller_tiles(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from cellviewer.core import netsegment as NS
    from cellviewer.nets.checkpoint import save_checkpoint
    from cellviewer.nets.registry import create_net

    torch.manual_seed(0)
    net = create_net("do-unet", n_classes=4, base=4, depth=2, edge=True)
    save_checkpoint(net, tmp_path / "tiny", {"name": "tiny", "classes": ["background", "rbc", "wbc", "platelet"],
                                             "working_scale": 16}, half=True)

    class SmallTilesOnly(torch.nn.Module):  # a net that "runs out of memory" on inputs over 70 px
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if max(x.shape[-2:]) > 70:
                raise torch.cuda.OutOfMemoryError(CUDA_OOM)
            return self.inner(x)

    seg = NS.NetSegmenter(tmp_path / "tiny", device="cpu", diameter_px=24, refine_scale=False)
    seg.net = SmallTilesOnly(seg.net)
    monkeypatch.setattr(oom, "MIN_TILE", 64)
    img = np.full((200, 200, 3), 230, np.uint8)  # 133 px at the working scale: one tile
    res = run_job(seg.segment(img))
    assert res.params["fallback"] and "66 px tiles" in res.params["fallback"][0]
    assert res.device == "cpu" and res.labels["rbc"].shape == (200, 200)
