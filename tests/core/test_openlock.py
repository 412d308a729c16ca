"""The open-for-correcting lock: another live process is reported, a crashed one is not, only our own is removed."""

import json
import os
import socket

from cellviewer.core import openlock


def _image(tmp_path):
    p = tmp_path / "smear.png"
    p.write_bytes(b"placeholder")
    return p


def _write_lock(img, pid, host=None):
    openlock.lock_path(img).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "user": "ann", "since": "2026-12-07T02:00:00"}))


def test_acquire_release_and_own_lock_is_not_a_holder(tmp_path):
    img = _image(tmp_path)
    assert openlock.holder(img) is None
    path = openlock.acquire(img)
    assert path == tmp_path / "smear.png.cellviewer.lock" and path.is_file()
    assert openlock.holder(img) is None  # this process's own lock
    openlock.release(img)
    assert not path.exists()


def test_a_live_other_process_holds_it_and_is_never_unlocked_by_us(tmp_path):
    img = _image(tmp_path)
    _write_lock(img, os.getppid())  # the test runner's parent: alive, not us
    h = openlock.holder(img)
    assert h is not None and h.pid == os.getppid() and h.user == "ann"
    assert "ann on " in h.describe() and str(os.getppid()) in h.describe()
    openlock.release(img)  # not ours: stays
    assert openlock.lock_path(img).exists()


def test_a_crashed_process_or_a_broken_file_is_no_holder_but_another_host_is(tmp_path):
    img = _image(tmp_path)
    _write_lock(img, 2 ** 22 + 12345)  # no such process on this host
    assert openlock.holder(img) is None
    openlock.lock_path(img).write_text("{half a lo")
    assert openlock.holder(img) is None
    _write_lock(img, 4242, host="another-lab-pc")  # cannot be checked from here: held
    assert openlock.holder(img).host == "another-lab-pc"
    assert openlock.acquire(img) is not None and openlock.holder(img) is None  # taken over when the user agrees


def test_take_never_writes_over_a_lock_and_live_tells_whose_process_runs(tmp_path):
    """The same record names the writer of a crash-recovery journal (core.journalfiles)."""
    lock = tmp_path / "x.journal.lock"
    assert not openlock.live(lock)
    assert openlock.take(lock) and openlock.live(lock)  # ours: this process runs
    assert not openlock.take(lock)  # a second claim (another window of this process) fails
    openlock.drop(lock, stale=True)
    assert lock.exists()  # not stale: kept
    openlock.drop(lock)
    assert not lock.exists()
    for pid, host, alive in ((2 ** 22 + 12345, None, False), (os.getppid(), None, True), (4242, "another-pc", True)):
        lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "user": "ann", "since": ""}))
        assert openlock.live(lock) is alive
        assert not openlock.take(lock)  # a stale lock is not taken over either
        openlock.drop(lock)  # not ours: stays
        assert lock.exists()
        openlock.drop(lock, stale=True)
        assert lock.exists() is alive
    lock.write_text("{half a lo")
    assert openlock.live(lock)  # (being written this very moment)
    os.utime(lock, (0, 0))
    assert not openlock.live(lock)  # garbage
