"""Net2WiderNet widening of a DO-U-Net: same function, more channels, copies that differ."""

import pytest

torch = pytest.importorskip("torch")

from cellviewer.core.errors import ModelLoadError  # noqa: E402
from cellviewer.nets.registry import create_net  # noqa: E402
from cellviewer.nets.widen import widen_do_unet  # noqa: E402


def _trained_like(name="do-unet", **cfg):
    """A net whose BatchNorm statistics and weights are not the initial ones."""
    torch.manual_seed(0)
    net = create_net(name, **{"base": 4, "depth": 2, "n_classes": 3, **cfg})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


@pytest.mark.parametrize("edge", [True, False])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_widened_net_computes_the_same_function(edge, mode):
    net = _trained_like(edge=edge)
    getattr(net, mode)()
    wide = widen_do_unet(net, 7, seed=3)
    assert wide.config["base"] == 7 and wide.training == net.training
    n_old = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for p in wide.parameters()) > 2 * n_old
    x = torch.rand(2, 3, 37, 45)  # odd sizes: the padded form pads internally
    with torch.no_grad():
        a, b = net(x), wide(x)
    assert set(a) == set(b) == ({"mask", "edge"} if edge else {"mask"})
    for key in a:
        assert a[key].shape == b[key].shape
        assert torch.allclose(a[key], b[key], atol=1e-4), (key, float((a[key] - b[key]).abs().max()))


def test_valid_form_widens_too():
    net = _trained_like("do-unet-valid").eval()
    wide = widen_do_unet(net, 6)
    x = torch.rand(1, 3, 140, 140)
    with torch.no_grad():
        assert torch.allclose(net(x)["mask"], wide(x)["mask"], atol=1e-4)


def test_copies_differ_so_training_can_pull_them_apart():
    net = _trained_like().eval()
    wide = widen_do_unet(net, 8, seed=1)
    # which old channel each new channel of down.0.0 copies (its producer weights are equal)
    prod_old, prod_new = net.down[0][0][0].weight, wide.down[0][0][0].weight
    g = [next(c for c in range(4) if torch.equal(prod_new[j], prod_old[c])) for j in range(8)]
    assert g[:4] == [0, 1, 2, 3]
    w_next = wide.down[0][1][0].weight  # reads the copied channels
    j = 4  # a copy and its original have different outgoing weights...
    assert not torch.allclose(w_next[:, j], w_next[:, g[j]])
    # ...and the shares of all copies of a channel add up to the original's weights
    old_next = net.down[0][1][0].weight
    for c in range(4):
        total = sum(w_next[:4, k] for k in range(8) if g[k] == c)
        assert torch.allclose(total, old_next[:, c], atol=1e-6)
    # equal shares give identical copies
    same = widen_do_unet(net, 8, split=0.0, seed=1).down[0][1][0].weight
    assert torch.allclose(same[:, j], same[:, g[j]])
    # and the wider net trains: one step changes the copies differently
    wide.train()
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    wide(torch.rand(2, 3, 32, 32))["mask"].square().mean().backward()
    opt.step()
    conv = wide.down[0][0][0].weight
    assert not torch.allclose(conv[j], conv[g[j]])


def test_noise_changes_the_function_a_little():
    net = _trained_like().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        diff = (net(x)["mask"] - widen_do_unet(net, 6, noise=0.01)(x)["mask"]).abs().max()
    assert 0 < float(diff) < 1.0


def test_refuses_other_architectures_narrowing_and_groupnorm():
    with pytest.raises(ModelLoadError, match="Only DO-U-Net"):
        widen_do_unet(create_net("dced-net"), 8)
    with pytest.raises(ModelLoadError, match="narrower"):
        widen_do_unet(_trained_like(), 2)
    with pytest.raises(ModelLoadError, match="BatchNorm"):
        widen_do_unet(create_net("do-unet", base=4, depth=2, norm="gn"), 8)
