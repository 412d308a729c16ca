"""cellviewer.core.memory: batch-memory tuning is safe to call and respects the user's settings."""

import os

from cellviewer.core import memory


def test_tune_for_batch_bounds_the_onednn_cache_unless_set(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    memory.tune_for_batch()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(memory.ONEDNN_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    memory.tune_for_batch()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"


def test_release_gives_memory_back_without_touching_live_arrays():
    import numpy as np

    keep = np.arange(1_000_000)
    junk = [np.ones(300_000) for _ in range(20)]
    del junk
    memory.release()  # malloc_trim on glibc, nothing elsewhere
    assert keep[-1] == 999_999 and keep.sum() == 999_999 * 1_000_000 // 2
