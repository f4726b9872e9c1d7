// Pseudo-boundary search for one sequence, shared by the CPU and CUDA builds.
//
// Given shots x[0..n) (n = valid length) and strictly increasing anchors a[0..K),
// choose boundaries b[k] in [a[k], a[k+1]) (b[k] = last shot of segment k) so that
// the segments [0,b0], (b0,b1], ..., (b[K-2], n-1] maximise
//   mode 0 (sum):  sum_k  sum_{i in seg k} cos(x_i, x_{a_k})     (BaSSL DTW)
//   mode 1 (mean): sum_k mean_{i in seg k} cos(x_i, x_{a_k})
// with cos(u, v) = u.v / ((|u| + 1e-8) (|v| + 1e-8)).
//
// Tie rule: among optimal boundary tuples the lexicographically smallest one wins
// (earliest first boundary, then earliest second, ...). Scores are compared exactly
// as computed in float32; a tuple's score is always evaluated right to left,
// seg_0 + (seg_1 + (... + seg_{K-1})), the order the backward DP below uses.
//
// Everything here is host/device inline and written as "row" steps that take a
// (start, step) pair, so the CPU calls them with (0, 1) and a CUDA warp with
// (lane, 32): both run the same arithmetic.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define SSEG_HD __host__ __device__
#else
#define SSEG_HD
#endif

namespace sseg {

constexpr int kModeSum = 0;
constexpr int kModeMean = 1;
constexpr int64_t kMaxAnchors = 16;
constexpr int64_t kMaxLength = 1024;
constexpr float kCosEps = 1e-8f;

// Scratch of one sequence with padded length L; every row holds L+1 entries.
//   prefix: K rows of prefix sums, prefix[k][i] = sum_{j<i} cos(x_j, x_{a_k})
//   value:  K-1 rows, value[k][b] = best score of segments k+1..K-1 given b_k = b
//   choice: K-1 rows (int32), the earliest b_{k+1} attaining value[k][b]
struct Workspace {
  float* prefix;
  float* value;
  int32_t* choice;
  int64_t stride;
};

SSEG_HD inline int64_t workspace_bytes(int64_t k, int64_t length) {
  return (k + 2 * (k - 1)) * (length + 1) * static_cast<int64_t>(sizeof(float));
}

SSEG_HD inline Workspace carve_workspace(void* base, int64_t k, int64_t length) {
  Workspace ws;
  ws.stride = length + 1;
  ws.prefix = static_cast<float*>(base);
  ws.value = ws.prefix + k * ws.stride;
  ws.choice = reinterpret_cast<int32_t*>(ws.value + (k - 1) * ws.stride);
  return ws;
}

SSEG_HD inline float cosine(float dot, float sq_x, float sq_anchor) {
  return dot / ((sqrtf(sq_x) + kCosEps) * (sqrtf(sq_anchor) + kCosEps));
}

// In-place prefix sum of one row whose entries 1..n hold the similarities.
SSEG_HD inline void prefix_scan(float* row, int64_t n) {
  row[0] = 0.f;
  for (int64_t i = 0; i < n; ++i) row[i + 1] += row[i];
}

// Score of segment [lo, hi] (inclusive) against the anchor of prefix row `row`.
SSEG_HD inline float segment_score(const float* row, int64_t lo, int64_t hi, int mode) {
  const float total = row[hi + 1] - row[lo];
  return mode == kModeSum ? total : total / static_cast<float>(hi - lo + 1);
}

// Score of a boundary tuple, evaluated right to left (the DP's order).
SSEG_HD inline float tuple_score(const Workspace& ws, int64_t n, int64_t k, int mode,
                                 const int64_t* b) {
  float s = segment_score(ws.prefix + (k - 1) * ws.stride, b[k - 2] + 1, n - 1, mode);
  for (int64_t kk = k - 2; kk >= 0; --kk) {
    const int64_t lo = kk == 0 ? 0 : b[kk - 1] + 1;
    s = segment_score(ws.prefix + kk * ws.stride, lo, b[kk], mode) + s;
  }
  return s;
}

// Sum mode is separable: b_k = earliest argmax of P_k[b+1] - P_{k+1}[b+1].
SSEG_HD inline int64_t sum_mode_boundary(const Workspace& ws, const int64_t* a, int64_t kk) {
  const float* left = ws.prefix + kk * ws.stride;
  const float* right = left + ws.stride;
  int64_t best_b = a[kk];
  float best = -INFINITY;
  for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
    const float gain = left[bb + 1] - right[bb + 1];
    if (gain > best) {
      best = gain;
      best_b = bb;
    }
  }
  return best_b;
}

// One row of the backward mean-mode DP, for b = a[kk] + start, + step, ...
SSEG_HD inline void mean_dp_row(const Workspace& ws, const int64_t* a, int64_t n, int64_t k,
                                int64_t kk, int64_t start, int64_t step) {
  float* value = ws.value + kk * ws.stride;
  int32_t* choice = ws.choice + kk * ws.stride;
  const float* row = ws.prefix + (kk + 1) * ws.stride;  // anchor of segment kk+1
  if (kk == k - 2) {
    for (int64_t bb = a[kk] + start; bb < a[kk + 1]; bb += step) {
      value[bb] = segment_score(row, bb + 1, n - 1, kModeMean);
      choice[bb] = static_cast<int32_t>(n - 1);
    }
    return;
  }
  const float* next = value + ws.stride;
  for (int64_t bb = a[kk] + start; bb < a[kk + 1]; bb += step) {
    float best = -INFINITY;
    int64_t best_next = a[kk + 1];
    for (int64_t nb = a[kk + 1]; nb < a[kk + 2]; ++nb) {
      const float v = segment_score(row, bb + 1, nb, kModeMean) + next[nb];
      if (v > best) {
        best = v;
        best_next = nb;
      }
    }
    value[bb] = best;
    choice[bb] = static_cast<int32_t>(best_next);
  }
}

// After all DP rows: pick the earliest best b_0 and follow the choices forward.
SSEG_HD inline float mean_dp_backtrack(const Workspace& ws, const int64_t* a, int64_t k,
                                       int64_t* out) {
  float best = -INFINITY;
  int64_t best_b = a[0];
  for (int64_t bb = a[0]; bb < a[1]; ++bb) {
    const float v = segment_score(ws.prefix, 0, bb, kModeMean) + ws.value[bb];
    if (v > best) {
      best = v;
      best_b = bb;
    }
  }
  out[0] = best_b;
  for (int64_t kk = 0; kk + 2 < k; ++kk) out[kk + 1] = ws.choice[kk * ws.stride + out[kk]];
  return best;
}

// Solves one sequence whose prefix rows are filled; writes K-1 boundaries.
SSEG_HD inline float solve_from_prefix(const Workspace& ws, const int64_t* a, int64_t n,
                                       int64_t k, int mode, int64_t* out) {
  if (mode == kModeSum) {
    for (int64_t kk = 0; kk + 1 < k; ++kk) out[kk] = sum_mode_boundary(ws, a, kk);
    return tuple_score(ws, n, k, mode, out);
  }
  for (int64_t kk = k - 2; kk >= 0; --kk) mean_dp_row(ws, a, n, k, kk, 0, 1);
  return mean_dp_backtrack(ws, a, k, out);
}

// Returns 0 when (n, a) is a valid problem for padded length L, else an error code:
// 1 length out of [1, L], 2 anchor out of [0, n), 3 anchors not strictly increasing.
SSEG_HD inline int check_sequence(const int64_t* a, int64_t n, int64_t k, int64_t length) {
  if (n < 1 || n > length) return 1;
  for (int64_t kk = 0; kk < k; ++kk) {
    if (a[kk] < 0 || a[kk] >= n) return 2;
    if (kk > 0 && a[kk] <= a[kk - 1]) return 3;
  }
  return 0;
}

}  // namespace sseg
