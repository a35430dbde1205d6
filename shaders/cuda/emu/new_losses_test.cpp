// The six losses of new_losses.md (multi-similarity, circle, nt-xent, supcon, generalized lifted
// structure, hard-mined quadruplet): the kernels of pml_losses.cu and quad_hard.cu against a
// brute-force f64 evaluation written straight from the brief's formulas (loss, active counts and
// the full dL/dD, AvgNonZero scales applied as stage 4 would).
#include "cuda_emu.h"
#include <cstdio>
#include <random>
#include "all.cu"
static std::mt19937_64 rng(23);
static float nrm() { static std::normal_distribution<float> d; return d(rng); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)
static double maxdiff(const std::vector<float>& a, const std::vector<double>& b) { double e = 0; for (size_t i = 0; i < a.size(); ++i) e = std::max(e, fabs(a[i] - b[i]) / (1 + fabs(b[i]))); return e; }
static bool close(double a, double b) { return fabs(a - b) <= 1e-9 * (1 + fabs(b)); }
static unsigned TH = 64;

// log(sum exp) of a list, -inf when empty.
static double lse(const std::vector<double>& v) {
    if (v.empty()) return -INFINITY;
    double m = *std::max_element(v.begin(), v.end()), s = 0; for (double x : v) s += exp(x - m); return m + log(s);
}

struct Case { int n; std::vector<int> lab; std::vector<float> D; float sg; int C; };

static void multi_similarity(const Case& c) {
    int n = c.n; float sg = c.sg; double al = 2, be = 50 * 0.2, base = 0.5, bp = sg * base;
    std::vector<float> W = c.D; std::vector<double> part(n * 3);  // in place: W starts as D
    launch({(unsigned)n}, {TH}, [&] { multi_similarity_rows_f32(W.data(), c.lab.data(), n, sg, al, be, bp, 1.0 / n, 0, part.data()); });
    std::vector<double> Wb(n * n, 0.0); double loss = 0, a0 = 0, a1 = 0;
    for (int i = 0; i < n; ++i) {
        double sp = 1, sn = 1; bool hp = false, hn = false;
        for (int j = 0; j < n; ++j) { if (j == i) continue; double e = sg * c.D[i*n+j];
            if (c.lab[j] == c.lab[i]) { sp += exp(al * (e - bp)); hp = true; } else { sn += exp(be * (bp - e)); hn = true; } }
        loss += log(sp) / al + log(sn) / be; a0 += hp; a1 += hn;
        for (int j = 0; j < n; ++j) { if (j == i) continue; double e = sg * c.D[i*n+j];
            if (c.lab[j] == c.lab[i]) Wb[i*n+j] = sg * exp(al * (e - bp)) / sp / n; else Wb[i*n+j] = -sg * exp(be * (bp - e)) / sn / n; }
    }
    double g[3] = {0, 0, 0}; for (int i = 0; i < n; ++i) for (int k = 0; k < 3; ++k) g[k] += part[i*3+k];
    CHECK(close(g[0] / n, loss / n) && g[1] == a0 && g[2] == a1, "ms n=%d: %g %g %g vs %g %g %g", n, g[0], g[1], g[2], loss, a0, a1);
    CHECK(maxdiff(W, Wb) < 1e-5, "ms W n=%d err %g", n, maxdiff(W, Wb));
}

static void circle(const Case& c) {
    int n = c.n; double m = 0.4, gm = 8;  // smaller gamma keeps the brute force's plain exp finite
    std::vector<float> W = c.D; std::vector<double> part(n * 2);
    launch({(unsigned)n}, {TH}, [&] { circle_rows_f32(W.data(), c.lab.data(), n, m, gm, part.data()); });
    std::vector<double> Wb(n * n, 0.0); double loss = 0, cnt = 0;
    for (int i = 0; i < n; ++i) {
        std::vector<double> lp, ln;
        for (int j = 0; j < n; ++j) { if (j == i) continue; double s = c.D[i*n+j];
            if (c.lab[j] == c.lab[i]) lp.push_back(-gm * std::max(1 + m - s, 0.0) * (s - (1 - m))); else ln.push_back(gm * std::max(s + m, 0.0) * (s - m)); }
        if (lp.empty() || ln.empty()) continue;
        double Lp = lse(lp), Ln = lse(ln), z = Lp + Ln, L = log1p(exp(z));  // counted even if 0
        loss += L; cnt += 1; double sz = 1 / (1 + exp(-z));
        for (int j = 0; j < n; ++j) { if (j == i) continue; double s = c.D[i*n+j];
            if (c.lab[j] == c.lab[i]) { double x = -gm * std::max(1 + m - s, 0.0) * (s - (1 - m)); Wb[i*n+j] = sz * exp(x - Lp) * (-gm * std::max(1 + m - s, 0.0)); }
            else { double x = gm * std::max(s + m, 0.0) * (s - m); Wb[i*n+j] = sz * exp(x - Ln) * (gm * std::max(s + m, 0.0)); } }
    }
    double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
    CHECK(close(gl, loss) && gc == cnt, "circle n=%d: %g/%g vs %g/%g", n, gl, gc, loss, cnt);
    std::vector<float> Ws(n * n); for (int i = 0; i < n * n; ++i) Ws[i] = cnt > 0 ? W[i] / cnt : W[i];
    for (auto& v : Wb) v = cnt > 0 ? v / cnt : v;
    CHECK(maxdiff(Ws, Wb) < 1e-5, "circle W n=%d err %g", n, maxdiff(Ws, Wb));
}

static void ntxent(const Case& c) {
    int n = c.n; float sg = c.sg; double tau = 0.3;
    long long P = 0; for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) P += i != j && c.lab[i] == c.lab[j];
    if (P == 0) return;  // the host returns 0 before launching
    std::vector<float> W = c.D; std::vector<double> part(n);
    launch({(unsigned)n}, {TH}, [&] { ntxent_rows_f32(W.data(), c.lab.data(), n, sg, 1 / tau, 1 / (tau * P), 0, part.data()); });
    std::vector<double> Wb(n * n, 0.0); double loss = 0;
    auto v = [&](int a, int b) { return -(double)(sg * c.D[a*n+b]); };
    for (int a = 0; a < n; ++a) {
        double S = 0; bool any = false; for (int j = 0; j < n; ++j) if (c.lab[j] != c.lab[a]) { S += exp(v(a,j) / tau); any = true; }
        for (int p = 0; p < n; ++p) { if (p == a || c.lab[p] != c.lab[a]) continue;
            if (!any) continue;  // l = 0, no gradient
            double ex = exp(v(a,p) / tau), Z = ex + S; loss += log(Z) - v(a,p) / tau;
            Wb[a*n+p] += -sg * (ex / Z - 1) / (tau * P);
            for (int j = 0; j < n; ++j) if (c.lab[j] != c.lab[a]) Wb[a*n+j] += -sg * exp(v(a,j) / tau) / (tau * P) / Z; }
    }
    double gl = 0; for (double x : part) gl += x;
    CHECK(close(gl / P, loss / P), "ntxent n=%d: %g vs %g", n, gl / P, loss / P);
    CHECK(maxdiff(W, Wb) < 1e-5, "ntxent W n=%d err %g", n, maxdiff(W, Wb));
}

static void supcon(const Case& c) {
    int n = c.n; float sg = c.sg; double tau = 0.5;
    std::vector<float> W = c.D; std::vector<double> part(n * 2);
    launch({(unsigned)n}, {TH}, [&] { supcon_rows_f32(W.data(), c.lab.data(), n, sg, 1 / tau, 0, part.data()); });
    std::vector<double> Wb(n * n, 0.0); double loss = 0, cnt = 0;
    auto v = [&](int a, int b) { return -(double)(sg * c.D[a*n+b]) / tau; };
    for (int i = 0; i < n; ++i) {
        std::vector<double> all; double sp = 0; int np = 0;
        for (int j = 0; j < n; ++j) { if (j == i) continue; all.push_back(v(i,j)); if (c.lab[j] == c.lab[i]) { sp += v(i,j); ++np; } }
        if (np == 0) continue;
        double L = lse(all) - sp / np;  // > 0 exactly (N >= 3): counted structurally
        loss += L; cnt += 1;
        for (int j = 0; j < n; ++j) { if (j == i) continue; Wb[i*n+j] = -sg * (exp(v(i,j) - lse(all)) - (c.lab[j] == c.lab[i] ? 1.0 / np : 0.0)) / tau; }
    }
    double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
    CHECK(close(gl, loss) && gc == cnt, "supcon n=%d: %g/%g vs %g/%g", n, gl, gc, loss, cnt);
    std::vector<float> Ws(n * n); for (int i = 0; i < n * n; ++i) Ws[i] = cnt > 0 ? W[i] / cnt : W[i];
    for (auto& x : Wb) x = cnt > 0 ? x / cnt : x;
    CHECK(maxdiff(Ws, Wb) < 1e-5, "supcon W n=%d err %g", n, maxdiff(Ws, Wb));
}

static void gen_lifted(const Case& c) {
    int n = c.n; float sg = c.sg; double pm = sg * 0.1, nm = sg * 1.0;
    std::vector<float> W = c.D; std::vector<double> part(n * 2);
    launch({(unsigned)n}, {TH}, [&] { gen_lifted_rows_f32(W.data(), c.lab.data(), n, sg, pm, nm, 1.0 / n, 0, part.data()); });
    std::vector<double> Wb(n * n, 0.0); double loss = 0, cnt = 0;
    for (int i = 0; i < n; ++i) {
        std::vector<double> pe, ne;
        for (int j = 0; j < n; ++j) { if (j == i) continue; double e = sg * c.D[i*n+j]; if (c.lab[j] == c.lab[i]) pe.push_back(e - pm); else ne.push_back(nm - e); }
        double Lp = pe.empty() ? 0 : lse(pe), Ln = ne.empty() ? 0 : lse(ne), arg = Lp + Ln;
        if (!(arg > 0)) continue;
        loss += arg; cnt += 1;
        for (int j = 0; j < n; ++j) { if (j == i) continue; double e = sg * c.D[i*n+j];
            Wb[i*n+j] = c.lab[j] == c.lab[i] ? sg * exp(e - pm - Lp) / n : -sg * exp(nm - e - Ln) / n; }
    }
    double gl = 0, gc = 0; for (int i = 0; i < n; ++i) { gl += part[i*2]; gc += part[i*2+1]; }
    CHECK(close(gl, loss) && gc == cnt, "gls n=%d: %g/%g vs %g/%g", n, gl, gc, loss, cnt);
    CHECK(maxdiff(W, Wb) < 1e-5, "gls W n=%d err %g", n, maxdiff(W, Wb));
}

static void quad_hard(const Case& c) {
    int n = c.n, C = c.C; float sg = c.sg; double m1 = 0.7, m2 = 0.3;
    std::vector<float> v1(n), v2(n), cv(C), W(n * n, 0.f); std::vector<int> l1(n), l2(n), ck(C), cl(C), sel(n * 3), act(C, 0);
    std::vector<double> part(n * 4);
    launch({(unsigned)n}, {TH}, [&] { quad_hard_top2_f32(c.D.data(), c.lab.data(), n, sg, v1.data(), l1.data(), v2.data(), l2.data()); });
    launch({(unsigned)C}, {TH}, [&] { quad_hard_class_f32(c.lab.data(), n, C, v1.data(), l1.data(), v2.data(), l2.data(), cv.data(), ck.data(), cl.data()); });
    launch({(unsigned)n}, {TH}, [&] { quad_hard_rows_f32(c.D.data(), c.lab.data(), n, sg, m1, m2, cv.data(), ck.data(), sel.data(), part.data(), act.data()); });
    double st[6] = {0, 0, 0, 0, 0, 0}; for (int i = 0; i < n; ++i) for (int k = 0; k < 4; ++k) st[k] += part[i*4+k];
    st[4] = st[1] > 0 ? 1 / st[1] : 0; st[5] = st[3] > 0 ? 1 / st[3] : 0;
    // In place over a copy of the distances (raw weights: euclid 0), three blocks striding over
    // the rows; every entry must come back written, zeros included.
    W = c.D; const unsigned blocks = (unsigned)std::min(n, 3); std::vector<float> keep(blocks * n);
    launch({blocks}, {TH}, [&] { quad_hard_inplace_f32(W.data(), c.lab.data(), c.lab.data(), n, n, sg, 0, sel.data(), st, 4, 5, act.data(), ck.data(), cl.data(), C, keep.data()); });
    // Brute force: every anchor searches all ordered pairs itself.
    auto e = [&](int a, int b) { return sg * c.D[a*n+b]; };
    double s1 = 0, n1 = 0, s2 = 0, n2 = 0; std::vector<int> f1(n, 0), f2(n, 0), P(n, -1), N(n, -1), K(n, -1), L(n, -1);
    for (int a = 0; a < n; ++a) {
        for (int j = 0; j < n; ++j) { if (j == a) continue;
            if (c.lab[j] == c.lab[a]) { if (P[a] < 0 || e(a,j) > e(a,P[a])) P[a] = j; } else if (N[a] < 0 || e(a,j) < e(a,N[a])) N[a] = j; }
        if (P[a] < 0 || N[a] < 0) continue;
        double t1 = (double)e(a,P[a]) - (double)e(a,N[a]) + m1; if (t1 > 0) { s1 += t1; n1++; f1[a] = 1; }
        for (int k = 0; k < n; ++k) for (int l = 0; l < n; ++l) {
            if (c.lab[k] == c.lab[l] || c.lab[k] == c.lab[a] || c.lab[l] == c.lab[a]) continue;
            if (K[a] < 0 || e(k,l) < e(K[a],L[a])) { K[a] = k; L[a] = l; } }
        if (K[a] < 0) continue;
        double t2 = (double)e(a,P[a]) - (double)e(K[a],L[a]) + m2; if (t2 > 0) { s2 += t2; n2++; f2[a] = 1; }
    }
    std::vector<double> Wb(n * n, 0.0);
    for (int a = 0; a < n; ++a) {
        if (f1[a]) { Wb[a*n+P[a]] += sg / n1; Wb[a*n+N[a]] -= sg / n1; }
        if (f2[a]) { Wb[a*n+P[a]] += sg / n2; Wb[K[a]*n+L[a]] -= sg / n2; }
    }
    CHECK(close(st[0], s1) && st[1] == n1 && close(st[2], s2) && st[3] == n2, "quad hard n=%d C=%d: %g/%g %g/%g vs %g/%g %g/%g", n, C, st[0], st[1], st[2], st[3], s1, n1, s2, n2);
    CHECK(maxdiff(W, Wb) < 1e-6, "quad hard W n=%d C=%d err %g", n, C, maxdiff(W, Wb));
}

int main() {
    for (int trial = 0; trial < 24; ++trial) {
        Case c;
        c.n = trial == 0 ? 1 : 1 + rng() % 80;
        c.C = trial == 1 ? 1 : 1 + rng() % 6;
        c.lab.resize(c.n); for (auto& l : c.lab) l = rng() % c.C;
        c.D.resize(c.n * c.n);
        bool ties = trial % 3 == 2;  // small integers: many exact ties for the arg-min rules
        for (auto& v : c.D) v = ties ? (float)(rng() % 4) * 0.25f : nrm() * 0.5f;
        c.sg = trial % 2 ? -1.f : 1.f;
        TH = trial == 5 ? 256 : 64;
        multi_similarity(c); circle(c); ntxent(c); supcon(c); gen_lifted(c); quad_hard(c);
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
