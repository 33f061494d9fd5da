"""DDPM schedule, time conversion, samplers and networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genwindow.errors import ConfigError
from genwindow.unet.diffusion import Diffusion, DiffusionConfig
from genwindow.unet.models import ModelConfig, build_model, count_parameters


@pytest.fixture(scope="module")
def diffusion():
    return Diffusion(DiffusionConfig())


def test_time_of_index_matches_alpha_bar(diffusion):
    k = np.array([0, 40, 500, 999])
    t = diffusion.time_of_index(k)
    assert np.allclose(np.exp(-2 * t), diffusion.alpha_bar[k], rtol=1e-12)


def test_t_001_is_index_40(diffusion):
    assert int(diffusion.index_of_time(0.01)) == 40
    # Sum of the first 41 betas over two, to first order: 41·1e-4/2 + (betas' slope) term.
    assert abs(diffusion.time_of_index(40) - 0.01) < 5e-4


def test_index_time_round_trip(diffusion):
    k = np.arange(1000)
    assert np.array_equal(diffusion.index_of_time(diffusion.time_of_index(k)), k)


def test_index_of_time_rejects_out_of_range(diffusion):
    with pytest.raises(ConfigError):
        diffusion.index_of_time(100.0)
    with pytest.raises(ConfigError):
        diffusion.index_of_time(0.0)


def test_q_sample_moments(diffusion):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 2), 3.0)
    noise = torch.randn(x0.shape, generator=generator)
    k = torch.full((20000,), 300, dtype=torch.long)
    xk = diffusion.q_sample(x0, k, noise)
    ab = diffusion.alpha_bar[300]
    # Standard error of the mean is sqrt((1 − ᾱ)/40000); allow five of them.
    tolerance = 5 * math.sqrt((1 - ab) / 40000)
    assert abs(float(xk.mean()) - 3 * math.sqrt(ab)) < tolerance
    assert abs(float(xk.var()) - (1 - ab)) < 0.05 * (1 - ab)


class ExactPointEps(torch.nn.Module):
    """The exact ε-predictor when the data is one point a: ε = (x − sqrt(ᾱ) a)/sqrt(1 − ᾱ)."""

    def __init__(self, diffusion, point):
        super().__init__()
        self.alpha_bar = torch.tensor(diffusion.alpha_bar, dtype=torch.float32)
        self.point = point

    def forward(self, x, k, labels=None):
        ab = self.alpha_bar[k].view(-1, *([1] * (x.dim() - 1)))
        return (x - ab.sqrt() * self.point) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler,steps", [("ddim", 20), ("ddpm", 1000)])
def test_sampler_reaches_the_single_data_point(diffusion, sampler, steps):
    point = torch.tensor([0.5, -1.0, 2.0])
    samples = diffusion.sample(ExactPointEps(diffusion, point), [0, 1, 2], (3,),
                               sampler=sampler, num_steps=steps)
    assert torch.allclose(samples, point.expand(3, 3), atol=1e-3)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samples_depend_on_seed_not_batch(sampler):
    small = Diffusion(DiffusionConfig(steps=50))
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="mlp", width=16, blocks=1, dropout=0.0), (4,)).eval()
    seeds = [5, 6, 7, 8, 9]
    together = small.sample(model, seeds, (4,), sampler=sampler, num_steps=10, batch_size=5)
    apart = small.sample(model, seeds, (4,), sampler=sampler, num_steps=10, batch_size=2)
    alone = small.sample(model, [7], (4,), sampler=sampler, num_steps=10)
    assert torch.allclose(together, apart, atol=1e-5)
    assert torch.allclose(together[2], alone[0], atol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_ddim_indices_cover_range(diffusion):
    indices = diffusion.ddim_indices(50)
    assert indices[0] == 999
    assert indices[-1] == 0
    assert len(indices) == 50
    assert np.all(np.diff(indices) < 0)


def test_unet_has_paper_parameter_count():
    model = build_model(ModelConfig(kind="unet", width=32), (1, 32, 32))
    assert 3.9e6 < count_parameters(model) < 4.1e6


def test_unet_forward_shapes_and_condition():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="unet", width=8, heads=4), (1, 8, 8), num_classes=3)
    x = torch.randn(2, 1, 8, 8)
    k = torch.tensor([3, 700])
    assert model(x, k, torch.tensor([0, 2])).shape == x.shape
    # Labels None means the null condition, the last embedding row.
    assert torch.equal(model(x, k, None), model(x, k, torch.tensor([3, 3])))


def test_unet_rejects_vectors():
    with pytest.raises(ConfigError, match="use --model mlp"):
        build_model(ModelConfig(kind="unet", width=8), (8,))


def test_mlp_on_vectors_and_images():
    torch.manual_seed(0)
    vector_model = build_model(ModelConfig(kind="mlp", width=128, blocks=3), (8,))
    assert vector_model(torch.randn(5, 8), torch.zeros(5)).shape == (5, 8)
    assert 1.5e5 < count_parameters(vector_model) < 2.0e5
    image_model = build_model(ModelConfig(kind="mlp", width=32, blocks=2), (1, 8, 8))
    assert image_model(torch.randn(5, 1, 8, 8), torch.zeros(5)).shape == (5, 1, 8, 8)
