// The proxy-softmax losses (proxy_softmax.cu: proxy-nca, normalized-softmax, cosface through one
// kernel). Part 1: proxy_softmax_rows_f32, then the stats reduction and, for the drop rule, the
// device-side 1/count scaling, exactly as crates/margin-cuda/src/centers.rs launches them, on
// random N x K matrices against the formulas evaluated plainly in long double: N = 1, 37, 100,
// 300 (one block per row, so N is never a multiple of anything that matters), K in {1, 3, 10, 300}
// (300: a row longer than the block's 256 threads), round robin, one class, all distinct,
// sg = +-1, cosface's target margin, and the drop rule with a scale so large that some rows
// drop and others count (also: every row drops). W starts as NaN: every entry must be written.
// Part 2: the whole pipeline as centers.rs runs it (normalize, distances, weights, chain_centers,
// normalization backward) against finite differences of the loss, for both gradients.
#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include "all.cu"
static std::mt19937_64 rng(47);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static float unif() { return std::uniform_real_distribution<float>(0, 1)(rng); }
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

// One loss of the family (margin_core::ProxySoftmax).
struct Form { double scale, tm; bool drop; const char* name; };
static const long double UNDERFLOW = -745.1332191019412L;

// Stage 3 as centers.rs::proxy_softmax_weights runs it: returns the loss (sum / count) and count.
static double stage3(const std::vector<float>& D, const std::vector<int>& lab, int n, int k, float sg, Form f, std::vector<float>& W, double& count) {
    std::vector<double> part(n * 2, NAN), stats(3, 0.0);
    double inv = f.drop ? 1.0 : 1.0 / n;
    launch({(unsigned)n}, {256}, [&] { proxy_softmax_rows_f32(D.data(), lab.data(), n, k, sg, f.scale, f.tm, f.drop, inv, W.data(), part.data()); });
    launch({2}, {256}, [&] { reduce_cols_f64(part.data(), n, 2, stats.data()); });
    if (f.drop) {
        launch({1}, {1}, [&] { safe_inverse_f64(stats.data(), 1, 2); });
        size_t len = (size_t)n * k;
        launch({cdiv(len, 256)}, {256}, [&] { scale_by_stat_f32(W.data(), len, stats.data(), 2); });
    }
    count = stats[1];
    return stats[1] > 0 ? stats[0] / stats[1] : 0.0;
}

// Loss and dL/dD straight from the definition, in long double (max-shifted: scale * D may pass
// even long double's exponent range in the drop cases).
static long double brute(const std::vector<long double>& D, const std::vector<int>& lab, int n, int k, long double sg, Form f, std::vector<long double>* W, int* counted) {
    long double sum = 0; int cnt = 0;
    std::vector<long double> z(k);
    std::vector<std::pair<int, long double>> rows;
    for (int i = 0; i < n; ++i) {
        for (int c = 0; c < k; ++c) z[c] = f.scale * (-sg * D[(size_t)i * k + c] - (c == lab[i] ? f.tm : 0.0));
        long double mx = *std::max_element(z.begin(), z.end()), s = 0;
        for (int c = 0; c < k; ++c) s += expl(z[c] - mx);
        long double lse = mx + logl(s), lp = z[lab[i]] - lse;
        if (f.drop && lp < UNDERFLOW) continue;
        ++cnt; sum -= lp; rows.push_back({i, lse});
    }
    if (W) {
        std::fill(W->begin(), W->end(), 0.0L);
        for (auto [i, lse] : rows) for (int c = 0; c < k; ++c) {
            long double zc = f.scale * (-sg * D[(size_t)i * k + c] - (c == lab[i] ? f.tm : 0.0));
            (*W)[(size_t)i * k + c] = -sg * f.scale * (expl(zc - lse) - (c == lab[i])) / cnt;
        }
    }
    if (counted) *counted = cnt;
    return cnt ? sum / cnt : 0;
}

// expect_mix: the drop rule must leave some rows counted and some dropped (-1: every row drops).
static void kernel_case(int n, int k, std::vector<int> lab, float sg, float spread, Form f, const char* what, int expect_mix = 0) {
    std::vector<float> D((size_t)n * k), W((size_t)n * k, NAN);
    // Similarities in [-1, 1]; distances in [0, spread].
    for (auto& v : D) v = sg < 0 ? 2 * unif() - 1 : spread * unif();
    if (expect_mix < 0) for (int i = 0; i < n; ++i) D[(size_t)i * k + lab[i]] += spread;  // own center far
    double count;
    double L = stage3(D, lab, n, k, sg, f, W, count);
    std::vector<long double> Dl(D.begin(), D.end()), Wb((size_t)n * k);
    int cnt;
    long double Lb = brute(Dl, lab, n, k, sg, f, &Wb, &cnt);
    double num = 0, den = 0; bool finite = true;
    for (size_t i = 0; i < W.size(); ++i) {
        finite &= std::isfinite(W[i]);
        num += (double)((W[i] - Wb[i]) * (W[i] - Wb[i])); den += (double)(Wb[i] * Wb[i]);
    }
    double gerr = den > 0 ? sqrt(num / den) : sqrt(num);
    double lerr = (double)fabsl(L - Lb) / (1e-300 + (double)fabsl(Lb));
    bool mix_ok = expect_mix == 0 || (expect_mix > 0 ? cnt > 0 && cnt < n : cnt == 0);
    bool ok = finite && (lerr < 1e-9 || fabsl(L - Lb) < 1e-12) && gerr < 1e-6 && count == cnt && mix_ok;
    CHECK(ok, "%s %s n=%d k=%d sg=%g: loss %.12g vs %.12Lg (rel %.1e), count %g vs %d, W err %.1e%s", f.name, what, n, k, sg, L, Lb, lerr, count, cnt, gerr, finite ? "" : ", non-finite W");
    if (ok) printf("ok   %s %s n=%d k=%d sg=%g: loss %.10g over %d rows, W err %.1e\n", f.name, what, n, k, sg, L, cnt, gerr);
}

// Part 2 (kind: 0 euclidean, 1 squared euclidean, 2 dot / cosine).
static double gpu(int kind, bool normalize, Form f, const std::vector<float>& x, const std::vector<float>& c, int n, int k, int d, const std::vector<int>& lab, std::vector<float>& gxo, std::vector<float>& gco) {
    std::vector<float> xh = x, ch = c, nx(n), nc(k), sx(n), sc(k), D(n * k), W(n * k, NAN), rs(n, 0.f), cs(k, 0.f), gx(n * d), gc(k * d);
    auto xs = x, cv = c;
    if (normalize) {
        launch({(unsigned)n}, {256}, [&] { normalize_rows_f32(xs.data(), xh.data(), nx.data(), n, d); });
        launch({(unsigned)k}, {256}, [&] { normalize_rows_f32(cv.data(), ch.data(), nc.data(), k, d); });
    }
    if (kind != 2) { launch({(unsigned)n}, {256}, [&] { row_sqnorms_f32(xh.data(), sx.data(), n, d); }); launch({(unsigned)k}, {256}, [&] { row_sqnorms_f32(ch.data(), sc.data(), k, d); }); }
    launch({cdiv(k, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), ch.data(), sx.data(), sc.data(), D.data(), n, k, d, kind); });
    double count;
    double L = stage3(D, lab, n, k, kind == 2 ? -1.f : 1.f, f, W, count);
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
    return L;
}
static long double loss_of(int kind, bool normalize, Form f, std::vector<long double> x, std::vector<long double> c, int n, int k, int d, const std::vector<int>& lab, int* counted = nullptr) {
    auto nz = [&](std::vector<long double>& v, int rows) { for (int i = 0; i < rows; ++i) { long double s = 0; for (int q = 0; q < d; ++q) s += v[i*d+q]*v[i*d+q]; s = std::max(sqrtl(s), 1e-12L); for (int q = 0; q < d; ++q) v[i*d+q] /= s; } };
    if (normalize) { nz(x, n); nz(c, k); }
    std::vector<long double> D((size_t)n * k);
    for (int i = 0; i < n; ++i) for (int cc = 0; cc < k; ++cc) {
        long double dot = 0, sq = 0; for (int q = 0; q < d; ++q) { dot += x[i*d+q]*c[cc*d+q]; long double t = x[i*d+q]-c[cc*d+q]; sq += t*t; }
        D[(size_t)i * k + cc] = kind == 2 ? dot : kind == 1 ? sq : sqrtl(sq);
    }
    return brute(D, lab, n, k, kind == 2 ? -1 : 1, f, nullptr, counted);
}
static void pipeline_case(int kind, bool normalize, Form f, int n, int k, int d, std::vector<int> lab, float spread = 0.5f, bool expect_mix = false) {
    std::vector<float> x(n * d), c(k * d); for (auto& v : x) v = nrm() * spread; for (auto& v : c) v = nrm() * spread;
    std::vector<float> gx(n * d), gc(k * d);
    double L = gpu(kind, normalize, f, x, c, n, k, d, lab, gx, gc);
    std::vector<long double> xd(x.begin(), x.end()), cd(c.begin(), c.end());
    int cnt;
    long double Lb = loss_of(kind, normalize, f, xd, cd, n, k, d, lab, &cnt);
    double num = 0, den = 0; const long double h = 1e-7L;
    auto fd = [&](std::vector<long double>& v, int i) { long double keep = v[i]; v[i] = keep + h; long double p = loss_of(kind, normalize, f, xd, cd, n, k, d, lab); v[i] = keep - h; long double mm = loss_of(kind, normalize, f, xd, cd, n, k, d, lab); v[i] = keep; return (double)((p - mm) / (2 * h)); };
    double numc = 0, denc = 0;
    for (int i = 0; i < n * d; ++i) { double g = fd(xd, i); num += (g-gx[i])*(g-gx[i]); den += g*g; }
    for (int i = 0; i < k * d; ++i) { double g = fd(cd, i); numc += (g-gc[i])*(g-gc[i]); denc += g*g; }
    double ex = den > 0 ? sqrt(num / den) : sqrt(num), ec = denc > 0 ? sqrt(numc / denc) : sqrt(numc);
    double lrel = (double)fabsl(L - Lb) / std::max((double)fabsl(Lb), 1e-2);
    bool ok = lrel < 1e-5 && ex < 1e-3 && ec < 1e-3 && (!expect_mix || (cnt > 0 && cnt < n));
    CHECK(ok, "pipeline %s kind %d norm %d n=%d k=%d: %.8g vs %.8Lg over %d rows, grad err %.2e, center grad err %.2e", f.name, kind, normalize, n, k, L, Lb, cnt, ex, ec);
    if (ok) printf("ok   pipeline %s kind %d norm %d n=%d k=%d: %.8g over %d rows, grad err %.2e, center grad err %.2e\n", f.name, kind, normalize, n, k, L, cnt, ex, ec);
}

int main() {
    auto robin = [](int n, int k) { std::vector<int> l(n); for (int i = 0; i < n; ++i) l[i] = (i * 7 + 3) % k; return l; };
    // The three defaults (margin_core): proxy-nca, normalized-softmax (1 / 0.05), cosface.
    const Form nca{1, 0, true, "proxy-nca"}, soft{20, 0, false, "normalized-softmax"}, cos{64, 0.35, false, "cosface"};
    for (Form f : {nca, soft, cos}) for (float sg : {-1.f, 1.f}) {
        for (int n : {1, 37}) for (int k : {1, 3, 10, 300}) {
            kernel_case(n, k, robin(n, k), sg, 4, f, "round robin");
            kernel_case(n, k, std::vector<int>(n, k - 1), sg, 4, f, "one class");
        }
        kernel_case(10, 10, robin(10, 10), sg, 4, f, "all distinct");
        kernel_case(300, 300, robin(300, 300), sg, 4, f, "all distinct");
    }
    kernel_case(300, 3, robin(300, 3), 1, 4, soft, "round robin");
    // The drop rule: scale 1000 over distances spread on [0, 4] puts most targets' log p far
    // below ln 2^-1075 while the rows whose own center is the nearest still count.
    const Form huge{1000, 0, true, "proxy-nca scale 1000"};
    for (int n : {37, 100}) for (int k : {3, 10, 300}) kernel_case(n, k, robin(n, k), 1, 4, huge, "some rows drop", 1);
    kernel_case(37, 3, robin(37, 3), 1, 4, huge, "every row drops", -1);
    kernel_case(300, 300, robin(300, 300), 1, 4, huge, "every row drops", -1);
    // Without the drop rule those rows count, with terms in the thousands.
    kernel_case(37, 10, robin(37, 10), 1, 4, Form{1000, 0, false, "no drop, scale 1000"}, "huge logits");
    for (int kind = 0; kind < 3; ++kind) for (int norm = 0; norm < 2; ++norm) {
        for (Form f : {nca, soft}) {
            pipeline_case(kind, norm, f, 9, 3, 5, robin(9, 3));
            pipeline_case(kind, norm, f, 7, 4, 3, std::vector<int>(7, 2));
            pipeline_case(kind, norm, f, 5, 1, 4, std::vector<int>(5, 0));
        }
    }
    // Cosface is cosine only (kind 2 on normalized rows).
    pipeline_case(2, true, cos, 9, 3, 5, robin(9, 3));
    pipeline_case(2, true, cos, 6, 6, 4, robin(6, 6));
    // Dropped rows through the whole chain: raw squared distances, scale 100.
    pipeline_case(1, false, Form{100, 0, true, "proxy-nca scale 100"}, 12, 4, 3, robin(12, 4), 1.5f, true);
    printf("%d failures\n", fails);
    return fails != 0;
}
