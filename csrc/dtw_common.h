// Pseudo-boundary search for one sequence, shared by the CPU and CUDA builds.
//
// Given shots x[0..n) (n = valid length) and strictly increasing anchors a[0..K),
// choose boundaries b[k] in [a[k], a[k+1]) (b[k] = last shot of segment k) so that
// the segments [0,b0], (b0,b1], ..., (b[K-2], n-1] maximise
//   mode 0 (sum):  sum_k  sum_{i in seg k} cos(x_i, x_{a_k})     (BaSSL DTW)
//   mode 1 (mean): sum_k mean_{i in seg k} cos(x_i, x_{a_k})
//   mode 2 (mean_others): sum_k mean_{i in seg k, i != a_k} cos(x_i, x_{a_k}), 0 for a
//          segment holding only its anchor (the anchor's own similarity, always 1,
//          is left out, so one-shot segments no longer win by default)
// with cos(u, v) = u.v / ((|u| + 1e-8) (|v| + 1e-8)).
//
// Tie rule: tuples whose scores lie within tol = 1e-5 * S of the best score count as
// tied (S = n in sum mode, K in the mean modes: the largest possible |score|), and the
// lexicographically smallest tied tuple wins (earliest first boundary, then earliest
// second, ...). The tolerance absorbs float32 rounding, so exact ties in real
// arithmetic resolve the same way on every backend.
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
constexpr int kModeMeanOthers = 2;
constexpr int64_t kMaxAnchors = 16;
constexpr int64_t kMaxLength = 1024;
constexpr float kCosEps = 1e-8f;

// Scratch of one sequence with padded length L; every row holds L+1 entries.
//   prefix: K rows of prefix sums, prefix[k][i] = sum_{j<i} cos(x_j, x_{a_k})
//   value:  K-1 rows, value[k][b] = best score of segments k+1..K-1 given b_k = b
struct Workspace {
  float* prefix;
  float* value;
  int64_t stride;
};

SSEG_HD inline int64_t workspace_bytes(int64_t k, int64_t length) {
  return (2 * k - 1) * (length + 1) * static_cast<int64_t>(sizeof(float));
}

SSEG_HD inline Workspace carve_workspace(void* base, int64_t k, int64_t length) {
  Workspace ws;
  ws.stride = length + 1;
  ws.prefix = static_cast<float*>(base);
  ws.value = ws.prefix + k * ws.stride;
  return ws;
}

// Scores within this much of the best are ties (see the tie rule above).
SSEG_HD inline float tie_tolerance(int64_t n, int64_t k, int mode) {
  return static_cast<float>(1e-5 * static_cast<double>(mode == kModeSum ? n : k));
}

SSEG_HD inline float cosine(float dot, float sq_x, float sq_anchor) {
  return dot / ((sqrtf(sq_x) + kCosEps) * (sqrtf(sq_anchor) + kCosEps));
}

// In-place prefix sum of one row whose entries 1..n hold the similarities to `anchor`;
// mean_others mode first drops the anchor's own similarity.
SSEG_HD inline void prefix_scan(float* row, int64_t n, int64_t anchor, int mode) {
  if (mode == kModeMeanOthers) row[anchor + 1] = 0.f;
  row[0] = 0.f;
  for (int64_t i = 0; i < n; ++i) row[i + 1] += row[i];
}

// Score of segment [lo, hi] (inclusive) against the anchor of prefix row `row`; the
// segment always holds its anchor, so mean_others averages over hi - lo other shots.
SSEG_HD inline float segment_score(const float* row, int64_t lo, int64_t hi, int mode) {
  const float total = row[hi + 1] - row[lo];
  if (mode == kModeSum) return total;
  const int64_t count = mode == kModeMean ? hi - lo + 1 : (hi > lo ? hi - lo : 1);
  return total / static_cast<float>(count);
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

// Sum mode is separable: score = const + sum_k g_k(b_k) with
// g_k(b) = P_k[b+1] - P_{k+1}[b+1]. The lexicographically smallest tuple within `tol`
// of the best takes, boundary by boundary, the earliest b whose deficit
// max g_k - g_k(b) fits in the slack the earlier boundaries left.
SSEG_HD inline void sum_mode_boundaries(const Workspace& ws, const int64_t* a, int64_t k,
                                        float tol, int64_t* out) {
  float slack = tol;
  for (int64_t kk = 0; kk + 1 < k; ++kk) {
    const float* left = ws.prefix + kk * ws.stride;
    const float* right = left + ws.stride;
    float best = -INFINITY;
    for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
      const float gain = left[bb + 1] - right[bb + 1];
      if (gain > best) best = gain;
    }
    const float threshold = best - slack;
    int64_t pick = a[kk];
    float deficit = 0.f;
    for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
      const float gain = left[bb + 1] - right[bb + 1];
      if (gain >= threshold) {
        pick = bb;
        deficit = best - gain;
        break;
      }
    }
    out[kk] = pick;
    slack = slack - deficit;
  }
}

// One row of the backward mean-mode DP, for b = a[kk] + start, + step, ...
SSEG_HD inline void mean_dp_row(const Workspace& ws, const int64_t* a, int64_t n, int64_t k,
                                int mode, int64_t kk, int64_t start, int64_t step) {
  float* value = ws.value + kk * ws.stride;
  const float* row = ws.prefix + (kk + 1) * ws.stride;  // anchor of segment kk+1
  if (kk == k - 2) {
    for (int64_t bb = a[kk] + start; bb < a[kk + 1]; bb += step)
      value[bb] = segment_score(row, bb + 1, n - 1, mode);
    return;
  }
  const float* next = value + ws.stride;
  for (int64_t bb = a[kk] + start; bb < a[kk + 1]; bb += step) {
    float best = -INFINITY;
    for (int64_t nb = a[kk + 1]; nb < a[kk + 2]; ++nb) {
      const float v = segment_score(row, bb + 1, nb, mode) + next[nb];
      if (v > best) best = v;
    }
    value[bb] = best;
  }
}

// After all DP rows: the best score M, then boundary by boundary the earliest b that
// still completes to a tuple scoring >= M - tol (acc + (segment + best rest)); falls
// back to the best b should rounding leave none. Returns the chosen tuple's score.
SSEG_HD inline float mean_dp_backtrack(const Workspace& ws, const int64_t* a, int64_t n,
                                       int64_t k, int mode, float tol, int64_t* out) {
  float best = -INFINITY;
  for (int64_t bb = a[0]; bb < a[1]; ++bb) {
    const float v = segment_score(ws.prefix, 0, bb, mode) + ws.value[bb];
    if (v > best) best = v;
  }
  const float budget = best - tol;
  float acc = 0.f;
  int64_t prev = -1;
  for (int64_t kk = 0; kk + 1 < k; ++kk) {
    const float* row = ws.prefix + kk * ws.stride;
    const float* rest = ws.value + kk * ws.stride;
    int64_t pick = -1, fallback = a[kk];
    float pick_seg = 0.f, fallback_total = -INFINITY, fallback_seg = 0.f;
    for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
      const float seg = segment_score(row, prev + 1, bb, mode);
      const float total = acc + (seg + rest[bb]);
      if (total >= budget) {
        pick = bb;
        pick_seg = seg;
        break;
      }
      if (total > fallback_total) {
        fallback_total = total;
        fallback = bb;
        fallback_seg = seg;
      }
    }
    if (pick < 0) {
      pick = fallback;
      pick_seg = fallback_seg;
    }
    out[kk] = pick;
    acc = acc + pick_seg;
    prev = pick;
  }
  return tuple_score(ws, n, k, mode, out);
}

// Solves one sequence whose prefix rows are filled; writes K-1 boundaries.
SSEG_HD inline float solve_from_prefix(const Workspace& ws, const int64_t* a, int64_t n,
                                       int64_t k, int mode, int64_t* out) {
  const float tol = tie_tolerance(n, k, mode);
  if (mode == kModeSum) {
    sum_mode_boundaries(ws, a, k, tol, out);
    return tuple_score(ws, n, k, mode, out);
  }
  for (int64_t kk = k - 2; kk >= 0; --kk) mean_dp_row(ws, a, n, k, mode, kk, 0, 1);
  return mean_dp_backtrack(ws, a, n, k, mode, tol, out);
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
