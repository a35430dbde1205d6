#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include <map>

#include "all.cu"

static std::mt19937_64 rng(7);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void test_pairwise() {
    for (int kind = 0; kind < 3; ++kind) {
        int nq = 70, nr = 67, d = 33;
        std::vector<float> q(nq * d), r(nr * d), qn(nq), rn(nr), out(nq * nr);
        for (auto& v : q) v = nrm(); for (auto& v : r) v = nrm();
        for (int i = 0; i < nq; ++i) { double s = 0; for (int c = 0; c < d; ++c) s += (double)q[i*d+c]*q[i*d+c]; qn[i] = s; }
        for (int i = 0; i < nr; ++i) { double s = 0; for (int c = 0; c < d; ++c) s += (double)r[i*d+c]*r[i*d+c]; rn[i] = s; }
        launch({(unsigned)(nr + 63) / 64, (unsigned)(nq + 63) / 64}, {256}, [&] { pairwise_f32(q.data(), r.data(), qn.data(), rn.data(), out.data(), nq, nr, d, kind); });
        double maxerr = 0;
        for (int i = 0; i < nq; ++i) for (int j = 0; j < nr; ++j) {
            double dot = 0, sq = 0; for (int c = 0; c < d; ++c) { dot += (double)q[i*d+c]*r[j*d+c]; double t = (double)q[i*d+c]-r[j*d+c]; sq += t*t; }
            double want = kind == 2 ? dot : kind == 1 ? sq : sqrt(sq);
            maxerr = std::max(maxerr, fabs(want - out[i*nr+j]) / (1 + fabs(want)));
        }
        CHECK(maxerr < 1e-4, "pairwise kind %d err %g", kind, maxerr);
        // self: bitwise symmetric
        std::vector<float> o2(nq * nq);
        launch({(unsigned)(nq + 63) / 64, (unsigned)(nq + 63) / 64}, {256}, [&] { pairwise_f32(q.data(), q.data(), qn.data(), qn.data(), o2.data(), nq, nq, d, kind); });
        int asym = 0; for (int i = 0; i < nq; ++i) for (int j = 0; j < nq; ++j) asym += o2[i*nq+j] != o2[j*nq+i];
        CHECK(asym == 0, "asymmetric self matrix kind %d: %d", kind, asym);
    }
    printf("pairwise done\n");
}

static void test_grad_gemm() {
    for (int trans = 0; trans < 2; ++trans) for (int diag = 0; diag < 2; ++diag) {
        int rows = 67, inner = 45, d = 70;
        std::vector<float> M(rows * inner), Y(inner * d), S(rows * d), rs(rows), out(rows * d);
        for (auto& v : M) v = nrm(); for (auto& v : Y) v = nrm(); for (auto& v : S) v = nrm(); for (auto& v : rs) v = nrm();
        float alpha = 2.0f;
        launch({(unsigned)(d + 63) / 64, (unsigned)(rows + 63) / 64}, {256}, [&] { grad_gemm_f32(M.data(), Y.data(), S.data(), rs.data(), out.data(), rows, inner, d, trans, diag, alpha); });
        double maxerr = 0;
        for (int i = 0; i < rows; ++i) for (int c = 0; c < d; ++c) {
            double acc = 0; for (int k = 0; k < inner; ++k) acc += (double)(trans ? M[k*rows+i] : M[i*inner+k]) * Y[k*d+c];
            double want = alpha * (diag ? rs[i]*S[i*d+c] - acc : acc);
            maxerr = std::max(maxerr, fabs(want - out[i*d+c]) / (1 + fabs(want)));
        }
        CHECK(maxerr < 1e-4, "grad_gemm trans %d diag %d err %g", trans, diag, maxerr);
    }
    printf("grad_gemm done\n");
}

__global__ void sort_test_kernel(float* v, int m) {
    __shared__ float smem[MARGIN_SORT_SMEM];
    block_sort_values(v, m, smem);
}
__global__ void scan_test_kernel(int* a, int len) {
    __shared__ int tot[MARGIN_THREADS];
    block_inclusive_scan_int(a, len, tot);
}

static void test_block_sort_scan() {
    for (int m : {1, 2, 3, 17, 256, 1000, 2048, 2049, 3000, 5000}) {
        int len = 1; while (len < m) len <<= 1;
        std::vector<float> v(len); for (int i = 0; i < m; ++i) v[i] = (float)(rng() % 50) - 25;
        std::vector<float> w(v.begin(), v.begin() + m); std::sort(w.begin(), w.end());
        launch({1}, {256}, [&] { sort_test_kernel(v.data(), m); });
        CHECK(std::equal(w.begin(), w.end(), v.begin()), "block sort m=%d", m);
        std::vector<int> a(m), b(m); for (int i = 0; i < m; ++i) a[i] = (int)(rng() % 7) - 3;
        int run = 0; for (int i = 0; i < m; ++i) { run += a[i]; b[i] = run; }
        launch({1}, {256}, [&] { scan_test_kernel(a.data(), m); });
        CHECK(a == b, "block scan m=%d", m);
    }
    printf("block sort/scan done\n");
}

// host helpers mirroring pipeline.rs
static void excl_scan(std::vector<u64>& data) {
    size_t len = data.size(); size_t blocks = std::max<size_t>(1, (len + 2047) / 2048);
    std::vector<u64> sums(blocks);
    launch({(unsigned)blocks}, {256}, [&] { scan_blocks_u64(data.data(), len, sums.data()); });
    if (blocks > 1) {
        excl_scan(sums);
        launch({(unsigned)((len + 255) / 256)}, {256}, [&] { add_offsets_u64(data.data(), len, sums.data()); });
    }
}
static void bitonic(std::vector<u64>& keys) {
    size_t len = keys.size();
    for (size_t k = 2; k <= len; k <<= 1) for (size_t j = k / 2; j > 0; j >>= 1)
        launch({(unsigned)((len + 255) / 256)}, {256}, [&] { bitonic_step_u64(keys.data(), len, j, k); });
}
static void test_scan_sort() {
    for (size_t len : {1ul, 5ul, 2048ul, 2049ul, 5000ul}) {
        std::vector<u64> h(len), want(len); u64 run = 0;
        for (size_t i = 0; i < len; ++i) { h[i] = rng() % 5; want[i] = run; run += h[i]; }
        excl_scan(h);
        CHECK(h == want, "excl scan len=%zu", len);
    }
    std::vector<u64> k(1024); for (auto& v : k) v = rng() % 100;
    auto w = k; std::sort(w.begin(), w.end()); bitonic(k);
    CHECK(k == w, "bitonic u64");
    printf("device scan/sort done\n");
}

// brute force triplet: returns loss, count, W row contributions
static void test_triplet() {
    for (int trial = 0; trial < 24; ++trial) {
        int n = 1 + rng() % 40, C = 1 + rng() % 4;
        int semihard = trial % 2, smooth = (trial / 2) % 2;
        bool quant = (trial / 4) % 2;
        float sg = (trial / 8) % 2 ? -1.f : 1.f;
        double m = (trial % 3 == 0) ? 0.25 : 0.5;
        std::vector<int> lab(n); for (auto& l : lab) l = rng() % C;
        std::vector<float> D(n * n); for (auto& v : D) v = quant ? (float)((int)(rng() % 9) - 4) * 0.25f : nrm();
        int cap = 1; while (cap < n) cap <<= 1;
        int blocks = std::min(n, 3);
        std::vector<float> W(n * n, 0.f), scratch(blocks * 2 * cap); std::vector<int> diff(blocks * (cap + 1));
        std::vector<double> part(n * 2, 0.0), stats(1, 0.0);
        // In place: W starts as D and must come back whole.
        W = D;
        launch({(unsigned)blocks}, {256}, [&] { triplet_rows_f32(W.data(), lab.data(), n, sg, m, semihard, smooth, 0, part.data(), 2, 1, 1, stats.data(), -1, scratch.data(), diff.data(), cap); });
        std::vector<double> Wb(n * n, 0.0);
        for (int a = 0; a < n; ++a) {
            double loss = 0, cnt = 0;
            for (int p = 0; p < n; ++p) { if (p == a || lab[p] != lab[a]) continue;
                for (int q = 0; q < n; ++q) { if (lab[q] == lab[a]) continue;
                    double x = (double)(sg * D[a*n+p]), y = (double)(sg * D[a*n+q]);
                    double v = x - y + m, dl = y - x;
                    bool mined = !semihard || (dl > 0 && dl <= m);
                    if (!mined) continue;
                    if (smooth) { double s = 1 / (1 + exp(-v)); loss += log1p(exp(v)); cnt += 1; Wb[a*n+p] += sg*s; Wb[a*n+q] -= sg*s; }
                    else if (v > 0) { loss += v; cnt += 1; Wb[a*n+p] += sg; Wb[a*n+q] -= sg; } } }
            CHECK(fabs(loss - part[a*2]) < 1e-6 * (1 + fabs(loss)) && cnt == part[a*2+1], "triplet trial %d anchor %d: %g/%g vs %g/%g", trial, a, part[a*2], part[a*2+1], loss, cnt);
        }
        double err = 0; for (int i = 0; i < n * n; ++i) err = std::max(err, fabs(Wb[i] - W[i]) / (1 + fabs(Wb[i])));
        CHECK(err < 1e-5, "triplet trial %d W err %g", trial, err);
    }
    printf("triplet done\n");
}

static void test_quad2() {
    for (int trial = 0; trial < 12; ++trial) {
        int n = 2 + rng() % 14, C = 1 + rng() % 4;
        std::vector<int> lab(n); std::map<int,int> mp; for (auto& l : lab) { int r = rng() % C; auto it = mp.emplace(r, (int)mp.size()).first; l = it->second; }
        int CC = mp.size();
        std::vector<float> D(n * n); for (auto& v : D) v = trial % 2 ? (float)((int)(rng() % 9) - 4) * 0.25f : nrm();
        float sg = trial % 3 == 0 ? -1.f : 1.f; double m2 = 0.5;
        std::vector<int> counts(CC, 0); for (int l : lab) counts[l]++;
        std::vector<long long> pstart(CC + 1, 0); std::vector<int> mstart(CC + 1, 0);
        for (int c = 0; c < CC; ++c) { pstart[c+1] = pstart[c] + (long long)counts[c]*(counts[c]-1); mstart[c+1] = mstart[c] + counts[c]; }
        size_t npos = pstart[CC]; if (npos == 0) continue;
        std::vector<int> members(n), pos_in(n), fill(mstart.begin(), mstart.end() - 1);
        for (int r = 0; r < n; ++r) { int c = lab[r]; pos_in[r] = fill[c] - mstart[c]; members[fill[c]++] = r; }
        size_t len = 1; while (len < npos) len <<= 1;
        std::vector<u64> kg(len, ~0ull), ks(len, ~0ull);
        launch({(unsigned)n}, {256}, [&] { quad_pair_keys_f32(D.data(), lab.data(), n, sg, members.data(), mstart.data(), pstart.data(), pos_in.data(), kg.data(), ks.data()); });
        bitonic(kg); bitonic(ks);
        std::vector<float> xg(npos), xs(npos);
        launch({(unsigned)((npos + 255) / 256)}, {256}, [&] { decode_keys_f32(kg.data(), xg.data(), npos); decode_keys_f32(ks.data(), xs.data(), npos); });
        std::vector<u64> hg(npos + 1, 0), hs(npos + 1, 0); std::vector<double> part(n * 5, 0.0), stats(1); std::vector<float> W(n * n, 0.f);
        launch({(unsigned)n}, {256}, [&] { quad_neg_pairs_f32(D.data(), lab.data(), n, sg, m2, xg.data(), xs.data(), pstart.data(), npos, hg.data(), hs.data(), 1, part.data(), 5, 0, W.data(), stats.data(), -1); });
        excl_scan(hg); excl_scan(hs);
        launch({(unsigned)n}, {256}, [&] { quad_pos_pairs_f32(D.data(), lab.data(), n, sg, m2, xg.data(), xs.data(), pstart.data(), npos, hg.data(), hs.data(), 1, part.data(), 5, 0, W.data(), stats.data(), -1); });
        launch({(unsigned)n}, {256}, [&] { quad_neg_pairs_f32(D.data(), lab.data(), n, sg, m2, xg.data(), xs.data(), pstart.data(), npos, hg.data(), hs.data(), 0, part.data(), 5, 1, W.data(), stats.data(), -1); });
        launch({(unsigned)n}, {256}, [&] { quad_pos_pairs_f32(D.data(), lab.data(), n, sg, m2, xg.data(), xs.data(), pstart.data(), npos, hg.data(), hs.data(), 0, part.data(), 5, 1, W.data(), stats.data(), -1); });
        double loss = 0, cnt = 0; std::vector<double> Wb(n * n, 0.0);
        for (int a = 0; a < n; ++a) for (int p = 0; p < n; ++p) { if (p == a || lab[p] != lab[a]) continue;
            for (int k = 0; k < n; ++k) for (int l = 0; l < n; ++l) {
                if (lab[k] == lab[l] || lab[k] == lab[a] || lab[l] == lab[a]) continue;
                double x = sg * D[a*n+p], z = sg * D[k*n+l];
                if (x + m2 > z) { loss += x - z + m2; cnt += 1; Wb[a*n+p] += sg; Wb[k*n+l] -= sg; } } }
        double gl = 0, gc = 0; for (int r = 0; r < n; ++r) { gl += part[r*5+2] + part[r*5+4]; gc += part[r*5+3]; }
        CHECK(fabs(gl - loss) < 1e-6 * (1 + fabs(loss)) && gc == cnt, "quad trial %d: %g/%g vs %g/%g", trial, gl, gc, loss, cnt);
        double err = 0; for (int i = 0; i < n * n; ++i) err = std::max(err, fabs(Wb[i] - W[i]));
        CHECK(err < 1e-4, "quad trial %d W err %g", trial, err);
    }
    printf("quadruplet term 2 done\n");
}

int main() {
    test_pairwise(); test_grad_gemm(); test_block_sort_scan(); test_scan_sort(); test_triplet(); test_quad2();
    printf("%d failures\n", fails);
    return fails != 0;
}
