"""The golden cases: which loss, size, labels and parameters each fixture case has (seeded, so
deterministic). Imported by pml_golden.py; pml_ref_golden.py reuses the distance and margin choices."""

import numpy as np

from pml_spec import is_sim

PML_LOSSES = {
    "contrastive",
    "triplet",
    "n-pair",
    "lifted-structure",
    "multi-similarity",
    "circle",
    "nt-xent",
    "supcon",
    "generalized-lifted-structure",
    "proxy-anchor",
    "proxy-nca",
    "normalized-softmax",
    "cosface",
}


def labels_cycle(n, classes, offset=0):
    return [offset + (i % classes) for i in range(n)]


def labels_random(rng, n, classes, values=None):
    lab = rng.integers(0, classes, size=n)
    if values is not None:
        lab = np.array([values[v] for v in lab])
    return [int(v) for v in lab]


ODD_LABELS = [-7, 2**40, -(2**62), 0, 9_000_000_000_000_000_000 // 1000, -1]
DIST_NORM = [
    ("euclidean", True),
    ("euclidean", False),
    ("squared-euclidean", True),
    ("squared-euclidean", False),
    ("cosine", True),
    ("dot", True),
    ("dot", False),
]


def sim_margins(loss, dist, norm):
    """Margins that leave a mix of active and inactive terms for each distance."""
    if loss in ("contrastive", "lifted-structure"):
        if dist in ("cosine", "dot") and (norm or dist == "cosine"):
            return {"pos_margin": 0.7, "neg_margin": 0.1}
        if dist == "dot":
            return {"pos_margin": 1.0, "neg_margin": -0.5}
        if dist == "squared-euclidean":
            return {"pos_margin": 0.4, "neg_margin": 2.2} if norm else {"pos_margin": 0.3, "neg_margin": 1.5}
        return {"pos_margin": 0.3, "neg_margin": 1.4} if norm else {"pos_margin": 0.2, "neg_margin": 1.2}
    return {}


def scale_for(dist, norm):
    return 1.0 if norm or dist == "cosine" else 0.35


def build_specs():
    rng = np.random.default_rng(20261129)
    specs = []

    def add(name, loss, n, d, labels, params=None, source=None, **kw):
        src = source or ("pml" if loss in PML_LOSSES else "torch-f64-spec")
        specs.append(dict(name=f"{loss}/{name}", loss=loss, n=n, d=d, labels=labels,
                          params=params or {}, source=src, **kw))

    # ---- contrastive ----
    L = "contrastive"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n2_d1_neg", L, 2, 1, [0, 1])
    add("default_n2_d3_pos", L, 2, 3, [5, 5], params={"pos_margin": 0.1})
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins(L, dist, norm)}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.5, "neg_margin": 1.3})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS), {"neg_margin": 1.2})
    add("one_class", L, 6, 3, [3] * 6, {"pos_margin": 0.2})
    add("all_distinct", L, 7, 3, list(range(7)), {"neg_margin": 1.5})
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot", "pos_margin": 0.7, "neg_margin": 0.1},
        dup=[(3, 0), (7, 2)])
    add("dup_rows_sqeuclid_neg", L, 8, 3, [0, 1, 0, 1, 2, 2, 0, 1],
        {"distance": "squared-euclidean", "pos_margin": 0.3, "neg_margin": 2.0}, dup=[(1, 0)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), source="torch-f64-spec")
    add("spec_check_cosine", L, 9, 4, labels_random(rng, 9, 3),
        {"distance": "cosine", "pos_margin": 0.8, "neg_margin": 0.2}, source="torch-f64-spec")

    # ---- triplet ----
    L = "triplet"
    add("default", L, 12, 8, labels_cycle(12, 3))
    add("default_n3_d1", L, 3, 1, [1, 1, 2], params={"margin": 0.3})
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, "margin": 0.2}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    for dist, norm in [("euclidean", True), ("squared-euclidean", False), ("cosine", True), ("dot", False)]:
        tag = f"{dist}_{'norm' if norm else 'raw'}"
        add(f"smooth_{tag}", L, 9, 4, labels_random(rng, 9, 3),
            {"distance": dist, "normalize": norm, "smooth": True, "margin": 0.1}, scale=scale_for(dist, norm))
        add(f"hard_{tag}", L, 14, 5, labels_random(rng, 14, 4),
            {"distance": dist, "normalize": norm, "mining": "hard", "margin": 0.2}, scale=scale_for(dist, norm))
        add(f"semihard_{tag}", L, 14, 5, labels_random(rng, 14, 3),
            {"distance": dist, "normalize": norm, "mining": "semihard", "margin": 0.4}, scale=scale_for(dist, norm))
    add("hard_default_margin", L, 16, 6, labels_random(rng, 16, 4), {"mining": "hard"})
    add("semihard_default_margin", L, 20, 6, labels_random(rng, 20, 3), {"mining": "semihard"})
    add("smooth_hard", L, 12, 4, labels_random(rng, 12, 3), {"mining": "hard", "smooth": True})
    add("margin_n40_d16", L, 40, 16, labels_random(rng, 40, 5), {"margin": 0.5})
    add("n26_d2_odd_labels", L, 26, 2, labels_random(rng, 26, 4, ODD_LABELS), {"margin": 0.1})
    add("one_class", L, 5, 3, [2] * 5, {"margin": 0.2})
    add("all_distinct", L, 6, 3, list(range(6)), {"margin": 0.2})
    add("dup_rows_cosine", L, 10, 4, labels_cycle(10, 3), {"distance": "cosine", "margin": 0.3},
        dup=[(3, 0), (5, 1)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), {"margin": 0.2}, source="torch-f64-spec")
    add("spec_check_semihard_dot", L, 12, 4, labels_random(rng, 12, 3),
        {"distance": "dot", "mining": "semihard", "margin": 0.5}, source="torch-f64-spec")

    # ---- n-pair ----
    L = "n-pair"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n4_d1", L, 4, 1, [0, 1, 0, 1])
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 11, 5, labels_random(rng, 11, 4),
            {"distance": dist, "normalize": norm}, scale=scale_for(dist, norm) * 2)
    add("singletons_and_triples", L, 10, 4, [4, 9, 4, 7, 4, 1, 9, 8, 7, 3])
    add("n40_d16", L, 40, 16, labels_random(rng, 40, 12))
    add("odd_labels", L, 14, 3, labels_random(rng, 14, 6, ODD_LABELS), {"normalize": False})
    add("one_class", L, 5, 3, [1] * 5)
    add("all_distinct", L, 5, 3, list(range(5)))
    add("dup_rows", L, 8, 3, labels_cycle(8, 4), dup=[(4, 0), (6, 1)])
    add("spec_check_default", L, 12, 6, labels_random(rng, 12, 4), source="torch-f64-spec")
    add("spec_check_euclid", L, 10, 4, labels_random(rng, 10, 3), {"distance": "euclidean"}, source="torch-f64-spec")

    # ---- lifted-structure ----
    L = "lifted-structure"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n3_d1", L, 3, 1, [2, 2, 8])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins(L, dist, norm)}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.2, "neg_margin": 1.5})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [4] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean"}, dup=[(3, 0)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), source="torch-f64-spec")
    add("spec_check_dot", L, 9, 4, labels_random(rng, 9, 3),
        {"distance": "dot", "pos_margin": 0.7, "neg_margin": 0.1}, source="torch-f64-spec")

    # ---- triplet-center (SPEC only) ----
    L = "triplet-center"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4, cscale=0.7)
    add("default_n1_d1", L, 1, 1, [1], k=2)
    add("n2_d2_k2", L, 2, 2, [0, 1], k=2)
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3),
            {"distance": dist, "normalize": norm, "margin": 0.3}, k=3, scale=scale_for(dist, norm))
    add("margin2_n40_d16_k6", L, 40, 16, labels_random(rng, 40, 6), {"margin": 2.0}, k=6)
    add("one_class_k5", L, 7, 3, [2] * 7, {"margin": 0.5}, k=5)
    add("unused_centers", L, 6, 4, [0, 0, 1, 1, 0, 1], {"margin": 1.5}, k=5)
    add("dup_rows_sqeuclid", L, 8, 3, labels_random(rng, 8, 3), {"distance": "squared-euclidean"},
        k=3, dup=[(2, 0), (5, 1)])

    # ---- quadruplet (SPEC only) ----
    L = "quadruplet"
    add("default", L, 12, 6, labels_cycle(12, 4))
    add("default_n3_d1", L, 3, 1, [0, 0, 1])
    add("n4_d2_three_classes", L, 4, 2, [0, 0, 1, 2])
    for dist, norm in DIST_NORM:
        if is_sim({"distance": dist}):
            prm = {"distance": dist, "normalize": norm, "margin": 0.3, "margin2": 0.15}
        else:
            prm = {"distance": dist, "normalize": norm, "margin": 0.5, "margin2": 0.25}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 4, labels_random(rng, 10, 4), prm,
            scale=scale_for(dist, norm))
    add("margins_n24_d16", L, 24, 16, labels_random(rng, 24, 5), {"margin": 1.5, "margin2": 0.8})
    add("odd_labels", L, 14, 3, labels_random(rng, 14, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [6] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("two_classes_no_quads", L, 8, 3, labels_cycle(8, 2))
    add("dup_rows_dot", L, 10, 4, labels_cycle(10, 4), {"distance": "dot", "margin": 0.3, "margin2": 0.2},
        dup=[(4, 0)])

    # New losses (briefs/new_losses.md). Appended after the seed losses so that the cases above
    # keep their seeds and labels.
    build_new_specs(rng, add)
    # ---- proxy-anchor (PML, proxies given as the centers; last, so that adding it moved no
    # earlier case's seed) ----
    L = "proxy-anchor"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4)
    add("default_n1_d1", L, 1, 1, [0], k=1)
    add("one_proxy", L, 5, 3, [0] * 5, k=1)
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3),
            {"distance": dist, "normalize": norm}, k=3, scale=scale_for(dist, norm))
    add("alpha4_margin05_n40_d16_k10", L, 40, 16, labels_random(rng, 40, 10),
        {"alpha": 4.0, "margin": 0.5}, k=10)
    add("one_class_k5", L, 7, 3, [2] * 7, k=5)
    add("all_distinct", L, 6, 3, list(range(6)), k=6)
    add("unused_proxies", L, 6, 4, [0, 0, 1, 1, 0, 1], {"margin": 0.3}, k=5)
    add("dup_rows_sqeuclid", L, 8, 3, labels_random(rng, 8, 3), {"distance": "squared-euclidean"},
        k=3, dup=[(2, 0), (5, 1)])

    # ---- proxy-nca, normalized-softmax, cosface (PML; proxies / class weights as the centers,
    # PML's W being their transpose). Appended last, as proxy-anchor. ----
    L = "proxy-nca"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4)
    add("default_n1_d1_k1", L, 1, 1, [0], k=1)
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3),
            {"distance": dist, "normalize": norm}, k=3, scale=scale_for(dist, norm))
    add("scale8_n40_d16_k10", L, 40, 16, labels_random(rng, 40, 10), {"scale": 8.0}, k=10)
    add("one_class_k5", L, 7, 3, [2] * 7, k=5)
    add("all_distinct", L, 6, 3, list(range(6)), k=6)
    add("underflow_drops_rows", L, 12, 4, labels_random(rng, 12, 3),
        {"distance": "euclidean", "normalize": False, "scale": 300.0}, k=3, scale=3.0)
    L = "normalized-softmax"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4)
    add("default_n1_d1_k1", L, 1, 1, [0], k=1)
    for dist in ("euclidean", "squared-euclidean", "cosine", "dot"):
        add(f"{dist}_norm", L, 10, 5, labels_random(rng, 10, 3), {"distance": dist}, k=3)
    add("temperature05_n40_d16_k10", L, 40, 16, labels_random(rng, 40, 10), {"temperature": 0.5}, k=10)
    add("one_class_k5", L, 7, 3, [2] * 7, k=5)
    add("all_distinct", L, 6, 3, list(range(6)), k=6)
    L = "cosface"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4)
    add("default_n1_d1_k1", L, 1, 1, [0], k=1)
    add("margin0_scale16", L, 10, 5, labels_random(rng, 10, 3), {"margin": 0.0, "scale": 16.0}, k=3)
    add("negative_margin", L, 10, 5, labels_random(rng, 10, 3), {"margin": -0.2, "scale": 8.0}, k=3)
    add("n40_d16_k10", L, 40, 16, labels_random(rng, 40, 10), k=10)
    add("one_class_k5", L, 7, 3, [2] * 7, k=5)
    add("all_distinct", L, 6, 3, list(range(6)), k=6)
    add("unused_classes", L, 6, 4, [0, 0, 1, 1, 0, 1], k=5)

    return specs


def tag_of(dist, norm):
    return f"{dist}_{'norm' if norm else 'raw'}"


def ms_params(dist, norm):
    """Multi-similarity parameters whose `base` sits inside the range of the metric."""
    if dist == "cosine" or (dist == "dot" and norm):
        return {}
    if dist == "dot":
        return {"base": 0.1, "beta": 20.0}
    if dist == "squared-euclidean":
        return {"base": 2.0, "beta": 10.0} if norm else {"base": 1.2, "beta": 10.0}
    return {"base": 1.4, "beta": 10.0} if norm else {"base": 1.1, "beta": 10.0}


def temperature_for(dist, norm, default):
    return {"temperature": default} if dist == "cosine" or (dist == "dot" and norm) else {"temperature": 0.5}


def build_new_specs(rng, add):
    # ---- multi-similarity ----
    L = "multi-similarity"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [3])
    add("default_n2_d1_neg", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [1, 1, 2])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **ms_params(dist, norm)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("params_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"alpha": 1.0, "beta": 20.0, "base": 0.3})
    add("params_large_alpha", L, 12, 4, labels_random(rng, 12, 3), {"alpha": 10.0, "beta": 5.0, "base": 0.7})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot"}, dup=[(3, 0), (7, 2)])

    # ---- circle (cosine only) ----
    L = "circle"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    add("default_n10_d5", L, 10, 5, labels_random(rng, 10, 3))
    add("reid_params", L, 14, 6, labels_random(rng, 14, 4), {"margin": 0.25, "gamma": 128.0})
    add("small_gamma_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"margin": 0.3, "gamma": 4.0})
    add("gamma1_d3", L, 10, 3, labels_random(rng, 10, 3), {"gamma": 1.0})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows", L, 9, 4, labels_cycle(9, 3), {"gamma": 16.0}, dup=[(3, 0), (7, 2)])

    # ---- nt-xent ----
    L = "nt-xent"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n2_d1_no_pos", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **temperature_for(dist, norm, 0.2)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("tau_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"temperature": 0.5})
    add("tau1", L, 12, 4, labels_random(rng, 12, 3), {"temperature": 1.0})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot", "temperature": 0.3},
        dup=[(3, 0), (7, 2)])

    # ---- supcon ----
    L = "supcon"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n2_d1_no_pos", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **temperature_for(dist, norm, 0.3)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("tau_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"temperature": 0.5})
    add("tau_small", L, 12, 4, labels_random(rng, 12, 3), {"temperature": 0.05})
    add("singletons", L, 10, 4, [4, 9, 4, 7, 4, 1, 9, 8, 7, 3])
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean", "temperature": 0.5},
        dup=[(3, 0), (7, 2)])

    # ---- generalized-lifted-structure ----
    L = "generalized-lifted-structure"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n3_d1", L, 3, 1, [2, 2, 8])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins("lifted-structure", dist, norm)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("mixed_margins", L, 12, 6, labels_random(rng, 12, 3), {"pos_margin": 2.2, "neg_margin": -0.6})
    add("mixed_margins_cosine", L, 12, 6, labels_random(rng, 12, 3),
        {"distance": "cosine", "pos_margin": -0.2, "neg_margin": 1.5})
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.2, "neg_margin": 1.5})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [4] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean"}, dup=[(3, 0)])

    # ---- quadruplet, mining hard (margin's own definition, new_losses.md section 6) ----
    L = "quadruplet"
    H = {"mining": "hard"}
    add("hard_default", L, 12, 6, labels_cycle(12, 4), H)
    add("hard_n3_d1", L, 3, 1, [0, 0, 1], H)
    add("hard_n4_d2_three_classes", L, 4, 2, [0, 0, 1, 2], H)
    for dist, norm in DIST_NORM:
        if is_sim({"distance": dist}):
            prm = {"distance": dist, "normalize": norm, "margin": 0.3, "margin2": 0.15, **H}
        else:
            prm = {"distance": dist, "normalize": norm, "margin": 0.5, "margin2": 0.25, **H}
        add(f"hard_{tag_of(dist, norm)}", L, 10, 4, labels_random(rng, 10, 4), prm, scale=scale_for(dist, norm))
    add("hard_margins_n24_d16", L, 24, 16, labels_random(rng, 24, 5), {"margin": 1.5, "margin2": 0.8, **H})
    add("hard_n40_d8", L, 40, 8, labels_random(rng, 40, 6), {"margin": 0.2, "margin2": 0.1, **H})
    add("hard_odd_labels", L, 14, 3, labels_random(rng, 14, 4, ODD_LABELS), H)
    add("hard_one_class", L, 5, 3, [6] * 5, H)
    add("hard_all_distinct", L, 6, 3, list(range(6)), H)
    add("hard_two_classes_no_quads", L, 8, 3, labels_cycle(8, 2), H)
