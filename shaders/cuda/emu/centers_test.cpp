// Triplet-center end to end (mirrors centers.rs::center_loss) vs finite differences.
#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include "all.cu"
static std::mt19937_64 rng(9);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
static void norm_rows(std::vector<float>& x, std::vector<float>& xh, std::vector<float>& nr, int n, int d) { launch({(unsigned)n}, {256}, [&] { normalize_rows_f32(x.data(), xh.data(), nr.data(), n, d); }); }

static double gpu(int kind, bool normalize, std::vector<float> x, std::vector<float> c, int n, int k, int d, std::vector<int> lab, std::vector<float>& gxo, std::vector<float>& gco) {
    std::vector<float> xh = x, ch = c, nx(n), nc(k), sx(n), sc(k), D(n * k), W(n * k, 0.f), rs(n, 0.f), cs(k, 0.f), gx(n * d), gc(k * d);
    if (normalize) { norm_rows(x, xh, nx, n, d); norm_rows(c, ch, nc, k, d); }
    if (kind != 2) { launch({(unsigned)n}, {256}, [&] { row_sqnorms_f32(xh.data(), sx.data(), n, d); }); launch({(unsigned)k}, {256}, [&] { row_sqnorms_f32(ch.data(), sc.data(), k, d); }); }
    launch({cdiv(k, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), ch.data(), sx.data(), sc.data(), D.data(), n, k, d, kind); });
    float sg = kind == 2 ? -1.f : 1.f; std::vector<double> part(n * 2), stats(2);
    launch({(unsigned)n}, {256}, [&] { triplet_center_rows_f32(D.data(), lab.data(), n, k, sg, 1.0, 1.0 / n, W.data(), part.data()); });
    launch({2}, {256}, [&] { reduce_cols_f64(part.data(), n, 2, stats.data()); });
    if (kind == 0) launch({cdiv(n * k, 256)}, {256}, [&] { div_by_dist_f32(W.data(), D.data(), (size_t)n * k); });
    bool sim = kind == 2;
    if (!sim) { launch({(unsigned)n}, {256}, [&] { row_sums_f32(W.data(), rs.data(), n, k); }); launch({cdiv(k, 256)}, {256}, [&] { col_sums_f32(W.data(), cs.data(), n, k); }); }
    float alpha = kind == 1 ? 2.f : 1.f; int diag = !sim;
    launch({cdiv(d, 64), cdiv(n, 64)}, {256}, [&] { grad_gemm_f32(W.data(), ch.data(), xh.data(), rs.data(), gx.data(), n, k, d, 0, diag, alpha); });
    launch({cdiv(d, 64), cdiv(k, 64)}, {256}, [&] { grad_gemm_f32(W.data(), xh.data(), ch.data(), cs.data(), gc.data(), k, n, d, 1, diag, alpha); });
    if (normalize) {
        launch({(unsigned)n}, {256}, [&] { normalize_backward_f32(gx.data(), xh.data(), nx.data(), gxo.data(), n, d); });
        launch({(unsigned)k}, {256}, [&] { normalize_backward_f32(gc.data(), ch.data(), nc.data(), gco.data(), k, d); });
    } else { gxo = gx; gco = gc; }
    return stats[0] / n;
}
static double brute(int kind, bool normalize, std::vector<double> x, std::vector<double> c, int n, int k, int d, const std::vector<int>& lab) {
    auto nz = [&](std::vector<double>& v, int rows) { for (int i = 0; i < rows; ++i) { double s = 0; for (int q = 0; q < d; ++q) s += v[i*d+q]*v[i*d+q]; s = std::max(sqrt(s), 1e-12); for (int q = 0; q < d; ++q) v[i*d+q] /= s; } };
    if (normalize) { nz(x, n); nz(c, k); }
    auto dist = [&](int i, int j) { double dot = 0, sq = 0; for (int q = 0; q < d; ++q) { dot += x[i*d+q]*c[j*d+q]; double t = x[i*d+q]-c[j*d+q]; sq += t*t; } return kind == 2 ? dot : kind == 1 ? sq : sqrt(sq); };
    double sg = kind == 2 ? -1 : 1, s = 0;
    for (int i = 0; i < n; ++i) { double mn = 1e300; for (int cc = 0; cc < k; ++cc) if (cc != lab[i]) mn = std::min(mn, sg * dist(i, cc));
        double v = sg * dist(i, lab[i]) - mn + 1.0; if (v > 0) s += v; }
    return s / n;
}
int main() {
    int fails = 0;
    for (int kind = 0; kind < 3; ++kind) for (int norm = 0; norm < 2; ++norm) {
        int n = 8, k = 3, d = 5; std::vector<int> lab(n); for (int i = 0; i < n; ++i) lab[i] = i % k;
        std::vector<float> x(n * d), c(k * d); for (auto& v : x) v = nrm() * 0.5f; for (auto& v : c) v = nrm() * 0.5f;
        std::vector<float> gx(n * d), gc(k * d);
        double L = gpu(kind, norm, x, c, n, k, d, lab, gx, gc);
        std::vector<double> xd(x.begin(), x.end()), cd(c.begin(), c.end());
        double Lb = brute(kind, norm, xd, cd, n, k, d, lab);
        double num = 0, den = 0, h = 1e-6;
        for (int i = 0; i < n * d; ++i) { auto p = xd, m = xd; p[i] += h; m[i] -= h; double g = (brute(kind, norm, p, cd, n, k, d, lab) - brute(kind, norm, m, cd, n, k, d, lab)) / (2*h); num += (g-gx[i])*(g-gx[i]); den += g*g; }
        for (int i = 0; i < k * d; ++i) { auto p = cd, m = cd; p[i] += h; m[i] -= h; double g = (brute(kind, norm, xd, p, n, k, d, lab) - brute(kind, norm, xd, m, n, k, d, lab)) / (2*h); num += (g-gc[i])*(g-gc[i]); den += g*g; }
        double err = sqrt(num / std::max(den, 1e-30));
        bool ok = fabs(L - Lb) < 1e-5 * (1 + fabs(Lb)) && err < 1e-3;
        fails += !ok;
        printf("%s tc kind %d norm %d: %.8g vs %.8g grad err %.2e\n", ok ? "ok  " : "FAIL", kind, norm, L, Lb, err);
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
