/*
 * insn_marker.h: mark region boundaries for the guest-instruction counter (bench/qemu_plugin/insn_count.c).
 *
 * Protocol. insn_marker(id) issues Linux system call number INSN_MARKER_SYSCALL (0xC0DE) with the marker id in
 * the first argument register (r0 on ARMv7, x0 on AArch64). No kernel defines that number, so a real kernel and
 * qemu-user both return -ENOSYS in r0 and nothing else happens; errno is not touched because the call bypasses
 * libc. qemu-user reports every system call to TCG plugins before dispatching it, known or not, so the plugin sees
 * the marker and records (id, vCPU, instructions executed so far by that vCPU, by all vCPUs).
 *
 * Counting convention. The count recorded at a marker includes the marker's own `svc`. A marker costs 5 guest
 * instructions on ARMv7 (mov r0; push r7; movw r7; svc; pop r7) plus whatever the compiler needs to put `id`
 * into a register (usually one mov). Four of them fall before the recorded point and one after, so a region
 * between two markers contains about 6 instructions of marker overhead: nothing next to a layer, but not zero.
 * On AArch64 a marker is 3 instructions (mov x0; mov x8; svc), all before the recorded point.
 *
 * Use (C or C++):
 *     #include "insn_marker.h"
 *     insn_marker(100);            // begin inference
 *     for (layer ...) { insn_marker(layer_index); run layer; }
 *     insn_marker(101);            // end inference
 * and read the regions with bench.insncount (Python). Ids are unsigned 32-bit; choose them freely.
 *
 * A marker is a compiler memory barrier ("memory" clobber) but not a barrier for pure register arithmetic, which
 * the optimiser may still move across it; around function calls and memory writes (every real layer) it is exact.
 *
 * Define INSN_MARKER_DISABLE to compile markers away (a release build for a real board need not carry them).
 * On targets other than 32-bit ARM and AArch64 (the host, say) insn_marker() is a no-op.
 */
#ifndef INSN_MARKER_H
#define INSN_MARKER_H

/* The system call number the plugin watches. Far above Linux's ~460 ARM and AArch64 syscalls, below the ARM-private
 * range 0xf0000, so the kernel (and qemu) answer ENOSYS rather than SIGILL. */
#define INSN_MARKER_SYSCALL 0xC0DE

static inline void insn_marker(unsigned int id)
{
#if defined(INSN_MARKER_DISABLE)
    (void)id;
#elif defined(__arm__)
    /* r7 carries the syscall number but is the frame pointer in Thumb code, so it cannot be named as an operand
     * or clobber there: save and restore it by hand. `id` is read into r0 first, in case it was allocated to r7.
     * svc #0 is the EABI form in both ARM and Thumb state. */
    __asm__ __volatile__(
        "mov r0, %0\n\t"
        "push {r7}\n\t"
        "movw r7, #0xC0DE\n\t"
        "svc #0\n\t"
        "pop {r7}"
        :
        : "r"(id)
        : "r0", "memory");
#elif defined(__aarch64__)
    /* AArch64 Linux: the number in x8, the first argument in x0, `svc #0`; x0 takes the (ENOSYS) result. */
    register unsigned long x0 __asm__("x0") = id;
    register unsigned long x8 __asm__("x8") = INSN_MARKER_SYSCALL;
    __asm__ __volatile__("svc #0" : "+r"(x0) : "r"(x8) : "memory");
#else
    (void)id;
#endif
}

#endif /* INSN_MARKER_H */
