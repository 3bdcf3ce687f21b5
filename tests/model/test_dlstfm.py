"""The DLSTFM network: shapes, gradients, equivariance, tiling, TCM initialisation."""

import numpy as np
import pytest
import torch

from lst_pipeline.model.dlstfm import DLSTFM, ArchitectureConfig, ModelSpec
from lst_pipeline.testing import TINY_SPEC, random_lst_inputs, randomised_model

TINY = TINY_SPEC
inputs = random_lst_inputs


def randomise(model, seed=1):
    return randomised_model(model.spec, seed)


def test_shapes_dtype_and_nan_handling():
    model = randomise(DLSTFM(TINY))
    f1, c1, c2 = inputs()
    f1[0, 0, :5, :7] = float("nan")
    c2[1, 0, 10:20, 10:20] = float("nan")
    with torch.no_grad():
        out = model(f1, c1, c2)
    assert out.shape == f1.shape and out.dtype == torch.float32
    assert torch.isnan(out[0, 0, :5, :7]).all() and torch.isnan(out[1, 0, 10:20, 10:20]).all()
    assert torch.isfinite(out).sum() == out.numel() - 35 - 100  # NaN never spreads
    with pytest.raises(ValueError, match="not a multiple of the alignment 16"):
        model(f1[..., :60], c1[..., :60], c2[..., :60])  # the context's 16-px MODIS cells


def test_untrained_tcm_returns_reference_plus_coarse_change():
    torch.manual_seed(0)
    model = DLSTFM(TINY).eval()
    f1, c1, c2 = inputs()
    with torch.no_grad():
        out = model(f1, c1, c2)
    torch.testing.assert_close(out, f1 + (c2 - c1), atol=1e-4, rtol=0)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    model = DLSTFM(TINY)
    f1, c1, c2 = inputs(h=32, w=32)
    target = f1 + 0.5 * (c2 - c1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):  # the zero-initialised TCM output opens the path after one step
        opt.zero_grad()
        (model(f1, c1, c2) - target).abs().mean().backward()
        opt.step()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_translation_equivariance_for_aligned_shifts():
    model = randomise(DLSTFM(TINY))
    f1, c1, c2 = inputs(n=1, h=96, w=96)
    s, r = model.alignment, model.receptive_radius
    with torch.no_grad():
        out = model(f1, c1, c2)
        shifted = model(*(t.roll((s, 2 * s), dims=(2, 3)) for t in (f1, c1, c2)))
    back = shifted.roll((-s, -2 * s), dims=(2, 3))
    inner = (slice(None), slice(None), slice(r + 2 * s, -r - 2 * s), slice(r + 2 * s, -r - 2 * s))
    torch.testing.assert_close(back[inner], out[inner], atol=1e-5, rtol=0)


def test_tiles_with_receptive_halo_equal_whole_scene():
    model = randomise(DLSTFM(TINY))
    f1, c1, c2 = inputs(n=1, h=128, w=160)
    halo = model.receptive_radius
    a = model.alignment
    pad = -(-halo // a) * a  # halo rounded up to the alignment
    with torch.no_grad():
        whole = model(f1, c1, c2)
        tiled = torch.empty_like(whole)
        for y0 in range(0, 128, 64):
            for x0 in range(0, 160, 32):
                ys = slice(max(y0 - pad, 0), min(y0 + 64 + pad, 128))
                xs = slice(max(x0 - pad, 0), min(x0 + 32 + pad, 160))
                part = model(f1[..., ys, xs], c1[..., ys, xs], c2[..., ys, xs])
                tiled[..., y0:y0 + 64, x0:x0 + 32] = part[
                    ..., y0 - ys.start:y0 - ys.start + 64, x0 - xs.start:x0 - xs.start + 32]
    assert (tiled - whole).abs().max() <= 1e-4


@pytest.mark.parametrize("safm", ["strided", "atrous"])
def test_every_shape_is_an_argument(safm):
    import math

    for width, blocks, scales, context in [(8, 0, (1, 2), 0), (12, 1, (1, 2, 4), 8),
                                           (16, 2, (2, 4, 8, 16), 32)]:
        model = DLSTFM(ModelSpec(ArchitectureConfig(width=width, blocks=blocks, scales=scales,
                                                    context_scale=context, safm=safm)))
        fine = max(scales) if safm == "strided" and blocks else 1
        assert model.alignment == math.lcm(fine, context or 1)
        f1, c1, c2 = inputs(n=1, h=64, w=64)
        assert model(f1, c1, c2).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="multiple of 4"):
        ArchitectureConfig(width=10, scales=(1, 2, 4, 8))


def test_atrous_safm_is_equivariant_to_any_shift():
    spec = ModelSpec(ArchitectureConfig(width=8, blocks=2, scales=(1, 2, 4, 8), anomaly_radius=2,
                                        tcm_hidden=8, context_scale=0, safm="atrous"))
    model = randomise(DLSTFM(spec))
    assert model.alignment == 1
    f1, c1, c2 = inputs(n=1, h=80, w=80)
    r = model.receptive_radius
    with torch.no_grad():
        out = model(f1, c1, c2)
        shifted = model(*(t.roll((3, 5), dims=(2, 3)) for t in (f1, c1, c2)))
    back = shifted.roll((-3, -5), dims=(2, 3))
    inner = (slice(None), slice(None), slice(r + 5, -r - 5), slice(r + 5, -r - 5))
    torch.testing.assert_close(back[inner], out[inner], atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor", [10, 31, 32])
def test_the_network_follows_the_coarse_factor(factor):
    """Any MODIS pixel size: the context branch pools over exactly one coarse pixel, and
    tiles that start on coarse pixels with the halo at that factor equal the whole scene."""
    model = randomise(DLSTFM(TINY))
    assert model.alignment_at(factor) == factor  # atrous SAFM: only the coarse grid
    h, w = 6 * factor, 4 * factor
    f1, c1, c2 = inputs(n=1, h=h, w=w)
    halo = -(-model.receptive_radius_at(factor) // factor) * factor
    with torch.no_grad():
        whole = model(f1, c1, c2, coarse_factor=factor)
        tiled = torch.empty_like(whole)
        for y0 in range(0, h, 2 * factor):
            for x0 in range(0, w, 2 * factor):
                ys = slice(max(y0 - halo, 0), min(y0 + 2 * factor + halo, h))
                xs = slice(max(x0 - halo, 0), min(x0 + 2 * factor + halo, w))
                part = model(f1[..., ys, xs], c1[..., ys, xs], c2[..., ys, xs],
                             coarse_factor=factor)
                tiled[..., y0:y0 + 2 * factor, x0:x0 + 2 * factor] = part[
                    ..., y0 - ys.start:y0 - ys.start + 2 * factor,
                    x0 - xs.start:x0 - xs.start + 2 * factor]
    assert torch.isfinite(whole).all()
    assert (tiled - whole).abs().max() <= 1e-4
    with pytest.raises(ValueError, match=f"alignment {factor}"):
        model(f1[..., :-1, :], c1[..., :-1, :], c2[..., :-1, :], coarse_factor=factor)


def test_receptive_radius_is_an_upper_bound():
    model = randomise(DLSTFM(TINY))
    f1, c1, c2 = inputs(n=1, h=128, w=128)
    with torch.no_grad():
        base = model(f1, c1, c2)
        f1[0, 0, 64, 64] += 10.0
        poked = model(f1, c1, c2)
    changed = np.argwhere((poked - base)[0, 0].abs().numpy() > 0)
    reach = np.abs(changed - 64).max()
    assert 0 < reach <= model.receptive_radius


def test_a_pixel_gain_network_anchors_on_the_gain_and_ignores_it_otherwise():
    import dataclasses

    gained = ModelSpec(dataclasses.replace(TINY.architecture, pixel_gain=True))
    torch.manual_seed(0)
    untrained = DLSTFM(gained).eval()
    f1, c1, c2 = inputs()
    g = torch.rand(f1.shape, generator=torch.Generator().manual_seed(3)) * 2
    with torch.no_grad():
        out = untrained(f1, c1, c2, pixel_gain=g)
        ones = untrained(f1, c1, c2)  # no gain given: 1
    torch.testing.assert_close(out, f1 + g * (c2 - c1), atol=1e-4, rtol=0)
    torch.testing.assert_close(ones, f1 + (c2 - c1), atol=1e-4, rtol=0)
    # the same weights without the option: the gain is ignored, the network is unchanged
    trained = randomise(DLSTFM(gained))
    plain = DLSTFM(TINY)
    plain.load_state_dict(trained.state_dict())  # the option adds no tensor
    with torch.no_grad():
        torch.testing.assert_close(plain(f1, c1, c2, pixel_gain=g), trained(f1, c1, c2),
                                   atol=1e-5, rtol=0)
        assert (trained(f1, c1, c2, pixel_gain=g) - trained(f1, c1, c2)).abs().max() > 0.1
