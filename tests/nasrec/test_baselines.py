import torch
import torch.nn.functional as F

from nasrec.baselines import build_baseline


def _cin_reference(model, x0):
    """The paper's form: outer products [B, m*H, D], 1x1 convolution, ReLU, sum over D."""
    b, m, d = x0.shape
    x, pooled = x0, []
    for conv in model.cin:
        z = torch.einsum("bmd,bhd->bmhd", x0, x).reshape(b, m * x.shape[1], d)
        x = F.relu(conv(z))
        pooled.append(x.sum(2))
    return pooled


def test_xdeepfm_cin_matmul_equals_outer_product_convolution(tiny_data):
    model = build_baseline("xdeepfm", tiny_data.schema, 0)
    with torch.no_grad():  # nonzero biases, so a misplaced bias would show
        for conv in model.cin:
            conv.bias.normal_()
    x0 = torch.randn(5, model.cin_fields, 16, generator=torch.Generator().manual_seed(1))
    got, want = model.cin_pooled(x0), _cin_reference(model, x0)
    assert [g.shape for g in got] == [w.shape for w in want] == [(5, 128), (5, 128)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-4)


def test_xdeepfm_cin_crosses_the_sparse_fields_only(tiny_data):
    model = build_baseline("xdeepfm", tiny_data.schema, 0)
    assert model.cin_fields == tiny_data.schema.n_sparse < model.tokens.n_tokens
    assert model.cin[0].in_channels == tiny_data.schema.n_sparse ** 2


def test_a_revised_baseline_gets_a_new_truth_key():
    from nasrec.baselines import REVISION
    from nasrec.scratch import TruthRecipe, truth_key
    r = TruthRecipe()
    assert truth_key("d", "xdeepfm", r, 0)["model_revision"] == REVISION["xdeepfm"] >= 2
    assert "model_revision" not in truth_key("d", "dlrm", r, 0)  # unrevised keys stay as they were
