// pair_losses.cu: stage 3 (weights) of the losses that need no sorting: contrastive, lifted
// structure, n-pair, triplet-center and batch-hard triplet mining.
//
// Sign convention: the host passes sg = +1 for a distance and -1 for a similarity; kernels work on
// e = sg * D so that "closer" is always "smaller", with margins pre-transformed by the host, and
// write dL/dD = sg * dL/de into W. Labels are compact int ids (equality is all that matters),
// except for triplet-center where they index centers. One block of MARGIN_THREADS per row.

// Contrastive: part[i*4 + {0,1,2,3}] = positive loss sum, positive count, negative loss sum,
// negative count; W holds +-sg per active pair (raw), scaled by 1/count in chain_prep_f32.
// pos_m / neg_m are sg * pos_margin / sg * neg_margin.
// Rectangular form (reference sets, docs/REFERENCE_SETS.md): row i of D has m columns labelled
// rlab, and column skip_col(excl, i) is not a pair; the square kernel is the case rlab = lab,
// m = n, excl = nullptr (the diagonal skipped).
__device__ void contrastive_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                 const unsigned* excl, float sg, double pos_m, double neg_m,
                                 RowOut out, double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int li = lab[i];
    const int skip = skip_col(excl, i);
    double sp = 0.0, cp = 0.0, sn = 0.0, cn = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            put_none(out, row + j);
            continue;
        }
        const float dist = D[row + j];
        const double e = (double)(sg * dist);
        double w = 0.0;
        if (rlab[j] == li) {
            const double v = e - pos_m;
            if (v > 0.0) {
                sp += v;
                cp += 1.0;
                w = sg;
            }
        } else {
            const double v = neg_m - e;
            if (v > 0.0) {
                sn += v;
                cn += 1.0;
                w = -sg;
            }
        }
        put_weight(out, row + j, w, dist);
    }
    sp = block_sum_f64(sp, red);
    cp = block_sum_f64(cp, red);
    sn = block_sum_f64(sn, red);
    cn = block_sum_f64(cn, red);
    if (threadIdx.x == 0) {
        part[(size_t)i * 4 + 0] = sp;
        part[(size_t)i * 4 + 1] = cp;
        part[(size_t)i * 4 + 2] = sn;
        part[(size_t)i * 4 + 3] = cn;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void contrastive_rows_f32(float* DW, const int* lab, int n, float sg,
                                                double pos_m, double neg_m, int euclid,
                                                double* part) {
    contrastive_body(DW, lab, lab, n, n, nullptr, sg, pos_m, neg_m, RowOut{DW, euclid}, part);
}

// Reference sets, in place over the N x M matrix DW as well.
extern "C" __global__ void contrastive_ref_rows_f32(float* DW, const int* lab, const int* rlab,
                                                    int n, int m, const unsigned* excl, float sg,
                                                    double pos_m, double neg_m, int euclid,
                                                    double* part) {
    contrastive_body(DW, lab, rlab, n, m, excl, sg, pos_m, neg_m, RowOut{DW, euclid}, part);
}

// Lifted structure, pass 1: lse[i] = logsumexp over negatives k of i of (neg_m - e_ik);
// -inf when i has no negative. neg_m is sg * neg_margin.
__device__ void lifted_lse_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                float sg, double neg_m, double* lse) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int li = lab[i];
    auto neg = [&](int k, double& x) {
        if (rlab[k] == li) {
            return false;
        }
        x = neg_m - (double)(sg * D[row + k]);
        return true;
    };
    // Negatives are never the skipped column (it has row i's label).
    const double v = row_lse(-1, m, neg, red);
    if (threadIdx.x == 0) {
        lse[i] = v;
    }
}

extern "C" __global__ void lifted_lse_f32(const float* D, const int* lab, int n, float sg,
                                          double neg_m, double* lse) {
    lifted_lse_body(D, lab, lab, n, n, sg, neg_m, lse);
}

// Rectangular pass 1: lse[i] over the m reference columns (rlab).
extern "C" __global__ void lifted_lse_ref_f32(const float* D, const int* lab, const int* rlab,
                                              int n, int m, float sg, double neg_m, double* lse) {
    lifted_lse_body(D, lab, rlab, n, m, sg, neg_m, lse);
}

// Lifted structure, pass 2. For each ordered positive pair (i, j): L = logaddexp(lse_i, lse_j),
// J = L + e_ij - pos_m; loss J^2/2 when J > 0, mean over all ordered positive pairs
// (inv_pairs = 1 / their number). dL/de_ij = J * inv_pairs; a negative entry e_ik gets
// -sum over pairs (i, j) and (j, i) of g * softmax weight, factored as
// exp(neg_m - e_ik - lse_i) * sum g * exp(lse_i - L) (both factors <= 1, no overflow).
// The pair (j, i) reads e_ji as e_ij: pairwise_f32 gives D[j][i] and D[i][j] the same bits (the
// same products summed in the same order), and row j may already hold weights (in place).
// part[i*2 + {0,1}] = sum of J^2/2 over pairs (i, .), number with J > 0. W final (scaled), in
// place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void lifted_rows_f32(float* DW, const int* lab, int n, float sg,
                                           double neg_m, double pos_m, const double* lse,
                                           double inv_pairs, int euclid, double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const RowOut out{DW, euclid};
    const size_t row = (size_t)i * n;
    const int li = lab[i];
    const double lse_i = lse[i];
    double loss = 0.0, cnt = 0.0, acc = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        if (j == i) {
            put_none(out, row + j);
            continue;
        }
        if (lab[j] != li) {
            continue;
        }
        const float dist = DW[row + j];
        const double e = (double)(sg * dist);
        const double lse_j = lse[j];
        double w = 0.0;
        // pair (i, j)
        const double l_ij = log_add_exp(lse_i, lse_j);
        if (l_ij != MARGIN_NEG_INF) {
            const double jv = l_ij + e - pos_m;
            if (jv > 0.0) {
                const double g = jv * inv_pairs;
                loss += 0.5 * jv * jv;
                cnt += 1.0;
                w = sg * g;
                acc += g * exp(lse_i - l_ij);
            }
        }
        // pair (j, i): its negatives include those of i as well
        const double l_ji = log_add_exp(lse_j, lse_i);
        if (l_ji != MARGIN_NEG_INF) {
            const double jv = l_ji + e - pos_m;
            if (jv > 0.0) {
                acc += jv * inv_pairs * exp(lse_i - l_ji);
            }
        }
        put_weight(out, row + j, w, dist);
    }
    loss = block_sum_f64(loss, red);
    cnt = block_sum_f64(cnt, red);
    acc = block_sum_f64(acc, red);
    const bool live = acc != 0.0 && lse_i != MARGIN_NEG_INF;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        if (lab[k] == li) {
            continue;
        }
        const float dist = DW[row + k];
        const double e = (double)(sg * dist);
        put_weight(out, row + k, live ? -sg * acc * exp(neg_m - e - lse_i) : 0.0, dist);
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = loss;
        part[(size_t)i * 2 + 1] = cnt;
    }
}

// Lifted structure with a reference set, pass 2 (docs/REFERENCE_SETS.md 3.6, PML's index
// aliasing). For a positive pair (i, j), j in P(i): L_ij = logaddexp(lse_i, lse_j) when j < n and
// j != i (batch row j's negatives join: PML compares the batch index a2 with the reference index
// j), else lse_i; an empty LSE counts 0; J = L + e_ij - pos_m, loss J^2/2 when J > 0, mean over the
// ordered positive pairs (inv_pairs). Row k's negatives get -sg exp(ne_kl - lse_k) acc_k, where
// acc_k sums g exp(lse_k - L) over its own pairs (k, j) and over the pairs (a, k) of other batch
// rows a whose positive column is k (the aliased ones): W stays N x M, no W + W^T.
//
// The aliased sum reads column k of other rows, so it is taken first, before any row is
// rewritten: alias[k] (k < min(n, m)) = sum over batch rows a != k with lab[a] == rlab[k] and
// column k not a's self column, of J_ak / pairs * exp(lse_k - L_ak) for J_ak > 0. One block per k.
extern "C" __global__ void lifted_ref_alias_f32(const float* D, const int* lab, const int* rlab,
                                                int n, int m, const unsigned* excl, float sg,
                                                double pos_m, const double* lse,
                                                double inv_pairs, double* alias) {
    __shared__ double red[MARGIN_THREADS];
    const int k = blockIdx.x;
    if (k >= n) {
        return;
    }
    const double lse_k = lse[k];
    double acc = 0.0;
    if (k < m && lse_k != MARGIN_NEG_INF) {
        const int rk = rlab[k];
        for (int a = threadIdx.x; a < n; a += blockDim.x) {
            if (a == k || lab[a] != rk || skip_col(excl, a) == k) {
                continue;
            }
            const double l = log_add_exp(lse[a], lse_k);
            const double jv = l + (double)(sg * D[(size_t)a * m + k]) - pos_m;
            if (jv > 0.0) {
                acc += jv * inv_pairs * exp(lse_k - l);
            }
        }
    }
    acc = block_sum_f64(acc, red);
    if (threadIdx.x == 0) {
        alias[k] = acc;
    }
}

// Pass 2 proper, in place over the N x M matrix DW (RowOut), with the aliased sums of
// lifted_ref_alias_f32. part[i*2 + {0,1}] = sum of J^2/2 over pairs (i, .), number with J > 0.
// W final (scaled).
extern "C" __global__ void lifted_ref_rows_f32(float* DW, const int* lab, const int* rlab, int n,
                                               int m, const unsigned* excl, float sg,
                                               double neg_m, double pos_m, const double* lse,
                                               const double* alias, double inv_pairs, int euclid,
                                               double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const RowOut out{DW, euclid};
    const size_t row = (size_t)i * m;
    const int li = lab[i];
    const int skip = skip_col(excl, i);
    const double lse_i = lse[i];
    double loss = 0.0, cnt = 0.0, acc = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            put_none(out, row + j);
            continue;
        }
        if (rlab[j] != li) {
            continue;
        }
        const double l = (j < n && j != i) ? log_add_exp(lse_i, lse[j]) : lse_i;
        const float dist = DW[row + j];
        const double jv = (l == MARGIN_NEG_INF ? 0.0 : l) + (double)(sg * dist) - pos_m;
        double w = 0.0;
        if (jv > 0.0) {
            const double g = jv * inv_pairs;
            loss += 0.5 * jv * jv;
            cnt += 1.0;
            w = sg * g;
            if (lse_i != MARGIN_NEG_INF) {
                acc += g * exp(lse_i - l);
            }
        }
        put_weight(out, row + j, w, dist);
    }
    loss = block_sum_f64(loss, red);
    cnt = block_sum_f64(cnt, red);
    acc = block_sum_f64(acc, red) + alias[i];
    const bool live = acc != 0.0 && lse_i != MARGIN_NEG_INF;
    // The negatives (never the skipped column, which has row i's label).
    for (int k = threadIdx.x; k < m; k += blockDim.x) {
        if (rlab[k] == li) {
            continue;
        }
        const float dist = DW[row + k];
        const double e = (double)(sg * dist);
        put_weight(out, row + k, live ? -sg * acc * exp(neg_m - e - lse_i) : 0.0, dist);
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = loss;
        part[(size_t)i * 2 + 1] = cnt;
    }
}

// N-pair: S_ij = -e(anchor_i, positive_j) over the k chosen pairs; loss_i = logsumexp_j S_ij -
// S_ii; dL/dS_ij = (softmax_ij - [i == j]) / k. part[i] = loss_i; W final (scaled by 1/k).
// In place (RowOut) over all n rows, one block per row r: slot_of[r] is i when r = anc[i], else
// -1 (the row becomes 0); col_of[c] is j when c = pos[j], else -1 (that entry becomes 0).
extern "C" __global__ void npair_rows_f32(float* DW, int n, const int* anc, const int* pos,
                                          const int* slot_of, const int* col_of, int k, float sg,
                                          int euclid, double* part) {
    __shared__ double red[MARGIN_THREADS];
    __shared__ double own;
    const int r = blockIdx.x;
    if (r >= n) {
        return;
    }
    const RowOut out{DW, euclid};
    const size_t row = (size_t)r * n;
    const int i = slot_of[r];
    if (i < 0) {
        for (int c = threadIdx.x; c < n; c += blockDim.x) {
            put_none(out, row + c);
        }
        return;
    }
    double mx = MARGIN_NEG_INF;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const double e = (double)(sg * DW[row + pos[j]]);
        mx = fmax(mx, -e);
        if (j == i) {
            own = e;
        }
    }
    mx = block_max_f64(mx, red);
    double s = 0.0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        s += exp(-(double)(sg * DW[row + pos[j]]) - mx);
    }
    s = block_sum_f64(s, red);  // its barriers also publish `own` and end every read of row r
    const double lse = mx + log(s);
    const double inv_k = 1.0 / (double)k;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        const int j = col_of[c];
        if (j < 0) {
            put_none(out, row + c);
            continue;
        }
        const float dist = DW[row + c];
        const double sij = -(double)(sg * dist);
        const double p = exp(sij - lse) - (j == i ? 1.0 : 0.0);
        // dL/dD = dL/dS * dS/dD with S = -sg * D.
        put_weight(out, row + c, -sg * p * inv_k, dist);
    }
    if (threadIdx.x == 0) {
        part[i] = lse + own;
    }
}

// Triplet-center: per sample i, v = e(i, y_i) - min_{c != y_i} e(i, c) + margin; loss relu(v),
// mean over samples (inv_n = 1/N). Dxc is N x K. part[i*2 + {0,1}] = relu(v), [v > 0]. W final.
extern "C" __global__ void triplet_center_rows_f32(const float* Dxc, const int* lab, int n, int kc,
                                                   float sg, double margin, double inv_n, float* W,
                                                   double* part) {
    __shared__ float sval[MARGIN_THREADS];
    __shared__ int sidx[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * kc;
    const int y = lab[i];
    float best = 0.0f;
    int bi = -1;
    for (int c = threadIdx.x; c < kc; c += blockDim.x) {
        if (c == y) {
            continue;
        }
        const float e = sg * Dxc[row + c];
        if (bi < 0 || e < best) {
            best = e;
            bi = c;
        }
    }
    block_arg_best(best, bi, false, sval, sidx);
    if (threadIdx.x == 0) {
        double loss = 0.0, cnt = 0.0;
        if (bi >= 0) {
            const double v = (double)(sg * Dxc[row + y]) - (double)best + margin;
            if (v > 0.0) {
                loss = v;
                cnt = 1.0;
                W[row + y] = (float)(sg * inv_n);
                W[row + bi] = (float)(-sg * inv_n);
            }
        }
        part[(size_t)i * 2 + 0] = loss;
        part[(size_t)i * 2 + 1] = cnt;
    }
}

// Batch-hard triplet mining: per anchor its farthest positive and nearest negative (smallest index
// on ties), one triplet; relu or softplus (smooth). part[a*2 + {0,1}] = loss, active; W raw
// (scaled by 1/active in chain_prep_f32). Rectangular form: the self column competes for p*
// (PML mines before removing self comparisons, docs/REFERENCE_SETS.md 3.2) and the anchor is
// dropped when it wins; the square kernel skips the diagonal instead.
__device__ void triplet_hard_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                  const unsigned* excl, float sg, double margin, int smooth,
                                  RowOut out, double* part) {
    __shared__ float sval[MARGIN_THREADS];
    __shared__ int sidx[MARGIN_THREADS];
    const int a = blockIdx.x;
    if (a >= n) {
        return;
    }
    const size_t row = (size_t)a * m;
    // Square: the diagonal is skipped. Reference set: nothing is skipped, the self column drops.
    const int skip = excl == nullptr ? a : -1;
    const int self = excl == nullptr ? -1 : skip_col(excl, a);
    float bp, bn;
    int ip, in;
    // Every thread gets the picks, after the block's last read of the row.
    row_hardest(D, lab, rlab, m, sg, a, skip, bp, ip, bn, in, sval, sidx);
    double loss = 0.0, cnt = 0.0, g = 0.0;
    if (ip >= 0 && in >= 0 && ip != self) {
        const double v = (double)bp - (double)bn + margin;
        if (smooth) {
            loss = softplus_f64(v);
            g = sigmoid_f64(v);
            cnt = 1.0;
        } else if (v > 0.0) {
            loss = v;
            g = 1.0;
            cnt = 1.0;
        }
    }
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        const double w = cnt > 0.0 ? (j == ip ? sg * g : (j == in ? -sg * g : 0.0)) : 0.0;
        put_weight(out, row + j, w, D[row + j]);
    }
    if (threadIdx.x == 0) {
        part[(size_t)a * 2 + 0] = loss;
        part[(size_t)a * 2 + 1] = cnt;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void triplet_hard_rows_f32(float* DW, const int* lab, int n, float sg,
                                                 double margin, int smooth, int euclid,
                                                 double* part) {
    triplet_hard_body(DW, lab, lab, n, n, nullptr, sg, margin, smooth, RowOut{DW, euclid},
                      part);
}

extern "C" __global__ void triplet_hard_ref_rows_f32(float* DW, const int* lab,
                                                     const int* rlab, int n, int m,
                                                     const unsigned* excl, float sg,
                                                     double margin, int smooth, int euclid,
                                                     double* part) {
    triplet_hard_body(DW, lab, rlab, n, m, excl, sg, margin, smooth, RowOut{DW, euclid},
                      part);
}
