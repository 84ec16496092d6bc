import torch
import pytest

from autoal.models import build_model


def test_resnet18_small_stem_shapes_and_mc_head():
    m = build_model("resnet18", 1, 7, 28, width=8)
    x = torch.randn(3, 1, 28, 28)
    logits, maps = m.forward_with_stages(x)
    assert logits.shape == (3, 7) and len(maps) == 4
    assert maps[0].shape[-1] == 28  # stride-1 stem, no max-pool
    assert [mp.shape[1] for mp in maps] == m.stage_channels == [8, 16, 32, 64]
    emb = m.embed(x)
    assert emb.shape == (3, m.embedding_dim)
    mc = m.mc_head(emb, 4, generator=torch.Generator().manual_seed(0))
    assert mc.shape == (4, 3, 7)
    assert not torch.allclose(mc[0], mc[1])  # dropout really varies between head passes


def test_small_cnn_on_digits_size_and_dropout_free_mc_is_constant():
    m = build_model("small_cnn", 1, 10, 8, dropout=0.0)
    emb = m.embed(torch.randn(5, 1, 8, 8))
    mc = m.mc_head(emb, 3)
    assert torch.allclose(mc[0], mc[2])
    assert len(m.stages(torch.randn(2, 1, 8, 8))) == 4


def test_dropout_keep_mask_keeps_one_minus_p_and_rescales_exactly():
    from autoal.models.base import dropout_keep_mask

    for p in (0.1, 0.3, 0.5):
        keep, scale = dropout_keep_mask((400, 500), p, torch.Generator().manual_seed(0), torch.device("cpu"))
        assert keep.shape == (400, 500) and keep.dtype == torch.bool
        n = keep.numel()
        assert abs(keep.float().mean().item() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5
        assert abs(scale - 1 / (1 - p)) < 1e-4
    # seeded; odd sizes (not a multiple of the 4 lanes in a 64-bit word) work
    a, _ = dropout_keep_mask((7, 3), 0.3, torch.Generator().manual_seed(1), torch.device("cpu"))
    b, _ = dropout_keep_mask((7, 3), 0.3, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(a, b)


def test_mc_head_is_an_unbiased_dropout_of_the_head():
    from autoal.models import build_model

    m = build_model("small_cnn", 1, 10, 8, dropout=0.3)
    emb = torch.randn(50, m.embedding_dim, generator=torch.Generator().manual_seed(0))
    mc = m.mc_head(emb, 4000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = m.fc(emb)
    assert mc.shape == (4000, 50, 10)
    assert torch.allclose(mc.mean(0), ref, atol=0.05)  # inverted dropout keeps the expectation
    assert mc.std(0).mean() > 0.05  # and the draws really differ


def test_class_probabilities_equal_torch_softmax():
    from autoal.cache import class_probabilities

    z = torch.randn(3, 200, 10, generator=torch.Generator().manual_seed(0)) * 30
    z[0, 0] = torch.tensor([1000.0] + [0.0] * 9)  # no overflow
    p = class_probabilities(z.clone())
    assert torch.allclose(p, torch.softmax(z, -1), atol=1e-6)
    assert torch.allclose(p.sum(-1), torch.ones(3, 200))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dropout_keep_mask_on_cuda_keeps_one_minus_p():
    from autoal.models.base import dropout_keep_mask

    keep, _ = dropout_keep_mask((1000, 512), 0.3, torch.Generator(device="cuda").manual_seed(0), torch.device("cuda"))
    assert keep.is_cuda and abs(keep.float().mean().item() - 0.7) < 4 * (0.21 / keep.numel()) ** 0.5


def test_strided_shortcut_is_the_strided_pointwise_convolution():
    from autoal.models.resnet import StridedPointwise

    torch.manual_seed(0)
    ours = StridedPointwise(8, 16, 2)
    ref = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False)
    ref.load_state_dict(ours.state_dict())  # same parameters, same state-dict keys
    for hw in (32, 31, 7):
        x = torch.randn(3, 8, hw, hw)
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_resnet18_channels_last_backward_on_cpu_with_an_odd_batch_survives():
    """Torch's strided 1x1 convolution crashed the process (SIGSEGV) in this exact case: CPU,
    channels-last, 8 -> 16 channels, batch 33, 2 threads. Run in a child so a crash is a failure."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from autoal.models import build_model\n"
        "from autoal.device import prepare_model, prepare_batch\n"
        "torch.set_num_threads(2)\n"
        "cpu = torch.device('cpu')\n"
        "m = prepare_model(build_model('resnet18', 3, 10, 32, width=8), cpu).train()\n"
        "for n in (33, 5, 3):\n"
        "    m(prepare_batch(torch.randn(n, 3, 32, 32), cpu)).sum().backward()\n"
        "print('survived')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "survived" in out.stdout, (out.returncode, out.stderr[-2000:])
