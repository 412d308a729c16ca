"""Checkpoints: card contents, sha256 verification, fp16 storage, refusing pickled code."""

from __future__ import annotations

import json

import pytest
import torch

from cellviewer.core.errors import ModelLoadError
from cellviewer.nets.checkpoint import (FORMAT_VERSION, import_torch_weights, load_checkpoint,
                                        save_checkpoint, sha256_file)
from cellviewer.nets.registry import create_net


def _net():
    return create_net("do-unet", base=4, n_classes=2)


CARD = {
    "name": "rbc-test",
    "classes": ["background", "rbc"],
    "working_scale": 7.5,
    "preprocessing": {"normalise": "0..1"},
    "training_data": {"set": "toy", "split": "80/20"},
    "metrics": {"dice": 0.9},
    "command": "cellviewer evaluate ...",
}


def test_card_has_everything_to_rebuild_and_judge(tmp_path):
    net = _net()
    card = save_checkpoint(net, tmp_path / "m", CARD)
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk == card
    assert card["architecture"] == "do-unet"
    assert card["config"] == {"base": 4, "n_classes": 2}
    assert card["format_version"] == FORMAT_VERSION
    assert card["sha256"] == sha256_file(tmp_path / "m.safetensors")
    assert card["weights"] == "m.safetensors" and card["dtype"] == "float32"
    assert card["created"].endswith("+00:00")
    for key, val in CARD.items():
        assert card[key] == val
    # any accepted path form loads
    for path in (tmp_path / "m", tmp_path / "m.json", tmp_path / "m.safetensors"):
        loaded, c = load_checkpoint(path)
        assert c["classes"] == ["background", "rbc"] and loaded.config == net.config


def test_missing_card_fields_are_null(tmp_path):
    card = save_checkpoint(_net(), tmp_path / "m", {})
    for key in ("classes", "working_scale", "preprocessing", "training_data", "metrics",
                "command"):
        assert key in card and card[key] is None


def test_half_storage_is_smaller_and_loads_as_float32(tmp_path):
    net = _net()
    save_checkpoint(net, tmp_path / "f32", {})
    card = save_checkpoint(net, tmp_path / "f16", {}, half=True)
    assert card["dtype"] == "float16"
    small = (tmp_path / "f16.safetensors").stat().st_size
    big = (tmp_path / "f32.safetensors").stat().st_size
    assert small < 0.6 * big
    loaded, _ = load_checkpoint(tmp_path / "f16")
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        if a.is_floating_point():
            assert b.dtype == torch.float32
            assert torch.allclose(a, b, atol=1e-3, rtol=1e-3), k
        else:
            assert torch.equal(a, b), k  # e.g. BatchNorm num_batches_tracked stays int


def test_tampered_weights_are_refused(tmp_path):
    save_checkpoint(_net(), tmp_path / "m", {})
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="changed or is corrupted"):
        load_checkpoint(tmp_path / "m")


def test_missing_or_newer_cards_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(_net(), tmp_path / "m", {})
    card = json.loads((tmp_path / "m.json").read_text())
    card["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="update cellviewer"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_checkpoint(tmp_path / "m")


def test_card_config_that_does_not_fit_the_weights(tmp_path):
    save_checkpoint(_net(), tmp_path / "m", {})
    card = json.loads((tmp_path / "m.json").read_text())
    card["config"]["base"] = 8
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_checkpoint(tmp_path / "m")


def test_net_without_config_cannot_be_saved(tmp_path):
    with pytest.raises(ModelLoadError, match="create_net"):
        save_checkpoint(torch.nn.Conv2d(1, 1, 1), tmp_path / "x", {})


class _Evil:
    """Unpickling this would create a file: the loader must never run it."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Evil(str(target))}, evil)
    assert not target.exists()
    with pytest.raises(ModelLoadError, match="contains code, not just weights; refused"):
        import_torch_weights(evil, _net())
    assert not target.exists()


def test_random_bytes_are_no_weights_file_not_code(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelLoadError, match="is not a weights file") as err:  # before: "contains code"
        import_torch_weights(junk, _net())
    assert "contains code" not in str(err.value)


def test_a_renamed_checkpoint_pair_loads_its_own_weights(tmp_path):
    import shutil

    net = _net()
    save_checkpoint(net, tmp_path / "m", {"name": "m"})
    for suffix in (".json", ".safetensors"):
        shutil.copy(tmp_path / f"m{suffix}", tmp_path / f"lab{suffix}")
    (tmp_path / "m.safetensors").unlink()  # the card still names m.safetensors
    loaded, _card = load_checkpoint(tmp_path / "lab")
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    (tmp_path / "lab.safetensors").write_bytes(b"x" * 100)  # another file under the name: the sha256 refuses it
    with pytest.raises(ModelLoadError):
        load_checkpoint(tmp_path / "lab")


def test_import_torch_weights_plain_and_wrapped(tmp_path):
    src, dst = _net(), _net()
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    report = import_torch_weights(path, dst, strict=True)
    assert report == {"missing": [], "unexpected": []}
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        assert torch.equal(a, b)

    partial = tmp_path / "partial.pth"
    torch.save({"mask_head.weight": src.mask_head.weight.detach().clone(), "extra": torch.ones(1)},
               partial)
    report = import_torch_weights(partial, _net())
    assert report["unexpected"] == ["extra"] and "mask_head.bias" in report["missing"]
    with pytest.raises(ModelLoadError, match="missing"):
        import_torch_weights(partial, _net(), strict=True)

    wrong = tmp_path / "wrong.pth"
    torch.save({"mask_head.weight": torch.zeros(5, 5, 1, 1)}, wrong)
    with pytest.raises(ModelLoadError, match="wrong shapes"):
        import_torch_weights(wrong, _net())

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(ModelLoadError):
        import_torch_weights(junk, _net())


def test_stem_with_dots(tmp_path):
    save_checkpoint(_net(), tmp_path / "rbc-v1.2", {})
    assert (tmp_path / "rbc-v1.2.json").is_file() and (tmp_path / "rbc-v1.2.safetensors").is_file()
    for path in (tmp_path / "rbc-v1.2", tmp_path / "rbc-v1.2.json"):
        net, card = load_checkpoint(str(path))
        assert card["weights"] == "rbc-v1.2.safetensors"


def test_damaged_weights_of_a_stored_version_point_to_the_versions_command(tmp_path):
    save_checkpoint(_net(), tmp_path / "v7", {"name": "lab", "version": "7", "stored_at": "2026-01-01T00:00:00Z"})
    weights = tmp_path / "v7.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="changed or is corrupted") as e:
        load_checkpoint(tmp_path / "v7")
    assert "cellviewer versions lab --rollback" in e.value.hint and "download" not in e.value.hint
