"""Tests of cellviewer.core.io: every input is generated on the fly into tmp_path."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

from cellviewer.core import io as cio
from cellviewer.core import tone as cio_tone
from cellviewer.core.errors import ImageReadError, SaveError
from cellviewer.core.io import SUPPORTED_SUFFIXES, is_image_file, list_images, read_image, write_png

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "data" / "bccd" / "images"
RNG = np.random.default_rng(0)


# -- helpers --------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(w: int, h: int, depth: int, colour_type: int, rows: bytes | None = None) -> bytes:
    """A PNG by hand (any header, valid CRCs); ``rows`` are the unfiltered scanlines."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png16(arr: np.ndarray, colour_type: int) -> bytes:
    h, w = arr.shape[:2]
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return _png(w, h, 16, colour_type, rows)


def _tiff_header_only(w: int, h: int) -> bytes:
    """A little-endian TIFF whose IFD claims w×h 8-bit gray but holds 16 bytes of data."""
    n = 9
    data_at = 8 + 2 + 12 * n + 4
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, data_at), (277, 3, 1), (278, 4, h), (279, 4, 16)]
    ifd = struct.pack("<H", n)
    for tag, typ, value in entries:
        ifd += struct.pack("<HHII", tag, typ, 1, value) if typ == 4 else struct.pack("<HHIHH", tag, typ, 1, value, 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 16


def _save(tmp_path: Path, name: str, im: Image.Image, **kw) -> Path:
    p = tmp_path / name
    im.save(p, **kw)
    return p


def _stretch(v: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The documented 0.5–99.5 % stretch, computed independently."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    return np.rint(np.clip((v.astype(np.float64) - lo) * 255.0 / (hi - lo), 0, 255)).astype(np.uint8)


def _rgb(arr: np.ndarray) -> np.ndarray:
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def _check_contract(d, w: int, h: int) -> None:
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == (h, w, 3)
    assert d.pixels.flags.c_contiguous
    assert (d.info.width, d.info.height) == (w, h)


# -- 8-bit colour modes through Pillow --------------------------------------------------------
def test_rgb_png_and_bmp_exact(tmp_path):
    a = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    for name in ("a.png", "a.bmp"):
        d = read_image(_save(tmp_path, name, Image.fromarray(a)))
        _check_contract(d, 17, 13)
        assert np.array_equal(d.pixels, a)
        assert d.info.dtype == "uint8" and d.info.channels == 3 and d.info.notes == []
        assert d.info.path == str(tmp_path / name)


def test_rgb_jpeg_close(tmp_path):
    a = np.zeros((32, 48, 3), np.uint8)
    a[:, :24] = (200, 40, 40)
    a[:, 24:] = (40, 40, 200)
    d = read_image(_save(tmp_path, "a.jpg", Image.fromarray(a), quality=95))
    _check_contract(d, 48, 32)
    assert np.abs(d.pixels.astype(int) - a).mean() < 4


def test_gray_is_replicated(tmp_path):
    g = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    d = read_image(_save(tmp_path, "g.png", Image.fromarray(g)))
    assert np.array_equal(d.pixels, _rgb(g)) and d.info.channels == 1


def test_bilevel_png(tmp_path):
    b = RNG.integers(0, 2, (8, 8)).astype(bool)
    d = read_image(_save(tmp_path, "b.png", Image.fromarray(b)))
    assert d.info.dtype == "bool"
    assert np.array_equal(d.pixels, _rgb(np.where(b, 255, 0).astype(np.uint8)))


def test_gray_alpha_composited_on_white(tmp_path):
    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 0] = 100
    la[0, :, 1] = 255  # opaque row
    la[1, :, 1] = 0  # transparent row -> white
    la[2:, :, 1] = 128
    d = read_image(_save(tmp_path, "la.png", Image.fromarray(la, "LA")))
    assert d.info.channels == 2 and "alpha composited on white" in d.info.notes
    assert (d.pixels[0] == 100).all() and (d.pixels[1] == 255).all()
    assert np.all(np.abs(d.pixels[2:].astype(int) - round(100 * 128 / 255 + 255 * 127 / 255)) <= 1)


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((2, 3, 4), np.uint8)
    a[..., :3] = (200, 100, 50)
    a[0, :, 3] = 255
    a[1, :, 3] = 0
    d = read_image(_save(tmp_path, "a.png", Image.fromarray(a, "RGBA")))
    assert d.info.channels == 4
    assert (d.pixels[0] == (200, 100, 50)).all() and (d.pixels[1] == 255).all()


def test_rgba_fully_opaque_says_nothing(tmp_path):
    a = np.full((2, 3, 4), 255, np.uint8)
    a[..., :3] = (200, 100, 50)
    d = read_image(_save(tmp_path, "a.png", Image.fromarray(a, "RGBA")))
    assert d.info.notes == [] and (d.pixels == (200, 100, 50)).all()


def test_greyscale_and_transparent_images_carry_a_caution(tmp_path):
    from cellviewer.core.io import CAUTION

    g = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    for name, im in (("g.png", Image.fromarray(g)), ("rgb-grey.png", Image.fromarray(_rgb(g)))):
        notes = read_image(_save(tmp_path, name, im)).info.notes
        assert [n for n in notes if n.startswith(CAUTION)] == [CAUTION + "greyscale image: white cells and "
                                                               "platelets are told apart by their stain colour, "
                                                               "so they may be missed; red-cell counts hold"]
    clear = np.zeros((4, 4, 4), np.uint8)
    clear[..., :3] = (200, 100, 50)
    notes = read_image(_save(tmp_path, "clear.png", Image.fromarray(clear, "RGBA"))).info.notes
    assert [n for n in notes if n.startswith(CAUTION)] == [CAUTION + "the image is fully transparent: "
                                                           "there is nothing to count"]
    colour = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert not read_image(_save(tmp_path, "c.png", Image.fromarray(colour))).info.notes


def test_palette_with_and_without_transparency(tmp_path):
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    d = read_image(_save(tmp_path, "p.png", im))
    assert np.array_equal(d.pixels[0, 0], (255, 0, 0)) and np.array_equal(d.pixels[1, 0], (0, 0, 255))
    assert "palette image converted to RGB" in d.info.notes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "palette with transparency" warning must not escape
        d = read_image(_save(tmp_path, "pt.png", im, transparency=0))  # index 0 fully transparent
    assert (d.pixels[0, 0] == 255).all() and np.array_equal(d.pixels[0, 1], (0, 255, 0))
    assert "alpha composited on white" in d.info.notes and d.info.channels == 4


def test_cmyk_jpeg(tmp_path):
    p = _save(tmp_path, "c.jpg", Image.new("CMYK", (16, 8), (0, 255, 255, 0)), quality=95)
    d = read_image(p)
    _check_contract(d, 16, 8)
    assert d.info.channels == 4 and "CMYK converted to RGB" in d.info.notes
    with Image.open(p) as ref:
        assert np.array_equal(d.pixels, np.asarray(ref.convert("RGB")))
    assert d.pixels[..., 0].mean() > 200 and d.pixels[..., 1].mean() < 60  # red


# -- 16-bit and float --------------------------------------------------------------------------
def _linear(v: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(v.astype(np.float64) * 255.0 / ((1 << bits) - 1)).astype(np.uint8)


def test_16bit_gray_png_linear(tmp_path):
    g = np.arange(1000, dtype=np.uint16).reshape(20, 50) * 65  # well exposed: its bright end near 65535
    d = read_image(_save(tmp_path, "g16.png", Image.fromarray(g)))
    assert d.info.dtype == "uint16" and d.info.channels == 1
    assert any(n.startswith("16-bit image scaled to 8 bits for viewing and analysis (linear") for n in d.info.notes)
    assert np.array_equal(d.pixels, _rgb(_linear(g, 16)))


def test_16bit_copy_of_an_8bit_image_reads_the_same(tmp_path):
    a = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    a[0, 0] = 255
    p = tmp_path / "c16.png"
    p.write_bytes(_png16(a.astype(np.uint16) * 257, 2))
    assert np.array_equal(read_image(p).pixels, a)


def test_dim_16bit_gray_png_is_brightened(tmp_path):
    g = np.arange(1000, dtype=np.uint16).reshape(20, 50) * 5 + 20000  # 15 bits of data: a 16-bit depth, dim
    d = read_image(_save(tmp_path, "g16.png", Image.fromarray(g)))
    assert any("dim image brightened" in n for n in d.info.notes)
    hi = np.percentile(g, 99.5)
    expect = np.rint(np.clip(g * (cio_tone.BRIGHT * 255 / hi), 0, 255)).astype(np.uint8)
    assert np.abs(d.pixels[..., 0].astype(int) - expect).max() <= 1


@pytest.mark.parametrize("colour_type,channels", [(2, 3), (6, 4), (4, 2)])
def test_16bit_colour_png(tmp_path, colour_type, channels):
    a = RNG.integers(0, 65536, (6, 7, channels)).astype(np.uint16)
    if channels in (2, 4):
        a[..., -1] = 65535  # opaque: colour must come out scaled, not cut to 8 bits
    p = tmp_path / "c16.png"
    p.write_bytes(_png16(a, colour_type))
    d = read_image(p)
    assert d.info.dtype == "uint16" and d.info.channels == channels
    colour = a[..., :3] if channels >= 3 else a[..., :1]
    assert np.array_equal(d.pixels, np.broadcast_to(_linear(colour, 16), d.pixels.shape))


def test_16bit_png_alpha(tmp_path):
    a = np.full((2, 2, 4), 40000, np.uint16)
    a[0, 0] = (0, 0, 0, 0)  # transparent black -> white
    a[1, 1, 3] = 65535
    p = tmp_path / "a16.png"
    p.write_bytes(_png16(a, 6))
    d = read_image(p)
    assert (d.pixels[0, 0] == 255).all() and "alpha composited on white" in d.info.notes


def test_stretch_is_deterministic(tmp_path):
    g = RNG.normal(2000, 300, (64, 64)).clip(0, 65535).astype(np.uint16)
    p = _save(tmp_path, "g.png", Image.fromarray(g))
    a, b = read_image(p), read_image(p)
    assert np.array_equal(a.pixels, b.pixels) and a.info.notes == b.info.notes


def test_float_tiff_with_nan_and_inf(tmp_path):
    f = np.linspace(0, 1, 200, dtype=np.float32).reshape(10, 20)
    f[0, 0], f[0, 1], f[0, 2] = np.nan, np.inf, -np.inf
    tifffile.imwrite(tmp_path / "f.tif", f)
    d = read_image(tmp_path / "f.tif")
    assert d.info.dtype == "float32"
    assert (d.pixels[0, :3] == 0).all()
    expect = np.rint(np.nan_to_num(f, nan=0, posinf=0, neginf=0) * 255.0).astype(np.uint8)  # 0…1: linear
    assert np.array_equal(d.pixels[..., 0].ravel()[3:], expect.ravel()[3:])
    assert any("32-bit float image scaled" in n and "float samples in 0…1" in n for n in d.info.notes)
    assert any("3 NaN/inf" in n for n in d.info.notes)


def test_all_nan_float_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "n.tif", np.full((3, 4), np.nan, np.float32))
    assert (read_image(tmp_path / "n.tif").pixels == 0).all()


def test_signed_int16_tiff(tmp_path):
    s = np.arange(-1000, 1000, 4, dtype=np.int16).reshape(20, 25)
    tifffile.imwrite(tmp_path / "s.tif", s)
    d = read_image(tmp_path / "s.tif")
    assert d.info.dtype == "int16" and any("16-bit signed" in n for n in d.info.notes)
    assert np.array_equal(d.pixels[..., 1], _stretch(s, s))


def test_constant_16bit_image_uses_dtype_range(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.full((4, 4), 65535, np.uint16))
    assert (read_image(tmp_path / "c.tif").pixels == 255).all()


# -- TIFF layouts ------------------------------------------------------------------------------
def test_tiff_big_endian_and_tiled(tmp_path):
    g = RNG.integers(0, 4096, (40, 40)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "be.tif", g, byteorder=">")
    assert np.array_equal(read_image(tmp_path / "be.tif").pixels[..., 0], _linear(g, 12))
    a = RNG.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "tiled.tif", a, tile=(16, 16))
    assert np.array_equal(read_image(tmp_path / "tiled.tif").pixels, a)


def test_tiff_extra_dims_and_planar(tmp_path):
    a = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "batch.tif", a[None], photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "batch.tif").pixels, a)
    tifffile.imwrite(tmp_path / "planar.tif", a.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image(tmp_path / "planar.tif").pixels, a)


def test_volumetric_tiff_first_plane_and_limit(tmp_path):
    vol = np.stack([np.full((32, 32), v, np.uint8) for v in (5, 6, 7)])
    tifffile.imwrite(tmp_path / "v.tif", vol, volumetric=True, tile=(16, 16), photometric="minisblack")
    d = read_image(tmp_path / "v.tif")
    assert (d.pixels == 5).all() and "volumetric TIFF: showing plane 1 of 3" in d.info.notes
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "v.tif", max_pixels=32 * 32 * 2)  # the whole volume is decoded


def test_tiff_too_many_samples_raises(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((6, 8, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match="5 samples per pixel"):
        read_image(tmp_path / "m.tif")


def test_multipage_tiff_shows_first_page(tmp_path):
    pages = np.stack([np.full((6, 8), v, np.uint8) for v in (10, 20, 30)])
    tifffile.imwrite(tmp_path / "mp.tif", pages, photometric="minisblack")
    d = read_image(tmp_path / "mp.tif")
    assert (d.pixels == 10).all()
    assert any(n.startswith("caution: multi-page TIFF: showing page 1 of 3") for n in d.info.notes)  # analyze says so too


def test_tiff_rgba_gray_alpha_miniswhite_palette(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3], rgba[0, :, 3] = 90, 255
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    d = read_image(tmp_path / "rgba.tif")
    assert (d.pixels[0] == 90).all() and (d.pixels[1] == 255).all() and d.info.channels == 4
    tifffile.imwrite(tmp_path / "ga.tif", rgba[..., 2:], photometric="minisblack", extrasamples=["unassalpha"])
    d = read_image(tmp_path / "ga.tif")
    assert (d.pixels[0] == 90).all() and (d.pixels[1] == 255).all() and d.info.channels == 2
    g = np.array([[0, 255], [10, 200]], np.uint8)
    tifffile.imwrite(tmp_path / "mw.tif", g, photometric="miniswhite")
    assert np.array_equal(read_image(tmp_path / "mw.tif").pixels[..., 0], 255 - g)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, 1] = (65535, 0, 0)
    tifffile.imwrite(tmp_path / "pal.tif", np.array([[0, 1]], np.uint8), photometric="palette", colormap=cmap)
    d = read_image(tmp_path / "pal.tif")
    assert np.array_equal(d.pixels[0], [[0, 0, 0], [255, 0, 0]])


def test_tiff_bilevel_matches_pillow(tmp_path):
    b = RNG.integers(0, 2, (5, 9)).astype(bool)
    tifffile.imwrite(tmp_path / "b.tif", b)
    d = read_image(tmp_path / "b.tif")
    with Image.open(tmp_path / "b.tif") as ref:
        assert np.array_equal(d.pixels, _rgb(np.asarray(ref.convert("L"))))


def test_lzw_tiff_from_pillow(tmp_path):
    """LZW needs imagecodecs in tifffile; read_image falls back to Pillow when it is absent."""
    a = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    d = read_image(_save(tmp_path, "lzw.tif", Image.fromarray(a), compression="tiff_lzw"))
    assert np.array_equal(d.pixels, a)


# -- orientation -------------------------------------------------------------------------------
def test_jpeg_exif_orientation_6(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high; left half red, right half blue
    a[:, :20] = (220, 20, 20)
    a[:, 20:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    d = read_image(_save(tmp_path, "o.jpg", Image.fromarray(a), exif=exif.tobytes(), quality=95))
    _check_contract(d, 20, 40)  # transposed
    assert "EXIF orientation applied (tag value 6)" in d.info.notes
    top, bottom = d.pixels[:18].reshape(-1, 3).mean(0), d.pixels[22:].reshape(-1, 3).mean(0)
    assert top[0] > 180 and top[2] < 60  # rotated 90° clockwise: the left (red) half is on top
    assert bottom[2] > 180 and bottom[0] < 60


def test_tiff_orientation_tag(tmp_path):
    a = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "o.tif", a, extratags=[(274, "H", 1, 6, False)])
    d = read_image(tmp_path / "o.tif")
    assert np.array_equal(d.pixels, np.rot90(a, -1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow(orientation):
    a = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    im = Image.fromarray(a)
    im.getexif()[0x0112] = orientation
    assert np.array_equal(cio._orient(a, orientation), np.asarray(ImageOps.exif_transpose(im)))


# -- format detection and failures -------------------------------------------------------------
def test_png_named_jpg_loads(tmp_path):
    a = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    p = tmp_path / "really_png.jpg"
    Image.fromarray(a).save(p, format="PNG")
    d = read_image(p)
    assert np.array_equal(d.pixels, a)
    assert any("content is PNG" in n for n in d.info.notes)


def _fails(path, *words) -> ImageReadError:
    with pytest.raises(ImageReadError) as ei:
        read_image(path)
    err = ei.value
    assert err.path == str(path) and str(path) in str(err)
    for w in words:
        assert w in err.reason.lower(), err.reason
    return err


def test_text_named_png_fails(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, I am not an image\n")
    _fails(p, "unknown file format")


def test_gif_is_named(tmp_path):
    _fails(_save(tmp_path, "a.gif", Image.new("P", (2, 2))), "gif")


def test_missing_directory_and_empty(tmp_path):
    _fails(tmp_path / "nope.png", "not found")
    _fails(tmp_path, "folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    _fails(tmp_path / "empty.jpg", "empty")


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_truncated_files_fail(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    for n, cut in enumerate((len(buf.getvalue()) // 2, 40)):
        p = tmp_path / f"cut{n}.{suffix}"
        p.write_bytes(buf.getvalue()[:cut])
        _fails(p)


def test_truncated_16bit_png_fails(tmp_path):
    data = _png16(RNG.integers(0, 65536, (32, 32, 3)).astype(np.uint16), 2)
    (tmp_path / "c.png").write_bytes(data[: len(data) // 2])
    _fails(tmp_path / "c.png")


def test_truncated_jpeg_fails_even_if_pillow_flag_set(tmp_path, monkeypatch):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # someone else's setting
    _fails(tmp_path / "t.jpg", "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


# -- size limits -------------------------------------------------------------------------------
def _no_decoding(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", boom)


def test_png_bomb_refused_from_header(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png(100_000, 100_000, 8, 2))
    _no_decoding(monkeypatch)
    before = Image.MAX_IMAGE_PIXELS
    tracemalloc.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = _fails(p, "too large")
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 20_000_000
    assert "100000×100000" in err.reason
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global limit restored


def test_16bit_png_bomb_and_side_limit(tmp_path, monkeypatch):
    _no_decoding(monkeypatch)
    (tmp_path / "b16.png").write_bytes(_png(60_000, 60_000, 16, 2))
    _fails(tmp_path / "b16.png", "too large")
    (tmp_path / "long.png").write_bytes(_png(200_000, 1, 8, 0))  # few pixels, one side too long
    _fails(tmp_path / "long.png", "too large")


def test_tiff_bomb_refused_from_header(tmp_path, monkeypatch):
    p = tmp_path / "bomb.tif"
    p.write_bytes(_tiff_header_only(90_000, 90_000))
    with tifffile.TiffFile(p) as tf:  # the crafted header is a valid TIFF
        assert tf.pages[0].shape == (90_000, 90_000)
    _no_decoding(monkeypatch)
    t0 = time.perf_counter()
    _fails(p, "too large")
    assert time.perf_counter() - t0 < 1.0


def test_max_pixels_override_and_pillow_state(tmp_path):
    p = _save(tmp_path, "a.png", Image.new("RGB", (100, 100)))
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape
        with pytest.raises(ImageReadError, match="too large"):
            read_image(p, max_pixels=6000)
        with pytest.raises(ImageReadError, match="too large"):
            read_image(p, max_pixels=4000)  # > 2× the limit: Pillow's own error must not decide
        with pytest.raises(ImageReadError, match="too large"):
            read_image(p, max_side=99)
    assert Image.MAX_IMAGE_PIXELS == before
    assert read_image(p, max_pixels=10_000).pixels.shape == (100, 100, 3)


def test_zero_size_png_refused(tmp_path):
    (tmp_path / "z.png").write_bytes(_png(0, 5, 8, 0))
    _fails(tmp_path / "z.png")


# -- small and odd paths -------------------------------------------------------------------------
def test_one_pixel_images(tmp_path):
    d = read_image(_save(tmp_path, "one.png", Image.new("RGB", (1, 1), (1, 2, 3))))
    _check_contract(d, 1, 1)
    assert d.pixels[0, 0].tolist() == [1, 2, 3]
    tifffile.imwrite(tmp_path / "one.tif", np.array([[7]], np.uint8))
    assert read_image(tmp_path / "one.tif").pixels.tolist() == [[[7, 7, 7]]]


def test_non_ascii_path_and_sha256(tmp_path):
    folder = tmp_path / "Blutausstrich ü 細胞"
    folder.mkdir()
    p = _save(folder, "Bild é.tif", Image.new("RGB", (4, 3), (9, 8, 7)))
    d = read_image(p)
    assert d.info.path == str(p) and d.pixels.shape == (3, 4, 3)
    assert d.info.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.data
def test_real_bccd_images():
    if not BCCD.is_dir():
        pytest.skip("../shared/data/bccd/images is absent")
    files = sorted(BCCD.glob("*.jpg"))[:3]
    assert files
    for f in files:
        d = read_image(f)
        _check_contract(d, d.info.width, d.info.height)
        assert d.pixels.std() > 5 and len(d.info.sha256) == 64


# -- listing and writing ---------------------------------------------------------------------------
def test_is_image_file():
    assert all(is_image_file(f"x{s.upper()}") for s in SUPPORTED_SUFFIXES)
    assert not is_image_file("x.txt") and not is_image_file("tif")


def test_list_images(tmp_path):
    for name in ("img10.png", "img2.png", "IMG1.PNG", "notes.txt", ".hidden.png", "b.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    odd = tmp_path / "scan.raw"
    odd.write_bytes(b"x")
    got = list_images([tmp_path, odd, str(tmp_path / "img2.png")])
    assert [p.name for p in got] == ["b.tiff", "IMG1.PNG", "img2.png", "img10.png", "scan.raw"]
    with pytest.raises(ImageReadError, match="no such file"):
        list_images([tmp_path / "missing"])


def test_write_png_roundtrip_and_atomic(tmp_path):
    m = RNG.integers(0, 6, (7, 9), dtype=np.uint8)
    out = write_png(tmp_path / "masks" / "a.png", m)
    assert out == tmp_path / "masks" / "a.png"
    with Image.open(out) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), m)
    write_png(out, m * 0 + 3)  # overwrite in place
    assert (np.asarray(Image.open(out)) == 3).all()
    assert [p.name for p in (tmp_path / "masks").iterdir()] == ["a.png"]  # no temp file left
    with pytest.raises(SaveError):
        write_png(tmp_path / "bad.png", m.astype(np.int32))
    with pytest.raises(SaveError):
        write_png(tmp_path / "bad.png", np.zeros((2, 2, 3), np.uint8))
    assert not (tmp_path / "bad.png").exists()


def test_write_png_failure_keeps_old_file(tmp_path, monkeypatch):
    out = write_png(tmp_path / "a.png", np.ones((2, 2), np.uint8))
    old = out.read_bytes()

    def fail(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cio.os, "replace", fail)
    with pytest.raises(SaveError, match="No space left"):
        write_png(out, np.zeros((2, 2), np.uint8))
    assert out.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("compression", [cv2.IMWRITE_TIFF_COMPRESSION_LZW if hasattr(cv2, "IMWRITE_TIFF_COMPRESSION_LZW")
                                         else 5, 8])  # LZW (cv2.imwrite's default), Deflate
def test_a_compressed_16_bit_tiff_keeps_all_its_bits(tmp_path, channels, compression):
    """tifffile needs imagecodecs for LZW / Deflate; the Pillow fallback kept only the high byte, so a 12-bit
    camera image went almost black (and no cell was found)."""
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (24, 32, channels), dtype=np.uint8)
    cam = ref.astype(np.uint16) * 16 + 7  # 12-bit camera values
    path = tmp_path / "cam12.tif"
    assert cv2.imwrite(str(path), cam[..., ::-1] if channels > 1 else cam[..., 0],
                       [cv2.IMWRITE_TIFF_COMPRESSION, compression])
    img = read_image(path)
    want = ref[..., :3] if channels > 1 else np.repeat(ref, 3, axis=2)
    if channels == 4:  # alpha composited on white: the cells' colours only where the pixel is opaque enough
        assert img.pixels.shape == (24, 32, 3)
    else:
        assert np.abs(img.pixels.astype(int) - want.astype(int)).max() <= 1
    assert any("12 bits used" in n for n in img.info.notes)


def test_a_semi_transparent_smear_is_a_caution_a_transparent_margin_is_not(tmp_path):
    from cellviewer.core.io import CAUTION

    a = np.zeros((40, 50, 4), np.uint8)
    a[..., :3] = (200, 100, 150)
    a[..., 3] = 255
    a[:, :5, 3] = 0  # a transparent margin: white, left out as a margin
    notes = read_image(_save(tmp_path, "margin.png", Image.fromarray(a, "RGBA"))).info.notes
    assert "alpha composited on white" in notes and not [n for n in notes if n.startswith(CAUTION)]
    a[..., 3] = 128  # the whole smear half transparent: its stain colours faded
    notes = read_image(_save(tmp_path, "faded.png", Image.fromarray(a, "RGBA"))).info.notes
    assert [n for n in notes if n.startswith(CAUTION)] == [CAUTION + "semi-transparent image: 100 % of its pixels "
                                                           "were blended with white, which fades the stain colours "
                                                           "and may change the counts (save it without transparency)"]
