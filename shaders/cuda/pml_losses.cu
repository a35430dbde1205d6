// pml_losses.cu: stage 3 (weights) of the log-sum-exp family ported from PML 2.9:
// multi-similarity, circle, NT-Xent, SupCon and generalized lifted structure. Exact math in
// the brief new_losses.md; everything is O(N) per row, one block of MARGIN_THREADS per row.
//
// Same sign convention as pair_losses.cu: e = sg * D ("distance-like"), v = -e for the
// temperature losses, W receives dL/dD = sg * dL/de. Margins are pre-multiplied by sg on the
// host where the brief says so. Batch-level conditions (no positive pair at all, ...) are
// decided on the host, which knows the labels.

// Multi-similarity. With bp = sg * base: x_p = alpha (e_ip - bp), x_n = beta (bp - e_in).
// L_i = log(1 + sum_p exp x_p) / alpha + log(1 + sum_n exp x_n) / beta, computed as
// M + log(exp(-M) + sum exp(x - M)) with M = max(0, max x). Mean over all N rows (inv_n).
// part[i*3 + {0,1,2}] = L_i, [i has a positive], [i has a negative]. W final (scaled).
__device__ void multi_similarity_rows_body(const float* D, const int* lab, const int* rlab, int n,
                                           int m, const unsigned* excl, float sg, double alpha,
                                           double beta, double bp, double inv_n, RowOut out,
                                           double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int skip = skip_col(excl, i);
    const int li = lab[i];
    double mp = 0.0, mn = 0.0, cp = 0.0, cn = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            continue;
        }
        const double e = (double)(sg * D[row + j]);
        if (rlab[j] == li) {
            mp = fmax(mp, alpha * (e - bp));
            cp += 1.0;
        } else {
            mn = fmax(mn, beta * (bp - e));
            cn += 1.0;
        }
    }
    mp = block_max_f64(mp, red);
    mn = block_max_f64(mn, red);
    cp = block_sum_f64(cp, red);
    cn = block_sum_f64(cn, red);
    double sp = 0.0, sn = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            continue;
        }
        const double e = (double)(sg * D[row + j]);
        if (rlab[j] == li) {
            sp += exp(alpha * (e - bp) - mp);
        } else {
            sn += exp(beta * (bp - e) - mn);
        }
    }
    sp = exp(-mp) + block_sum_f64(sp, red);
    sn = exp(-mn) + block_sum_f64(sn, red);
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            put_none(out, row + j);
            continue;
        }
        const float dist = D[row + j];
        const double e = (double)(sg * dist);
        if (rlab[j] == li) {
            put_weight(out, row + j, sg * exp(alpha * (e - bp) - mp) / sp * inv_n, dist);
        } else {
            put_weight(out, row + j, -sg * exp(beta * (bp - e) - mn) / sn * inv_n, dist);
        }
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 3 + 0] = (mp + log(sp)) / alpha + (mn + log(sn)) / beta;
        part[(size_t)i * 3 + 1] = cp > 0.0 ? 1.0 : 0.0;
        part[(size_t)i * 3 + 2] = cn > 0.0 ? 1.0 : 0.0;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void multi_similarity_rows_f32(float* DW, const int* lab, int n, float sg,
                                                     double alpha, double beta, double bp,
                                                     double inv_n, int euclid, double* part) {
    multi_similarity_rows_body(DW, lab, lab, n, n, nullptr, sg, alpha, beta, bp, inv_n,
                               RowOut{DW, euclid}, part);
}

// Reference sets, in place over the N x M matrix DW as well (so are the *_ref_rows_f32 below).
extern "C" __global__ void multi_similarity_ref_rows_f32(float* DW, const int* lab,
                                                         const int* rlab, int n, int m,
                                                         const unsigned* excl, float sg,
                                                         double alpha, double beta, double bp,
                                                         double inv_n, int euclid, double* part) {
    multi_similarity_rows_body(DW, lab, rlab, n, m, excl, sg, alpha, beta, bp, inv_n,
                               RowOut{DW, euclid}, part);
}

// Circle (cosine only: D holds similarities s). For a row with a positive and a negative:
// lp_j = -gamma relu(1 + mg - s_ij) (s_ij - (1 - mg)), ln_j = gamma relu(s_ij + mg) (s_ij - mg)
// (mg: the margin), z = LSE_P(lp) + LSE_N(ln), L_i = softplus(z); AvgNonZero over rows. The relu
// factors are constants for the gradient (detached in PML). part[i*2 + {0,1}] = L_i, [row has a
// positive and a negative]. W raw (dL/ds = dL/dD), scaled by 1/count in chain_prep_f32.
__device__ void circle_rows_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                 const unsigned* excl, double mg, double gamma, RowOut out,
                                 double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int skip = skip_col(excl, i);
    const int li = lab[i];
    auto lp = [&](int j, double& x) {
        if (rlab[j] != li) {
            return false;
        }
        const double s = (double)D[row + j];
        x = -gamma * fmax(1.0 + mg - s, 0.0) * (s - (1.0 - mg));
        return true;
    };
    auto ln = [&](int j, double& x) {
        if (rlab[j] == li) {
            return false;
        }
        const double s = (double)D[row + j];
        x = gamma * fmax(s + mg, 0.0) * (s - mg);
        return true;
    };
    const double lse_p = row_lse(skip, m, lp, red);
    const double lse_n = row_lse(skip, m, ln, red);
    double loss = 0.0;
    // softplus > 0: every row with a positive and a negative counts, even where it underflows.
    const bool live = lse_p != MARGIN_NEG_INF && lse_n != MARGIN_NEG_INF;
    const double z = live ? lse_p + lse_n : 0.0;
    const double sz = live ? sigmoid_f64(z) : 0.0;
    if (live) {
        loss = softplus_f64(z);
    }
    {
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            if (j == skip) {
                put_none(out, row + j);
                continue;
            }
            const float dist = D[row + j];
            const double s = (double)dist;
            double x = 0.0, w = 0.0;
            if (!live) {
                w = 0.0;
            } else if (lp(j, x)) {
                const double g = -gamma * fmax(1.0 + mg - s, 0.0);
                w = sz * exp(x - lse_p) * g;
            } else if (ln(j, x)) {
                const double g = gamma * fmax(s + mg, 0.0);
                w = sz * exp(x - lse_n) * g;
            }
            put_weight(out, row + j, w, dist);
        }
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = loss;
        part[(size_t)i * 2 + 1] = live ? 1.0 : 0.0;
    }
}

// In place (RowOut): DW holds the similarities and receives the weights.
extern "C" __global__ void circle_rows_f32(float* DW, const int* lab, int n, double mg,
                                           double gamma, double* part) {
    circle_rows_body(DW, lab, lab, n, n, nullptr, mg, gamma, RowOut{DW, 0}, part);
}

extern "C" __global__ void circle_ref_rows_f32(float* DW, const int* lab, const int* rlab, int n,
                                               int m, const unsigned* excl, double mg,
                                               double gamma, double* part) {
    circle_rows_body(DW, lab, rlab, n, m, excl, mg, gamma, RowOut{DW, 0}, part);
}

// NT-Xent, x = v / tau with v = -e. Per ordered positive pair (a, p) with L_a = LSE_N(x_a.):
// l_ap = log(exp x_ap + exp L_a) - x_ap = softplus(L_a - x_ap); t_ap = sigmoid(L_a - x_ap).
// dL/dv_ap = -t_ap / (tau P); dL/dv_an = exp(x_an - L_a) sum_p t_ap / (tau P). An anchor
// without negatives has L_a = -inf: l = 0, t = 0 (its pairs still count in P, host side).
// inv_tp = 1 / (tau P). part[a] = sum_p l_ap. W final (scaled).
__device__ void ntxent_rows_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                 const unsigned* excl, float sg, double inv_tau, double inv_tp,
                                 RowOut out, double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int a = blockIdx.x;
    if (a >= n) {
        return;
    }
    const size_t row = (size_t)a * m;
    const int skip = skip_col(excl, a);
    const int la = lab[a];
    auto neg = [&](int j, double& x) {
        if (rlab[j] == la) {
            return false;
        }
        x = -(double)(sg * D[row + j]) * inv_tau;
        return true;
    };
    const double lse_n = row_lse(skip, m, neg, red);
    double loss = 0.0, acc = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            put_none(out, row + j);
            continue;
        }
        if (rlab[j] != la) {
            continue;
        }
        const float dist = D[row + j];
        const double x = -(double)(sg * dist) * inv_tau;
        loss += softplus_f64(lse_n - x);
        const double t = sigmoid_f64(lse_n - x);
        acc += t;
        // dL/dD = sg dL/de = -sg dL/dv = sg t / (tau P).
        put_weight(out, row + j, sg * t * inv_tp, dist);
    }
    loss = block_sum_f64(loss, red);
    acc = block_sum_f64(acc, red);
    const bool live = acc > 0.0 && lse_n != MARGIN_NEG_INF;
    {
        // The negatives (in the square case never the skipped column, which has the anchor's
        // label): reads and writes of the same entries.
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            double x = 0.0;
            if (neg(j, x)) {
                const double w = live ? -sg * exp(x - lse_n) * acc * inv_tp : 0.0;
                put_weight(out, row + j, w, D[row + j]);
            }
        }
    }
    if (threadIdx.x == 0) {
        part[a] = loss;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void ntxent_rows_f32(float* DW, const int* lab, int n, float sg,
                                           double inv_tau, double inv_tp, int euclid,
                                           double* part) {
    ntxent_rows_body(DW, lab, lab, n, n, nullptr, sg, inv_tau, inv_tp, RowOut{DW, euclid},
                     part);
}

extern "C" __global__ void ntxent_ref_rows_f32(float* DW, const int* lab, const int* rlab, int n,
                                               int m, const unsigned* excl, float sg,
                                               double inv_tau, double inv_tp, int euclid,
                                               double* part) {
    ntxent_rows_body(DW, lab, rlab, n, m, excl, sg, inv_tau, inv_tp, RowOut{DW, euclid},
                     part);
}

// SupCon, x = v / tau with v = -e. For a row with |P| >= 1:
// L_i = LSE_{j != i}(x_ij) - mean_P(x_ip); AvgNonZero over rows.
// dL_i/dv_ij = (softmax_j - [j in P] / |P|) / tau for rows with a positive.
// part[i*2 + {0,1}] = L_i, [row counts]. W raw (dL/dD = -sg dL/dv), scaled by 1/count in
// chain_prep_f32. A row counts when |P| >= 1 and (it has a negative or |P| >= 2)
// (docs/REFERENCE_SETS.md 3.8; with one positive and no negative L_i = 0 exactly); in the square
// case with a negative pair every row has a negative, so this is |P| >= 1.
__device__ void supcon_rows_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                 const unsigned* excl, float sg, double inv_tau, RowOut out,
                                 double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int skip = skip_col(excl, i);
    const int li = lab[i];
    auto all = [&](int j, double& x) {
        x = -(double)(sg * D[row + j]) * inv_tau;
        return true;
    };
    const double lse = row_lse(skip, m, all, red);
    double sp = 0.0, cp = 0.0, cn = 0.0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j != skip && rlab[j] == li) {
            sp += -(double)(sg * D[row + j]) * inv_tau;
            cp += 1.0;
        } else if (rlab[j] != li) {
            cn += 1.0;
        }
    }
    sp = block_sum_f64(sp, red);
    cp = block_sum_f64(cp, red);
    cn = block_sum_f64(cn, red);
    double loss = 0.0;
    // L_i > 0 exactly for every counted row: counted as such, never from the rounded loss (as
    // every backend does).
    const bool live = cp > 0.0 && (cn > 0.0 || cp >= 2.0);
    if (live) {
        loss = lse - sp / cp;
    }
    {
        const double inv_cp = live ? 1.0 / cp : 0.0;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            if (j == skip) {
                put_none(out, row + j);
                continue;
            }
            const float dist = D[row + j];
            const double x = -(double)(sg * dist) * inv_tau;
            const double g =
                live ? (exp(x - lse) - (rlab[j] == li ? inv_cp : 0.0)) * inv_tau : 0.0;
            put_weight(out, row + j, -sg * g, dist);
        }
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = loss;
        part[(size_t)i * 2 + 1] = live ? 1.0 : 0.0;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void supcon_rows_f32(float* DW, const int* lab, int n, float sg,
                                           double inv_tau, int euclid, double* part) {
    supcon_rows_body(DW, lab, lab, n, n, nullptr, sg, inv_tau, RowOut{DW, euclid}, part);
}

extern "C" __global__ void supcon_ref_rows_f32(float* DW, const int* lab, const int* rlab, int n,
                                               int m, const unsigned* excl, float sg,
                                               double inv_tau, int euclid, double* part) {
    supcon_rows_body(DW, lab, rlab, n, m, excl, sg, inv_tau, RowOut{DW, euclid}, part);
}

// Generalized lifted structure. With pos_m = sg * pos_margin, neg_m = sg * neg_margin:
// L_i = relu(LSE_P(e_ip - pos_m) + LSE_N(neg_m - e_in)), an empty LSE counting 0; mean over all
// N rows (inv_n). part[i*2 + {0,1}] = L_i, [L_i > 0]. W final (scaled).
__device__ void gen_lifted_rows_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                     const unsigned* excl, float sg, double pos_m, double neg_m,
                                     double inv_n, RowOut out, double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * m;
    const int skip = skip_col(excl, i);
    const int li = lab[i];
    auto pe = [&](int j, double& x) {
        if (rlab[j] != li) {
            return false;
        }
        x = (double)(sg * D[row + j]) - pos_m;
        return true;
    };
    auto ne = [&](int j, double& x) {
        if (rlab[j] == li) {
            return false;
        }
        x = neg_m - (double)(sg * D[row + j]);
        return true;
    };
    const double lse_p = row_lse(skip, m, pe, red);
    const double lse_n = row_lse(skip, m, ne, red);
    const double arg =
        (lse_p == MARGIN_NEG_INF ? 0.0 : lse_p) + (lse_n == MARGIN_NEG_INF ? 0.0 : lse_n);
    {
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            if (j == skip) {
                put_none(out, row + j);
                continue;
            }
            const float dist = D[row + j];
            double x = 0.0, w = 0.0;
            if (!(arg > 0.0)) {
                w = 0.0;
            } else if (pe(j, x)) {
                w = sg * exp(x - lse_p) * inv_n;
            } else if (ne(j, x)) {
                w = -sg * exp(x - lse_n) * inv_n;
            }
            put_weight(out, row + j, w, dist);
        }
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = arg > 0.0 ? arg : 0.0;
        part[(size_t)i * 2 + 1] = arg > 0.0 ? 1.0 : 0.0;
    }
}

// In place (RowOut): DW holds the distances and receives the weights.
extern "C" __global__ void gen_lifted_rows_f32(float* DW, const int* lab, int n, float sg,
                                               double pos_m, double neg_m, double inv_n,
                                               int euclid, double* part) {
    gen_lifted_rows_body(DW, lab, lab, n, n, nullptr, sg, pos_m, neg_m, inv_n,
                         RowOut{DW, euclid}, part);
}

extern "C" __global__ void gen_lifted_ref_rows_f32(float* DW, const int* lab, const int* rlab,
                                                   int n, int m, const unsigned* excl, float sg,
                                                   double pos_m, double neg_m, double inv_n,
                                                   int euclid, double* part) {
    gen_lifted_rows_body(DW, lab, rlab, n, m, excl, sg, pos_m, neg_m, inv_n,
                         RowOut{DW, euclid}, part);
}
