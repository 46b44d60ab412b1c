// Low precision, element by element: float16 / bfloat16 conversions (round to nearest even
// or stochastic), the counter-based generator of stochastic rounding, and the 8-bit
// blockwise codes of optimizer state. Plain bit arithmetic on 16- and 32-bit integers,
// branch-free, so that the compiler vectorizes every loop of mixed.hpp in registers on
// every instruction-set target. Compiled once per target (target.hpp).
//
// Stochastic rounding of a float32 x to a 16-bit format that keeps the top bits of x: add
// r, uniform on [0, 2^k), to the k bits that the format drops and truncate. x rounds away
// from zero with probability (distance to the lower neighbour) / (distance between the
// neighbours): unbiased. r comes from sr_bits(key, element index): the same bits for any
// thread count, and after a resume (the key is derived from seed, step and parameter).
//
// int8 state (Dettmers et al. 2022's blockwise quantization): blocks of kQuantBlock
// elements, each with a float32 absmax a.
//   linear (signed moments):  q = rint(x * 127 / a) in [-127, 127];  x = q * (a / 127)
//   exponent (second moments, x >= 0): y = x / a in [0, 1] as a float with 3 mantissa
//     bits, rounded to nearest: q = (bits(y) rounded to 20 dropped bits >> 20) - 761, so
//     that q = 255 is 1.0 and q = 1 is 2^-32 * 1.25; below that q = 0 is 0. x = a * y.
//     (A dynamic-range code like bitsandbytes' dynamic map, 12.5% apart at every scale,
//     but closed-form, so that it quantizes in registers without a table search.)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fusedopt/target.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace half {

inline std::uint32_t bits_of(float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
}
inline float float_of(std::uint32_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

// A 32-bit integer hash with good avalanche (Wellons' "lowbias32").
inline std::uint32_t mix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x21f0aaadu;
    x ^= x >> 15;
    x *= 0x735a2d97u;
    x ^= x >> 15;
    return x;
}

// The random bits of element i = hi * 2^32 + lo under key (k0, k1): one round of the hash
// of the element's index keyed by k0 (a bijection: the elements of one step draw distinct
// values), whitened by k1; hi is constant over a block.
inline std::uint32_t sr_bits(std::uint32_t k0, std::uint32_t k1, std::uint32_t lo, std::uint32_t hi) {
    return mix32(lo ^ k0 ^ (hi * 0x9e3779b9u)) ^ k1;
}

// How many elements from index `at` on share its high word (at's run of 2^32): a
// stochastic write keeps hi constant within one run.
inline std::uint64_t elements_in_run(std::uint64_t at) { return (std::uint64_t{1} << 32) - static_cast<std::uint32_t>(at); }

// bfloat16 bits -> float32.
inline float from_bf16(std::uint16_t h) { return float_of(static_cast<std::uint32_t>(h) << 16); }

// float32 -> bfloat16 bits: round to nearest even (stochastic = false) or add r's low 16
// bits and truncate. NaN stays a (quiet) NaN; overflow gives inf.
inline std::uint16_t to_bf16(float x, std::uint32_t r, bool stochastic) {
    const std::uint32_t b = bits_of(x);
    const std::uint32_t add = stochastic ? (r & 0xffffu) : 0x7fffu + ((b >> 16) & 1u);
    // Rounded on all 32 bits: the carry of the dropped bits stops in the exponent
    // (inf + add < 0x7f810000 stays inf; the largest finite value may round up to inf),
    // never in the sign, since only a NaN's bits reach 0xffff8000 (x != x: its own value).
    const std::uint32_t out = x != x ? ((b >> 16) & 0x8000u) | 0x7fc0u : (b + add) >> 16;
    return static_cast<std::uint16_t>(out);
}

// float16 bits -> float32 (normal, subnormal, inf and NaN).
inline float from_f16(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const float sub = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24
    const std::uint32_t normal = ((e + 112u) << 23) | (m << 13);
    const std::uint32_t special = 0x7f800000u | (m << 13);
    const std::uint32_t mag = e == 0 ? bits_of(sub) : (e == 31 ? special : normal);
    return float_of(sign | mag);
}

// float32 -> float16 bits: round to nearest even, or stochastically with r (see the top).
inline std::uint16_t to_f16(float x, std::uint32_t r, bool stochastic) {
    const std::uint32_t b = bits_of(x);
    const std::uint32_t sign = (b >> 16) & 0x8000u, mag = b & 0x7fffffffu;
    const int e = static_cast<int>(mag >> 23) - 127;
    std::uint32_t out;
    if (mag > 0x7f800000u) {
        out = 0x7e00u;                                // NaN
    } else if (e < -24) {                             // below half the smallest subnormal's step: 0 or 2^-24
        const float p = float_of(mag) * 16777216.0f;  // |x| / 2^-24, in [0, 0.5)
        const bool up = stochastic ? static_cast<float>(r >> 8) * 5.9604644775390625e-8f < p : false;
        out = up ? 1u : 0u;
    } else {
        const int k = e >= -14 ? 13 : -1 - e;  // the bits of x the result drops (13..23)
        const std::uint32_t mask = (1u << k) - 1u;
        const std::uint32_t add = stochastic ? (r & mask) : (mask >> 1) + ((mag >> k) & 1u);
        const std::uint32_t m2 = (mag + add) & ~mask;
        const int e2 = static_cast<int>(m2 >> 23) - 127;
        if (e2 > 15)
            out = 0x7c00u;
        else if (e2 >= -14)
            out = (static_cast<std::uint32_t>(e2 + 15) << 10) | ((m2 >> 13) & 0x3ffu);
        else
            out = ((m2 & 0x7fffffu) | 0x800000u) >> (-1 - e2);
    }
    return static_cast<std::uint16_t>(sign | out);
}

// Elements per int8 quantization block (one float32 absmax each): one grain, so that every
// piece of the parallel loop holds whole blocks.
inline constexpr std::size_t kBlock = kQuantBlock;

// The linear signed code.
// (a NaN gives -127: its block's absmax is NaN, and so is every value it dequantizes to)
inline std::int8_t quant_linear(float x, float inv) {
    const float q = std::nearbyint(x * inv);
    const float lower = -127.0f < q ? q : -127.0f;  // a NaN compares false: -127
    return static_cast<std::int8_t>(lower < 127.0f ? lower : 127.0f);
}
inline float dequant_linear(std::int8_t q, float scale) { return static_cast<float>(q) * scale; }

// The exponent code of y = x / a in [0, 1] (x >= 0): see the top of this file.
// (a NaN's bits exceed inf's: it gives 255, and its block's absmax is NaN)
inline std::uint8_t quant_exponent(float y) {
    const std::uint32_t b = bits_of(y) & 0x7fffffffu;
    const std::uint32_t rounded = b + 0x7ffffu + ((b >> 20) & 1u);
    const int q = static_cast<int>(rounded >> 20) - 761;
    const int lower = q > 0 ? q : 0;
    return static_cast<std::uint8_t>(lower < 255 ? lower : 255);
}
inline float dequant_exponent(std::uint8_t q, float a) {
    const float y = q == 0 ? 0.0f : float_of((static_cast<std::uint32_t>(q) + 761u) << 20);
    return y * a;
}

}  // namespace half
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
