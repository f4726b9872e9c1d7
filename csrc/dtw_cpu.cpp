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
#include "dtw_cpu_simd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

const char* g_isa = "baseline";
const sseg_cpu::SimilarityFn g_similarities = sseg_cpu::pick_similarities(&g_isa);

// Below this many floats of x (~1 ms of work) a call runs on one thread: thread start-up
// and, on a busy machine, waiting for a descheduled thread would cost more.
constexpr int64_t kParallelFloats = 1 << 22;

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

py::tuple pseudo_boundaries(FloatArray x, IndexArray anchors, IndexArray lengths, int mode,
                            int threads) {
  if (x.ndim() != 3) throw std::invalid_argument("x must be (B, L, D)");
  if (anchors.ndim() != 2) throw std::invalid_argument("anchors must be (B, K)");
  const int64_t batch = x.shape(0), length = x.shape(1), dim = x.shape(2);
  const int64_t k = anchors.shape(1);
  if (anchors.shape(0) != batch || lengths.ndim() != 1 || lengths.shape(0) != batch)
    throw std::invalid_argument("batch sizes of x, anchors and lengths differ");
  if (k < 2 || k > sseg::kMaxAnchors) throw std::invalid_argument("K must be in [2, 16]");
  if (length < 1 || length > sseg::kMaxLength)
    throw std::invalid_argument("L must be in [1, 1024]");
  if (mode != sseg::kModeSum && mode != sseg::kModeMean && mode != sseg::kModeMeanOthers)
    throw std::invalid_argument("mode must be 0 (sum), 1 (mean) or 2 (mean_others)");

  py::array_t<int64_t> boundaries({batch, k - 1});
  py::array_t<float> scores(batch);
  const float* xp = x.data();
  const int64_t* ap = anchors.data();
  const int64_t* lp = lengths.data();
  int64_t* bp = boundaries.mutable_data();
  float* sp = scores.mutable_data();
  std::atomic<int64_t> bad_index{-1};
  std::atomic<int> bad_code{0};
#ifdef _OPENMP
  if (threads <= 0) threads = omp_get_max_threads();
  if (batch * length * dim < kParallelFloats) threads = 1;
#endif
  {
    py::gil_scoped_release release;
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> scratch(sseg::workspace_bytes(k, length) / sizeof(float));
      std::vector<float> sq(length);
      const sseg::Workspace ws = sseg::carve_workspace(scratch.data(), k, length);
      // Dynamic chunks: a descheduled thread (busy machine) does not stall the others.
#pragma omp for schedule(dynamic, 64)
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
        if (!g_similarities(xp + b * length * dim, a, n, k, dim, sq.data(), ws)) {
          // Non-finite shots: a NaN score flags the sequence to the caller.
          for (int64_t kk = 0; kk + 1 < k; ++kk) out[kk] = a[kk];
          sp[b] = NAN;
          continue;
        }
        for (int64_t kk = 0; kk < k; ++kk)
          sseg::prefix_scan(ws.prefix + kk * ws.stride, n, a[kk], mode);
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
  m.attr("isa") = g_isa;
  m.def("pseudo_boundaries", &pseudo_boundaries, py::arg("x"), py::arg("anchors"),
        py::arg("lengths"), py::arg("mode"), py::arg("threads") = 0,
        "x (B,L,D) float32, anchors (B,K) int64, lengths (B,) int64, mode 0=sum 1=mean 2=mean_others, "
        "threads (0 = OpenMP default) -> (boundaries (B,K-1) int64, scores (B,) float32)");
}
