#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include "all.cu"
static std::mt19937_64 rng(11);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)
static double maxdiff(const std::vector<float>& a, const std::vector<double>& b) { double e = 0; for (size_t i = 0; i < a.size(); ++i) e = std::max(e, fabs(a[i] - b[i]) / (1 + fabs(b[i]))); return e; }

int main() {
    for (int trial = 0; trial < 16; ++trial) {
        int n = 1 + rng() % 30, C = 1 + rng() % 4;
        std::vector<int> lab(n); for (auto& l : lab) l = rng() % C;
        // Symmetric, as distance matrices are (lifted reads e_ji as e_ij). The square weight kernels
        // work in place: W starts as a copy of D and must come back whole (zeros included).
        std::vector<float> D(n * n); for (auto& v : D) v = nrm();
        for (int i = 0; i < n; ++i) for (int j = 0; j < i; ++j) D[i*n+j] = D[j*n+i];
        float sg = trial % 2 ? -1.f : 1.f; double pm0 = 0.1, nm0 = 0.7;
        double pm = sg * pm0, nm = sg * nm0;
        // lifted
        {
            std::vector<double> lse(n); std::vector<float> W = D; std::vector<double> part(n * 2);
            long long P = 0; for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) P += (i != j && lab[i] == lab[j]);
            double inv = P ? 1.0 / P : 0;
            launch({(unsigned)n}, {256}, [&] { lifted_lse_f32(D.data(), lab.data(), n, sg, nm, lse.data()); });
            launch({(unsigned)n}, {256}, [&] { lifted_rows_f32(W.data(), lab.data(), n, sg, nm, pm, lse.data(), inv, 0, part.data()); });
            std::vector<double> Wb(n * n, 0.0); double loss = 0, cnt = 0;
            auto e = [&](int a, int b) { return (double)(sg * D[a*n+b]); };
            for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) { if (i == j || lab[i] != lab[j]) continue;
                double s = 0; bool any = false;
                for (int k = 0; k < n; ++k) if (lab[k] != lab[i]) { s += exp(nm - e(i,k)); any = true; }
                for (int l = 0; l < n; ++l) if (lab[l] != lab[j]) { s += exp(nm - e(j,l)); any = true; }
                if (!any) continue;
                double L = log(s), J = L + e(i,j) - pm;
                if (J <= 0) continue;
                loss += J*J/2; cnt += 1; double g = J * inv;
                Wb[i*n+j] += sg * g;
                for (int k = 0; k < n; ++k) if (lab[k] != lab[i]) Wb[i*n+k] -= sg * g * exp(nm - e(i,k) - L);
                for (int l = 0; l < n; ++l) if (lab[l] != lab[j]) Wb[j*n+l] -= sg * g * exp(nm - e(j,l) - L);
            }
            double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
            CHECK(fabs(gl - loss) < 1e-9 * (1 + loss) && gc == cnt, "lifted %d: %g/%g vs %g/%g", trial, gl, gc, loss, cnt);
            CHECK(maxdiff(W, Wb) < 1e-5, "lifted %d W err %g", trial, maxdiff(W, Wb));
        }
        // contrastive
        {
            std::vector<float> W = D; std::vector<double> part(n * 4);
            launch({(unsigned)n}, {256}, [&] { contrastive_rows_f32(W.data(), lab.data(), n, sg, pm, nm, 0, part.data()); });
            double sp = 0, cp = 0, sn = 0, cn = 0; std::vector<double> Wb(n * n, 0.0);
            for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) { if (i == j) continue; double s = D[i*n+j];
                if (lab[i] == lab[j]) { double v = sg > 0 ? s - pm0 : pm0 - s; if (v > 0) { sp += v; cp++; Wb[i*n+j] = sg; } }
                else { double v = sg > 0 ? nm0 - s : s - nm0; if (v > 0) { sn += v; cn++; Wb[i*n+j] = -sg; } } }
            double a[4] = {0,0,0,0}; for (int i = 0; i < n; ++i) for (int c = 0; c < 4; ++c) a[c] += part[i*4+c];
            CHECK(fabs(a[0]-sp) < 1e-9*(1+sp) && a[1]==cp && fabs(a[2]-sn) < 1e-9*(1+sn) && a[3]==cn, "contrastive %d", trial);
            CHECK(maxdiff(W, Wb) < 1e-6, "contrastive W %d", trial);
        }
        // hard mining
        for (int smooth = 0; smooth < 2; ++smooth) {
            std::vector<float> W = D; std::vector<double> part(n * 2);
            double m = 0.3;
            launch({(unsigned)n}, {256}, [&] { triplet_hard_rows_f32(W.data(), lab.data(), n, sg, m, smooth, 0, part.data()); });
            std::vector<double> Wb(n * n, 0.0); double loss = 0, cnt = 0;
            for (int a = 0; a < n; ++a) { int bp = -1, bn = -1;
                for (int j = 0; j < n; ++j) { if (j == a) continue; float e = sg * D[a*n+j];
                    if (lab[j] == lab[a]) { if (bp < 0 || e > sg * D[a*n+bp]) bp = j; } else if (bn < 0 || e < sg * D[a*n+bn]) bn = j; }
                if (bp < 0 || bn < 0) continue;
                double v = (double)(sg*D[a*n+bp]) - (double)(sg*D[a*n+bn]) + m;
                if (smooth) { loss += log1p(exp(v)); cnt++; double g = 1/(1+exp(-v)); Wb[a*n+bp] = sg*g; Wb[a*n+bn] = -sg*g; }
                else if (v > 0) { loss += v; cnt++; Wb[a*n+bp] = sg; Wb[a*n+bn] = -sg; } }
            double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
            CHECK(fabs(gl - loss) < 1e-9*(1+loss) && gc == cnt, "hard %d", trial);
            CHECK(maxdiff(W, Wb) < 1e-6, "hard W %d", trial);
        }
        // n-pair with arbitrary distinct anchor/positive rows
        if (n >= 4) {
            int k = n / 2; std::vector<int> anc(k), pos(k); for (int i = 0; i < k; ++i) { anc[i] = 2*i; pos[i] = 2*i+1; }
            std::vector<float> W = D; std::vector<double> part(k);
            std::vector<int> slot(n, -1), col(n, -1); for (int i = 0; i < k; ++i) { slot[anc[i]] = i; col[pos[i]] = i; }
            launch({(unsigned)n}, {256}, [&] { npair_rows_f32(W.data(), n, anc.data(), pos.data(), slot.data(), col.data(), k, sg, 0, part.data()); });
            std::vector<double> Wb(n * n, 0.0); double loss = 0;
            for (int i = 0; i < k; ++i) { double mx = -1e300; for (int j = 0; j < k; ++j) mx = std::max(mx, -(double)sg*D[anc[i]*n+pos[j]]);
                double s = 0; for (int j = 0; j < k; ++j) s += exp(-(double)sg*D[anc[i]*n+pos[j]] - mx); double lse = mx + log(s);
                loss += lse + (double)sg*D[anc[i]*n+pos[i]];
                for (int j = 0; j < k; ++j) Wb[anc[i]*n+pos[j]] = -sg * (exp(-(double)sg*D[anc[i]*n+pos[j]] - lse) - (i==j)) / k; }
            double gl = 0; for (double v : part) gl += v;
            CHECK(fabs(gl - loss) < 1e-9*(1+loss), "npair %d", trial);
            CHECK(maxdiff(W, Wb) < 1e-6, "npair W %d", trial);
        }
        // triplet-center with K = C + 1 centers
        {
            int K = C + 1; std::vector<float> Dx(n * K); for (auto& v : Dx) v = nrm();
            std::vector<float> W(n * K, 0.f); std::vector<double> part(n * 2); double m = 0.4;
            launch({(unsigned)n}, {256}, [&] { triplet_center_rows_f32(Dx.data(), lab.data(), n, K, sg, m, 1.0 / n, W.data(), part.data()); });
            std::vector<double> Wb(n * K, 0.0); double loss = 0, cnt = 0;
            for (int i = 0; i < n; ++i) { int bi = -1; for (int c = 0; c < K; ++c) { if (c == lab[i]) continue; if (bi < 0 || sg*Dx[i*K+c] < sg*Dx[i*K+bi]) bi = c; }
                double v = (double)(sg*Dx[i*K+lab[i]]) - (double)(sg*Dx[i*K+bi]) + m;
                if (v > 0) { loss += v; cnt++; Wb[i*K+lab[i]] = sg/(double)n; Wb[i*K+bi] = -sg/(double)n; } }
            double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
            CHECK(fabs(gl - loss) < 1e-9*(1+loss) && gc == cnt, "tc %d", trial);
            CHECK(maxdiff(W, Wb) < 1e-6, "tc W %d", trial);
        }
        // chain_prep + normalize kernels
        {
            std::vector<float> W(n * n), Dd(n * n); for (auto& v : W) v = nrm(); for (auto& v : Dd) v = fabs(nrm());
            for (int i = 0; i < n; ++i) for (int j = 0; j < i; ++j) Dd[i*n+j] = Dd[j*n+i];
            Dd[0] = 0;
            std::vector<double> stats = {0.5, 0.25}; auto W0 = W;
            unsigned t = (n + 15) / 16;
            launch({t, t}, {16, 16}, [&] { chain_prep_f32(W.data(), Dd.data(), lab.data(), stats.data(), 0, 1, n, 1); });
            std::vector<double> Wb(n * n);
            for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) { double m = ((double)W0[i*n+j] + W0[j*n+i]) * (lab[i]==lab[j] ? 0.5 : 0.25);
                Wb[i*n+j] = Dd[i*n+j] > 0 ? m / Dd[i*n+j] : 0; }
            CHECK(maxdiff(W, Wb) < 1e-5, "chain_prep %d", trial);
        }
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
