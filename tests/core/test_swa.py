"""SWA helpers: the window keeps the last n epochs, the average is their mean, BatchNorm is re-estimated."""

import pytest

torch = pytest.importorskip("torch")

from cellviewer.core.swa import WeightWindow, average_into, refresh_batchnorm  # noqa: E402


def _net():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_average_of_the_window_is_the_mean_of_its_last_snapshots():
    net = _net()
    win = WeightWindow(2)
    for value in (1.0, 2.0, 4.0):  # the first one falls out of the window
        with torch.no_grad():
            net[0].weight.fill_(value)
        win.add(net)
    assert len(win) == 2
    assert average_into(net, win) == 2
    assert torch.allclose(net[0].weight, torch.full_like(net[0].weight, 3.0))
    assert net[1].num_batches_tracked.dtype == torch.int64  # integer buffers untouched


def test_refresh_batchnorm_measures_the_batches():
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
    batches = [torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), 7.0)]
    assert refresh_batchnorm(net, batches)
    assert torch.allclose(net[1].running_mean, torch.full((2,), 6.0))
    assert net[1].momentum == 0.1  # momentum restored
    assert not refresh_batchnorm(torch.nn.Conv2d(1, 1, 1), batches)


def test_empty_window_changes_nothing():
    net = _net()
    before = net[0].weight.clone()
    assert average_into(net, WeightWindow(3)) == 0 and torch.equal(net[0].weight, before)
    with pytest.raises(ValueError):
        WeightWindow(0)
