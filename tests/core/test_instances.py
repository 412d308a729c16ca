"""core.instances.split_by_nuclei: white cells merged through a cytoplasm bridge are split by their nuclei."""

import numpy as np

from cellviewer.core.instances import instances_from_probs, merge_fragments, split_by_nuclei

D = 16.0  # red-cell diameter (px): nuclei of different cells are ≥ 1.1 × D apart


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _two_touching_cells():
    """Two white cells (radius 14) whose cytoplasm touches, each with a nucleus (radius 6)."""
    shape = (40, 80)
    cell = _disc(shape, 20, 22, 14) | _disc(shape, 20, 50, 14)
    parts = np.where(cell, 2, 0).astype(np.uint8)
    parts[_disc(shape, 20, 22, 6) | _disc(shape, 20, 50, 6)] = 1
    return cell.astype(np.int32), parts


def test_touching_cells_with_distant_nuclei_are_split():
    wbc, parts = _two_touching_cells()
    out = split_by_nuclei(wbc, parts, D)
    assert out.max() == 2
    assert out[20, 22] != out[20, 50] and {out[20, 22], out[20, 50]} == {1, 2}
    np.testing.assert_array_equal(out > 0, wbc > 0)  # nothing added or lost
    assert abs(int((out == 1).sum()) - int((out == 2).sum())) < 0.1 * (wbc > 0).sum()  # cut near the middle
    assert split_by_nuclei(wbc, parts, D, min_gap=2.0).max() == 1  # 28 px apart < 2 × 16: one cell


def test_lobes_of_one_nucleus_stay_one_cell_and_specks_are_ignored():
    shape = (40, 40)
    cell = _disc(shape, 20, 20, 16)
    parts = np.where(cell, 2, 0).astype(np.uint8)
    parts[_disc(shape, 20, 14, 4) | _disc(shape, 20, 26, 4)] = 1  # two lobes 12 px apart (< 1.1 D)
    parts[8, 20] = 1  # a one-pixel speck far from both (< 5 % of an RBC)
    out = split_by_nuclei(cell.astype(np.int32), parts, D)
    np.testing.assert_array_equal(out, cell.astype(np.int32))


def test_other_cells_keep_their_pixels_and_labels_are_renumbered():
    wbc, parts = _two_touching_cells()
    wbc = np.concatenate([wbc, np.zeros((40, 30), np.int32)], 1)
    parts = np.concatenate([parts, np.zeros((40, 30), np.uint8)], 1)
    wbc[5:15, 85:100] = 3  # a separate cell with label 3 (no nucleus): kept whole
    parts[5:15, 85:100] = 2
    out = split_by_nuclei(wbc, parts, D)
    assert sorted(np.unique(out).tolist()) == [0, 1, 2, 3]
    assert len(np.unique(out[5:15, 85:100])) == 1 and out[10, 90] > 0


def test_instances_from_probs_splits_only_when_asked():
    wbc, parts = _two_touching_cells()
    probs = np.zeros((3,) + wbc.shape, np.float32)
    for k in range(3):
        probs[k][parts == k] = 1.0
    classes = ["background", "nucleus", "cytoplasm"]
    plain, p1, s1 = instances_from_probs(probs, None, classes, D)
    split, p2, s2 = instances_from_probs(probs, None, classes, D, nucleus_split={"min_gap": 1.1})
    assert plain["wbc"].max() == 1 and len(s1["wbc"]) == 1
    assert split["wbc"].max() == 2 and len(s2["wbc"]) == 2 and np.allclose(s2["wbc"], 1.0)
    np.testing.assert_array_equal(p1, p2)  # nucleus / cytoplasm unchanged


def _cells_with_a_sliver():
    """Two touching discs (labels 1, 2), a sliver between them (3), a small free cell (4), a small cut one (5)."""
    shape = (60, 120)
    lab = np.zeros(shape, np.int32)
    lab[_disc(shape, 30, 30, 14)] = 1
    lab[_disc(shape, 30, 56, 14)] = 2
    sliver = _disc(shape, 30, 43, 4) & (lab > 0)
    lab[sliver] = 3  # a piece of the overlap, surrounded by cells 1 and 2
    lab[_disc(shape, 30, 95, 4)] = 4  # small, free standing
    lab[_disc(shape, 0, 110, 5)] = 5  # small, cut by the top border
    return lab


def test_merge_fragments_gives_slivers_to_their_neighbour_and_keeps_free_and_cut_cells():
    lab = _cells_with_a_sliver()
    area = np.bincount(lab.ravel())
    out = merge_fragments(lab, max_area=100, min_contact=0.4)
    assert out.max() == 4  # the sliver is gone, the other four cells stay
    assert (out > 0).sum() == (lab > 0).sum()  # no pixel lost or added
    sliver_to = np.unique(out[lab == 3])
    assert len(sliver_to) == 1 and set(np.unique(out[lab == 1])) | set(np.unique(out[lab == 2])) >= set(sliver_to)
    assert sorted(np.bincount(out.ravel())[1:].tolist()) == sorted(
        [area[4], area[5], area[1] + area[3] if (out[lab == 3] == out[lab == 1][0]).all() else area[1],
         area[2] + area[3] if (out[lab == 3] == out[lab == 2][0]).all() else area[2]])
    # nothing small enough, or not enough contact: unchanged (the same array back)
    assert merge_fragments(lab, max_area=10, min_contact=0.4) is lab
    assert merge_fragments(lab, max_area=100, min_contact=1.01) is lab
    assert merge_fragments(np.zeros((5, 5), np.int32), 10, 0.5).max() == 0


def test_instances_from_probs_merges_only_when_asked():
    lab = _cells_with_a_sliver()
    probs = np.zeros((4,) + lab.shape, np.float32)
    probs[0][lab == 0] = 1.0
    probs[1][lab > 0] = 1.0
    edge = np.zeros(lab.shape, np.float32)
    edge[(lab != np.roll(lab, 1, 0)) | (lab != np.roll(lab, 1, 1))] = 1.0  # cell outlines: seeds are the cells
    classes = ["background", "rbc", "wbc", "platelet"]
    d = 30.0  # RBC area ~ 707 px; the sliver (~40 px) is ~0.06 of it
    plain = instances_from_probs(probs, edge, classes, d, fracs={"rbc": (0.01, 0.01)})[0]["rbc"]
    merged = instances_from_probs(probs, edge, classes, d, fracs={"rbc": (0.01, 0.01)},
                                  merge={"rbc": (0.15, 0.4)})[0]["rbc"]
    assert plain.max() == 5 and merged.max() == 4
    assert ((plain > 0) == (merged > 0)).all()
