// Cosine similarities of one sequence's shots to its K anchors (CPU hot loop), with
// runtime ISA dispatch: AVX-512 / AVX2+FMA / baseline builds of the same body are
// picked once with __builtin_cpu_supports, so the distributed build needs no -march.
#pragma once

#include <cmath>
#include <cstdint>

#include "dtw_common.h"

namespace sseg_cpu {

// Writes |x_i|^2 to sq[i] and cos(x_i, x_{a_k}) to ws.prefix[k][i+1] for i < n.
// Returns false (prefix rows untouched) if a valid shot has NaN/inf values.
using SimilarityFn = bool (*)(const float* x, const int64_t* a, int64_t n, int64_t k,
                              int64_t dim, float* sq, const sseg::Workspace& ws);

#if defined(__GNUC__)
#define SSEG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SSEG_ALWAYS_INLINE inline
#endif

// One sweep over shot i's row: its squared norm and its dots with up to four anchors.
template <int kGroup, bool kWithSq>
SSEG_ALWAYS_INLINE void dot_group(const float* xi, const float* const* rows, int64_t dim,
                                  float* out_sq, float* out_dot) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f, q = 0.f;
  const float* r0 = rows[0];
  const float* r1 = kGroup > 1 ? rows[1] : rows[0];
  const float* r2 = kGroup > 2 ? rows[2] : rows[0];
  const float* r3 = kGroup > 3 ? rows[3] : rows[0];
#pragma omp simd reduction(+ : s0, s1, s2, s3, q)
  for (int64_t d = 0; d < dim; ++d) {
    const float v = xi[d];
    if (kWithSq) q += v * v;
    s0 += v * r0[d];
    if (kGroup > 1) s1 += v * r1[d];
    if (kGroup > 2) s2 += v * r2[d];
    if (kGroup > 3) s3 += v * r3[d];
  }
  if (kWithSq) *out_sq = q;
  out_dot[0] = s0;
  if (kGroup > 1) out_dot[1] = s1;
  if (kGroup > 2) out_dot[2] = s2;
  if (kGroup > 3) out_dot[3] = s3;
}

template <bool kWithSq>
SSEG_ALWAYS_INLINE void dots_from(const float* xi, const float* const* rows, int64_t count,
                                  int64_t dim, float* out_sq, float* out_dot) {
  switch (count) {
    case 1:
      dot_group<1, kWithSq>(xi, rows, dim, out_sq, out_dot);
      break;
    case 2:
      dot_group<2, kWithSq>(xi, rows, dim, out_sq, out_dot);
      break;
    case 3:
      dot_group<3, kWithSq>(xi, rows, dim, out_sq, out_dot);
      break;
    default:
      dot_group<4, kWithSq>(xi, rows, dim, out_sq, out_dot);
  }
}

constexpr int64_t kPrefetchRows = 2;

SSEG_ALWAYS_INLINE bool similarities_body(const float* x, const int64_t* a, int64_t n, int64_t k,
                                          int64_t dim, float* sq, const sseg::Workspace& ws) {
  const float* rows[sseg::kMaxAnchors];
  for (int64_t kk = 0; kk < k; ++kk) rows[kk] = x + a[kk] * dim;
  float dots[sseg::kMaxAnchors];
  // Raw dots first (anchor norms are only known once their shot is visited).
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
#if defined(__GNUC__)
    // Rows are streamed once: fetch a few rows ahead, across 4 KiB pages (where the
    // hardware prefetcher stops) and into the next sequence (prefetches never fault).
    const char* ahead = reinterpret_cast<const char*>(xi + kPrefetchRows * dim);
    for (int64_t off = 0; off < dim * 4; off += 64) __builtin_prefetch(ahead + off, 0, 0);
#endif
    const int64_t first = k < 4 ? k : 4;
    dots_from<true>(xi, rows, first, dim, sq + i, dots);
    for (int64_t kk = first; kk < k; kk += 4)
      dots_from<false>(xi, rows + kk, k - kk < 4 ? k - kk : 4, dim, nullptr, dots + kk);
    if (!std::isfinite(sq[i])) return false;
    for (int64_t kk = 0; kk < k; ++kk) ws.prefix[kk * ws.stride + i + 1] = dots[kk];
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    float* row = ws.prefix + kk * ws.stride;
    const float sq_anchor = sq[a[kk]];
    for (int64_t i = 0; i < n; ++i) row[i + 1] = sseg::cosine(row[i + 1], sq[i], sq_anchor);
  }
  return true;
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,avx2,fma"))) inline bool similarities_avx512(
    const float* x, const int64_t* a, int64_t n, int64_t k, int64_t dim, float* sq,
    const sseg::Workspace& ws) {
  return similarities_body(x, a, n, k, dim, sq, ws);
}

__attribute__((target("avx2,fma"))) inline bool similarities_avx2(
    const float* x, const int64_t* a, int64_t n, int64_t k, int64_t dim, float* sq,
    const sseg::Workspace& ws) {
  return similarities_body(x, a, n, k, dim, sq, ws);
}
#endif

inline bool similarities_baseline(const float* x, const int64_t* a, int64_t n, int64_t k,
                                  int64_t dim, float* sq, const sseg::Workspace& ws) {
  return similarities_body(x, a, n, k, dim, sq, ws);
}

// The best build for this CPU and its name ("avx512", "avx2", "baseline").
inline SimilarityFn pick_similarities(const char** name) {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
    *name = "avx512";
    return similarities_avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *name = "avx2";
    return similarities_avx2;
  }
#endif
  *name = "baseline";
  return similarities_baseline;
}

}  // namespace sseg_cpu
