#!/usr/bin/env python3
"""Golden fixtures for `margin eval` from pytorch-metric-learning's AccuracyCalculator.

Writes tests/fixtures/eval/*.json. Each case holds query (and optionally reference) embeddings
whose values are exactly representable in float32, integer labels, the metric, and the metrics
PML 2.9's default `AccuracyCalculator()` (k=None, avg_of_avgs=False) reports with an exact
brute-force k-NN (`CustomKNN`, since faiss is not installed). Metrics PML returns as NaN (every
query label lone) are stored as null.

Near-ties are avoided: a case is resampled until, in every query row, neighbours of different
relevance (same vs. different label) are separated by a clear gap, so float32 rounding in any
backend cannot reorder them in a way that changes a metric.

Run with the venv that has torch and pytorch-metric-learning:
    /opt/pyenv-pml/bin/python scripts/pml_eval_golden.py
"""

import json
import math
import os

import numpy as np
import torch
from pytorch_metric_learning.distances import (
    CosineSimilarity,
    DotProductSimilarity,
    LpDistance,
)
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

METRICS = (
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
)
GAP = 2e-5
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "eval")


def pml_distance(distance, normalize):
    if distance == "euclidean":
        return LpDistance(normalize_embeddings=normalize, p=2, power=1)
    if distance == "squared-euclidean":
        return LpDistance(normalize_embeddings=normalize, p=2, power=2)
    if distance == "cosine":
        return CosineSimilarity()
    if distance == "dot":
        return DotProductSimilarity(normalize_embeddings=normalize)
    raise ValueError(distance)


def f64_matrix(distance, normalize, q, r):
    """The metric in float64, for the near-tie check; returned as 'smaller is closer'."""
    q, r = q.astype(np.float64), r.astype(np.float64)
    if normalize or distance == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    if distance in ("cosine", "dot"):
        return -(q @ r.T)
    sq = np.maximum((q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T, 0)
    return np.sqrt(sq) if distance == "euclidean" else sq


def bad_rows(distance, normalize, q, ql, r, rl, same):
    """Query rows where two neighbours of different relevance lie within GAP of each other."""
    mat = f64_matrix(distance, normalize, q, r)
    bad = []
    for i in range(len(q)):
        row, rel = mat[i], (rl == ql[i])
        keep = np.ones(len(r), dtype=bool)
        if same:
            keep[i] = False
        d, rel = row[keep], rel[keep]
        order = np.argsort(d, kind="stable")
        d, rel = d[order], rel[order]
        scale = max(1.0, float(np.abs(d).max())) if len(d) else 1.0
        close = np.diff(d) < GAP * scale
        if np.any(close & (rel[1:] != rel[:-1])):
            bad.append(i)
    return bad


def sample(rng, centers, n, classes):
    """Clustered float32 points: class centers plus noise, so metrics are not trivially 0 or 1."""
    d = centers.shape[1]
    labels = np.array([rng.choice(classes) for _ in range(n)], dtype=np.int64)
    x = centers[labels] + rng.normal(scale=0.8, size=(n, d)).astype(np.float32)
    return x.astype(np.float32), labels


def pml_metrics(distance, normalize, q, ql, r, rl, k=None):
    calc = AccuracyCalculator(
        include=METRICS,
        k=k,
        device=torch.device("cpu"),
        knn_func=CustomKNN(pml_distance(distance, normalize)),
        kmeans_func=lambda x, k: None,
    )
    qt, qlt = torch.from_numpy(q), torch.from_numpy(ql)
    if r is None:
        acc = calc.get_accuracy(qt, qlt)
    else:
        acc = calc.get_accuracy(qt, qlt, torch.from_numpy(r), torch.from_numpy(rl))
    return {k: (None if math.isnan(acc[k]) else float(acc[k])) for k in METRICS}


def queries_evaluated(ql, rl, same):
    counts = {}
    for label in rl.tolist():
        counts[label] = counts.get(label, 0) + 1
    return sum(1 for label in ql.tolist() if counts.get(label, 0) - int(same) > 0)


def make_case(rng, name, distance, normalize, n, d, query_classes, m=None, ref_classes=None, k=None):
    """One case; `m` None means query = reference. Resamples points in near-tie rows."""
    centers = rng.normal(size=(max(query_classes + (ref_classes or [])) + 1, d))
    centers = centers.astype(np.float32)
    q, ql = sample(rng, centers, n, query_classes)
    r, rl = (None, None) if m is None else sample(rng, centers, m, ref_classes)
    same = m is None
    for _ in range(500):
        rr, rrl = (q, ql) if same else (r, rl)
        bad = bad_rows(distance, normalize, q, ql, rr, rrl, same)
        if not bad:
            break
        # Move the offending query points (and, when separate, a few random reference points).
        fresh = rng.normal(size=(len(bad), d)).astype(np.float32)
        q[bad] = q[bad] + 0.5 * fresh
        if not same:
            pick = rng.choice(len(r), size=min(len(r), len(bad)), replace=False)
            r[pick] = r[pick] + 0.05 * rng.normal(size=(len(pick), d)).astype(np.float32)
    else:
        raise RuntimeError(f"{name}: could not avoid near-ties")
    expected = pml_metrics(distance, normalize, q, ql, r, rl, k)
    case = {} if k is None else {"k": k}
    return case | {
        "name": name,
        "distance": distance,
        "normalize": normalize,
        "query": q.tolist(),
        "query_labels": ql.tolist(),
        "reference": None if same else r.tolist(),
        "reference_labels": None if same else rl.tolist(),
        "expected": expected,
        "queries_evaluated": queries_evaluated(ql, rl if not same else ql, same),
    }


def same_source_cases(rng, distance, normalize):
    specs = [
        # (n, d, classes)
        (5, 2, [0, 1]),
        (9, 3, [0, 1, 2, 3, 4, 5, 6]),  # several labels likely to appear once: lone queries
        (12, 4, [7]),  # a single class
        (30, 2, [0, 1, 2]),
        (40, 8, list(range(10))),
        (80, 16, list(range(20))),
        (200, 8, list(range(25))),
        (200, 16, list(range(120))),  # many lone labels
    ]
    tag = distance + ("-norm" if normalize and distance != "cosine" else "")
    return [
        make_case(rng, f"same-{tag}-n{n}-d{d}-c{len(c)}", distance, normalize, n, d, c)
        for n, d, c in specs
    ]


def separate_cases(rng, distance, normalize):
    specs = [
        # (n, m, d, query classes, reference classes)
        (5, 7, 2, [0, 1], [0, 1]),
        (10, 25, 3, [0, 1, 2, 3], [1, 2, 3, 9]),  # label 0 queries are lone
        (20, 5, 4, [0, 1, 2], [0, 1, 2]),  # fewer references than queries
        (50, 120, 8, list(range(10)), list(range(12))),
        (120, 200, 16, list(range(30)), list(range(5, 40))),
        (8, 6, 2, [3], [3]),  # a single class
    ]
    tag = distance + ("-norm" if normalize and distance != "cosine" else "")
    return [
        make_case(rng, f"sep-{tag}-n{n}-m{m}-d{d}", distance, normalize, n, d, qc, m, rc)
        for n, m, d, qc, rc in specs
    ]


def all_lone_cases(rng):
    # Every query label is lone: PML returns NaN for each metric (stored as null).
    q = rng.normal(size=(4, 3)).astype(np.float32)
    ql = np.array([0, 1, 2, 3], dtype=np.int64)
    r = rng.normal(size=(3, 3)).astype(np.float32)
    rl = np.array([5, 5, 6], dtype=np.int64)
    out = []
    for name, rr, rrl in [("all-lone-same", None, None), ("all-lone-sep", r, rl)]:
        out.append(
            {
                "name": name,
                "distance": "euclidean",
                "normalize": False,
                "query": q.tolist(),
                "query_labels": ql.tolist(),
                "reference": None if rr is None else rr.tolist(),
                "reference_labels": None if rrl is None else rrl.tolist(),
                "expected": pml_metrics("euclidean", False, q, ql, rr, rrl),
                "queries_evaluated": 0,
            }
        )
    return out


def k_cases(rng):
    """PML's AccuracyCalculator(k=K): metrics from the K nearest neighbours only (R-precision's
    denominator min(R, K), MAP@R's R, MRR 0 when no match is among the K), and k="max_bin_count"."""
    specs = [
        # (distance, normalize, n, m, d, query classes, reference classes, k)
        ("euclidean", False, 40, None, 8, list(range(6)), None, 1),
        ("euclidean", False, 40, None, 8, list(range(6)), None, 3),
        ("euclidean", False, 60, None, 4, list(range(4)), None, 10),
        ("euclidean", False, 60, None, 4, list(range(4)), None, "max_bin_count"),
        ("cosine", True, 50, 80, 6, list(range(5)), list(range(7)), 5),
        ("cosine", True, 50, 80, 6, list(range(5)), list(range(7)), "max_bin_count"),
        ("squared-euclidean", False, 30, 45, 5, [0, 1, 2, 3], [1, 2, 3, 9], 7),
        ("dot", False, 45, None, 6, list(range(9)), None, 4),
        ("euclidean", True, 200, None, 16, list(range(12)), None, 25),
        ("euclidean", False, 150, 300, 8, list(range(10)), list(range(10)), "max_bin_count"),
    ]
    out = []
    for distance, normalize, n, m, d, qc, rc, k in specs:
        tag = distance + ("-norm" if normalize and distance != "cosine" else "")
        src = "same" if m is None else f"sep-m{m}"
        name = f"k{k}-{src}-{tag}-n{n}-d{d}"
        out.append(make_case(rng, name, distance, normalize, n, d, qc, m, rc, k))
    return out


def write(name, cases):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".json")
    with open(path, "w") as f:
        json.dump({"source": "pytorch-metric-learning 2.9 AccuracyCalculator()", "cases": cases}, f)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


def main():
    rng = np.random.default_rng(20261129)
    write("euclidean", same_source_cases(rng, "euclidean", False) + separate_cases(rng, "euclidean", False))
    write("cosine", same_source_cases(rng, "cosine", True) + separate_cases(rng, "cosine", True))
    write(
        "other",
        same_source_cases(rng, "euclidean", True)[:4]
        + separate_cases(rng, "squared-euclidean", False)[:3]
        + same_source_cases(rng, "dot", False)[:4]
        + all_lone_cases(rng),
    )
    write("knn", k_cases(np.random.default_rng(20261130)))


if __name__ == "__main__":
    main()
