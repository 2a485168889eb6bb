"""Tests of shls_jax.training.losses against the reference loss values and a dense torch formulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shls_jax.training import losses


def _rel(ours, ref):
  return abs(float(ours) - float(ref)) / max(abs(float(ref)), 1e-6)


def _mode_pools(spx, labels):
  """Most frequent label per superpixel 1..N, ties to the smallest label."""
  n, k = spx.max(), labels.max()
  counts = np.zeros((n + 1, k + 1), np.int64)
  np.add.at(counts, (spx.ravel(), labels.ravel()), 1)
  return counts[1:].argmax(axis=1)


def _dense_torch_ntxent(features, triplets, temperature=0.07):
  """NT-Xent with an explicit [M, M] anchor-match mask, as the reference library computes it."""
  a, p, n = (torch.from_numpy(np.asarray(t, np.int64)) for t in triplets)
  unit = F.normalize(features, p=2, dim=1)
  mat = unit @ unit.T
  pos = mat[a, p][:, None] / temperature
  neg = (mat[a, n] / temperature)[None, :].expand(len(a), -1)
  neg = neg.masked_fill(a[None, :] != a[:, None], float('-inf'))
  top = torch.maximum(pos, neg.max(dim=1, keepdim=True)[0]).detach()
  num = torch.exp(pos - top)[:, 0]
  den = torch.exp(neg - top).sum(dim=1) + num
  return -torch.log(num / den + torch.finfo(features.dtype).tiny).mean()


def test_ntxent_matches_reference_value(parity_vectors):
  v = parity_vectors
  loss = losses.ntxent_loss(v['embed.superfeatures'], v['pools.pools0'], v['loss.triplets'])
  assert _rel(loss, v['loss.ntxent']) < 1e-4


def test_train_ntxent_matches_reference_value(parity_vectors):
  v = parity_vectors
  labels = [_mode_pools(v['train.spx_merged0'], v['label'][0])]
  labels += [_mode_pools(v['spx'][t], v['label'][t]) for t in (1, 2)]
  values = []
  for t in range(3):
    triplets = v[f'train.triplets{t}']
    # The recorded triplets follow the sampler's rules on these labels.
    assert np.all(labels[t][triplets[0]] == labels[t][triplets[1]])
    assert np.all(labels[t][triplets[0]] != labels[t][triplets[2]])
    values.append(losses.ntxent_loss(v[f'train.frame{t}.superfeatures'], labels[t], triplets))
  assert _rel(np.mean(values), v['train.loss_ntxent']) < 1e-4


def test_ntxent_value_and_gradient_match_dense_torch():
  rng = np.random.default_rng(0)
  labels = rng.integers(1, 4, 40)
  feats = rng.normal(size=(40, 8)).astype(np.float32)
  feats[3] = 0  # zero superfeatures are common after the ReLU
  triplets = losses.random_triplets(labels, rng, per_anchor=5)
  value, grad = jax.jit(jax.value_and_grad(losses.ntxent_loss), static_argnums=3)(
    jnp.asarray(feats), jnp.asarray(labels), jnp.asarray(triplets), 0.07
  )
  t_feats = torch.from_numpy(feats).requires_grad_()
  ref = _dense_torch_ntxent(t_feats, triplets)
  ref.backward()
  assert _rel(value, ref.item()) < 1e-5
  ref_grad = t_feats.grad.numpy()
  assert np.all(np.isfinite(np.asarray(grad)))
  assert np.abs(np.asarray(grad) - ref_grad).max() / np.abs(ref_grad).max() < 1e-4


def test_ntxent_without_pairs_is_zero():
  feats = np.ones((4, 3), np.float32)
  assert float(losses.ntxent_loss(feats, np.arange(4), np.zeros((3, 0), np.int64))) == 0.0
  assert float(losses.ntxent_loss(feats, np.arange(4), np.array([[0], [1], [2]]))) == 0.0
  with pytest.raises(ValueError, match='triplets'):
    losses.ntxent_loss(feats, np.arange(4), np.zeros((2, 5), np.int64))
  with pytest.raises(ValueError, match='labels'):
    losses.ntxent_loss(feats, np.arange(3), np.zeros((3, 5), np.int64))


def test_random_triplets_invariants():
  labels = np.array([1, 2, 1, 3, 1, 2, 4, 1, 2, 2])  # class 3 and 4 have a single member
  triplets = losses.random_triplets(labels, np.random.default_rng(1), per_anchor=16)
  assert triplets.dtype == np.int64
  anchor, positive, negative = triplets
  assert np.all(anchor != positive)
  assert np.all(labels[anchor] == labels[positive])
  assert np.all(labels[anchor] != labels[negative])
  counts = np.bincount(anchor, minlength=labels.size)
  assert np.all(counts[labels <= 2] == 16) and np.all(counts[labels > 2] == 0)
  assert np.all(np.diff(labels[anchor]) >= 0)  # classes in increasing order
  # Single-member classes are still drawn as negatives.
  assert {3, 4} <= set(labels[negative].tolist())
  # Every other member of a class is reachable as a positive.
  big = losses.random_triplets(labels, np.random.default_rng(2), per_anchor=200)
  pairs = set(zip(big[0].tolist(), big[1].tolist()))
  for i in np.flatnonzero(labels == 1):
    assert {(i, j) for j in np.flatnonzero(labels == 1) if j != i} <= pairs


def test_random_triplets_without_usable_class():
  assert losses.random_triplets(np.array([1, 2, 3]), np.random.default_rng(0)).shape == (3, 0)
  assert losses.random_triplets(np.array([2, 2, 2]), np.random.default_rng(0)).shape == (3, 0)


def test_cross_entropy_matches_reference_and_torch(parity_vectors):
  v = parity_vectors
  logits = np.moveaxis(v['frame1.pred'][0], 0, -1)
  assert _rel(losses.cross_entropy(logits, v['label'][1]), v['loss.ce_frame1']) < 1e-4
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  labels = rng.integers(1, 4, (2, 5, 6))
  ref = F.cross_entropy(
    torch.from_numpy(np.moveaxis(logits, -1, 1)), torch.from_numpy(labels - 1)
  ).item()
  assert _rel(losses.cross_entropy(logits, labels), ref) < 1e-6
  with pytest.raises(ValueError, match='disagree'):
    losses.cross_entropy(logits, labels[..., 0])
