"""A measured demonstration of the morphology review loop on the shared data (Chula RBC-12).

Chula's labelled points play the annotator, who reviews the classes the shipped model gave.
The images are those of one split (default ``test``: the shipped model neither trained nor was
selected on them), in two folds: the even images are the **lab**, the odd ones **held out**,
then the other way round.

1. every lab image becomes a reviewed :class:`~cellviewer.core.document.Document` with one
   red-cell marker per point; the model classifies each, then the annotator's class replaces
   it: where they differ it is a correction (``morph_p`` = 1, weighted by the fine-tune),
   elsewhere the model's class stands ("uncategorised" points stay unclassified);
2. the documents are **exported** (80 % train, 20 % val) and the installed model is
   **fine-tuned** on CPU (:func:`cellviewer.core.morphfinetune.finetune_morphology`);
3. the **gate** compares old and new on the held-out half, exported the same way;
4. the same fine-tune on **shuffled** classes (fold 0, ``keep="last"``) shows the gate refusing it.

``--scale 0.5 --blur 1`` shows every image as a coarser, softer camera would (:func:`camera`): a
lab whose microscope the model was not trained for.

``python -m cellviewer.core.morphdemo --minutes 3 --out runs/morphdemo`` writes ``OUT/morphdemo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from cellviewer.core.errors import script_main


def camera(image, scale: float = 1.0, blur: float = 0.0):
    """``image`` as another microscope camera would see it: ``scale`` × the pixels (fewer px per cell:
    a lower magnification or a coarser sensor), then a Gaussian blur of ``blur`` px (softer optics)."""
    import cv2

    out = image
    if scale != 1.0:
        h, w = image.shape[:2]
        out = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return cv2.GaussianBlur(out, (0, 0), blur) if blur > 0 else out


def documents(split: str, model, data_root=None, shuffle_seed: int | None = None, scale: float = 1.0,
              blur: float = 0.0) -> tuple[list, dict]:
    """Reviewed documents of the chula_rbc12 ``split`` (see the module docstring) and
    ``{"cells", "corrected"}``; ``shuffle_seed``: the classes permuted over all cells first;
    ``scale``, ``blur``: the images seen through another camera (:func:`camera`)."""
    import numpy as np

    from cellviewer.core import datasets as D
    from cellviewer.core import morphology as MO
    from cellviewer.core.document import Document, ImageData, ImageInfo, Marker
    from cellviewer.core.morphdata import crop_diameter

    samples = D.load_samples("chula_rbc12", data_root, split)
    truth = [[MO.CHULA_CLASSES.get(int(c), "") for c in s.meta.get("point_classes", [])] for s in samples]
    if shuffle_seed is not None:
        flat = np.array([c for t in truth for c in t], object)
        flat = flat[np.random.default_rng(shuffle_seed).permutation(len(flat))]
        cuts = np.cumsum([len(t) for t in truth])[:-1]
        truth = [list(part) for part in np.split(flat, cuts)]
    docs, cells, corrected = [], 0, 0
    for s, classes in zip(samples, truth):
        img = camera(s.read_image(), scale, blur)
        h, w = img.shape[:2]
        doc = Document(ImageData(img, ImageInfo(str(s.path), w, h)))
        for k, ((x, y), c) in enumerate(zip(s.points * scale, classes), 1):
            doc.markers[k] = Marker(k, "rbc", float(x), float(y), origin="manual", reviewed=True)
        MO.classify_cells(img, list(doc.markers.values()), crop_diameter(img, model[1].get("crop_scale") or "estimate"),
                          model=model)
        for m, c in zip(list(doc.markers.values()), classes):
            if not c:  # "uncategorised": the annotator leaves it unclassified
                m.morph, m.morph_p = "", 0.0
            elif m.morph != c:
                m.morph, m.morph_p = c, 1.0
                corrected += 1
            cells += bool(c)
        doc.reviewed = True
        docs.append(doc)
    return docs, {"images": len(docs), "cells": cells, "corrected": corrected}


def _corrections(docs) -> dict:
    ms = [m for d in docs for m in d.markers.values() if m.morph]
    return {"images": len(docs), "cells": len(ms), "corrected": sum(m.morph_p >= 1.0 for m in ms)}


def run_demo(out, minutes: float = 3.0, split: str = "test", data_root=None, threads: int = 0, seed: int = 0,
             scale: float = 1.0, blur: float = 0.0) -> dict:
    """Run the demonstration (module docstring) on the images of ``split``, in two folds (even / odd images:
    one half is the lab, the other held out, then the other way round), plus a shuffled-class fine-tune
    on fold 0; returns and writes ``OUT/morphdemo.json``."""
    from cellviewer.core import morphology as MO
    from cellviewer.core.export_dataset import export_training_set
    from cellviewer.core.jobs import run_job
    from cellviewer.core.morphfinetune import finetune_morphology, morphology_gate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = str(MO.find_card().with_suffix(""))
    model = MO.load_model(Path(base + ".json"))
    say = lambda p: print(p.message, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    docs, _ = documents(split, model, data_root, scale=scale, blur=blur)
    shuffled, _ = documents(split, model, data_root, shuffle_seed=seed + 1, scale=scale, blur=blur)
    halves = [list(range(0, len(docs), 2)), list(range(1, len(docs), 2))]
    result = {"base": base, "split": split, "camera": {"scale": scale, "blur": blur}, "minutes_budget": minutes}
    runs = [("fold0", docs, 0, "best"), ("fold1", docs, 1, "best"), ("shuffled-fold0", shuffled, 0, "last")]
    for tag, source, f, keep in runs:
        lab, held = [source[i] for i in halves[f]], [docs[i] for i in halves[1 - f]]
        held_dir, lab_dir = out / f"fold{f}-heldout", out / f"{tag}-data"
        if not held_dir.is_dir():
            run_job(export_training_set(held, held_dir, formats=("shared",), fractions=(0.0, 0.0, 1.0)))
        run_job(export_training_set(lab, lab_dir, formats=("shared",), fractions=(0.8, 0.2, 0.0)))
        t = time.time()
        res = run_job(finetune_morphology(base, lab_dir, out=out / tag, minutes=minutes, epochs=1000,
                                          threads=threads or None, seed=seed, keep=keep), say)
        gate = run_job(morphology_gate(base, res.checkpoint, held_dir))
        info = {"lab": _corrections(lab), "heldout": _corrections(held)}
        print(f"\n== {tag}: lab {info['lab']}, held out {info['heldout']}; best epoch {res.best_epoch} of "
              f"{res.epochs_run} ==\n" + gate.format_table(), flush=True)
        result[tag] = {**info, "seconds": round(time.time() - t, 1), "gate": gate.as_dict(),
                       "finetune": {k: v for k, v in asdict(res).items() if k not in ("history", "data_hashes")}}
    result["seconds"] = round(time.time() - t0, 1)
    (out / "morphdemo.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellviewer.core.morphdemo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/morphdemo", help="folder for the exports, checkpoints and morphdemo.json")
    ap.add_argument("--minutes", type=float, default=3.0, help="budget of each fine-tune (default %(default)s)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"],
                    help="chula_rbc12 split whose halves play the lab and the held-out images (default %(default)s: "
                         "the shipped model neither trained nor was selected on it)")
    ap.add_argument("--scale", type=float, default=1.0, help="another camera: this many pixels per pixel (e.g. 0.5)")
    ap.add_argument("--blur", type=float, default=0.0, help="another camera: Gaussian blur in px (e.g. 1)")
    ap.add_argument("--data", default=None, help="data root in the shared layout (default ../shared/data)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    def body() -> None:
        run_demo(args.out, args.minutes, args.split, args.data, args.threads, scale=args.scale, blur=args.blur)

    return script_main(body)


if __name__ == "__main__":
    sys.exit(main())
