"""One shared tester for every registered network, plus each architecture's specifics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellviewer.core.errors import ModelLoadError, SegmentationError
from cellviewer.nets.checkpoint import load_checkpoint, save_checkpoint
from cellviewer.nets.registry import create_net, list_nets

# name -> (small config, input sizes, expected mask channels, has edge head)
SMALL: dict[str, tuple[dict, list[tuple[int, int]], int, bool]] = {
    "do-unet": (dict(base=4, n_classes=3), [(64, 64), (37, 53)], 3, True),
    "do-unet-valid": (dict(base=4), [(100, 100)], 1, True),
    "segnet-dual": (dict(width_mult=0.0625), [(64, 64), (37, 53)], 1, True),
    "node-unet": (dict(widths=[4, 8, 16], rtol=1e-2, atol=1e-2), [(64, 64), (37, 53)], 1,
                  False),
    "unet": (dict(encoder="resnet18", encoder_depth=2, decoder_channels=[8, 8], classes=3),
             [(64, 64), (37, 53)], 3, False),
    "unet-edge": (dict(encoder="vgg16_bn", encoder_depth=1, decoder_channels=[8]),
                  [(64, 64), (37, 53)], 1, True),
    "wbc-net": (dict(depth=2, stem_ch=4, node_widths=[4, 8, 8]), [(64, 64), (37, 53)], 1,
                False),
    "dced-net": (dict(base=4, depth=2, levels=2), [(64, 64), (37, 53)], 1, False),
}


def _expected_hw(net, hw):
    if hasattr(net, "output_size"):
        return net.output_size(hw[0]), net.output_size(hw[1])
    return hw


def _tensors(out: dict) -> list[torch.Tensor]:
    res = []
    for val in out.values():
        res.extend(val if isinstance(val, list) else [val])
    return res


def test_every_registered_net_has_a_test_config():
    assert sorted(SMALL) == list_nets()


@pytest.fixture(params=sorted(SMALL), scope="module")
def built(request):
    name = request.param
    cfg, sizes, n_out, edge = SMALL[name]
    torch.manual_seed(0)
    return name, create_net(name, **cfg), sizes, n_out, edge


def test_forward_shapes(built):
    name, net, sizes, n_out, edge = built
    net.eval()
    for hw in sizes:
        with torch.no_grad():
            out = net(torch.rand(1, 3, *hw))
        exp = _expected_hw(net, hw)
        assert set(out) == ({"mask", "edge"} if edge else {"mask"}), name
        assert tuple(out["mask"].shape) == (1, n_out, *exp)
        if edge:
            assert tuple(out["edge"].shape) == (1, 1, *exp)
        assert all(torch.isfinite(t).all() for t in _tensors(out))
    assert net.config["name"] == name


def test_backward_reaches_every_parameter(built):
    name, net, sizes, n_out, _ = built
    net.train()
    net.zero_grad()
    out = net(torch.rand(1, 3, *sizes[0]))
    loss = sum((t.float() ** 2).mean() for t in _tensors(out))
    loss.backward()
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert params
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    assert any(p.grad.abs().sum() > 0 for _, p in params)


def test_eval_is_deterministic(built):
    _, net, sizes, _, _ = built
    net.eval()
    x = torch.rand(1, 3, *sizes[-1])
    with torch.no_grad():
        a, b = net(x), net(x)
    for ta, tb in zip(_tensors(a), _tensors(b)):
        assert torch.equal(ta, tb)


def test_checkpoint_round_trip(built, tmp_path):
    name, net, sizes, _, _ = built
    net.train()
    with torch.no_grad():  # move BatchNorm running statistics away from their init
        net(torch.rand(1, 3, *sizes[0]))
    net.eval()
    x = torch.rand(1, 3, *sizes[-1])
    with torch.no_grad():
        ref = net(x)
    card = save_checkpoint(net, tmp_path / "full", {"classes": ["fg"], "working_scale": 8.0})
    assert card["architecture"] == name
    loaded, card2 = load_checkpoint(tmp_path / "full.json")
    assert card2["sha256"] == card["sha256"]
    assert not loaded.training
    with torch.no_grad():
        got = loaded(x)
    assert set(got) == set(ref)
    for key in ref:
        assert torch.equal(got[key], ref[key]), f"{name}:{key} differs after fp32 round trip"

    save_checkpoint(net, tmp_path / "half", {}, half=True)
    loaded16, _ = load_checkpoint(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded16.parameters())
    with torch.no_grad():
        got16 = loaded16(x)
    for key in ref:
        scale = float(ref[key].abs().max()) + 1e-6
        assert torch.allclose(got16[key], ref[key], rtol=2e-2, atol=2e-2 * scale), key


# --- registry -------------------------------------------------------------------------

def test_folded_batch_norms_give_the_same_outputs(built):
    """The inference form (nets.fuse, used by NetSegmenter) of a copy: same outputs to rounding."""
    import copy

    from cellviewer.nets.fuse import fold_batch_norms

    name, net, sizes, _, _ = built
    net = copy.deepcopy(net)
    net.train()
    with torch.no_grad():  # running statistics away from their init, so the fold has work to do
        net(torch.rand(2, 3, *sizes[0]))
    net.eval()
    x = torch.rand(1, 3, *sizes[-1])
    had_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with torch.no_grad():
        before = _tensors(net(x))
        n = fold_batch_norms(net)
        after = _tensors(net(x))
    assert n > 0 or not had_bn, f"{name}: batch norms but none folded"
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-4 * (1 + float(a.abs().max()))), name


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelLoadError) as err:
        create_net("no-such-net")
    for name in list_nets():
        assert name in str(err.value)


def test_bad_config_is_a_model_load_error():
    with pytest.raises(ModelLoadError, match="do-unet"):
        create_net("do-unet", no_such_option=1)
    with pytest.raises(ModelLoadError):
        create_net("do-unet", base=object())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_net_takes_n_classes_as_training_passes_it(name):
    """Training builds a new net with ``n_classes=len(classes)``: every architecture takes that name
    (smp's ``classes`` is the same option for the U-Nets; giving both, different, is refused)."""
    cfg = {k: v for k, v in SMALL[name][0].items() if k not in ("classes", "n_classes")}
    hw = (100, 100) if name == "do-unet-valid" else (64, 64)
    net = create_net(name, n_classes=3, **cfg).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, *hw))["mask"].shape[1] == 3
    if name.startswith("unet"):
        with pytest.raises(ModelLoadError, match="same option"):
            create_net(name, n_classes=3, classes=2, **cfg)


def test_config_is_json_ready():
    net = create_net("node-unet", widths=(4, 8, 16))
    assert net.config == {"name": "node-unet", "widths": [4, 8, 16]}


# --- DO-U-Net ---------------------------------------------------------------------------

def test_do_unet_valid_maps_188_to_100():
    net = create_net("do-unet-valid", base=4).eval()
    assert net.output_size(188) == 100
    assert net.margin == 44
    with torch.no_grad():
        out = net(torch.rand(1, 3, 188, 188))
    assert out["mask"].shape[-2:] == (100, 100) and out["edge"].shape[-2:] == (100, 100)
    assert net.valid_input_size(185) == 188 and net.valid_input_size(188) == 188
    with pytest.raises(ValueError):
        net.output_size(187)
    with pytest.raises(SegmentationError, match="188"):
        net(torch.rand(1, 3, 187, 188))


# --- SegNet -----------------------------------------------------------------------------

def test_segnet_is_vgg16_shaped():
    net = create_net("segnet-dual", width_mult=0.0625)
    enc = sum(isinstance(m, torch.nn.Conv2d) for m in net.enc.modules())
    dec = sum(isinstance(m, torch.nn.Conv2d) for m in net.dec.modules())
    assert (enc, dec) == (13, 13)
    assert sum(isinstance(m, torch.nn.MaxUnpool2d) for m in net.modules()) == 1


# --- NODE-UNet --------------------------------------------------------------------------

def _nfe(net, x) -> int:
    net.reset_nfe()
    with torch.no_grad():
        net(x)
    return net.nfe


def test_node_unet_solver_trades_evaluations_for_tolerance():
    net = create_net("node-unet", widths=[4, 8, 16]).eval()
    x = torch.rand(1, 3, 32, 32)
    net.set_solver(rtol=1e-6, atol=1e-6)
    assert net.solver["rtol"] == 1e-6 and net.odes[0].atol == 1e-6
    tight = _nfe(net, x)
    net.set_solver(method="dopri5", rtol=1e-1, atol=1e-1)
    loose = _nfe(net, x)
    assert loose < tight
    assert net.config["rtol"] == 1e-1  # a checkpoint saved now records the solver
    net.set_solver(method="euler", step_size=0.5)
    assert _nfe(net, x) == 2
    net.set_solver(method="rk4", step_size=0.25)
    assert _nfe(net, x) == 16
    with pytest.raises(ValueError, match="dopri5"):
        net.set_solver(method="no-such-solver")


def test_node_unet_adjoint_gives_gradients():
    net = create_net("node-unet", widths=[4, 8], adjoint=True, rtol=1e-2, atol=1e-2)
    out = net(torch.rand(1, 3, 16, 16))
    out["mask"].mean().backward()
    grad = net.odes[0].func.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_clahe_y_enhances_luma_contrast():
    from cellviewer.nets.preprocess import clahe_y

    rng = np.random.default_rng(0)
    img = (120 + rng.integers(0, 20, (64, 64, 1))).astype(np.uint8).repeat(3, axis=2)
    out = clahe_y(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out.astype(float).std() > img.astype(float).std()
    # grey stays grey: only luma changes
    assert np.abs(out[..., 0].astype(int) - out[..., 2].astype(int)).max() <= 2
    with pytest.raises(ValueError):
        clahe_y(img.astype(np.float32))


# --- WBC-Net and DCED-Net: deep supervision / cascade outputs ---------------------------

def test_wbc_net_side_outputs_average_to_mask():
    net = create_net("wbc-net", depth=3, stem_ch=4, node_widths=[4, 8, 8, 8])
    net.train()
    out = net(torch.rand(2, 3, 40, 40))
    assert len(out["aux"]) == 3
    assert torch.allclose(out["mask"], torch.stack(out["aux"]).mean(0))
    net.eval()
    with torch.no_grad():
        assert set(net(torch.rand(1, 3, 40, 40))) == {"mask"}
    assert not any(k.startswith("layer4") or k.startswith("layer3")
                   for k in net.encoder.state_dict())


def test_dced_net_levels_feed_forward():
    net = create_net("dced-net", base=4, depth=2, levels=3, n_classes=2)
    assert net.levels[0].encoder[0][0][0].in_channels == 3
    assert net.levels[2].encoder[0][0][0].in_channels == 5
    net.train()
    out = net(torch.rand(2, 3, 20, 20))
    assert len(out["aux"]) == 2 and out["mask"].shape == (2, 2, 20, 20)


# --- backbone U-Net ---------------------------------------------------------------------

def test_unet_never_downloads_and_lists_encoders():
    with pytest.raises(ModelLoadError, match="never downloads"):
        create_net("unet", encoder="resnet18", encoder_weights="imagenet")
    with pytest.raises(ModelLoadError, match="resnet34") as err:
        create_net("unet", encoder="resnet9000")
    assert "mobilenet_v2" in str(err.value)


def test_unet_loads_local_encoder_weights(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    net = create_net("unet", encoder="resnet18", encoder_depth=2,
                     decoder_channels=[8, 8], encoder_weights_path=str(path))
    rep = net.encoder_weights_report
    assert rep["missing"] == [] and "fc.weight" in rep["unexpected"]
    assert torch.equal(net.model.encoder.conv1.weight, tv.conv1.weight)
    assert "encoder_weights_path" not in net.config
    assert not any(k.startswith("layer3") for k in net.model.encoder.state_dict())

    wrong = tmp_path / "wrong.pth"
    torch.save({"something.else": torch.zeros(3)}, wrong)
    with pytest.raises(ModelLoadError, match="No weight"):
        create_net("unet", encoder="resnet18", encoder_weights_path=str(wrong))
    bad_shape = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(2, 2, 2, 2)}, bad_shape)
    with pytest.raises(ModelLoadError, match="wrong shapes"):
        create_net("unet", encoder="resnet18", encoder_weights_path=str(bad_shape))


def test_parameter_counts_are_sane():
    # the defaults are the papers' sizes; a regression here means a wiring change
    n = sum(p.numel() for p in create_net("node-unet").parameters())
    assert 1e6 < n < 1e7


# --- cell classifiers (kind "classify": one crop in, class logits out) -----------------------

CLASSIFIERS = {"cell-cnn": dict(n_classes=5, widths=[4, 8, 8])}


def test_every_classifier_has_a_test_config_and_is_not_a_segmenter():
    assert sorted(CLASSIFIERS) == list_nets("classify")
    assert not set(CLASSIFIERS) & set(list_nets())
    assert set(list_nets(None)) == set(SMALL) | set(CLASSIFIERS)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_forward_backward_odd_sizes_and_round_trip(name, tmp_path):
    cfg = CLASSIFIERS[name]
    torch.manual_seed(0)
    net = create_net(name, **cfg)
    net.train()
    out = net(torch.rand(2, 3, 24, 24))
    assert set(out) == {"logits"} and tuple(out["logits"].shape) == (2, cfg["n_classes"])
    out["logits"].square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    net.eval()
    x = torch.rand(1, 3, 37, 29)  # odd sizes: global pooling
    with torch.no_grad():
        ref = net(x)["logits"]
        assert torch.equal(ref, net(x)["logits"])
    save_checkpoint(net, tmp_path / "c", {"classes": list("abcde")})
    loaded, card = load_checkpoint(tmp_path / "c")
    assert card["architecture"] == name and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x)["logits"], ref)
    with pytest.raises(ModelLoadError):
        create_net(name, n_classes=1)
