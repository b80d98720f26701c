// Copying a run of floats, for our kernels' gathers and padded copies (the packed GEMM's im2col rows, the depthwise
// kernel's zero-padded border windows): on armv7 32 floats per vldmia / vstmia pair, then 4 per NEON load and
// store, then one at a time.
#pragma once

#include <arm_neon.h>

#include <cstddef>

namespace engine
{
/** dst[0, n) = src[0, n). */
inline void copy_floats(float *dst, const float *src, size_t n)
{
#if !defined(__aarch64__)
    for(size_t big = n / 32; big > 0; --big)
    {
        asm volatile("vldmia %[s]!, {d0-d15}\n"
                     "vstmia %[d]!, {d0-d15}\n"
                     : [s] "+r"(src), [d] "+r"(dst)
                     :
                     : "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7");
    }
    n %= 32;
#endif
    for(; n >= 4; n -= 4, src += 4, dst += 4)
    {
        vst1q_f32(dst, vld1q_f32(src));
    }
    for(; n > 0; --n)
    {
        *dst++ = *src++;
    }
}
} // namespace engine
