// The fused k-nearest-neighbour kernels of knn.cu on the CPU emulator (cuda_emu.h), against
// brute force in double: every kind (euclidean, squared euclidean, dot), self and second-set
// references, both variants (k <= 32 and k <= 128), sizes off the tile grid, and exact ties on
// small integer inputs. Run from the repository root (about a minute on 2 cores):
//   g++ -std=c++20 -O2 -pthread -w -Ishaders/cuda -Ishaders/cuda/emu \
//       shaders/cuda/emu/knn_test.cpp -o /tmp/knn_test && /tmp/knn_test
#include "cuda_emu.h"
#include "common.cuh"
#include "knn.cu"
#include <cstdio>
#include <random>

static int failures = 0;

struct Case {
    int kind, nq, nr, d, k;
    bool self_ex, integer;
};

static void run(const Case& c, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    const int nr = c.self_ex ? c.nq : c.nr;
    std::vector<float> q(c.nq * c.d), r(nr * c.d);
    for (auto& v : q) v = c.integer ? (float)((int)(rng() % 5) - 2) : nd(rng);
    if (c.self_ex) r = q;
    else for (auto& v : r) v = c.integer ? (float)((int)(rng() % 5) - 2) : nd(rng);
    auto sqn = [&](const std::vector<float>& x, int n) {
        std::vector<float> out(n);
        for (int i = 0; i < n; ++i) {
            double s = 0;
            for (int t = 0; t < c.d; ++t) s += (double)x[i * c.d + t] * x[i * c.d + t];
            out[i] = (float)s;
        }
        return out;
    };
    std::vector<float> qn = sqn(q, c.nq), rn = sqn(r, nr);
    std::vector<unsigned> idx(c.nq * c.k, 7u);
    std::vector<float> val(c.nq * c.k, -1.0f);
    const bool small = c.k <= 32;
    const int tq = small ? 32 : 16;
    const float* R = c.self_ex ? q.data() : r.data();
    const float* RN = c.self_ex ? qn.data() : rn.data();
    dim3u grid{(unsigned)((c.nq + tq - 1) / tq), 1, 1}, block{256, 1, 1};
    launch(grid, block, [&] {
        if (small) {
            knn_small_f32(q.data(), R, qn.data(), RN, idx.data(), val.data(), c.nq, nr, c.d, c.k,
                          c.kind, c.self_ex, 0);
        } else {
            knn_large_f32(q.data(), R, qn.data(), RN, idx.data(), val.data(), c.nq, nr, c.d, c.k,
                          c.kind, c.self_ex, 0);
        }
    });
    // Brute force in double, rounded to float as the oracle backend does.
    double scale = 0;
    std::vector<float> mat((size_t)c.nq * nr);
    for (int i = 0; i < c.nq; ++i) {
        for (int j = 0; j < nr; ++j) {
            double dot = 0, sq = 0;
            for (int t = 0; t < c.d; ++t) {
                const double a = q[i * c.d + t], b = R[j * c.d + t];
                dot += a * b;
                sq += (a - b) * (a - b);
            }
            const double v = c.kind == 2 ? dot : c.kind == 1 ? sq : std::sqrt(sq);
            mat[(size_t)i * nr + j] = (float)v;
            scale = std::max(scale, std::fabs(v));
        }
    }
    const float tol = (float)(1e-5 * std::max(scale, 1e-30));
    int bad = 0;
    for (int i = 0; i < c.nq && bad < 5; ++i) {
        std::vector<std::pair<float, int>> cand;
        for (int j = 0; j < nr; ++j) {
            if (c.self_ex && j == i) continue;
            const float v = mat[(size_t)i * nr + j];
            cand.push_back({c.kind == 2 ? -v : v, j});
        }
        std::sort(cand.begin(), cand.end());
        for (int t = 0; t < c.k; ++t) {
            const unsigned j = idx[i * c.k + t];
            const float s = val[i * c.k + t];
            const float ws = c.kind == 2 ? -cand[t].first : cand[t].first;
            const int wj = cand[t].second;
            bool ok = j < (unsigned)nr && !(c.self_ex && (int)j == i) && std::fabs(s - ws) <= tol;
            if (ok && (int)j != wj) {
                // Only a near tie may reorder; exact (integer) inputs must match exactly.
                ok = !c.integer && std::fabs(mat[(size_t)i * nr + j] - ws) <= tol;
            }
            if (!ok) {
                if (bad++ < 5) {
                    printf("FAIL kind %d nq %d nr %d d %d k %d self %d int %d: row %d rank %d: "
                           "got %u (%g), want %d (%g)\n",
                           c.kind, c.nq, nr, c.d, c.k, (int)c.self_ex, (int)c.integer, i, t, j,
                           s, wj, ws);
                }
            }
        }
    }
    if (bad) ++failures;
}

int main() {
    const Case cases[] = {
        {0, 37, 150, 20, 7, false, false},  {1, 37, 150, 20, 1, false, false},
        {2, 37, 150, 20, 32, false, false}, {0, 20, 150, 19, 100, false, false},
        {2, 17, 130, 33, 128, false, false}, {1, 50, 0, 20, 49, true, false},
        {0, 40, 0, 9, 5, true, false},      {2, 33, 0, 5, 32, true, false},
        {1, 40, 200, 3, 10, false, true},   {2, 40, 200, 3, 60, false, true},
        {0, 35, 0, 3, 34, true, true},      {1, 1, 1, 4, 1, false, false},
    };
    unsigned seed = 1;
    for (const Case& c : cases) run(c, seed++);
    printf("knn_test: %d failing case(s) of %zu\n", failures, sizeof(cases) / sizeof(cases[0]));
    return failures ? 1 : 0;
}
