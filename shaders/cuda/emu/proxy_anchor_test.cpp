// Proxy-anchor (proxy_anchor.cu). Part 1: proxy_anchor_cols_f32 on random N x K matrices
// against the formulas evaluated plainly in long double (no max shift: its exponent range holds
// alpha * D up to ~11000), for N below, at and past a block's rows, K in {1, 3, 10, 40} (40: two
// blocks, the second half empty), one class, all distinct, a proxy without positives, sg = +-1
// and distances large enough that exp(alpha x) overflows a double. W starts as NaN: every entry
// must be written. Part 2: the whole pipeline as crates/margin-cuda/src/centers.rs launches it
// (normalize, distances, weights, chain_centers, normalization backward) against finite
// differences of the loss, for both gradients.
#include "cuda_emu.h"
#include <cstdio>
#include <functional>
#include <random>
#include "all.cu"
static std::mt19937_64 rng(31);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

// The host's launch shape (centers.rs proxy_cols_cfg): cols proxies per block, 256 / cols rows.
static void launch_cols(int k, const std::function<void()>& f) {
    unsigned cols = 1; while (cols < (unsigned)std::min(k, 32)) cols <<= 1;
    launch({cdiv(k, cols)}, {cols, 256 / cols}, f);
}
// The host's divisors (centers.rs proxy_counts).
static void counts(const std::vector<int>& lab, int k, int& cpos, int& cneg) {
    std::vector<bool> seen(k, false); for (int l : lab) seen[l] = true;
    cpos = 0; for (bool s : seen) cpos += s;
    cneg = 0; for (int c = 0; c < k; ++c) { bool any = false; for (int l : lab) any |= l != c; cneg += any; }
}

// Loss and dL/dD straight from the definition, in long double.
static long double brute(const std::vector<float>& D, const std::vector<int>& lab, int n, int k, float sg, double margin, double alpha, std::vector<long double>* W) {
    int cpos, cneg; counts(lab, k, cpos, cneg);
    long double L = 0, m = (long double)sg * margin;
    for (int c = 0; c < k; ++c) {
        long double sp = 0, sn = 0;
        auto x = [&](int i) { long double e = (long double)sg * D[(size_t)i * k + c]; return lab[i] == c ? alpha * (e - m) : alpha * (-m - e); };
        for (int i = 0; i < n; ++i) (lab[i] == c ? sp : sn) += expl(x(i));
        L += log1pl(sp) / cpos + log1pl(sn) / k;
        if (W) for (int i = 0; i < n; ++i)
            (*W)[(size_t)i * k + c] = lab[i] == c ? sg * alpha * expl(x(i)) / (1 + sp) / cpos : -sg * alpha * expl(x(i)) / (1 + sn) / k;
    }
    return L;
}

static void kernel_case(int n, int k, std::vector<int> lab, float sg, float scale, double alpha, const char* what) {
    std::vector<float> D((size_t)n * k), W((size_t)n * k, NAN);
    // Similarities in [-1, 1]; distances in [0, scale].
    for (auto& v : D) { float u = std::uniform_real_distribution<float>(0, 1)(rng); v = sg < 0 ? 2 * u - 1 : scale * u; }
    int cpos, cneg; counts(lab, k, cpos, cneg);
    std::vector<double> part(k, NAN), stats(1);
    double margin = 0.1, inv_pos = 1.0 / cpos, inv_k = 1.0 / k;
    launch_cols(k, [&] { proxy_anchor_cols_f32(D.data(), lab.data(), n, k, sg, margin, alpha, inv_pos, inv_k, W.data(), part.data()); });
    launch({1}, {256}, [&] { reduce_cols_f64(part.data(), k, 1, stats.data()); });
    std::vector<long double> Wb((size_t)n * k);
    long double Lb = brute(D, lab, n, k, sg, margin, alpha, &Wb);
    double num = 0, den = 0; bool finite = true;
    for (size_t i = 0; i < W.size(); ++i) {
        finite &= std::isfinite(W[i]);
        num += (double)((W[i] - Wb[i]) * (W[i] - Wb[i])); den += (double)(Wb[i] * Wb[i]);
    }
    double gerr = sqrt(num / std::max(den, 1e-300));
    double lerr = (double)fabsl(stats[0] - Lb) / (1e-300 + (double)fabsl(Lb));
    bool ok = finite && lerr < 1e-9 && gerr < 1e-6;
    CHECK(ok, "%s n=%d k=%d sg=%g scale=%g: loss %.12g vs %.12Lg (rel %.1e), W err %.1e%s", what, n, k, sg, scale, stats[0], Lb, lerr, gerr, finite ? "" : ", non-finite W");
    if (ok) printf("ok   %s n=%d k=%d sg=%g scale=%g: loss %.10g (cpos %d cneg %d), W err %.1e\n", what, n, k, sg, scale, stats[0], cpos, cneg, gerr);
}

// Part 2: end to end, as centers.rs runs it, against finite differences (kind: 0 euclidean,
// 1 squared euclidean, 2 dot).
static double gpu(int kind, bool normalize, const std::vector<float>& x, const std::vector<float>& c, int n, int k, int d, const std::vector<int>& lab, double alpha, std::vector<float>& gxo, std::vector<float>& gco) {
    std::vector<float> xh = x, ch = c, nx(n), nc(k), sx(n), sc(k), D(n * k), W(n * k, NAN), rs(n, 0.f), cs(k, 0.f), gx(n * d), gc(k * d);
    auto xs = x, cv = c;
    if (normalize) {
        launch({(unsigned)n}, {256}, [&] { normalize_rows_f32(xs.data(), xh.data(), nx.data(), n, d); });
        launch({(unsigned)k}, {256}, [&] { normalize_rows_f32(cv.data(), ch.data(), nc.data(), k, d); });
    }
    if (kind != 2) { launch({(unsigned)n}, {256}, [&] { row_sqnorms_f32(xh.data(), sx.data(), n, d); }); launch({(unsigned)k}, {256}, [&] { row_sqnorms_f32(ch.data(), sc.data(), k, d); }); }
    launch({cdiv(k, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), ch.data(), sx.data(), sc.data(), D.data(), n, k, d, kind); });
    float sg = kind == 2 ? -1.f : 1.f; int cpos, cneg; counts(lab, k, cpos, cneg);
    std::vector<double> part(k), stats(1);
    launch_cols(k, [&] { proxy_anchor_cols_f32(D.data(), lab.data(), n, k, sg, 0.1, alpha, 1.0 / cpos, 1.0 / k, W.data(), part.data()); });
    launch({1}, {256}, [&] { reduce_cols_f64(part.data(), k, 1, stats.data()); });
    if (kind == 0) launch({cdiv(n * k, 256)}, {256}, [&] { div_by_dist_f32(W.data(), D.data(), (size_t)n * k); });
    bool sim = kind == 2;
    if (!sim) { launch({(unsigned)n}, {256}, [&] { row_sums_f32(W.data(), rs.data(), n, k); }); launch({cdiv(k, 256)}, {256}, [&] { col_sums_f32(W.data(), cs.data(), n, k); }); }
    float a = kind == 1 ? 2.f : 1.f; int diag = !sim;
    launch({cdiv(d, 64), cdiv(n, 64)}, {256}, [&] { grad_gemm_f32(W.data(), ch.data(), xh.data(), rs.data(), gx.data(), n, k, d, 0, diag, a); });
    launch({cdiv(d, 64), cdiv(k, 64)}, {256}, [&] { grad_gemm_f32(W.data(), xh.data(), ch.data(), cs.data(), gc.data(), k, n, d, 1, diag, a); });
    if (normalize) {
        launch({(unsigned)n}, {256}, [&] { normalize_backward_f32(gx.data(), xh.data(), nx.data(), gxo.data(), n, d); });
        launch({(unsigned)k}, {256}, [&] { normalize_backward_f32(gc.data(), ch.data(), nc.data(), gco.data(), k, d); });
    } else { gxo = gx; gco = gc; }
    return stats[0];
}
static long double loss_of(int kind, bool normalize, std::vector<long double> x, std::vector<long double> c, int n, int k, int d, const std::vector<int>& lab, double alpha) {
    auto nz = [&](std::vector<long double>& v, int rows) { for (int i = 0; i < rows; ++i) { long double s = 0; for (int q = 0; q < d; ++q) s += v[i*d+q]*v[i*d+q]; s = std::max(sqrtl(s), 1e-12L); for (int q = 0; q < d; ++q) v[i*d+q] /= s; } };
    if (normalize) { nz(x, n); nz(c, k); }
    int cpos, cneg; counts(lab, k, cpos, cneg);
    long double sg = kind == 2 ? -1 : 1, m = sg * 0.1L, L = 0;
    for (int cc = 0; cc < k; ++cc) {
        long double sp = 0, sn = 0;
        for (int i = 0; i < n; ++i) {
            long double dot = 0, sq = 0; for (int q = 0; q < d; ++q) { dot += x[i*d+q]*c[cc*d+q]; long double t = x[i*d+q]-c[cc*d+q]; sq += t*t; }
            long double e = sg * (kind == 2 ? dot : kind == 1 ? sq : sqrtl(sq));
            if (lab[i] == cc) sp += expl(alpha * (e - m)); else sn += expl(alpha * (-m - e));
        }
        L += log1pl(sp) / cpos + log1pl(sn) / k;
    }
    return L;
}
static void pipeline_case(int kind, bool normalize, int n, int k, int d, std::vector<int> lab, double alpha) {
    std::vector<float> x(n * d), c(k * d); for (auto& v : x) v = nrm() * 0.5f; for (auto& v : c) v = nrm() * 0.5f;
    std::vector<float> gx(n * d), gc(k * d);
    double L = gpu(kind, normalize, x, c, n, k, d, lab, alpha, gx, gc);
    std::vector<long double> xd(x.begin(), x.end()), cd(c.begin(), c.end());
    long double Lb = loss_of(kind, normalize, xd, cd, n, k, d, lab, alpha);
    double num = 0, den = 0; const long double h = 1e-7L;
    auto fd = [&](std::vector<long double>& v, int i) { long double keep = v[i]; v[i] = keep + h; long double p = loss_of(kind, normalize, xd, cd, n, k, d, lab, alpha); v[i] = keep - h; long double mm = loss_of(kind, normalize, xd, cd, n, k, d, lab, alpha); v[i] = keep; return (double)((p - mm) / (2 * h)); };
    double numc = 0, denc = 0;
    for (int i = 0; i < n * d; ++i) { double g = fd(xd, i); num += (g-gx[i])*(g-gx[i]); den += g*g; }
    for (int i = 0; i < k * d; ++i) { double g = fd(cd, i); numc += (g-gc[i])*(g-gc[i]); denc += g*g; }
    double ex = sqrt(num / std::max(den, 1e-30)), ec = sqrt(numc / std::max(denc, 1e-30));
    double lrel = (double)fabsl(L - Lb) / (double)fabsl(Lb);
    bool ok = lrel < 1e-5 && ex < 1e-3 && ec < 1e-3;
    CHECK(ok, "pipeline kind %d norm %d n=%d k=%d alpha %g: %.8g vs %.8Lg, grad err %.2e, center grad err %.2e", kind, normalize, n, k, alpha, L, Lb, ex, ec);
    if (ok) printf("ok   pipeline kind %d norm %d n=%d k=%d alpha %g: %.8g, grad err %.2e, center grad err %.2e\n", kind, normalize, n, k, alpha, L, ex, ec);
}

int main() {
    auto iota = [](int n, int k, int skip) { std::vector<int> l(n); int c = 0; for (int i = 0; i < n; ++i) { if (c == skip) c = (c + 1) % k; l[i] = c; c = (c + 1) % k; } return l; };
    for (float sg : {-1.f, 1.f}) {
        for (int n : {1, 37, 300}) for (int k : {1, 3, 10, 40}) {
            kernel_case(n, k, iota(n, k, -1), sg, 4, 32, "round robin");
            kernel_case(n, k, std::vector<int>(n, k - 1), sg, 4, 32, "one class");
            if (k >= 3) kernel_case(n, k, iota(n, k, 1), sg, 4, 32, "proxy 1 without positives");
        }
        kernel_case(10, 10, iota(10, 10, -1), sg, 4, 32, "all distinct");
        kernel_case(40, 40, iota(40, 40, -1), sg, 4, 32, "all distinct");
    }
    // Unnormalized distances: alpha * D far past exp's double range (e^{32 * 200}).
    kernel_case(37, 3, iota(37, 3, -1), 1, 200, 32, "large distances");
    kernel_case(300, 10, iota(300, 10, 1), 1, 200, 32, "large distances");
    for (int kind = 0; kind < 3; ++kind) for (int norm = 0; norm < 2; ++norm) {
        // alpha 32 on normalized rows (PML's default); 4 on raw ones keeps the finite
        // differences of the loss well conditioned.
        double alpha = norm ? 32 : 4;
        pipeline_case(kind, norm, 9, 3, 5, iota(9, 3, -1), alpha);
        pipeline_case(kind, norm, 7, 4, 3, iota(7, 4, 2), alpha);
        pipeline_case(kind, norm, 5, 1, 4, std::vector<int>(5, 0), alpha);
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
