"""Mutual k-NN alignment: known values, symmetry, bounds, chunking and its Parquet table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.mutual_knn import (
    ALIGNMENT_COLUMNS,
    alignment_path,
    alignment_rows,
    alignment_table,
    knn_indices,
    mutual_knn,
    read_alignment,
    write_alignment,
)


def _gauss(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_identical_and_rotated_spaces_align_perfectly():
    x = _gauss(300, 16, 0)
    assert mutual_knn(x, x, k=10) == 1.0
    q, _ = torch.linalg.qr(_gauss(16, 16, 1).double())
    assert mutual_knn(x, x.double() @ q, k=10) == 1.0  # cosine neighbourhoods survive a rotation
    assert mutual_knn(x, 3.0 * x.numpy(), k=10) == 1.0  # and a rescaling (numpy input works too)


def test_independent_spaces_are_near_chance():
    n, k = 400, 10
    values = [mutual_knn(_gauss(n, 32, 2 * s), _gauss(n, 32, 2 * s + 1), k=k) for s in range(3)]
    chance = k / (n - 1)
    assert min(values) >= 0.0 and max(values) < 3 * chance
    assert np.mean(values) == pytest.approx(chance, abs=0.5 * chance)


def test_partially_related_spaces_symmetric_and_bounded():
    x = _gauss(250, 12, 3)
    y = x + 0.8 * _gauss(250, 12, 4)
    z = _gauss(250, 20, 5)  # another feature dimension is fine
    ab, ba = mutual_knn(x, y, k=5), mutual_knn(y, x, k=5)
    assert ab == ba
    assert 0.0 < mutual_knn(x, z, k=5) < ab < 1.0


def test_chunked_equals_unchunked_and_self_is_excluded():
    x, y = _gauss(157, 8, 6), _gauss(157, 8, 7) + 0.5 * _gauss(157, 8, 6)
    full = mutual_knn(x, y, k=7, chunk_size=10_000)
    for chunk in (1, 13, 64):
        assert mutual_knn(x, y, k=7, chunk_size=chunk) == full
    knn = knn_indices(x, 7, chunk_size=13)
    assert torch.equal(knn, knn_indices(x, 7, chunk_size=1000))
    assert not (knn == torch.arange(157)[:, None]).any()
    brute = (torch.nn.functional.normalize(x.double(), dim=1) @ torch.nn.functional.normalize(x.double(), dim=1).T)
    brute.fill_diagonal_(-2.0)
    assert torch.equal(knn, brute.topk(7, dim=1).indices)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same images"):
        mutual_knn(_gauss(10, 4, 0), _gauss(11, 4, 0), k=3)
    with pytest.raises(ValueError, match="k must be"):
        mutual_knn(_gauss(10, 4, 0), _gauss(10, 4, 0), k=10)
    with pytest.raises(ValueError, match="2-D"):
        mutual_knn(torch.zeros(10), torch.zeros(10), k=3)


def test_sample_is_seeded_sorted_and_distinct():
    a, b = alignment_rows(5000, 1000, seed=0), alignment_rows(5000, 1000, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 1000 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, alignment_rows(5000, 1000, seed=1))
    assert np.array_equal(alignment_rows(30, 1000, seed=3), np.arange(30))


def test_alignment_table_every_unordered_pair_and_storage(tmp_path):
    base = _gauss(120, 8, 8)
    feats = {"zeta": base, "alpha": base * 2.0, "mid": _gauss(120, 8, 9)}
    rows = alignment_rows(1000, 120, seed=4)
    table = alignment_table(feats, dataset="toy", k=5, sample_seed=4, sample=rows)
    assert list(table.columns) == ALIGNMENT_COLUMNS
    pairs = list(zip(table["backbone_a"], table["backbone_b"], strict=True))
    assert pairs == [("alpha", "mid"), ("alpha", "zeta"), ("mid", "zeta")]
    got = dict(zip(pairs, table["alignment"], strict=True))
    assert got[("alpha", "zeta")] == 1.0
    assert got[("alpha", "mid")] == pytest.approx(mutual_knn(base, feats["mid"], k=5))
    assert set(table["k"]) == {5} and set(table["n"]) == {120} and set(table["sample_seed"]) == {4}
    assert table["sample_hash"].nunique() == 1 and len(table["sample_hash"][0]) == 64

    (path,) = write_alignment(table, tmp_path)
    assert path == alignment_path(tmp_path, "toy") == tmp_path / "alignment" / "toy.parquet"
    back = read_alignment(tmp_path)
    pd.testing.assert_frame_equal(back, table)
    # a second write for another k keeps the first; the same measurement again replaces it
    write_alignment(alignment_table(feats, dataset="toy", k=3, sample_seed=4, sample=rows), tmp_path)
    write_alignment(table.assign(alignment=0.5), tmp_path)
    back = read_alignment(tmp_path)
    assert len(back) == 6 and set(back.loc[back["k"] == 5, "alignment"]) == {0.5}
    assert not list((tmp_path / "alignment").glob(".*"))
    assert read_alignment(tmp_path / "nothing").empty


def test_alignment_table_needs_matching_rows():
    with pytest.raises(ValueError, match="same images"):
        alignment_table({"a": _gauss(10, 4, 0), "b": _gauss(9, 4, 0)}, dataset="toy", k=3)
    with pytest.raises(ValueError, match="two backbones"):
        alignment_table({"a": _gauss(10, 4, 0)}, dataset="toy", k=3)
