"""A JPEG damaged inside its compressed data still decodes; read_image must say so."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cellviewer.core.io import CAUTION, read_image
from cellviewer.core.jpegcheck import jpeg_damage


def _jpeg() -> bytes:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:240, :320]
    a = np.stack([(x + y) % 256, (3 * x) % 256, (5 * y) % 256], -1).astype(np.uint8)
    a = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_whole_jpeg_has_no_damage_note(tmp_path):
    data = _jpeg()
    assert jpeg_damage(data) == []
    p = tmp_path / "ok.jpg"
    p.write_bytes(data)
    assert not [n for n in read_image(p).info.notes if n.startswith(CAUTION)]


def test_damaged_middle_is_reported(tmp_path):
    data = bytearray(_jpeg())
    mid = len(data) // 2
    data[mid:mid + 300] = np.random.default_rng(2).integers(0, 256, 300, dtype=np.uint8).tobytes()
    assert any(d.startswith("Corrupt JPEG data") for d in jpeg_damage(bytes(data)))
    p = tmp_path / "damaged.jpg"
    p.write_bytes(bytes(data))
    d = read_image(p)  # still decodes, as before ...
    assert d.pixels.shape == (240, 320, 3)
    cautions = [n for n in d.info.notes if n.startswith(CAUTION)]
    assert cautions and "damaged JPEG" in cautions[0] and "copy the file again" in cautions[0]


def test_cut_short_with_an_end_marker_is_reported(tmp_path):
    data = _jpeg()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    notes = read_image(p).info.notes
    assert any(n.startswith(CAUTION) and "premature end of data segment" in n for n in notes)


def test_padding_before_the_end_marker_is_not_damage():
    data = _jpeg()
    assert data.endswith(b"\xff\xd9")
    for fill in (b"\x00" * 7, b"\x00" * 64, b"\xff" * 300):
        assert jpeg_damage(data[:-2] + fill + b"\xff\xd9") == []
    assert jpeg_damage(data[:-2] + bytes(range(1, 65)) + b"\xff\xd9")  # stray data is not padding


def test_other_stderr_output_is_passed_on(capfd):
    import os

    from cellviewer.core import jpegcheck

    assert jpegcheck._captured_stderr(lambda: os.write(2, b"hello\n")) == "hello\n"
    assert capfd.readouterr().err == ""  # captured, not shown
    data = bytearray(_jpeg())
    data[len(data) // 2:len(data) // 2 + 300] = bytes(300)
    assert jpeg_damage(bytes(data))
    assert "Corrupt JPEG" not in capfd.readouterr().err  # libjpeg's warning is not printed
