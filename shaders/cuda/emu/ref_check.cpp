// Reference sets end to end on the CPU: the launches of src/reference.rs, src/ref_losses.rs and
// src/ref_quadruplet.rs, in the same order with the same arguments, on the real kernel sources,
// compared with the cases written by
//   MARGIN_EMU_REF_SETS=/tmp/refsets.txt cargo test -p margin-cuda --test emu_ref_sets -- --ignored
// (PML's golden values from tests/fixtures/pml_ref, CrossBatchMemory calls through the plain API,
// random rectangles against the f64 reference backend). Run as: ref_check /tmp/refsets.txt
// [FILTER] (run.sh does both when REF=1). Tolerances: loss 1e-4 relative or 1e-6 absolute,
// gradient 1e-3 relative norm, active counts exact.
#include "cuda_emu.h"
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include "all.cu"
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
static unsigned TH = 64;  // threads per row block (the backend uses 256; every 5th case does)

struct Case {
    std::string name; int loss, kind, norm; double p[3]; int n, m, d;
    std::vector<int> lab, rlab; std::vector<unsigned> excl; std::vector<float> x, r;
    double value; double a0, a1; std::vector<double> grad;
};
struct Stage3 { std::vector<double> stats; int pi = -1, ni = -1; int finish = 0; double fparam = 0; };
// finish: 0 contrastive, 1 triplet, 2 lifted{pairs}, 3 mean{n}, 4 pair-mean{pairs}, 5 quadruplet

static void rows(int n, std::function<void()> f) { launch({(unsigned)std::max(n, 1)}, {TH}, f); }
static void elems(size_t len, std::function<void()> f) { launch({std::max(cdiv(len, TH), 1u)}, {TH}, f); }
static std::vector<double> reduce(std::vector<double>& part, int n, int cols, int extra) {
    std::vector<double> st(std::max(cols + extra, 8), 0.0);
    launch({(unsigned)cols}, {TH}, [&] { reduce_cols_f64(part.data(), n, cols, st.data()); });
    return st;
}
static void inv(std::vector<double>& st, int from, int to) { launch({1}, {1}, [&] { safe_inverse_f64(st.data(), from, to); }); }
static void scan(std::vector<u64>& data, size_t len) {  // pipeline.rs exclusive_scan_u64
    size_t blocks = std::max<size_t>((len + 2047) / 2048, 1);
    std::vector<u64> sums(blocks, 0);
    launch({(unsigned)blocks}, {256}, [&] { scan_blocks_u64(data.data(), len, sums.data()); });
    if (blocks > 1) { scan(sums, blocks); elems(len, [&] { add_offsets_u64(data.data(), len, sums.data()); }); }
}
static void bitonic(std::vector<u64>& keys, size_t len) {
    for (size_t k = 2; k <= len; k *= 2) for (size_t j = k / 2; j > 0; j /= 2)
        elems(len, [&] { bitonic_step_u64(keys.data(), len, j, k); });
}

struct Ctx { const Case& c; std::vector<float>& D; std::vector<float>& W; float sg; long long P, NEG; int C; };

static void triplet_rect(Ctx& x, double margin, int semihard, int smooth, std::vector<double>& part, int stride, int ws, int ww, std::vector<double>& stats, int si) {
    const Case& c = x.c; int cap = 1; while (cap < c.m) cap <<= 1; int blocks = std::min(std::max(c.n, 1), 1024);
    std::vector<float> scratch((size_t)blocks * 2 * cap); std::vector<int> diff((size_t)blocks * (cap + 1));
    launch({(unsigned)blocks}, {TH}, [&] { triplet_ref_rows_f32(x.D.data(), c.lab.data(), c.rlab.data(), c.n, c.m, c.excl.data(), x.sg, margin, semihard, smooth, x.W.data(), part.data(), stride, ws, ww, stats.data(), si, scratch.data(), diff.data(), cap); });
}

// RefLabels::quad_layout
struct Layout { std::vector<int> rmembers, rmstart, srank; std::vector<long long> pstart, poff; };
static Layout layout(const Case& c, int C) {
    Layout L; std::vector<int> rc(C, 0); for (int v : c.rlab) rc[v]++;
    L.rmstart.assign(C + 1, 0); for (int k = 0; k < C; ++k) L.rmstart[k + 1] = L.rmstart[k] + rc[k];
    std::vector<int> fill(L.rmstart.begin(), L.rmstart.end() - 1), rpos(c.m); L.rmembers.resize(c.m);
    for (int j = 0; j < c.m; ++j) { int k = c.rlab[j]; rpos[j] = fill[k] - L.rmstart[k]; L.rmembers[fill[k]++] = j; }
    auto pos = [&](int i) { return (long long)rc[c.lab[i]] - (c.excl[i] != 0xFFFFFFFFu); };
    std::vector<long long> per(C, 0); for (int i = 0; i < c.n; ++i) per[c.lab[i]] += pos(i);
    L.pstart.assign(C + 1, 0); for (int k = 0; k < C; ++k) L.pstart[k + 1] = L.pstart[k] + per[k];
    std::vector<long long> next(L.pstart.begin(), L.pstart.end() - 1); L.poff.resize(c.n); L.srank.assign(c.n, -1);
    for (int i = 0; i < c.n; ++i) { L.poff[i] = next[c.lab[i]]; next[c.lab[i]] += pos(i); if (c.excl[i] != 0xFFFFFFFFu) L.srank[i] = rpos[c.excl[i]]; }
    return L;
}

static Stage3 quadruplet_all(Ctx& x, double m1, double m2) {
    const Case& c = x.c; int n = c.n; Stage3 s; s.finish = 5;
    std::vector<double> part(n * 5, 0.0), none(1, 0.0);
    triplet_rect(x, m1, 0, 0, part, 5, 1, 0, none, -1);
    bool t2 = x.P > 0 && x.NEG > 0; size_t np = (size_t)x.P; std::vector<float> xs_g, xs_s; std::vector<u64> hg, hs; Layout L;
    std::vector<float> no_w(1);
    if (t2) {
        L = layout(c, x.C); size_t len = 1; while (len < np) len <<= 1;
        std::vector<u64> kg(len, 0), ks(len, 0);
        if (len > np) { elems(len - np, [&] { fill_u64(kg.data(), np, len, ~0ULL); }); elems(len - np, [&] { fill_u64(ks.data(), np, len, ~0ULL); }); }
        rows(n, [&] { quad_pair_keys_ref_f32(x.D.data(), c.lab.data(), n, c.m, x.sg, L.rmembers.data(), L.rmstart.data(), L.poff.data(), L.srank.data(), kg.data(), ks.data()); });
        bitonic(kg, len); bitonic(ks, len);
        xs_g.assign(np, 0); xs_s.assign(np, 0);
        elems(np, [&] { decode_keys_f32(kg.data(), xs_g.data(), np); }); elems(np, [&] { decode_keys_f32(ks.data(), xs_s.data(), np); });
        hg.assign(np + 1, 0); hs.assign(np + 1, 0);
        rows(n, [&] { quad_neg_pairs_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, x.sg, m2, xs_g.data(), xs_s.data(), L.pstart.data(), np, hg.data(), hs.data(), 1, part.data(), 5, 0, no_w.data(), none.data(), -1); });
        scan(hg, np + 1); scan(hs, np + 1);
        rows(n, [&] { quad_pos_pairs_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, c.excl.data(), x.sg, m2, xs_g.data(), xs_s.data(), L.pstart.data(), np, hg.data(), hs.data(), 1, part.data(), 5, 0, no_w.data(), none.data(), -1); });
    }
    s.stats = reduce(part, n, 5, 2); inv(s.stats, 1, 5); inv(s.stats, 3, 6);
    triplet_rect(x, m1, 0, 0, part, 5, 0, 1, s.stats, 5);
    if (t2) {
        rows(n, [&] { quad_neg_pairs_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, x.sg, m2, xs_g.data(), xs_s.data(), L.pstart.data(), np, hg.data(), hs.data(), 0, part.data(), 5, 1, x.W.data(), s.stats.data(), 6); });
        rows(n, [&] { quad_pos_pairs_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, c.excl.data(), x.sg, m2, xs_g.data(), xs_s.data(), L.pstart.data(), np, hg.data(), hs.data(), 0, part.data(), 5, 1, x.W.data(), s.stats.data(), 6); });
    }
    return s;
}

static Stage3 quadruplet_hard(Ctx& x, double m1, double m2) {
    const Case& c = x.c; int n = c.n, C = x.C; Stage3 s; s.finish = 0;
    std::vector<float> v1(n), v2(n), cv(C); std::vector<int> l1(n), l2(n), ck(C), cl(C), sel(n * 3), act(C, 0);
    std::vector<double> part(n * 4, 0.0);
    rows(n, [&] { quad_hard_top2_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, x.sg, v1.data(), l1.data(), v2.data(), l2.data()); });
    rows(C, [&] { quad_hard_class_ref_f32(c.lab.data(), c.rlab.data(), n, C, v1.data(), l1.data(), v2.data(), l2.data(), cv.data(), ck.data(), cl.data()); });
    rows(n, [&] { quad_hard_rows_ref_f32(x.D.data(), c.lab.data(), c.rlab.data(), n, c.m, c.excl.data(), x.sg, m1, m2, cv.data(), ck.data(), sel.data(), part.data(), act.data()); });
    s.stats = reduce(part, n, 4, 2); inv(s.stats, 1, 4); inv(s.stats, 3, 5);
    elems(C, [&] { quad_hard_class_w_f32(act.data(), ck.data(), cl.data(), C, c.m, x.W.data()); });
    rows(n, [&] { quad_hard_weights_ref_f32(c.lab.data(), c.rlab.data(), n, c.m, x.sg, sel.data(), s.stats.data(), 4, 5, x.W.data()); });
    return s;
}

// ref_losses.rs weights_rect
static Stage3 weights(Ctx& x) {
    const Case& c = x.c; int n = c.n, m = c.m; float sg = x.sg; double sgd = sg; const double* p = c.p;
    const float* D = x.D.data(); float* W = x.W.data(); const int *lab = c.lab.data(), *rlab = c.rlab.data(); const unsigned* ex = c.excl.data();
    bool tiny = x.P <= 1 && x.NEG <= 1;
    Stage3 s; s.stats.assign(8, 0.0);
    auto nothing = [&](int finish, double fp) { Stage3 z; z.stats.assign(8, 0.0); z.finish = finish; z.fparam = fp; return z; };
    switch (c.loss) {
    case 0: {
        if (tiny) return nothing(0, 0);
        std::vector<double> part(n * 4, 0.0); double pm = sgd * p[0], nm = sgd * p[1];
        rows(n, [&] { contrastive_ref_rows_f32(D, lab, rlab, n, m, ex, sg, pm, nm, W, part.data()); });
        s.stats = reduce(part, n, 4, 2); inv(s.stats, 1, 4); inv(s.stats, 3, 5); s.pi = 4; s.ni = 5; s.finish = 0; return s;
    }
    case 1: {
        std::vector<double> part(n * 2, 0.0); int mining = (int)p[1], smooth = (int)p[2];
        if (mining == 1) rows(n, [&] { triplet_hard_ref_rows_f32(D, lab, rlab, n, m, ex, sg, p[0], smooth, W, part.data()); });
        else { std::vector<double> none(1, 0.0); triplet_rect(x, p[0], mining == 2, smooth, part, 2, 1, 1, none, -1); }
        s.stats = reduce(part, n, 2, 1); inv(s.stats, 1, 2); s.pi = s.ni = 2; s.finish = 1; return s;
    }
    case 2: {
        if (tiny || x.P == 0 || x.NEG == 0) return nothing(2, 0);
        double pm = sgd * p[0], nm = sgd * p[1]; std::vector<double> lse(n), part(n * 2, 0.0);
        rows(n, [&] { lifted_lse_ref_f32(D, lab, rlab, n, m, sg, nm, lse.data()); });
        double iv = 1.0 / x.P;
        rows(n, [&] { lifted_ref_rows_f32(D, lab, rlab, n, m, ex, sg, nm, pm, lse.data(), iv, W, part.data()); });
        s.stats = reduce(part, n, 2, 0); s.finish = 2; s.fparam = x.P; return s;
    }
    case 3: {
        if (tiny) return nothing(3, n);
        std::vector<double> part(n * 3, 0.0); double bp = sgd * p[2];
        rows(n, [&] { multi_similarity_ref_rows_f32(D, lab, rlab, n, m, ex, sg, p[0], p[1], bp, 1.0 / n, W, part.data()); });
        s.stats = reduce(part, n, 3, 0); s.finish = 3; s.fparam = n; return s;
    }
    case 4: case 6: {
        if (tiny || (c.loss == 6 && (x.P == 0 || x.NEG == 0))) return nothing(1, 0);
        std::vector<double> part(n * 2, 0.0);
        if (c.loss == 4) rows(n, [&] { circle_ref_rows_f32(D, lab, rlab, n, m, ex, p[0], p[1], W, part.data()); });
        else rows(n, [&] { supcon_ref_rows_f32(D, lab, rlab, n, m, ex, sg, 1.0 / p[0], W, part.data()); });
        s.stats = reduce(part, n, 2, 1); inv(s.stats, 1, 2); s.pi = s.ni = 2; s.finish = 1; return s;
    }
    case 5: {
        if (tiny || x.P == 0 || x.NEG == 0) return nothing(4, 0);
        std::vector<double> part(n, 0.0); double it = 1.0 / p[0];
        rows(n, [&] { ntxent_ref_rows_f32(D, lab, rlab, n, m, ex, sg, it, it / x.P, W, part.data()); });
        s.stats = reduce(part, n, 1, 0); s.finish = 4; s.fparam = x.P; return s;
    }
    case 7: {
        if (tiny) return nothing(3, n);
        std::vector<double> part(n * 2, 0.0); double pm = sgd * p[0], nm = sgd * p[1];
        rows(n, [&] { gen_lifted_ref_rows_f32(D, lab, rlab, n, m, ex, sg, pm, nm, 1.0 / n, W, part.data()); });
        s.stats = reduce(part, n, 2, 0); s.finish = 3; s.fparam = n; return s;
    }
    case 8: return (int)p[2] == 1 ? quadruplet_hard(x, p[0], p[1]) : quadruplet_all(x, p[0], p[1]);
    }
    return s;
}

static double avg(double s, double c) { return c > 0 ? s / c : 0; }

// reference.rs loss_reference
static void run(Case& c, double& loss, double& a0, double& a1, std::vector<float>& grad) {
    int n = c.n, m = c.m, d = c.d;
    std::vector<float> xh = c.x, rh = c.r, xn(n), rn(m), qs(n), rs2(m), D((size_t)n * m), W((size_t)n * m, 0.f), g(n * d), rsum(n, 0.f);
    if (c.norm) { rows(n, [&] { normalize_rows_f32(c.x.data(), xh.data(), xn.data(), n, d); }); rows(m, [&] { normalize_rows_f32(c.r.data(), rh.data(), rn.data(), m, d); }); }
    if (c.kind != 2) { rows(n, [&] { row_sqnorms_f32(xh.data(), qs.data(), n, d); }); rows(m, [&] { row_sqnorms_f32(rh.data(), rs2.data(), m, d); }); }
    launch({cdiv(m, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), rh.data(), qs.data(), rs2.data(), D.data(), n, m, d, c.kind); });
    float sg = c.kind == 2 ? -1.f : 1.f;
    int C = 0; for (int v : c.lab) C = std::max(C, v + 1); for (int v : c.rlab) C = std::max(C, v + 1);
    std::vector<long long> rc(C, 0); for (int v : c.rlab) rc[v]++;
    long long P = 0, NEG = 0; for (int i = 0; i < n; ++i) { P += rc[c.lab[i]] - (c.excl[i] != 0xFFFFFFFFu); NEG += m - rc[c.lab[i]]; }
    Ctx x{c, D, W, sg, P, NEG, C};
    Stage3 s = weights(x);
    int euclid = c.kind == 0;
    elems((size_t)n * m, [&] { chain_prep_rect_f32(W.data(), D.data(), c.lab.data(), c.rlab.data(), s.stats.data(), s.pi, s.ni, n, m, euclid); });
    bool sim = c.kind == 2;
    if (!sim) rows(n, [&] { row_sums_f32(W.data(), rsum.data(), n, m); });
    float alpha = c.kind == 1 ? 2.f : 1.f;
    std::vector<float>& out = c.norm ? g : grad;
    launch({cdiv(d, 64), cdiv(n, 64)}, {256}, [&] { grad_gemm_f32(W.data(), rh.data(), xh.data(), rsum.data(), out.data(), n, m, d, 0, sim ? 0 : 1, alpha); });
    if (c.norm) rows(n, [&] { normalize_backward_f32(g.data(), xh.data(), xn.data(), grad.data(), n, d); });
    const std::vector<double>& t = s.stats;
    switch (s.finish) {  // losses.rs Finish::apply
    case 0: loss = avg(t[0], t[1]) + avg(t[2], t[3]); a0 = t[1]; a1 = t[3]; break;
    case 1: loss = avg(t[0], t[1]); a0 = t[1]; a1 = 0; break;
    case 2: loss = s.fparam > 0 ? t[0] / s.fparam : 0; a0 = t[1]; a1 = 0; break;
    case 3: loss = t[0] / std::max(s.fparam, 1.0); a0 = t[1]; a1 = t[2]; break;
    case 4: loss = s.fparam > 0 ? t[0] / s.fparam : 0; a0 = s.fparam; a1 = 0; break;
    case 5: loss = avg(t[0], t[1]) + avg(t[2] + t[4], t[3]); a0 = t[1]; a1 = t[3]; break;
    }
}

template <class T> static void read_line(std::istream& in, std::vector<T>& v) { std::string line; std::getline(in, line); std::istringstream s(line); for (auto& e : v) s >> e; }

int main(int argc, char** argv) {
    if (argc < 2) { printf("usage: ref_check REF_FILE [NAME_FILTER]\n"); return 2; }
    std::string filter = argc > 2 ? argv[2] : "";
    std::ifstream in(argv[1]);
    std::string name, head; int fails = 0, cases = 0;
    std::map<std::string, std::pair<int, int>> per_loss;
    while (std::getline(in, name) && std::getline(in, head)) {
        Case c; c.name = name;
        std::istringstream hs(head); hs >> c.loss >> c.kind >> c.norm >> c.p[0] >> c.p[1] >> c.p[2] >> c.n >> c.m >> c.d;
        std::vector<long long> lab(c.n), rlab(c.m), sig(c.n);
        read_line(in, lab); read_line(in, rlab); read_line(in, sig);
        c.x.resize(c.n * c.d); c.r.resize(c.m * c.d); c.grad.resize(c.n * c.d);
        read_line(in, c.x); read_line(in, c.r);
        { std::string line; std::getline(in, line); std::istringstream s(line); s >> c.value >> c.a0 >> c.a1; }
        read_line(in, c.grad);
        if (!filter.empty() && name.find(filter) == std::string::npos) continue;
        std::map<long long, int> ids;  // ref_labels.rs: batch first, then reference
        auto id = [&](long long l) { auto it = ids.find(l); if (it == ids.end()) it = ids.emplace(l, (int)ids.size()).first; return it->second; };
        for (auto l : lab) c.lab.push_back(id(l));
        for (auto l : rlab) c.rlab.push_back(id(l));
        for (auto s : sig) c.excl.push_back(s < 0 ? 0xFFFFFFFFu : (unsigned)s);
        TH = cases % 5 == 0 ? 256 : 64;
        std::vector<float> grad(c.n * c.d, 0.f); double loss = 0, a0 = 0, a1 = 0;
        run(c, loss, a0, a1, grad);
        double num = 0, den = 0; for (int i = 0; i < c.n * c.d; ++i) { double e = grad[i] - c.grad[i]; num += e * e; den += c.grad[i] * c.grad[i]; }
        double gerr = den > 0 ? sqrt(num / den) : sqrt(num);
        bool ok = (fabs(loss - c.value) <= 1e-4 * fabs(c.value) || fabs(loss - c.value) <= 1e-6) && gerr <= 1e-3 && a0 == c.a0 && a1 == c.a1;
        ++cases; std::string key = name.substr(0, name.find('/')); per_loss[key].first++;
        if (!ok) { ++fails; per_loss[key].second++; printf("FAIL %s: loss %.9g vs %.9g, active %g/%g vs %g/%g, grad err %.2e\n", name.c_str(), loss, c.value, a0, a1, c.a0, c.a1, gerr); }
    }
    for (auto& [k, v] : per_loss) printf("  %-32s %3d cases, %d failed\n", k.c_str(), v.first, v.second);
    printf("%d of %d reference-set cases failed\n", fails, cases);
    return fails != 0 || cases == 0;
}
