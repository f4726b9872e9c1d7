// Batched pseudo-boundary search (CPU, OpenMP). See csrc/dtw_common.h for the
// problem statement; this file binds it to Python with pybind11 (no torch headers).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "dtw_common.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

py::tuple pseudo_boundaries(FloatArray x, IndexArray anchors, IndexArray lengths, int mode) {
  if (x.ndim() != 3) throw std::invalid_argument("x must be (B, L, D)");
  if (anchors.ndim() != 2) throw std::invalid_argument("anchors must be (B, K)");
  const int64_t batch = x.shape(0), length = x.shape(1), dim = x.shape(2);
  const int64_t k = anchors.shape(1);
  if (anchors.shape(0) != batch || lengths.ndim() != 1 || lengths.shape(0) != batch)
    throw std::invalid_argument("batch sizes of x, anchors and lengths differ");
  if (k < 2 || k > sseg::kMaxAnchors) throw std::invalid_argument("K must be in [2, 16]");
  if (length > sseg::kMaxLength) throw std::invalid_argument("L must be <= 1024");
  if (mode != sseg::kModeSum && mode != sseg::kModeMean)
    throw std::invalid_argument("mode must be 0 (sum) or 1 (mean)");

  py::array_t<int64_t> boundaries({batch, k - 1});
  py::array_t<float> scores(batch);
  const float* xp = x.data();
  const int64_t* ap = anchors.data();
  const int64_t* lp = lengths.data();
  int64_t* bp = boundaries.mutable_data();
  float* sp = scores.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel
    {
      std::vector<float> work(sseg::workspace_floats(k, length));
#pragma omp for schedule(static)
      for (int64_t b = 0; b < batch; ++b) {
        sp[b] = sseg::solve_sequence(xp + b * length * dim, ap + b * k, lp[b], k, dim, mode,
                                     work.data(), bp + b * (k - 1));
      }
    }
  }
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
