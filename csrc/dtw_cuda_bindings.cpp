// pybind11 module sseg._dtw_cuda: thin host wrapper around the launcher in dtw_cuda.cu.
// Tensors travel as raw device pointers (integers) plus the CUDA stream handle, so no
// torch headers are needed; sseg/ops/pseudo_boundary.py allocates and validates.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dtw_common.h"

extern "C" int64_t sseg_dtw_cuda_workspace_bytes(int64_t batch, int64_t length, int64_t k);
extern "C" int sseg_dtw_cuda_launch(const float* x, const int64_t* anchors,
                                    const int64_t* lengths, int64_t* bounds, float* scores,
                                    void* workspace, int64_t batch, int64_t length, int64_t dim,
                                    int64_t k, int mode, void* stream);

namespace py = pybind11;

namespace {

template <typename T>
T* as_ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

void check_shape(int64_t batch, int64_t length, int64_t dim, int64_t k, int mode) {
  if (batch < 0) throw std::invalid_argument("batch must be >= 0");
  if (length < 1 || length > sseg::kMaxLength) throw std::invalid_argument("L must be in [1, 1024]");
  if (dim < 1) throw std::invalid_argument("D must be >= 1");
  if (k < 2 || k > sseg::kMaxAnchors) throw std::invalid_argument("K must be in [2, 16]");
  if (mode != sseg::kModeSum && mode != sseg::kModeMean && mode != sseg::kModeMeanOthers)
    throw std::invalid_argument("mode must be 0 (sum), 1 (mean) or 2 (mean_others)");
}

int64_t workspace_bytes(int64_t batch, int64_t length, int64_t k) {
  check_shape(batch, length, 1, k, 0);
  return sseg_dtw_cuda_workspace_bytes(batch, length, k);
}

void pseudo_boundaries(uintptr_t x, uintptr_t anchors, uintptr_t lengths, uintptr_t bounds,
                       uintptr_t scores, uintptr_t workspace, int64_t batch, int64_t length,
                       int64_t dim, int64_t k, int mode, uintptr_t stream) {
  check_shape(batch, length, dim, k, mode);
  if (batch > 0 && (x == 0 || anchors == 0 || lengths == 0 || bounds == 0 || scores == 0))
    throw std::invalid_argument("null device pointer");
  if (workspace == 0 && sseg_dtw_cuda_workspace_bytes(batch, length, k) > 0)
    throw std::invalid_argument("this size needs a global workspace (see global_workspace_bytes)");
  int err;
  {
    py::gil_scoped_release release;
    err = sseg_dtw_cuda_launch(as_ptr<const float>(x), as_ptr<const int64_t>(anchors),
                               as_ptr<const int64_t>(lengths), as_ptr<int64_t>(bounds),
                               as_ptr<float>(scores), as_ptr<void>(workspace), batch, length, dim,
                               k, mode, as_ptr<void>(stream));
  }
  if (err != 0)
    throw std::runtime_error(std::string("pseudo-boundary CUDA launch failed: ") +
                             cudaGetErrorString(static_cast<cudaError_t>(err)));
}

}  // namespace

PYBIND11_MODULE(_dtw_cuda, m) {
  m.doc() = "Batched pseudo-boundary search (CUDA, one warp per sequence)";
  m.def("global_workspace_bytes", &workspace_bytes, py::arg("batch"), py::arg("length"),
        py::arg("k"), "Bytes of global scratch a launch needs (0 if shared memory suffices)");
  m.def("pseudo_boundaries", &pseudo_boundaries, py::arg("x"), py::arg("anchors"),
        py::arg("lengths"), py::arg("bounds"), py::arg("scores"), py::arg("workspace"),
        py::arg("batch"), py::arg("length"), py::arg("dim"), py::arg("k"), py::arg("mode"),
        py::arg("stream"),
        "Device pointers: x (B,L,D) f32, anchors (B,K) i64, lengths (B,) i64 -> writes "
        "bounds (B,K-1) i64 and scores (B,) f32 on `stream` (asynchronous)");
}
