// End-to-end emulation of backend.rs's loss_square / centers.rs's center_loss orchestration
// against central finite differences of a brute-force f64 loss.
#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include <functional>
#include "all.cu"
static std::mt19937_64 rng(5);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static int fails = 0;
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

// kind 0 euclid 1 sq 2 dot; loss 0 contrastive, 1 triplet-all, 2 npair, 3 lifted
static double run_gpu(int loss, int kind, bool normalize, std::vector<float> x, int n, int d, std::vector<int> lab, std::vector<float>& grad) {
    std::vector<float> xh = x, norms(n), g(n * d), sq(n), D(n * n), W(n * n, 0.f), rs(n, 0.f);
    if (normalize) launch({(unsigned)n}, {256}, [&] { normalize_rows_f32(x.data(), xh.data(), norms.data(), n, d); });
    if (kind != 2) launch({(unsigned)n}, {256}, [&] { row_sqnorms_f32(xh.data(), sq.data(), n, d); });
    launch({cdiv(n, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), xh.data(), sq.data(), sq.data(), D.data(), n, n, d, kind); });
    float sg = kind == 2 ? -1.f : 1.f;
    // The weight kernels work in place: W starts as the distances and comes back as dL/dD, already
    // divided by the distance for the euclidean chain (so chain_prep does not divide again).
    W = D; int euclid = kind == 0;
    std::vector<double> part, stats; int pi = -1, ni_ = -1; double result = 0;
    if (loss == 0) {
        part.assign(n * 4, 0); double pm = sg * 0.0, nm = sg * 1.0;
        launch({(unsigned)n}, {256}, [&] { contrastive_rows_f32(W.data(), lab.data(), n, sg, pm, nm, euclid, part.data()); });
        stats.assign(6, 0);
        launch({4}, {256}, [&] { reduce_cols_f64(part.data(), n, 4, stats.data()); });
        launch({1}, {1}, [&] { safe_inverse_f64(stats.data(), 1, 4); safe_inverse_f64(stats.data(), 3, 5); });
        pi = 4; ni_ = 5;
        result = (stats[1] > 0 ? stats[0] / stats[1] : 0) + (stats[3] > 0 ? stats[2] / stats[3] : 0);
    } else if (loss == 1) {
        part.assign(n * 2, 0); int cap = 1; while (cap < n) cap <<= 1; int blocks = std::min(n, 1024);
        std::vector<float> scratch(blocks * 2 * cap); std::vector<int> diff(blocks * (cap + 1)); std::vector<double> none(1);
        launch({(unsigned)blocks}, {256}, [&] { triplet_rows_f32(W.data(), lab.data(), n, sg, 0.05, 0, 0, euclid, part.data(), 2, 1, 1, none.data(), -1, scratch.data(), diff.data(), cap); });
        stats.assign(3, 0);
        launch({2}, {256}, [&] { reduce_cols_f64(part.data(), n, 2, stats.data()); });
        launch({1}, {1}, [&] { safe_inverse_f64(stats.data(), 1, 2); });
        pi = ni_ = 2; result = stats[1] > 0 ? stats[0] / stats[1] : 0;
    } else if (loss == 3) {
        std::vector<double> lse(n); double nm = sg * 1.0, pm = 0;
        launch({(unsigned)n}, {256}, [&] { lifted_lse_f32(D.data(), lab.data(), n, sg, nm, lse.data()); });
        long long P = 0; for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) P += i != j && lab[i] == lab[j];
        double inv = 1.0 / P; part.assign(n * 2, 0);
        launch({(unsigned)n}, {256}, [&] { lifted_rows_f32(W.data(), lab.data(), n, sg, nm, pm, lse.data(), inv, euclid, part.data()); });
        stats.assign(2, 0);
        launch({2}, {256}, [&] { reduce_cols_f64(part.data(), n, 2, stats.data()); });
        result = stats[0] * inv;
    }
    unsigned t = cdiv(n, 16);
    launch({t, t}, {16, 16}, [&] { chain_prep_f32(W.data(), D.data(), lab.data(), stats.data(), pi, ni_, n, 0); });
    bool sim = kind == 2;
    if (!sim) launch({(unsigned)n}, {256}, [&] { row_sums_f32(W.data(), rs.data(), n, n); });
    float alpha = kind == 1 ? 2.f : 1.f;
    std::vector<float>& out = normalize ? g : grad;
    launch({cdiv(d, 64), cdiv(n, 64)}, {256}, [&] { grad_gemm_f32(W.data(), xh.data(), xh.data(), rs.data(), out.data(), n, n, d, 0, sim ? 0 : 1, alpha); });
    if (normalize) launch({(unsigned)n}, {256}, [&] { normalize_backward_f32(g.data(), xh.data(), norms.data(), grad.data(), n, d); });
    return result;
}

static double brute(int loss, int kind, bool normalize, const std::vector<double>& x0, int n, int d, const std::vector<int>& lab) {
    std::vector<double> x = x0;
    if (normalize) for (int i = 0; i < n; ++i) { double s = 0; for (int c = 0; c < d; ++c) s += x[i*d+c]*x[i*d+c]; s = std::max(sqrt(s), 1e-12); for (int c = 0; c < d; ++c) x[i*d+c] /= s; }
    auto dist = [&](int i, int j) { double dot = 0, sq = 0; for (int c = 0; c < d; ++c) { dot += x[i*d+c]*x[j*d+c]; double t = x[i*d+c]-x[j*d+c]; sq += t*t; } return kind == 2 ? dot : kind == 1 ? sq : sqrt(sq); };
    double sg = kind == 2 ? -1 : 1;
    if (loss == 0) { double sp = 0, cp = 0, sn = 0, cn = 0;
        for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) { if (i == j) continue; double e = sg * dist(i, j);
            if (lab[i] == lab[j]) { double v = e - sg * 0.0; if (v > 0) { sp += v; cp++; } } else { double v = sg * 1.0 - e; if (v > 0) { sn += v; cn++; } } }
        return (cp ? sp / cp : 0) + (cn ? sn / cn : 0); }
    if (loss == 1) { double s = 0, c = 0;
        for (int a = 0; a < n; ++a) for (int p = 0; p < n; ++p) { if (p == a || lab[p] != lab[a]) continue;
            for (int q = 0; q < n; ++q) { if (lab[q] == lab[a]) continue; double v = sg * dist(a, p) - sg * dist(a, q) + 0.05; if (v > 0) { s += v; c++; } } }
        return c ? s / c : 0; }
    if (loss == 3) { double s = 0, P = 0;
        for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) { if (i == j || lab[i] != lab[j]) continue; P++;
            double z = 0; for (int k = 0; k < n; ++k) if (lab[k] != lab[i]) z += exp(sg * 1.0 - sg * dist(i, k));
            for (int l = 0; l < n; ++l) if (lab[l] != lab[j]) z += exp(sg * 1.0 - sg * dist(j, l));
            double J = log(z) + sg * dist(i, j) - 0.0; if (J > 0) s += J * J / 2; }
        return s / P; }
    return 0;
}

int main() {
    for (int loss : {0, 1, 3}) for (int kind = 0; kind < 3; ++kind) for (int norm = 0; norm < 2; ++norm) {
        int n = 9, d = 4; std::vector<int> lab(n); for (int i = 0; i < n; ++i) lab[i] = i % 3;
        std::vector<float> x(n * d); for (auto& v : x) v = nrm() * (norm ? 1.f : 0.3f);
        std::vector<float> grad(n * d);
        double L = run_gpu(loss, kind, norm, x, n, d, lab, grad);
        std::vector<double> xd(x.begin(), x.end());
        double Lb = brute(loss, kind, norm, xd, n, d, lab);
        double num = 0, den = 0;
        for (int i = 0; i < n * d; ++i) { double h = 1e-6; auto xp = xd, xm = xd; xp[i] += h; xm[i] -= h;
            double gfd = (brute(loss, kind, norm, xp, n, d, lab) - brute(loss, kind, norm, xm, n, d, lab)) / (2 * h);
            num += (gfd - grad[i]) * (gfd - grad[i]); den += gfd * gfd; }
        double gerr = sqrt(num / std::max(den, 1e-30));
        bool ok = fabs(L - Lb) <= 1e-4 * fabs(Lb) + 1e-6 && (gerr < 1e-3 || den < 1e-20);
        if (!ok) fails++;
        printf("%s loss %d kind %d norm %d: %.8g vs %.8g, grad rel err %.2e (|g| %.3g)\n", ok ? "ok  " : "FAIL", loss, kind, norm, L, Lb, gerr, sqrt(den));
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
