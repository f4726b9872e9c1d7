// Batched pseudo-boundary search on CUDA: one warp per sequence, several warps per block.
//
// Per sequence (see dtw_common.h for the problem and the tie rule):
//  1. lanes split D: for every valid shot, one sweep over the row accumulates |x_i|^2
//     and the dots with all K anchors (float4 loads when rows are 16-byte aligned),
//     finished with butterfly shuffles;
//  2. lanes fill (anchor, shot) cosine entries, then lane k scans prefix row k;
//  3. mean mode: the backward DP rows of dtw_common.h run lane-strided over the
//     candidate boundaries (the O(K L^2) part);
//  4. lane 0 picks the boundaries by the tie rule (O(K L); for sum mode that is the
//     whole separable search) and the lanes write them and the score.
// Scratch lives in dynamic shared memory when the warps of a block fit in 48 KiB,
// else in a caller-provided global buffer (a fixed pool of warps, grid-stride).
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstdint>

#include "dtw_common.h"

namespace {

constexpr int kWarp = 32;
constexpr int kMaxWarpsPerBlock = 8;
constexpr int64_t kSharedBudget = 48 * 1024;
constexpr int64_t kGlobalBudget = 256ll * 1024 * 1024;
constexpr unsigned kFullMask = 0xffffffffu;

struct LaunchPlan {
  bool shared;
  int warps_per_block;
  int64_t blocks;
  int64_t warp_bytes;    // scratch bytes of one warp
  int64_t global_bytes;  // size of the global scratch buffer (0 in shared mode)
};

// Per-warp scratch: anchors (16 x int64), boundaries (16 x int64), |x_i|^2 (L floats),
// then the dtw_common.h workspace; rounded up to 16 bytes.
__host__ __device__ inline int64_t warp_scratch_bytes(int64_t length, int64_t k) {
  const int64_t bytes = 2 * sseg::kMaxAnchors * 8 + length * 4 + sseg::workspace_bytes(k, length);
  return (bytes + 15) / 16 * 16;
}

LaunchPlan plan_launch(int64_t batch, int64_t length, int64_t k) {
  LaunchPlan p;
  p.warp_bytes = warp_scratch_bytes(length, k);
  const int64_t fit = kSharedBudget / p.warp_bytes;
  if (fit >= 1) {
    p.shared = true;
    p.warps_per_block = static_cast<int>(fit < kMaxWarpsPerBlock ? fit : kMaxWarpsPerBlock);
    p.blocks = (batch + p.warps_per_block - 1) / p.warps_per_block;
    p.global_bytes = 0;
    return p;
  }
  p.shared = false;
  p.warps_per_block = 4;
  int64_t warps = kGlobalBudget / p.warp_bytes;
  if (warps < p.warps_per_block) warps = p.warps_per_block;
  if (warps > batch) warps = batch;
  p.blocks = (warps + p.warps_per_block - 1) / p.warps_per_block;
  p.global_bytes = p.blocks * p.warps_per_block * p.warp_bytes;
  return p;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Raw dots x_i . x_{a_k} go to prefix[k][i+1], |x_i|^2 to sq[i].
template <bool kVec4>
__device__ void shot_dots(const float* xs, const int64_t* a, int64_t n, int64_t k, int64_t dim,
                          int lane, float* sq, const sseg::Workspace& ws) {
  const float* anchor_rows[sseg::kMaxAnchors];
#pragma unroll
  for (int kk = 0; kk < sseg::kMaxAnchors; ++kk) anchor_rows[kk] = kk < k ? xs + a[kk] * dim : xs;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = xs + i * dim;
    float acc_sq = 0.f;
    float acc[sseg::kMaxAnchors];
#pragma unroll
    for (int kk = 0; kk < sseg::kMaxAnchors; ++kk) acc[kk] = 0.f;
    if (kVec4) {
      const float4* xi4 = reinterpret_cast<const float4*>(xi);
      for (int64_t d = lane; d < dim / 4; d += kWarp) {
        const float4 v = xi4[d];
        acc_sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
#pragma unroll
        for (int kk = 0; kk < sseg::kMaxAnchors; ++kk) {
          if (kk < k) {
            const float4 w = reinterpret_cast<const float4*>(anchor_rows[kk])[d];
            acc[kk] += v.x * w.x + v.y * w.y + v.z * w.z + v.w * w.w;
          }
        }
      }
    } else {
      for (int64_t d = lane; d < dim; d += kWarp) {
        const float v = xi[d];
        acc_sq += v * v;
#pragma unroll
        for (int kk = 0; kk < sseg::kMaxAnchors; ++kk)
          if (kk < k) acc[kk] += v * anchor_rows[kk][d];
      }
    }
    acc_sq = warp_sum(acc_sq);
#pragma unroll
    for (int kk = 0; kk < sseg::kMaxAnchors; ++kk)
      if (kk < k) acc[kk] = warp_sum(acc[kk]);
    if (lane == 0) {
      sq[i] = acc_sq;
#pragma unroll
      for (int kk = 0; kk < sseg::kMaxAnchors; ++kk)
        if (kk < k) ws.prefix[kk * ws.stride + i + 1] = acc[kk];
    }
  }
}

template <bool kShared, bool kVec4>
__global__ void pseudo_boundary_kernel(const float* __restrict__ x,
                                       const int64_t* __restrict__ anchors,
                                       const int64_t* __restrict__ lengths, int64_t* bounds,
                                       float* scores, unsigned char* global_scratch, int64_t batch,
                                       int64_t length, int64_t dim, int64_t k, int mode,
                                       int64_t warp_bytes) {
  extern __shared__ __align__(16) unsigned char shared_scratch[];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t global_warp = static_cast<int64_t>(blockIdx.x) * warps_per_block + warp;
  unsigned char* base =
      kShared ? shared_scratch + warp * warp_bytes : global_scratch + global_warp * warp_bytes;
  int64_t* a = reinterpret_cast<int64_t*>(base);
  int64_t* out = a + sseg::kMaxAnchors;
  float* sq = reinterpret_cast<float*>(out + sseg::kMaxAnchors);
  const sseg::Workspace ws = sseg::carve_workspace(sq + length, k, length);
  const int64_t total_warps = static_cast<int64_t>(gridDim.x) * warps_per_block;

  // The whole warp takes the same path through this loop (seq is warp-uniform).
  for (int64_t seq = global_warp; seq < batch; seq += total_warps) {
    if (lane < k) a[lane] = anchors[seq * k + lane];
    const int64_t n = lengths[seq];
    __syncwarp();
    if (sseg::check_sequence(a, n, k, length) != 0) {  // invalid: flag, never read out of range
      if (lane < k - 1) bounds[seq * (k - 1) + lane] = -1;
      if (lane == 0) scores[seq] = CUDART_NAN_F;
      __syncwarp();
      continue;
    }
    const float* xs = x + seq * length * dim;
    shot_dots<kVec4>(xs, a, n, k, dim, lane, sq, ws);
    __syncwarp();
    bool finite = true;
    for (int64_t i = lane; i < n; i += kWarp) finite = finite && isfinite(sq[i]);
    if (!__all_sync(kFullMask, finite)) {
      if (lane < k - 1) bounds[seq * (k - 1) + lane] = a[lane];
      if (lane == 0) scores[seq] = CUDART_NAN_F;
      __syncwarp();
      continue;
    }
    for (int64_t e = lane; e < k * n; e += kWarp) {
      const int64_t kk = e / n, i = e % n;
      float* cell = ws.prefix + kk * ws.stride + i + 1;
      *cell = sseg::cosine(*cell, sq[i], sq[a[kk]]);
    }
    __syncwarp();
    if (lane < k) sseg::prefix_scan(ws.prefix + lane * ws.stride, n, a[lane], mode);
    __syncwarp();
    const float tol = sseg::tie_tolerance(n, k, mode);
    float score = 0.f;
    if (mode == sseg::kModeSum) {
      if (lane == 0) {  // O(K L): the slack of the tie rule chains the boundaries
        sseg::sum_mode_boundaries(ws, a, k, tol, out);
        score = sseg::tuple_score(ws, n, k, mode, out);
      }
    } else {
      for (int64_t kk = k - 2; kk >= 0; --kk) {
        sseg::mean_dp_row(ws, a, n, k, mode, kk, lane, kWarp);
        __syncwarp();
      }
      if (lane == 0) score = sseg::mean_dp_backtrack(ws, a, n, k, mode, tol, out);
    }
    __syncwarp();
    if (lane < k - 1) bounds[seq * (k - 1) + lane] = out[lane];
    if (lane == 0) scores[seq] = score;
    __syncwarp();
  }
}

template <bool kShared>
void launch(const LaunchPlan& p, bool vec4, const float* x, const int64_t* anchors,
            const int64_t* lengths, int64_t* bounds, float* scores, unsigned char* scratch,
            int64_t batch, int64_t length, int64_t dim, int64_t k, int mode, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.blocks));
  const dim3 block(p.warps_per_block * kWarp);
  const size_t shared = kShared ? static_cast<size_t>(p.warps_per_block * p.warp_bytes) : 0;
  if (vec4)
    pseudo_boundary_kernel<kShared, true><<<grid, block, shared, stream>>>(
        x, anchors, lengths, bounds, scores, scratch, batch, length, dim, k, mode, p.warp_bytes);
  else
    pseudo_boundary_kernel<kShared, false><<<grid, block, shared, stream>>>(
        x, anchors, lengths, bounds, scores, scratch, batch, length, dim, k, mode, p.warp_bytes);
}

}  // namespace

// Bytes of global scratch the launcher needs (0 when shared memory suffices).
extern "C" int64_t sseg_dtw_cuda_workspace_bytes(int64_t batch, int64_t length, int64_t k) {
  if (batch <= 0) return 0;
  return plan_launch(batch, length, k).global_bytes;
}

// Launches the search on `stream`; all pointers are device pointers, inputs contiguous.
// Returns a cudaError_t (cudaSuccess = 0).
extern "C" int sseg_dtw_cuda_launch(const float* x, const int64_t* anchors,
                                    const int64_t* lengths, int64_t* bounds, float* scores,
                                    void* workspace, int64_t batch, int64_t length, int64_t dim,
                                    int64_t k, int mode, void* stream) {
  if (batch <= 0) return cudaSuccess;
  const LaunchPlan p = plan_launch(batch, length, k);
  if (p.blocks > 0x7fffffffll) return cudaErrorInvalidConfiguration;
  if (!p.shared && workspace == nullptr) return cudaErrorInvalidValue;
  const bool vec4 = dim % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  auto* s = static_cast<cudaStream_t>(stream);
  auto* scratch = static_cast<unsigned char*>(workspace);
  if (p.shared)
    launch<true>(p, vec4, x, anchors, lengths, bounds, scores, scratch, batch, length, dim, k,
                 mode, s);
  else
    launch<false>(p, vec4, x, anchors, lengths, bounds, scores, scratch, batch, length, dim, k,
                  mode, s);
  return static_cast<int>(cudaGetLastError());
}
