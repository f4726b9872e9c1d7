// Pseudo-boundary search for one sequence, shared by the CPU and CUDA builds.
//
// Given shots x[0..n) (n = valid length) and increasing anchors a[0..K), choose
// boundaries b[k] in [a[k], a[k+1]) (b[k] = last shot of segment k) so that the
// segments [0,b0], (b0,b1], ..., (b[K-2], n-1] maximise
//   mode 0 (sum):  sum_k  sum_{i in seg k} cos(x_i, x_{a_k})     (BaSSL DTW)
//   mode 1 (mean): sum_k mean_{i in seg k} cos(x_i, x_{a_k})
// Ties go to the earliest boundary. Returns the best score.
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

// Floats of scratch space one sequence needs: K prefix-sum rows of n+1, plus
// two DP rows and one argmax table of n entries each per anchor.
SSEG_HD inline int64_t workspace_floats(int64_t k, int64_t length) {
  return k * (length + 1) + 2 * (length + 1) + (k - 1) * (length + 1);
}

// prefix[kk * (n+1) + i] = sum_{j<i} cos(x_j, x_{a_kk}).
SSEG_HD inline void anchor_prefix_sums(const float* x, const int64_t* a, int64_t n, int64_t k,
                                      int64_t dim, float* prefix) {
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* anchor = x + a[kk] * dim;
    float anchor_sq = 0.f;
    for (int64_t d = 0; d < dim; ++d) anchor_sq += anchor[d] * anchor[d];
    const float anchor_norm = sqrtf(anchor_sq) + 1e-8f;
    float* row = prefix + kk * (n + 1);
    row[0] = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * dim;
      float dot = 0.f, sq = 0.f;
      for (int64_t d = 0; d < dim; ++d) {
        dot += xi[d] * anchor[d];
        sq += xi[d] * xi[d];
      }
      row[i + 1] = row[i] + dot / (anchor_norm * (sqrtf(sq) + 1e-8f));
    }
  }
}

// Mean similarity of shots [lo, hi] (inclusive) to anchor row `row`.
SSEG_HD inline float segment_mean(const float* row, int64_t lo, int64_t hi) {
  return (row[hi + 1] - row[lo]) / static_cast<float>(hi - lo + 1);
}

// Solves one sequence from its prefix sums; writes K-1 boundaries.
SSEG_HD inline float solve_from_prefix(const float* prefix, const int64_t* a, int64_t n, int64_t k,
                                       int mode, float* work, int64_t* out) {
  const int64_t stride = n + 1;
  if (mode == kModeSum) {
    float total = 0.f;
    int64_t prev_end = -1;
    for (int64_t kk = 0; kk + 1 < k; ++kk) {
      const float* left = prefix + kk * stride;
      const float* right = prefix + (kk + 1) * stride;
      int64_t best_b = a[kk];
      float best = -INFINITY;
      for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
        // shots <= bb go to anchor kk, the rest (up to the next anchor) to kk+1
        const float gain = left[bb + 1] - right[bb + 1];
        if (gain > best) {
          best = gain;
          best_b = bb;
        }
      }
      out[kk] = best_b;
      total += left[best_b + 1] - left[prev_end + 1];
      prev_end = best_b;
    }
    const float* last = prefix + (k - 1) * stride;
    return total + last[n] - last[prev_end + 1];
  }
  // mode mean: dynamic programme over boundaries.
  float* cur = work;                 // f_k(b), b in [0, n)
  float* nxt = work + stride;        // f_{k+1}(b)
  float* argmax = work + 2 * stride; // (K-1) x stride table of best previous boundary
  // f_0(b) = mean(s_0[0..b])
  for (int64_t bb = a[0]; bb < a[1]; ++bb) cur[bb] = segment_mean(prefix, 0, bb);
  for (int64_t kk = 1; kk + 1 < k; ++kk) {
    const float* row = prefix + kk * stride;
    for (int64_t bb = a[kk]; bb < a[kk + 1]; ++bb) {
      float best = -INFINITY;
      int64_t best_prev = a[kk - 1];
      for (int64_t pb = a[kk - 1]; pb < a[kk]; ++pb) {
        const float v = cur[pb] + segment_mean(row, pb + 1, bb);
        if (v > best) {
          best = v;
          best_prev = pb;
        }
      }
      nxt[bb] = best;
      argmax[kk * stride + bb] = static_cast<float>(best_prev);
    }
    float* tmp = cur;
    cur = nxt;
    nxt = tmp;
  }
  const float* last = prefix + (k - 1) * stride;
  float best = -INFINITY;
  int64_t best_prev = a[k - 2];
  for (int64_t pb = a[k - 2]; pb < a[k - 1]; ++pb) {
    const float v = cur[pb] + segment_mean(last, pb + 1, n - 1);
    if (v > best) {
      best = v;
      best_prev = pb;
    }
  }
  out[k - 2] = best_prev;
  for (int64_t kk = k - 2; kk >= 1; --kk)
    out[kk - 1] = static_cast<int64_t>(argmax[kk * stride + out[kk]]);
  return best;
}

SSEG_HD inline float solve_sequence(const float* x, const int64_t* a, int64_t n, int64_t k,
                                    int64_t dim, int mode, float* work, int64_t* out) {
  float* prefix = work;
  anchor_prefix_sums(x, a, n, k, dim, prefix);
  return solve_from_prefix(prefix, a, n, k, mode, work + k * (n + 1), out);
}

}  // namespace sseg
