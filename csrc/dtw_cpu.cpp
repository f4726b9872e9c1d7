// Batched pseudo-boundary search (CPU, OpenMP). See csrc/dtw_common.h for the
// problem statement; this file binds it to Python with pybind11 (no torch headers).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtw_common.h"

namespace py = pybind11;

// Runtime-dispatched SIMD clones of the hot loop (x86-64 GCC); the distributed
// build stays portable (no -march=native).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SSEG_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define SSEG_CLONES
#endif

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// Similarities of shots [0, n) to all K anchors, written to prefix rows 1..n, in
// one pass over x: squared norms first, then four anchors per sweep over a shot.
// Returns false (and computes nothing) when a valid shot has NaN/inf values.
SSEG_CLONES bool anchor_similarities(const float* x, const int64_t* a, int64_t n, int64_t k,
                                     int64_t dim, float* sq, const sseg::Workspace& ws) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < dim; ++d) s += xi[d] * xi[d];
    sq[i] = s;
  }
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) finite = finite && std::isfinite(sq[i]);
  if (!finite) return false;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
      const float* p0 = x + a[kk] * dim;
      const float* p1 = x + a[kk + 1] * dim;
      const float* p2 = x + a[kk + 2] * dim;
      const float* p3 = x + a[kk + 3] * dim;
      float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t d = 0; d < dim; ++d) {
        s0 += xi[d] * p0[d];
        s1 += xi[d] * p1[d];
        s2 += xi[d] * p2[d];
        s3 += xi[d] * p3[d];
      }
      const float dots[4] = {s0, s1, s2, s3};
      for (int j = 0; j < 4; ++j)
        ws.prefix[(kk + j) * ws.stride + i + 1] = sseg::cosine(dots[j], sq[i], sq[a[kk + j]]);
    }
    for (; kk + 2 <= k; kk += 2) {
      const float* p0 = x + a[kk] * dim;
      const float* p1 = x + a[kk + 1] * dim;
      float s0 = 0.f, s1 = 0.f;
#pragma omp simd reduction(+ : s0, s1)
      for (int64_t d = 0; d < dim; ++d) {
        s0 += xi[d] * p0[d];
        s1 += xi[d] * p1[d];
      }
      ws.prefix[kk * ws.stride + i + 1] = sseg::cosine(s0, sq[i], sq[a[kk]]);
      ws.prefix[(kk + 1) * ws.stride + i + 1] = sseg::cosine(s1, sq[i], sq[a[kk + 1]]);
    }
    for (; kk < k; ++kk) {
      const float* p0 = x + a[kk] * dim;
      float s0 = 0.f;
#pragma omp simd reduction(+ : s0)
      for (int64_t d = 0; d < dim; ++d) s0 += xi[d] * p0[d];
      ws.prefix[kk * ws.stride + i + 1] = sseg::cosine(s0, sq[i], sq[a[kk]]);
    }
  }
  return true;
}

const char* problem_text(int code) {
  switch (code) {
    case 1:
      return "valid length is outside [1, L]";
    case 2:
      return "anchor index is outside [0, length)";
    default:
      return "anchors are not strictly increasing";
  }
}

py::tuple pseudo_boundaries(FloatArray x, IndexArray anchors, IndexArray lengths, int mode) {
  if (x.ndim() != 3) throw std::invalid_argument("x must be (B, L, D)");
  if (anchors.ndim() != 2) throw std::invalid_argument("anchors must be (B, K)");
  const int64_t batch = x.shape(0), length = x.shape(1), dim = x.shape(2);
  const int64_t k = anchors.shape(1);
  if (anchors.shape(0) != batch || lengths.ndim() != 1 || lengths.shape(0) != batch)
    throw std::invalid_argument("batch sizes of x, anchors and lengths differ");
  if (k < 2 || k > sseg::kMaxAnchors) throw std::invalid_argument("K must be in [2, 16]");
  if (length < 1 || length > sseg::kMaxLength) throw std::invalid_argument("L must be in [1, 1024]");
  if (mode != sseg::kModeSum && mode != sseg::kModeMean)
    throw std::invalid_argument("mode must be 0 (sum) or 1 (mean)");

  py::array_t<int64_t> boundaries({batch, k - 1});
  py::array_t<float> scores(batch);
  const float* xp = x.data();
  const int64_t* ap = anchors.data();
  const int64_t* lp = lengths.data();
  int64_t* bp = boundaries.mutable_data();
  float* sp = scores.mutable_data();
  std::atomic<int64_t> bad_index{-1};
  std::atomic<int> bad_code{0};
  {
    py::gil_scoped_release release;
#pragma omp parallel
    {
      std::vector<float> scratch(sseg::workspace_bytes(k, length) / sizeof(float));
      std::vector<float> sq(length);
      const sseg::Workspace ws = sseg::carve_workspace(scratch.data(), k, length);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t* a = ap + b * k;
        const int64_t n = lp[b];
        const int code = sseg::check_sequence(a, n, k, length);
        if (code != 0) {
          bad_code.store(code);
          bad_index.store(b);
          continue;
        }
        int64_t* out = bp + b * (k - 1);
        if (!anchor_similarities(xp + b * length * dim, a, n, k, dim, sq.data(), ws)) {
          // Non-finite shots: NaN score flags the sequence to the caller.
          for (int64_t kk = 0; kk + 1 < k; ++kk) out[kk] = a[kk];
          sp[b] = NAN;
          continue;
        }
        for (int64_t kk = 0; kk < k; ++kk) sseg::prefix_scan(ws.prefix + kk * ws.stride, n);
        sp[b] = sseg::solve_from_prefix(ws, a, n, k, mode, out);
      }
    }
  }
  if (bad_index.load() >= 0)
    throw std::invalid_argument("sequence " + std::to_string(bad_index.load()) + ": " +
                                problem_text(bad_code.load()));
  return py::make_tuple(boundaries, scores);
}

}  // namespace

PYBIND11_MODULE(_dtw_cpu, m) {
  m.doc() = "Batched pseudo-boundary search (C++/OpenMP)";
  m.def("pseudo_boundaries", &pseudo_boundaries, py::arg("x"), py::arg("anchors"),
        py::arg("lengths"), py::arg("mode"),
        "x (B,L,D) float32, anchors (B,K) int64, lengths (B,) int64, mode 0=sum 1=mean "
        "-> (boundaries (B,K-1) int64, scores (B,) float32)");
}
