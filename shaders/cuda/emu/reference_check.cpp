// End-to-end emulation of backend.rs + losses.rs for the six losses of new_losses.md (the same
// launches, in the same order, as the Rust host code), compared with the f64 reference backend's
// loss, active counts and gradient. The reference cases come from a file written by
//   MARGIN_EMU_REF=/tmp/ref.txt cargo test -p margin-cuda --test emu_reference -- --ignored
// and this program is run as: reference_check /tmp/ref.txt (run.sh does both when REF=1).
#include "cuda_emu.h"
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <map>
#include "all.cu"
static unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
static const unsigned TH = 256;

struct Out { double loss; double a0, a1; };

// loss: 0 multi-similarity, 1 circle, 2 nt-xent, 3 supcon, 4 generalized lifted, 5 quadruplet hard.
static Out run(int loss, int kind, bool normalize, std::vector<float> x, int n, int d, std::vector<int> lab, std::vector<float>& grad) {
    std::vector<float> xh = x, norms(n), g(n * d), sq(n), D(n * n), W(n * n, 0.f), rs(n, 0.f);
    if (normalize) launch({(unsigned)n}, {TH}, [&] { normalize_rows_f32(x.data(), xh.data(), norms.data(), n, d); });
    if (kind != 2) launch({(unsigned)n}, {TH}, [&] { row_sqnorms_f32(xh.data(), sq.data(), n, d); });
    launch({cdiv(n, 64), cdiv(n, 64)}, {256}, [&] { pairwise_f32(xh.data(), xh.data(), sq.data(), sq.data(), D.data(), n, n, d, kind); });
    float sg = kind == 2 ? -1.f : 1.f;
    // compact label ids in order of first appearance (labels.rs)
    std::map<int, int> ids; std::vector<int> cnt;
    for (auto& l : lab) { auto it = ids.find(l); if (it == ids.end()) { it = ids.emplace(l, (int)cnt.size()).first; cnt.push_back(0); } cnt[it->second]++; l = it->second; }
    int C = (int)cnt.size();
    long long P = 0, same = 0; for (int c : cnt) { P += (long long)c * (c - 1); same += (long long)c * c; }
    long long NEG = (long long)n * n - same;
    std::vector<double> stats(8, 0.0); int pi = -1, ni = -1; Out o{0, 0, 0};
    auto reduce = [&](std::vector<double>& part, int cols) { launch({(unsigned)cols}, {TH}, [&] { reduce_cols_f64(part.data(), n, cols, stats.data()); }); };
    if (loss == 0) {
        std::vector<double> part(n * 3); double bp = sg * 0.5;
        launch({(unsigned)n}, {TH}, [&] { multi_similarity_rows_f32(D.data(), lab.data(), n, sg, 2.0, 50.0, bp, 1.0 / n, W.data(), part.data()); });
        reduce(part, 3); o = {stats[0] / n, stats[1], stats[2]};
    } else if (loss == 1 || loss == 3) {
        std::vector<double> part(n * 2);
        bool skip = loss == 3 && !(P > 0 && NEG > 0);
        if (!skip) {
            if (loss == 1) launch({(unsigned)n}, {TH}, [&] { circle_rows_f32(D.data(), lab.data(), n, 0.4, 80.0, W.data(), part.data()); });
            else launch({(unsigned)n}, {TH}, [&] { supcon_rows_f32(D.data(), lab.data(), n, sg, 1 / 0.1, W.data(), part.data()); });
            reduce(part, 2);
            launch({1}, {1}, [&] { safe_inverse_f64(stats.data(), 1, 2); });
            pi = ni = 2; o = {stats[1] > 0 ? stats[0] / stats[1] : 0, stats[1], 0};
        }
    } else if (loss == 2) {
        if (P > 0 && NEG > 0) {
            std::vector<double> part(n); double it = 1 / 0.07;
            launch({(unsigned)n}, {TH}, [&] { ntxent_rows_f32(D.data(), lab.data(), n, sg, it, it / P, W.data(), part.data()); });
            reduce(part, 1); o = {stats[0] / P, (double)P, 0};
        }
    } else if (loss == 4) {
        std::vector<double> part(n * 2);
        launch({(unsigned)n}, {TH}, [&] { gen_lifted_rows_f32(D.data(), lab.data(), n, sg, sg * 0.0, sg * 1.0, 1.0 / n, W.data(), part.data()); });
        reduce(part, 2); o = {stats[0] / n, stats[1], 0};
    } else if (loss == 5) {
        std::vector<float> v1(n), v2(n), cv(C); std::vector<int> l1(n), l2(n), ck(C), cl(C), sel(n * 3), act(C, 0);
        std::vector<double> part(n * 4);
        launch({(unsigned)n}, {TH}, [&] { quad_hard_top2_f32(D.data(), lab.data(), n, sg, v1.data(), l1.data(), v2.data(), l2.data()); });
        launch({(unsigned)C}, {TH}, [&] { quad_hard_class_f32(lab.data(), n, C, v1.data(), l1.data(), v2.data(), l2.data(), cv.data(), ck.data(), cl.data()); });
        launch({(unsigned)n}, {TH}, [&] { quad_hard_rows_f32(D.data(), lab.data(), n, sg, 1.0, 0.5, cv.data(), ck.data(), sel.data(), part.data(), act.data()); });
        reduce(part, 4);
        launch({1}, {1}, [&] { safe_inverse_f64(stats.data(), 1, 4); safe_inverse_f64(stats.data(), 3, 5); });
        launch({cdiv(C, TH)}, {TH}, [&] { quad_hard_class_w_f32(act.data(), ck.data(), cl.data(), C, n, W.data()); });
        launch({(unsigned)n}, {TH}, [&] { quad_hard_weights_f32(lab.data(), n, sg, sel.data(), stats.data(), 4, 5, W.data()); });
        o = {(stats[1] > 0 ? stats[0] / stats[1] : 0) + (stats[3] > 0 ? stats[2] / stats[3] : 0), stats[1], stats[3]};
    }
    int euclid = kind == 0; unsigned t = cdiv(n, 16);
    launch({t, t}, {16, 16}, [&] { chain_prep_f32(W.data(), D.data(), lab.data(), stats.data(), pi, ni, n, euclid); });
    bool sim = kind == 2;
    if (!sim) launch({(unsigned)n}, {TH}, [&] { row_sums_f32(W.data(), rs.data(), n, n); });
    float alpha = kind == 1 ? 2.f : 1.f;
    std::vector<float>& out = normalize ? g : grad;
    launch({cdiv(d, 64), cdiv(n, 64)}, {256}, [&] { grad_gemm_f32(W.data(), xh.data(), xh.data(), rs.data(), out.data(), n, n, d, 0, sim ? 0 : 1, alpha); });
    if (normalize) launch({(unsigned)n}, {TH}, [&] { normalize_backward_f32(g.data(), xh.data(), norms.data(), grad.data(), n, d); });
    return o;
}

int main(int argc, char** argv) {
    if (argc < 2) { printf("usage: reference_check REF_FILE\n"); return 2; }
    std::ifstream in(argv[1]);
    std::string head, line; int fails = 0, cases = 0;
    const char* names[] = {"multi-similarity", "circle", "nt-xent", "supcon", "gen-lifted", "quadruplet-hard"};
    while (std::getline(in, head)) {
        std::istringstream hs(head); int id, kind, norm, n, d; hs >> id >> kind >> norm >> n >> d;
        std::vector<int> lab(n); std::vector<float> x(n * d), gw(n * d), grad(n * d, 0.f);
        { std::getline(in, line); std::istringstream s(line); for (auto& v : lab) s >> v; }
        { std::getline(in, line); std::istringstream s(line); for (auto& v : x) s >> v; }
        double lw, a0w, a1w; { std::getline(in, line); std::istringstream s(line); s >> lw >> a0w >> a1w; }
        { std::getline(in, line); std::istringstream s(line); for (auto& v : gw) s >> v; }
        Out o = run(id, kind, norm, x, n, d, lab, grad);
        double num = 0, den = 0; for (int i = 0; i < n * d; ++i) { num += (grad[i] - gw[i]) * (double)(grad[i] - gw[i]); den += (double)gw[i] * gw[i]; }
        double gerr = den > 0 ? sqrt(num / den) : sqrt(num);
        bool ok = (fabs(o.loss - lw) <= 1e-4 * fabs(lw) || fabs(o.loss - lw) <= 1e-6) && gerr <= 1e-3 && o.a0 == a0w && o.a1 == a1w;
        ++cases;
        if (!ok) { ++fails; printf("FAIL %s kind %d norm %d n %d d %d: loss %.9g vs %.9g, active %g/%g vs %g/%g, grad err %.2e\n", names[id], kind, norm, n, d, o.loss, lw, o.a0, o.a1, a0w, a1w, gerr); }
    }
    printf("%d of %d reference cases failed\n", fails, cases);
    return fails != 0 || cases == 0;
}
