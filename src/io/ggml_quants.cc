#include "io/ggml_quants.h"

#include "io/ggml_block_format.h"
#include "io/ggml_decoder_variants.h"
#include "util/cpu_features.h"
#include "util/error.h"

namespace referee::io {
namespace {

// ---------------------------------------------------------------------------------------------
// Encoder helpers.

constexpr float kF16Max = 65504.0f;

// f16 bits of v, saturating at the largest finite half so that an encoder never writes an
// infinite scale (which would decode as inf or NaN); NaN becomes 0.
inline uint16_t f16_saturating(float v) {
  if (std::isnan(v)) return 0;
  return f32_to_f16(std::clamp(v, -kF16Max, kF16Max));
}

// round(v) clamped to [lo, hi], ties to even, defined for every float. Adding 1.5 * 2^23 leaves
// the rounded value in the low mantissa bits for |v| < 2^22; beyond that, and for infinities, the
// bit pattern still lies on the correct side of the clamp bounds, because the patterns of
// positive floats order like their values and negative ones read as negative int32 (NaN lands
// on one of the bounds). Working on int32 patterns, unlike std::nearbyint and float compares,
// lets the compiler vectorise the loops that call this.
inline int32_t round_clamp(float v, int32_t lo, int32_t hi) {
  constexpr float kBias = 0x1.8p23f;
  constexpr int32_t kBiasBits = 0x4b400000;
  const float biased = v + kBias;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  bits = bits > kBiasBits + lo ? bits : kBiasBits + lo;
  bits = bits < kBiasBits + hi ? bits : kBiasBits + hi;
  return bits - kBiasBits;
}

// Copies a block, replacing NaN by 0 and infinities by the largest finite float, so the searches
// below only ever see finite numbers.
void sanitize(const float* x, int n, float* out) {
  constexpr float kMax = std::numeric_limits<float>::max();
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    out[i] = std::isnan(v) ? 0.0f : std::clamp(v, -kMax, kMax);
  }
}

// Sums that decide how well a grid fits a block, for the codes
// l_i = round_clamp((x_i - origin) * inverse, lo, hi). Eight independent partial sums keep the
// loop vectorisable without reassociating floating-point additions.
struct GridSums {
  float l = 0.0f, ll = 0.0f, xl = 0.0f;
};

template <int N>
GridSums grid_sums(const float* __restrict x, float inverse, float origin, int32_t lo, int32_t hi) {
  static_assert(N % 8 == 0);
  float sl[8] = {}, sll[8] = {}, sxl[8] = {};
  for (int i = 0; i < N; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float l = static_cast<float>(round_clamp((x[i + k] - origin) * inverse, lo, hi));
      sl[k] += l;
      sll[k] += l * l;
      sxl[k] += x[i + k] * l;
    }
  }
  GridSums s;
  for (int k = 0; k < 8; ++k) {
    s.l += sl[k];
    s.ll += sll[k];
    s.xl += sxl[k];
  }
  return s;
}

// Largest |x_i|, and the x_i that has it.
template <int N>
float signed_absmax(const float* x, float* amax) {
  float best = 0.0f, value = 0.0f;
  for (int i = 0; i < N; ++i) {
    if (std::fabs(x[i]) > best) {
      best = std::fabs(x[i]);
      value = x[i];
    }
  }
  *amax = best;
  return value;
}

// Fits x ~= s * l with integer codes l in [-nneg, npos] and returns the scale s (0 for an all-zero
// input). Candidate grids put the largest-magnitude value on the negative end of the code range
// (the end with one more level) or the positive one, each stretched by -0.9 to 0.9 of a step in
// steps of 0.3 (finer steps gain under 0.1% in error at twice the time); for a grid's codes the
// best scale is the least-squares sum(x*l) / sum(l*l), and the grid that removes the most squared
// error, sum(x*l)^2 / sum(l*l), wins. Three Lloyd steps (re-round to the scale, re-fit) then polish
// it. The block is first divided by its largest magnitude so that float sums cannot overflow
// whatever the input's range.
template <int N>
float fit_symmetric(const float* x, int32_t nneg, int32_t npos) {
  float amax;
  const float xmax = signed_absmax<N>(x, &amax);
  if (amax == 0.0f) return 0.0f;
  float xn[N];
  for (int i = 0; i < N; ++i) xn[i] = x[i] / amax;
  const float top = xmax / amax;  // exactly +1 or -1
  float best_gain = -1.0f, best_scale = 0.0f;
  auto try_inverse_scale = [&](float inverse) {
    const GridSums s = grid_sums<N>(xn, inverse, 0.0f, -nneg, npos);
    if (s.ll <= 0.0f) return;
    const float gain = s.xl * s.xl / s.ll;
    if (gain > best_gain) {
      best_gain = gain;
      best_scale = s.xl / s.ll;
    }
  };
  for (int k = -3; k <= 3; ++k) {
    const float stretch = 0.3f * static_cast<float>(k);
    try_inverse_scale(-(static_cast<float>(nneg) + stretch) / top);
    try_inverse_scale((static_cast<float>(npos) + stretch) / top);
  }
  for (int step = 0; step < 3 && best_scale != 0.0f; ++step) try_inverse_scale(1.0f / best_scale);
  return best_scale * amax;
}

// x ~= scale * l + offset with integer codes l in [0, qmax].
struct Affine {
  float scale;
  float offset;
};

// Fits an affine grid to x. Candidate grids span [min, max] with the top level stretched by -1 to
// 1 step in steps of 0.25; for each grid's codes (scale, offset) is the joint least-squares
// solution, and the candidate with the smallest squared error wins, followed by three Lloyd steps.
// K-quants store the offset as -dmin * m with m >= 0, so with offset_at_most_zero the range always
// includes 0 and a positive fitted offset falls back to the best scale at offset 0. As in
// fit_symmetric the block is normalised by its largest magnitude first.
template <int N>
Affine fit_affine(const float* x, int32_t qmax, bool offset_at_most_zero) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < N; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (offset_at_most_zero) lo = std::min(lo, 0.0f);
  if (!(hi > lo)) return {0.0f, lo};  // constant block: the offset says it all

  const float amax = std::max(std::fabs(lo), std::fabs(hi));
  float xn[N];
  for (int i = 0; i < N; ++i) xn[i] = x[i] / amax;
  const float lo_n = lo / amax, hi_n = hi / amax;
  double sum_x = 0.0, sum_xx = 0.0;
  for (int i = 0; i < N; ++i) {
    sum_x += xn[i];
    sum_xx += static_cast<double>(xn[i]) * xn[i];
  }

  const float top = static_cast<float>(qmax);
  Affine best{(hi_n - lo_n) / top, lo_n};
  double best_error = std::numeric_limits<double>::infinity();
  auto try_grid = [&](float inverse, float origin) {
    const GridSums s = grid_sums<N>(xn, inverse, origin, 0, qmax);
    const double det = N * static_cast<double>(s.ll) - static_cast<double>(s.l) * s.l;
    if (det <= 0.0) return;  // all codes equal: no information about the scale
    double scale = (N * static_cast<double>(s.xl) - sum_x * s.l) / det;
    double offset = (s.ll * sum_x - static_cast<double>(s.l) * s.xl) / det;
    if (offset_at_most_zero && offset > 0.0) {
      offset = 0.0;
      scale = static_cast<double>(s.xl) / s.ll;
    }
    if (!(scale > 0.0)) return;
    // sum((scale * l + offset - x)^2), expanded into the sums we have.
    const double error = sum_xx + scale * scale * s.ll + N * offset * offset - 2.0 * scale * s.xl -
                         2.0 * offset * sum_x + 2.0 * scale * offset * s.l;
    if (error < best_error) {
      best_error = error;
      best = {static_cast<float>(scale), static_cast<float>(offset)};
    }
  };
  for (int k = -4; k <= 4; ++k) {
    try_grid((top + 0.25f * static_cast<float>(k)) / (hi_n - lo_n), lo_n);
  }
  for (int step = 0; step < 3 && best.scale > 0.0f; ++step) {
    try_grid(1.0f / best.scale, best.offset);
  }
  return {best.scale * amax, best.offset * amax};
}

// Squared error of x against the decoder's floats step * l - shift for the codes
// l_i = round_clamp((x_i + shift) / step, lo, hi). Eight partial sums, for vectorisation.
template <int N>
float grid_error(const float* __restrict x, float step, float shift, int32_t lo, int32_t hi) {
  const float inverse = step != 0.0f ? 1.0f / step : 0.0f;
  float partial[8] = {};
  for (int i = 0; i < N; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const int32_t l = round_clamp((x[i + k] + shift) * inverse, lo, hi);
      const float e = step * static_cast<float>(l) - shift - x[i + k];
      partial[k] += e * e;
    }
  }
  float error = 0.0f;
  for (float p : partial) error += p;
  return error;
}

// The codes grid_error measured.
template <int N>
void grid_codes(const float* __restrict x, float step, float shift, int32_t lo, int32_t hi,
                int* __restrict codes) {
  const float inverse = step != 0.0f ? 1.0f / step : 0.0f;
  for (int i = 0; i < N; ++i) codes[i] = round_clamp((x[i] + shift) * inverse, lo, hi);
}

// ---------------------------------------------------------------------------------------------
// Encoders, one block each.

// Q4_0 and Q5_0: signed scale, codes stored with a bias of nneg.
template <int kNneg, int kNpos>
void encode_symmetric_32(const float* raw, int codes[32], uint16_t* d_bits) {
  float x[32];
  sanitize(raw, 32, x);
  const float scale = fit_symmetric<32>(x, kNneg, kNpos);
  *d_bits = f16_saturating(scale);
  const float d = f16_to_f32(*d_bits);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) codes[j] = round_clamp(x[j] * inverse, -kNneg, kNpos) + kNneg;
}

// Q4_1 and Q5_1: scale and free offset.
template <int kQmax>
void encode_affine_32(const float* raw, int codes[32], uint16_t* d_bits, uint16_t* m_bits) {
  float x[32];
  sanitize(raw, 32, x);
  const Affine fit = fit_affine<32>(x, kQmax, /*offset_at_most_zero=*/false);
  *d_bits = f16_saturating(fit.scale);
  *m_bits = f16_saturating(fit.offset);
  const float d = f16_to_f32(*d_bits);
  const float m = f16_to_f32(*m_bits);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) codes[j] = round_clamp((x[j] - m) * inverse, 0, kQmax);
}

void encode_q4_0(const float* x, uint8_t* b) {
  int codes[32];
  uint16_t d;
  encode_symmetric_32<8, 7>(x, codes, &d);
  store_u16(b, d);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(codes[j] | (codes[j + 16] << 4));
}

void encode_q4_1(const float* x, uint8_t* b) {
  int codes[32];
  uint16_t d, m;
  encode_affine_32<15>(x, codes, &d, &m);
  store_u16(b, d);
  store_u16(b + 2, m);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(codes[j] | (codes[j + 16] << 4));
}

inline uint32_t fifth_bits(const int codes[32]) {
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
  return qh;
}

void encode_q5_0(const float* x, uint8_t* b) {
  int codes[32];
  uint16_t d;
  encode_symmetric_32<16, 15>(x, codes, &d);
  store_u16(b, d);
  store_u32(b + 2, fifth_bits(codes));
  for (int j = 0; j < 16; ++j) {
    b[6 + j] = static_cast<uint8_t>((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
  }
}

void encode_q5_1(const float* x, uint8_t* b) {
  int codes[32];
  uint16_t d, m;
  encode_affine_32<31>(x, codes, &d, &m);
  store_u16(b, d);
  store_u16(b + 2, m);
  store_u32(b + 4, fifth_bits(codes));
  for (int j = 0; j < 16; ++j) {
    b[8 + j] = static_cast<uint8_t>((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
  }
}

// Q8_0 runs over whole models, so it stays a straight pass the compiler vectorises: absolute
// maximum, one scale, round-and-clamp. The maximum is taken over the floats' bit patterns as
// int32 (a float max is not vectorised without -ffast-math): for non-negative floats the
// patterns order like the values, and NaN patterns, which lie above infinity, count as 0. 8 bits
// leave nothing for a scale search to gain.
inline uint16_t q8_scale_and_codes(const float* __restrict x, int8_t* __restrict q) {
  constexpr int32_t kInfBits = 0x7f800000;
  int32_t amax_bits = 0;
  for (int j = 0; j < 32; ++j) {
    int32_t a;
    std::memcpy(&a, x + j, sizeof a);
    a &= 0x7fffffff;
    a = a > kInfBits ? 0 : a;
    amax_bits = a > amax_bits ? a : amax_bits;
  }
  const uint16_t d_bits = f16_saturating(std::bit_cast<float>(amax_bits) / 127.0f);
  const float d = f16_to_f32(d_bits);
  const float inverse = d > 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) {
    int32_t xbits;
    std::memcpy(&xbits, x + j, sizeof xbits);
    const int32_t r = round_clamp(x[j] * inverse, -127, 127);
    q[j] = static_cast<int8_t>((xbits & 0x7fffffff) > kInfBits ? 0 : r);  // NaN encodes as 0
  }
  return d_bits;
}

void encode_q8_0(const float* x, uint8_t* b) {
  int8_t q[32];
  store_u16(b, q8_scale_and_codes(x, q));
  std::memcpy(b + 2, q, sizeof q);
}

void encode_q8_1(const float* x, uint8_t* b) {
  int8_t q[32];
  const uint16_t d_bits = q8_scale_and_codes(x, q);
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += q[j];
  store_u16(b, d_bits);
  store_u16(b + 2, f16_saturating(f16_to_f32(d_bits) * static_cast<float>(sum)));
  std::memcpy(b + 4, q, sizeof q);
}

// Two-level affine super-blocks (Q2_K, Q4_K, Q5_K): sub-block j decodes as
// (d * sc[j]) * l - (dmin * mn[j]) with sc, mn in [0, kScaleMax] and codes l in [0, kQmax].
// Each sub-block gets its own affine fit; d and dmin are chosen so the largest fitted scale and
// offset land on kScaleMax; then, with d and dmin fixed, each sub-block tries its rounded
// (sc, mn) and the eight neighbours and keeps the pair with the least squared error.
template <int kSub, int kCount, int kQmax, int kScaleMax>
struct AffineSuperBlock {
  uint16_t d_bits, dmin_bits;
  uint8_t sc[kCount], mn[kCount];
  int codes[kSub * kCount];

  void encode(const float* raw) {
    float x[kSub * kCount];
    sanitize(raw, kSub * kCount, x);
    float scale[kCount], offset[kCount];
    float max_scale = 0.0f, max_offset = 0.0f;
    for (int j = 0; j < kCount; ++j) {
      const Affine fit = fit_affine<kSub>(x + kSub * j, kQmax, /*offset_at_most_zero=*/true);
      scale[j] = fit.scale;
      offset[j] = -fit.offset;
      max_scale = std::max(max_scale, scale[j]);
      max_offset = std::max(max_offset, offset[j]);
    }
    d_bits = f16_saturating(max_scale / kScaleMax);
    dmin_bits = f16_saturating(max_offset / kScaleMax);
    const float d = f16_to_f32(d_bits);
    const float dmin = f16_to_f32(dmin_bits);
    for (int j = 0; j < kCount; ++j) {
      const float* xs = x + kSub * j;
      const int sc0 = d > 0.0f ? round_clamp(scale[j] / d, 0, kScaleMax) : 0;
      const int mn0 = dmin > 0.0f ? round_clamp(offset[j] / dmin, 0, kScaleMax) : 0;
      float best_error = std::numeric_limits<float>::infinity();
      int best_sc = sc0, best_mn = mn0;
      for (int sc_try = std::max(0, sc0 - 1); sc_try <= std::min(kScaleMax, sc0 + 1); ++sc_try) {
        for (int mn_try = std::max(0, mn0 - 1); mn_try <= std::min(kScaleMax, mn0 + 1); ++mn_try) {
          const float error = grid_error<kSub>(xs, d * static_cast<float>(sc_try),
                                               dmin * static_cast<float>(mn_try), 0, kQmax);
          if (error < best_error) {
            best_error = error;
            best_sc = sc_try;
            best_mn = mn_try;
          }
        }
      }
      sc[j] = static_cast<uint8_t>(best_sc);
      mn[j] = static_cast<uint8_t>(best_mn);
      grid_codes<kSub>(xs, d * static_cast<float>(best_sc), dmin * static_cast<float>(best_mn), 0,
                       kQmax, codes + kSub * j);
    }
  }
};

// Two-level symmetric super-blocks (Q3_K, Q6_K): sixteen sub-blocks of 16 decode as
// (d * sc[j]) * l with signed sc in [-kScaleNeg, kScalePos] and codes l in [-kNneg, kNpos].
template <int kNneg, int kNpos, int kScaleNeg, int kScalePos>
struct SymmetricSuperBlock {
  uint16_t d_bits;
  int sc[16];
  int codes[256];  // signed, in [-kNneg, kNpos]

  void encode(const float* raw) {
    float x[256];
    sanitize(raw, 256, x);
    float scale[16];
    float max_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scale[j] = fit_symmetric<16>(x + 16 * j, kNneg, kNpos);
      if (std::fabs(scale[j]) > std::fabs(max_scale)) max_scale = scale[j];
    }
    // The largest scale takes the end of the range with one more level.
    d_bits = f16_saturating(max_scale / -static_cast<float>(kScaleNeg));
    const float d = f16_to_f32(d_bits);
    for (int j = 0; j < 16; ++j) {
      const float* xs = x + 16 * j;
      const int sc0 = d != 0.0f ? round_clamp(scale[j] / d, -kScaleNeg, kScalePos) : 0;
      float best_error = std::numeric_limits<float>::infinity();
      int best_sc = sc0;
      for (int sc_try = std::max(-kScaleNeg, sc0 - 1); sc_try <= std::min(kScalePos, sc0 + 1);
           ++sc_try) {
        const float error = grid_error<16>(xs, d * static_cast<float>(sc_try), 0.0f, -kNneg, kNpos);
        if (error < best_error) {
          best_error = error;
          best_sc = sc_try;
        }
      }
      sc[j] = best_sc;
      grid_codes<16>(xs, d * static_cast<float>(best_sc), 0.0f, -kNneg, kNpos, codes + 16 * j);
    }
  }
};

void encode_q2_k(const float* x, uint8_t* b) {
  AffineSuperBlock<16, 16, 3, 15> s;
  s.encode(x);
  for (int j = 0; j < 16; ++j) b[j] = static_cast<uint8_t>(s.sc[j] | (s.mn[j] << 4));
  uint8_t* qs = b + 16;
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int* c = s.codes + 128 * half + l;
      qs[32 * half + l] = static_cast<uint8_t>(c[0] | (c[32] << 2) | (c[64] << 4) | (c[96] << 6));
    }
  }
  store_u16(b + 80, s.d_bits);
  store_u16(b + 82, s.dmin_bits);
}

void encode_q3_k(const float* x, uint8_t* b) {
  SymmetricSuperBlock<4, 3, 32, 31> s;
  s.encode(x);
  uint8_t* hmask = b;
  uint8_t* qs = b + 32;
  uint8_t* scales = b + 96;
  std::memset(b, 0, 108);
  for (int e = 0; e < 256; ++e) {
    const int stored = s.codes[e] + 4;  // 0..7; bit 2 goes to hmask
    hmask[e % 32] |= static_cast<uint8_t>(((stored >> 2) & 1) << (e / 32));
    const int half = e / 128, j = (e % 128) / 32, l = e % 32;
    qs[32 * half + l] |= static_cast<uint8_t>((stored & 3) << (2 * j));
  }
  for (int i = 0; i < 16; ++i) {
    const int biased = s.sc[i] + 32;  // 0..63
    if (i < 8) {
      scales[i] |= static_cast<uint8_t>(biased & 0xF);
    } else {
      scales[i - 8] |= static_cast<uint8_t>((biased & 0xF) << 4);
    }
    scales[8 + i % 4] |= static_cast<uint8_t>((biased >> 4) << (2 * (i / 4)));
  }
  store_u16(b + 108, s.d_bits);
}

void encode_q4_k(const float* x, uint8_t* b) {
  AffineSuperBlock<32, 8, 15, 63> s;
  s.encode(x);
  store_u16(b, s.d_bits);
  store_u16(b + 2, s.dmin_bits);
  pack_k4_scales(s.sc, s.mn, b + 4);
  uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>(s.codes[64 * c + l] | (s.codes[64 * c + 32 + l] << 4));
    }
  }
}

void encode_q5_k(const float* x, uint8_t* b) {
  AffineSuperBlock<32, 8, 31, 63> s;
  s.encode(x);
  store_u16(b, s.d_bits);
  store_u16(b + 2, s.dmin_bits);
  pack_k4_scales(s.sc, s.mn, b + 4);
  uint8_t* qh = b + 16;
  uint8_t* qs = b + 48;
  std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = s.codes[64 * c + l], hi = s.codes[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

void encode_q6_k(const float* x, uint8_t* b) {
  SymmetricSuperBlock<32, 31, 128, 127> s;
  s.encode(x);
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  for (int half = 0; half < 2; ++half) {
    const int* c = s.codes + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int q1 = c[l] + 32, q2 = c[l + 32] + 32, q3 = c[l + 64] + 32, q4 = c[l + 96] + 32;
      ql[64 * half + l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[64 * half + l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[32 * half + l] =
          static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
  for (int j = 0; j < 16; ++j) b[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(s.sc[j]));
  store_u16(b + 208, s.d_bits);
}

// Nearest-level search for IQ4_NL without table lookups, so the loops over a block vectorise:
// the index of the level nearest to t is the number of midpoints between consecutive levels that
// t exceeds, and the level itself is the lowest level plus the gaps of those midpoints. NaN
// exceeds none.
constexpr auto kIq4nlMidpoints = [] {
  std::array<float, 15> mid{};
  for (int i = 0; i < 15; ++i)
    mid[i] = 0.5f * static_cast<float>(kIq4nlLevels[i] + kIq4nlLevels[i + 1]);
  return mid;
}();
constexpr auto kIq4nlGaps = [] {
  std::array<int32_t, 15> gap{};
  for (int i = 0; i < 15; ++i) gap[i] = kIq4nlLevels[i + 1] - kIq4nlLevels[i];
  return gap;
}();

inline int nearest_iq4nl_index(float t) {
  int index = 0;
  for (int k = 0; k < 15; ++k) index += static_cast<int>(t > kIq4nlMidpoints[k]);
  return index;
}

// sum(x * v) and sum(v * v) over a block, v being the level nearest to x * inverse.
struct LevelSums {
  float xv = 0.0f, vv = 0.0f;
};

LevelSums iq4nl_sums(const float* __restrict x, float inverse) {
  float sxv[8] = {}, svv[8] = {};
  for (int i = 0; i < 32; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float t = x[i + k] * inverse;
      int32_t level = kIq4nlLevels[0];
      for (int m = 0; m < 15; ++m)
        level += static_cast<int32_t>(t > kIq4nlMidpoints[m]) * kIq4nlGaps[m];
      const float v = static_cast<float>(level);
      sxv[k] += x[i + k] * v;
      svv[k] += v * v;
    }
  }
  LevelSums s;
  for (int k = 0; k < 8; ++k) {
    s.xv += sxv[k];
    s.vv += svv[k];
  }
  return s;
}

// IQ4_NL: a single f16 scale on a fixed non-uniform grid. Scales that put the largest-magnitude
// value on or near either end of the grid are tried, each re-fitted by least squares for its
// level assignment; the best one gets three Lloyd steps. As in fit_symmetric the search runs on
// the block divided by its largest magnitude.
void encode_iq4_nl(const float* raw, uint8_t* b) {
  float x[32];
  sanitize(raw, 32, x);
  float amax;
  const float xmax = signed_absmax<32>(x, &amax);
  float best_scale = 0.0f;
  if (amax > 0.0f) {
    float xn[32];
    for (int i = 0; i < 32; ++i) xn[i] = x[i] / amax;
    const float top = xmax / amax;  // exactly +1 or -1
    float best_gain = -1.0f, best_scale_n = 0.0f;
    auto try_scale = [&](float scale) {
      const LevelSums s = iq4nl_sums(xn, 1.0f / scale);
      const float gain = s.xv * s.xv / s.vv;  // levels are never 0, so s.vv > 0
      if (gain > best_gain && s.xv != 0.0f) {
        best_gain = gain;
        best_scale_n = s.xv / s.vv;
      }
    };
    for (int k = -8; k <= 8; ++k) {
      try_scale(top / static_cast<float>(kIq4nlLevels[0] + k));
      try_scale(top / static_cast<float>(kIq4nlLevels[15] + k));
    }
    for (int step = 0; step < 3 && best_scale_n != 0.0f; ++step) try_scale(best_scale_n);
    best_scale = best_scale_n * amax;
  }
  const uint16_t d_bits = f16_saturating(best_scale);
  store_u16(b, d_bits);
  const float d = f16_to_f32(d_bits);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  // With a zero scale every code decodes to 0 and x * inverse = 0 picks index 8 (level 1).
  for (int j = 0; j < 16; ++j) {
    b[2 + j] = static_cast<uint8_t>(nearest_iq4nl_index(x[j] * inverse) |
                                    (nearest_iq4nl_index(x[j + 16] * inverse) << 4));
  }
}

// Nearest MXFP4 code for t = x / scale: magnitude index from the midpoints of 0,1,2,3,4,6,8,12,
// sign in bit 3.
inline int nearest_mxfp4(float t) {
  constexpr float kMid[7] = {0.5f, 1.5f, 2.5f, 3.5f, 5.0f, 7.0f, 10.0f};
  const float a = std::fabs(t);
  int index = 0;
  for (float m : kMid) index += a > m ? 1 : 0;
  return index | (t < 0.0f ? 8 : 0);
}

// MXFP4: the scale is a power of two, so the only choice is the exponent. e0 puts the largest
// magnitude at 4 to 8 E2M1 units (ggml's choice), where the top level, 6 units, may clip it; e0 + 1
// cannot clip, e0 - 1 has finer steps for the rest of the block. The one with the least squared
// error wins. Exponent 255 is never written (it means NaN to OCP readers).
void encode_mxfp4(const float* raw, uint8_t* b) {
  float x[32];
  sanitize(raw, 32, x);
  float amax = 0.0f;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  int e_best = 0;
  if (amax > 0.0f) {
    int exponent;
    std::frexp(amax, &exponent);  // amax in [2^(exponent-1), 2^exponent)
    const int e0 = exponent + 124;
    double best_error = std::numeric_limits<double>::infinity();
    for (int e = std::max(0, e0 - 1); e <= std::min(254, e0 + 1); ++e) {
      const float scale = mxfp4_half_scale(static_cast<uint8_t>(e));
      const float inverse = 1.0f / scale;
      double error = 0.0;
      for (float v : x) {
        const float decoded = static_cast<float>(kMxfp4Levels[nearest_mxfp4(v * inverse)]) * scale;
        const double diff = static_cast<double>(decoded) - v;
        error += diff * diff;
      }
      if (error < best_error) {
        best_error = error;
        e_best = e;
      }
    }
  }
  b[0] = static_cast<uint8_t>(e_best);
  const float inverse = 1.0f / mxfp4_half_scale(static_cast<uint8_t>(e_best));
  for (int j = 0; j < 16; ++j) {
    b[1 + j] = static_cast<uint8_t>(nearest_mxfp4(x[j] * inverse) |
                                    (nearest_mxfp4(x[j + 16] * inverse) << 4));
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

using EncodeFn = void (*)(const float*, size_t, uint8_t*);

template <size_t kBytes, size_t kElems, void (*Encode)(const float*, uint8_t*)>
void encode_blocks(const float* src, size_t n_blocks, uint8_t* dst) {
  for (size_t i = 0; i < n_blocks; ++i) Encode(src + i * kElems, dst + i * kBytes);
}

// Block sizes are repeated here as template arguments so the loops see constants; the tests check
// them against dtype_info().
EncodeFn encoder_for(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return encode_blocks<18, 32, encode_q4_0>;
    case DType::kQ4_1:
      return encode_blocks<20, 32, encode_q4_1>;
    case DType::kQ5_0:
      return encode_blocks<22, 32, encode_q5_0>;
    case DType::kQ5_1:
      return encode_blocks<24, 32, encode_q5_1>;
    case DType::kQ8_0:
      return encode_blocks<34, 32, encode_q8_0>;
    case DType::kQ8_1:
      return encode_blocks<36, 32, encode_q8_1>;
    case DType::kQ2_K:
      return encode_blocks<84, 256, encode_q2_k>;
    case DType::kQ3_K:
      return encode_blocks<110, 256, encode_q3_k>;
    case DType::kQ4_K:
      return encode_blocks<144, 256, encode_q4_k>;
    case DType::kQ5_K:
      return encode_blocks<176, 256, encode_q5_k>;
    case DType::kQ6_K:
      return encode_blocks<210, 256, encode_q6_k>;
    case DType::kIQ4_NL:
      return encode_blocks<18, 32, encode_iq4_nl>;
    case DType::kMXFP4:
      return encode_blocks<17, 32, encode_mxfp4>;
    default:
      return nullptr;
  }
}

}  // namespace

namespace {
GgmlDecodeFn dispatched_decoder(DType t) {
  static const bool fast = cpu_features().avx2 && cpu_features().f16c;
  return fast ? ggml_decoder_avx2(t) : ggml_decoder_baseline(t);
}
}  // namespace

bool ggml_can_dequantize(DType t) {
  return dispatched_decoder(t) != nullptr;
}

void ggml_dequantize(DType t, const uint8_t* src, size_t n_blocks, float* dst) {
  const GgmlDecodeFn decode = dispatched_decoder(t);
  if (!decode) {
    throw not_supported(dtype_name(t), "referee cannot decode {} tensors", dtype_name(t));
  }
  decode(src, n_blocks, dst);
}

bool ggml_can_quantize(DType t) {
  return encoder_for(t) != nullptr;
}

void ggml_quantize(DType t, const float* src, size_t n_blocks, uint8_t* dst) {
  const EncodeFn encode = encoder_for(t);
  if (!encode) {
    throw not_supported(dtype_name(t), "referee cannot encode tensors as {}", dtype_name(t));
  }
  encode(src, n_blocks, dst);
}

}  // namespace referee::io
