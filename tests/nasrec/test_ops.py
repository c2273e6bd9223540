import pytest
import torch

from nasrec.ops import (D2S_TOKENS, EMB_DIM, EFC, FC, Attention, DenseToSparse, DotProduct,
                        ElasticLinear, FMToDense, SigmoidGating, Sum, dot_tokens)

B = 5


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(B, 40, generator=g, requires_grad=True)
    sparse = torch.randn(B, 30, EMB_DIM, generator=g, requires_grad=True)
    left = torch.randn(B, 24, generator=g, requires_grad=True)
    right = torch.randn(B, 32, generator=g, requires_grad=True)
    return dense, sparse, left, right


@pytest.mark.parametrize("make", [lambda: FC(40, 64), lambda: DotProduct(40, 30, 64, dot_tokens(64)),
                                  lambda: SigmoidGating(64, 64), lambda: Sum(64, 64)],
                         ids=["fc", "dot", "gating", "sum"])
def test_dense_ops_shapes_and_gradients(make):
    op = make()
    dense, sparse, left, right = _inputs()
    out = op(dense, None, sparse, None, left, right, 48)
    assert out.shape == (B, 48)
    out.square().sum().backward()
    grads = [p.grad for p in op.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    used = [x for x in (dense, sparse, left, right) if x.grad is not None]
    assert used and all(x.grad.abs().sum() > 0 for x in used)


@pytest.mark.parametrize("cls", [EFC, Attention])
def test_sparse_ops_shapes_and_gradients(cls):
    op = cls(30, 64)
    _, sparse, _, _ = _inputs()
    out = op(sparse, None, 16)
    assert out.shape == (B, 16, EMB_DIM)
    out.sum().backward()
    assert sparse.grad is not None and sparse.grad.abs().sum() > 0
    assert all(p.grad is not None for p in op.parameters())


def test_mergers_shapes():
    d = torch.randn(B, 32)
    s = torch.randn(B, 20, EMB_DIM)
    assert DenseToSparse(64)(d).shape == (B, D2S_TOKENS, EMB_DIM)
    fm = FMToDense(64)
    out = fm(s, 32)
    assert out.shape == (B, 32)
    # The FM term is pairwise: a single token gives zero interaction (then LayerNorm of zeros).
    assert torch.allclose(fm(s[:, :1], 32), fm.ln.bias[:32].expand(B, 32), atol=1e-5)


def test_elastic_linear_slices_match_a_small_linear():
    big = ElasticLinear(10, 8)
    x = torch.randn(3, 5)
    out = big(x, 4, ((2, 4), (7, 10)))
    ref = x @ torch.cat([big.weight[:4, 2:4], big.weight[:4, 7:10]], 1).T + big.bias[:4]
    assert torch.allclose(out, ref)
    small = ElasticLinear(5, 4)
    small.load_state_dict(big.sliced_state())
    assert torch.allclose(small(x), out)


def test_operator_balancing_keeps_dot_products_near_max_width():
    rows = dot_tokens(1024)
    assert rows == 45  # round(sqrt(2 * 1024)), REFERENCE.md
    assert abs((rows + 1) * rows // 2 - 1024) < 0.05 * 1024
