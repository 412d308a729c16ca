"""Working scale: the expected red-cell size in pixels and what derives from it.

Everything scale-dependent in the classical pipeline (minimum object area, peak
spacing, Hough radii, platelet / WBC size limits) derives from one number, the
expected RBC diameter in pixels. It is given directly (``diameter_px``) or from a
physical size and the pixel pitch (``diameter_um`` / ``um_per_px``); a normal
red cell is about 7.5 µm across (:data:`DEFAULT_RBC_DIAMETER_UM`).

:class:`CountParams` bundles that number with the fractions the counting
algorithms use; :func:`count_params` builds one and checks the values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from cellviewer.core.errors import SegmentationOptionError

#: Diameter of a normal red blood cell in micrometres.
DEFAULT_RBC_DIAMETER_UM = 7.5
#: Smallest and largest expected RBC diameter (px) accepted anywhere.
MIN_DIAMETER_PX = 4.0
MAX_DIAMETER_PX = 2000.0
_DIAMETER_HINT = (f"give a red-cell diameter between {MIN_DIAMETER_PX:g} and {MAX_DIAMETER_PX:g} px (analyze "
                  "--diameter-px), a µm-per-pixel that puts a 7.5 µm cell in that range, or neither to have it "
                  "estimated per image")


@dataclass(frozen=True)
class CountParams:
    """Parameters of the counting / instance algorithms (all relative to ``diameter_px``).

    * ``diameter_px`` — expected RBC diameter in pixels.
    * ``min_area_frac`` — objects smaller than this fraction of the expected cell
      area are dropped (debris, slivers between cells).
    * ``min_area_border_frac`` — the same for objects touching the image border
      (cells cut by it are still cells and annotators count them).
    * ``max_area_frac`` — an instance larger than this fraction of the expected
      area is implausible as one cell (lowers its score).
    * ``peak_min_distance_frac`` — minimum distance between two cell centres
      (markers), as a fraction of the diameter.
    * ``peak_min_height_frac`` — a distance-transform peak must be at least this
      fraction of the expected radius to seed a cell.
    * ``h_frac`` — h-maxima depth (fraction of the expected radius) for the
      watershed markers.
    * ``hough_radius_tol`` — Hough radii searched in ``r·(1 ± tol)``.
    * ``hough_min_dist_frac`` — minimum distance between Hough circle centres.
    * ``hough_votes`` — a circle needs edge votes from this fraction of the
      circumference of the smallest searched radius (0..1).
    * ``hough_fill_uncovered`` — add mask blobs not covered by any circle (cut
      cells at the image border) as cells when they are large enough.
    """

    diameter_px: float
    min_area_frac: float = 0.3
    max_area_frac: float = 2.5
    min_area_border_frac: float = 0.08
    peak_min_distance_frac: float = 0.35
    peak_min_height_frac: float = 0.25
    h_frac: float = 0.04
    hough_radius_tol: float = 0.35
    hough_min_dist_frac: float = 0.55
    hough_votes: float = 0.15
    hough_fill_uncovered: bool = True

    # -- derived quantities -------------------------------------------------------
    @property
    def radius_px(self) -> float:
        return self.diameter_px / 2.0

    @property
    def expected_area(self) -> float:
        return math.pi * self.radius_px**2

    @property
    def min_area(self) -> int:
        return max(1, int(round(self.min_area_frac * self.expected_area)))

    @property
    def min_area_border(self) -> int:
        return max(1, int(round(self.min_area_border_frac * self.expected_area)))

    @property
    def max_area(self) -> int:
        return int(round(self.max_area_frac * self.expected_area))

    @property
    def min_distance(self) -> int:
        return max(1, int(round(self.peak_min_distance_frac * self.diameter_px)))

    @property
    def hough_radii(self) -> tuple[int, int]:
        r = self.radius_px
        return max(1, int(math.floor(r * (1 - self.hough_radius_tol)))), int(math.ceil(r * (1 + self.hough_radius_tol)))

    def with_(self, **changes) -> "CountParams":
        """A copy with some fields changed (validated)."""
        return validate(replace(self, **changes))

    def to_dict(self) -> dict:
        return asdict(self)


def validate(p: CountParams) -> CountParams:
    """Check the values of ``p``; raise :class:`SegmentationOptionError` (exit code 2) when one is unusable."""
    if not (MIN_DIAMETER_PX <= p.diameter_px <= MAX_DIAMETER_PX) or not math.isfinite(p.diameter_px):
        raise SegmentationOptionError(
            f"Expected cell diameter {p.diameter_px!r} px is out of range.",
            hint=_DIAMETER_HINT,
        )
    if not (0 <= p.min_area_frac < p.max_area_frac) or not (0 <= p.min_area_border_frac < p.max_area_frac):
        raise SegmentationOptionError(
            f"min_area_frac={p.min_area_frac} / max_area_frac={p.max_area_frac} are inconsistent.",
            hint="use 0 <= min_area_frac < max_area_frac (e.g. 0.2 and 2.5)",
        )
    for name in ("peak_min_distance_frac", "peak_min_height_frac", "h_frac", "hough_min_dist_frac"):
        v = getattr(p, name)
        if not (0 <= v <= 2):
            raise SegmentationOptionError(f"{name}={v} is out of range.", hint="use a fraction between 0 and 2")
    if not (0 < p.hough_radius_tol < 1) or not (0 < p.hough_votes <= 1):
        raise SegmentationOptionError(
            f"hough_radius_tol={p.hough_radius_tol}, hough_votes={p.hough_votes} are out of range.",
            hint="use 0 < hough_radius_tol < 1 and 0 < hough_votes <= 1",
        )
    return p


def diameter_from(
    diameter_px: float | None = None,
    diameter_um: float | None = DEFAULT_RBC_DIAMETER_UM,
    um_per_px: float | None = None,
) -> float | None:
    """The expected RBC diameter in pixels, or ``None`` when it must be estimated.

    ``diameter_px`` wins; otherwise ``diameter_um / um_per_px`` when the pixel
    pitch is known. Raises :class:`SegmentationOptionError` on non-positive or out-of-range values.
    """
    if diameter_px is not None:
        d = float(diameter_px)
    elif um_per_px is not None:
        if not um_per_px or um_per_px <= 0 or not math.isfinite(um_per_px):
            raise SegmentationOptionError(f"µm per pixel must be positive, got {um_per_px!r}.",
                                    hint="give the pixel pitch of the scanner, e.g. 0.1")
        dum = DEFAULT_RBC_DIAMETER_UM if diameter_um is None else float(diameter_um)
        if dum <= 0:
            raise SegmentationOptionError(f"Cell diameter must be positive, got {diameter_um!r} µm.",
                                    hint=f"a normal red cell is {DEFAULT_RBC_DIAMETER_UM} µm")
        d = dum / float(um_per_px)
    else:
        return None
    if not (MIN_DIAMETER_PX <= d <= MAX_DIAMETER_PX) or not math.isfinite(d):
        raise SegmentationOptionError(
            f"Expected cell diameter {d:g} px is out of range.",
            hint=_DIAMETER_HINT,
        )
    return d


def plain_number(x: float) -> str:
    """``x`` to 3 significant digits as a plain number: ``5000``, ``0.0021``, ``31.5`` (never ``5e+03``)."""
    from decimal import Decimal

    return format(Decimal(f"{x:.3g}"), "f") if math.isfinite(x) else str(x)


def count_params(
    diameter_px: float | None = None,
    diameter_um: float | None = DEFAULT_RBC_DIAMETER_UM,
    um_per_px: float | None = None,
    **overrides,
) -> CountParams:
    """Build validated :class:`CountParams` from a diameter (px) or µm + µm/px.

    Extra keyword arguments override the fractions (unknown names raise
    :class:`SegmentationError`). A diameter is required here; use
    :func:`diameter_from` first when it may have to be estimated.
    """
    d = diameter_from(diameter_px, diameter_um, um_per_px)
    if d is None:
        raise SegmentationOptionError("No cell diameter given.", hint="pass diameter_px, or diameter_um and um_per_px")
    known = {f.name for f in fields(CountParams)} - {"diameter_px"}
    bad = sorted(set(overrides) - known)
    if bad:
        raise SegmentationOptionError(f"Unknown counting parameter(s): {', '.join(bad)}.",
                                hint=f"valid names: {', '.join(sorted(known))}")
    return validate(CountParams(diameter_px=d, **overrides))
