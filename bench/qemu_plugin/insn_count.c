/*
 * insn_count: a QEMU TCG plugin that counts executed guest instructions, in total and at guest-placed markers.
 *
 * Why: wall time under emulation is noisy and ranks NEON code wrongly; the number of executed guest instructions
 * is exact and repeatable, and is the project's primary cost metric.
 *
 * How: every translated block gets an exec callback carrying its instruction count, added to a counter of the
 * vCPU (guest thread) executing it. Each vCPU writes only its own counter, so multi-threaded guests are counted
 * without atomic read-modify-writes and without lost updates. A translated block is counted whole when it starts;
 * the count is exact unless a block is left part-way by a fault (a guest SIGSEGV, self-modifying code).
 * A `svc` ends its block, so the count seen at a system call includes the `svc` itself and nothing after it.
 *
 * Markers: system call INSN_MARKER_SYSCALL (see insn_marker.h) with the marker id in the first argument.
 * qemu-user passes every system call to plugins before dispatch (linux-user/syscall.c, do_syscall), so unknown
 * numbers are seen too, and the guest then gets ENOSYS.
 *
 * Arguments: outfile=PATH. At exit the plugin writes PATH (without outfile, only the total to stderr):
 *     insn_count 1
 *     marker ID VCPU VCPU_INSNS TOTAL_INSNS     one line per marker, in the order they were recorded, each
 *     at N0 N1 ...                              followed by every vCPU's count at that moment (index order)
 *     vcpu VCPU INSNS                           one line per vCPU index qemu created (plus "vcpu overflow N")
 *     total INSNS
 * VCPU_INSNS counts that vCPU's instructions up to and including the marker's svc; TOTAL_INSNS all vCPUs' at
 * that moment (equal when the guest is single-threaded); the `at` line splits TOTAL_INSNS by vCPU, so the
 * instructions each guest thread executed between two markers of one thread (a layer run by a thread pool) are
 * the differences of two `at` lines. Another vCPU's counter is read while it may be running: it is exact up to the
 * translated block that vCPU is in (blocks are counted when they start). qemu-user reuses the index of an exited thread, so
 * a vCPU line sums every thread that held the index. Nothing is written if the guest dies from a signal,
 * and a forked child's counts are not written at all (only the process that loaded the plugin writes).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qemu-plugin.h>

#include "insn_marker.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* One cache line per vCPU so that guest threads on different host cores do not share lines. */
#define MAX_VCPUS 1024
struct vcpu_counter {
    uint64_t insns;
} __attribute__((aligned(64)));

static struct vcpu_counter counters[MAX_VCPUS];
static uint64_t overflow_insns;  /* vCPUs with an index >= MAX_VCPUS share this one, atomically */
static unsigned int vcpus_seen;  /* highest vCPU index + 1, so that sums need not scan all slots */

struct marker {
    uint32_t id;
    uint32_t vcpu;
    uint64_t vcpu_insns;
    uint64_t total_insns;
    size_t snapshot;        /* index of this marker's per-vCPU counts in `snapshots` */
    unsigned int n_vcpus;   /* how many: the vCPUs seen when it was recorded */
};

static pthread_mutex_t markers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct marker *markers;
static size_t n_markers, markers_capacity;
static uint64_t *snapshots;   /* every marker's per-vCPU counts, one after another */
static size_t n_snapshots, snapshots_capacity;
static int markers_lost;

static char *outfile_path;
static pid_t owner_pid;
static int exited;

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    unsigned int seen = __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED);
    (void)id;
    while (vcpu + 1 > seen &&
           !__atomic_compare_exchange_n(&vcpus_seen, &seen, vcpu + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    uint64_t n = (uintptr_t)udata;
    if (vcpu < MAX_VCPUS) {
        /* Single writer: a relaxed store suffices, and readers on other threads see a whole value. */
        __atomic_store_n(&counters[vcpu].insns, counters[vcpu].insns + n, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&overflow_insns, n, __ATOMIC_RELAXED);
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static uint64_t vcpu_insns(unsigned int vcpu)
{
    return vcpu < MAX_VCPUS ? __atomic_load_n(&counters[vcpu].insns, __ATOMIC_RELAXED) : 0;
}

static uint64_t total_insns(void)
{
    uint64_t sum = __atomic_load_n(&overflow_insns, __ATOMIC_RELAXED);
    unsigned int n = __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED);
    for (unsigned int i = 0; i < n && i < MAX_VCPUS; i++) {
        sum += vcpu_insns(i);
    }
    return sum;
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    if (num != INSN_MARKER_SYSCALL) {
        return;
    }
    unsigned int n = __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED);
    if (n > MAX_VCPUS) {
        n = MAX_VCPUS;
    }
    struct marker m = {
        .id = (uint32_t)a1,
        .vcpu = vcpu,
        .vcpu_insns = vcpu < MAX_VCPUS ? vcpu_insns(vcpu) : __atomic_load_n(&overflow_insns, __ATOMIC_RELAXED),
        .n_vcpus = n,
    };
    /* One read of each counter: the per-vCPU counts and the total agree exactly. */
    uint64_t counts[MAX_VCPUS];
    uint64_t total = __atomic_load_n(&overflow_insns, __ATOMIC_RELAXED);
    for (unsigned int i = 0; i < n; i++) {
        counts[i] = vcpu_insns(i);
        total += counts[i];
    }
    m.total_insns = total;
    pthread_mutex_lock(&markers_lock);
    if (n_markers == markers_capacity) {
        size_t capacity = markers_capacity ? 2 * markers_capacity : 1024;
        struct marker *grown = realloc(markers, capacity * sizeof *grown);
        if (grown) {
            markers = grown;
            markers_capacity = capacity;
        }
    }
    if (n_snapshots + n > snapshots_capacity) {
        size_t capacity = snapshots_capacity ? 2 * snapshots_capacity : 4096;
        while (capacity < n_snapshots + n) {
            capacity *= 2;
        }
        uint64_t *grown = realloc(snapshots, capacity * sizeof *grown);
        if (grown) {
            snapshots = grown;
            snapshots_capacity = capacity;
        }
    }
    if (n_markers < markers_capacity && n_snapshots + n <= snapshots_capacity) {
        m.snapshot = n_snapshots;
        memcpy(snapshots + n_snapshots, counts, n * sizeof *counts);
        n_snapshots += n;
        markers[n_markers++] = m;
    } else {
        markers_lost = 1;
    }
    pthread_mutex_unlock(&markers_lock);
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id, (void)udata;
    /* QEMU may call this from exit_group and again from the host's atexit; a forked child must not write. */
    if (__atomic_exchange_n(&exited, 1, __ATOMIC_SEQ_CST) || getpid() != owner_pid) {
        return;
    }
    if (!outfile_path) {
        /* Not qemu_plugin_outs: QEMU shows that only with -d plugin. */
        fprintf(stderr, "insn_count: %" PRIu64 " guest instructions\n", total_insns());
        return;
    }
    FILE *outfile = fopen(outfile_path, "w");
    if (!outfile) {
        perror(outfile_path);
        return;
    }
    pthread_mutex_lock(&markers_lock);
    fprintf(outfile, "insn_count 1\n");
    for (size_t i = 0; i < n_markers; i++) {
        fprintf(outfile, "marker %" PRIu32 " %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", markers[i].id,
                markers[i].vcpu, markers[i].vcpu_insns, markers[i].total_insns);
        fprintf(outfile, "at");
        for (unsigned int v = 0; v < markers[i].n_vcpus; v++) {
            fprintf(outfile, " %" PRIu64, snapshots[markers[i].snapshot + v]);
        }
        fprintf(outfile, "\n");
    }
    if (markers_lost) {
        fprintf(outfile, "error markers lost: out of memory\n");
    }
    pthread_mutex_unlock(&markers_lock);
    unsigned int n = __atomic_load_n(&vcpus_seen, __ATOMIC_RELAXED);
    for (unsigned int i = 0; i < n && i < MAX_VCPUS; i++) {
        fprintf(outfile, "vcpu %u %" PRIu64 "\n", i, vcpu_insns(i));
    }
    if (overflow_insns) {
        fprintf(outfile, "vcpu overflow %" PRIu64 "\n", overflow_insns);
    }
    fprintf(outfile, "total %" PRIu64 "\n", total_insns());
    if (fclose(outfile) != 0) {
        perror(outfile_path);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0 && argv[i][8] != '\0') {
            /* Fail now rather than after the whole run; the file is written at exit only, so no descriptor of
             * ours is open while the guest runs (qemu-user shares the descriptor table with the guest, which
             * may close descriptors it does not know about). */
            FILE *probe = fopen(argv[i] + 8, "w");
            if (!probe) {
                perror(argv[i] + 8);
                return -1;
            }
            fclose(probe);
            free(outfile_path);
            outfile_path = strdup(argv[i] + 8);
        } else {
            fprintf(stderr, "insn_count: unknown argument '%s' (expected outfile=PATH)\n", argv[i]);
            return -1;
        }
    }
    owner_pid = getpid();
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
