import torch

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
