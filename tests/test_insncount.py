"""Tests of the guest-instruction counter (bench/insncount.py and its QEMU plugin).

They cross-build tiny static ARM programs whose instruction counts are known by construction (a hand-written
two-instruction loop between two markers), so an off-by-one in the plugin, the marker protocol or the region
arithmetic fails them, as does a count that drifts between runs or loses updates with two guest threads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import insncount
from bench.insncount import CountError, Marker, Result, count, parse_output
from neoncc import PROJECT_ROOT

CXX = "arm-linux-gnueabihf-g++"
CXXFLAGS = ["-std=c++14", "-Wall", "-Wextra", "-Werror", "-march=armv7-a", "-mfpu=neon", "-mfloat-abi=hard",
            "-static", f"-I{insncount.PLUGIN_SOURCE_DIR}"]

# count_loop(n, id): marker `id`, a loop of exactly 2 instructions run n times, marker `id + 1`. The region between
# the two markers is therefore 2n + 3 instructions: the loop, then add/movw/svc of the second marker (the count
# recorded at a marker includes its svc). Written in assembly so that no compiler choice can change it; the syscall
# number comes from insn_marker.h so the test also pins the header and the plugin to the same protocol.
COMMON = r"""
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include "insn_marker.h"
#define STR_(x) #x
#define STR(x) STR_(x)
extern "C" void count_loop(unsigned n, unsigned id);
__asm__(
    ".text\n"
    ".global count_loop\n"
#ifdef __thumb__
    ".thumb_func\n"
#endif
    ".type count_loop, %function\n"
    "count_loop:\n"
    "    push {r4, r5, r7, lr}\n"
    "    mov r4, r0\n"
    "    mov r5, r1\n"
    "    mov r0, r5\n"
    "    movw r7, #" STR(INSN_MARKER_SYSCALL) "\n"
    "    svc #0\n"
    "1:  subs r4, r4, #1\n"
    "    bne 1b\n"
    "    add r0, r5, #1\n"
    "    movw r7, #" STR(INSN_MARKER_SYSCALL) "\n"
    "    svc #0\n"
    "    pop {r4, r5, r7, pc}\n"
    ".size count_loop, .-count_loop\n");
"""

# Markers 10 and 11 (from the C++ header) around count_loop(n, 1). errno must survive the markers; the exit status
# says so. With a second argument "abort" the program dies from SIGABRT instead of exiting.
SINGLE = COMMON + r"""
int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], nullptr, 0) : 1000;
    errno = 0;
    insn_marker(10);
    count_loop(n, 1);
    insn_marker(11);
    if (argc > 2 && strcmp(argv[2], "abort") == 0)
        abort();
    if (argc > 2 && strcmp(argv[2], "fail") == 0)
        return 3;
    return errno == 0 ? 0 : 2;
}
"""

# Two threads running count_loop at the same time, with markers 100/101 and 110/111. Each waits until both have
# started, so that they really overlap and are two live vCPUs (qemu-user reuses the index of an exited thread).
THREADS = COMMON + r"""
#include <atomic>
#include <thread>
static std::atomic<int> started(0);
static void work(unsigned n, unsigned id)
{
    started.fetch_add(1);
    while (started.load() < 2) {
    }
    count_loop(n, id);
}
int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], nullptr, 0) : 1000;
    std::thread a(work, n, 100u), b(work, n, 110u);
    a.join();
    b.join();
    return 0;
}
"""

BODY = 2   # instructions per loop iteration
TAIL = 3   # add, movw, svc of the closing marker


def _build(tmp_path_factory, name: str, source: str, flags: list[str]) -> str:
    directory = tmp_path_factory.mktemp(name)
    (directory / f"{name}.cpp").write_text(source)
    subprocess.run([CXX, *CXXFLAGS, *flags, f"{name}.cpp", "-o", name], cwd=directory, check=True)
    return str(directory / name)


@pytest.fixture(scope="module", params=["-marm -O2", "-mthumb -O2", "-marm -O0", "-mthumb -O0"])
def single(request, tmp_path_factory) -> str:
    """The single-threaded program in both instruction sets; -O0 Thumb keeps r7 as frame pointer (the case the
    header's hand-saved r7 exists for)."""
    return _build(tmp_path_factory, "single", SINGLE, request.param.split())


@pytest.fixture(scope="module")
def threads(tmp_path_factory) -> str:
    return _build(tmp_path_factory, "threads", THREADS, ["-O2", "-pthread"])


def run(program: str, *args: str, **kwargs) -> Result:
    return count([program, *args], sysroot=None, **kwargs)


@pytest.mark.parametrize("n", [1, 1000, 100_000])
def test_region_between_markers_is_exact(single, n):
    result = run(single, str(n))
    assert result.between(1, 2) == [BODY * n + TAIL]
    assert [m.id for m in result.markers] == [10, 1, 2, 11]


def test_counts_are_repeatable(single):
    first, second = run(single, "5000"), run(single, "5000")
    assert first.total == second.total
    assert first.markers == second.markers


def test_counts_scale_linearly_with_loop_length(single):
    n = 20_000
    once, twice, thrice = run(single, str(n)), run(single, str(2 * n)), run(single, str(3 * n))
    assert twice.total - once.total == BODY * n
    assert thrice.total - twice.total == BODY * n
    assert twice.between(10, 11)[0] - once.between(10, 11)[0] == BODY * n


def test_markers_split_the_count(single):
    result = run(single, "777")
    regions = result.regions()
    assert [(r.start, r.end) for r in regions] == [(10, 1), (1, 2), (2, 11)]
    assert regions[1].insns == BODY * 777 + TAIL
    assert sum(r.insns for r in regions) == result.between(10, 11)[0]
    assert result.markers[-1].insns - result.markers[0].insns == result.between(10, 11)[0]
    # The instructions outside the loop do not depend on its length.
    other = run(single, "1")
    assert [r.insns for r in other.regions()][::2] == [r.insns for r in regions][::2]
    assert result.total - result.markers[-1].insns == other.total - other.markers[-1].insns
    assert result.by_start() == {10: regions[0].insns, 1: regions[1].insns, 2: regions[2].insns}
    assert result.vcpus == {0: result.total}
    assert all(m.vcpu == 0 and m.total == m.insns for m in result.markers)


def test_markers_are_harmless_without_the_plugin(single):
    """On a real board or a plain qemu-arm the marker syscall returns ENOSYS: no signal, errno untouched."""
    proc = subprocess.run(["qemu-arm", single, "100"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_threads_are_counted_per_vcpu_without_losing_instructions(threads):
    n = 300_000
    result = run(threads, str(n))
    assert len(result.vcpus) >= 3
    assert sum(result.vcpus.values()) == result.total
    spans = {r.start: r for r in result.regions() if r.start in (100, 110)}
    assert spans[100].insns == spans[110].insns == BODY * n + TAIL
    assert spans[100].vcpu != spans[110].vcpu
    # Each thread's own counter covers at least its loop; the total at least both loops.
    assert result.vcpus[spans[100].vcpu] >= spans[100].insns and result.vcpus[spans[110].vcpu] >= spans[110].insns
    assert result.total > 2 * (BODY * n)


def test_failing_guest(single):
    with pytest.raises(CountError, match="status 3"):
        run(single, "10", "fail")
    result = run(single, "10", "fail", check=False)
    assert result.returncode == 3 and result.between(1, 2) == [BODY * 10 + TAIL]
    with pytest.raises(CountError, match="died|did not exit"):
        run(single, "10", "abort", check=False)


def test_cli_prints_the_total(single):
    expected = run(single, "1234")
    proc = subprocess.run([sys.executable, "-m", "bench.insncount", "--no-sysroot", "--", single, "1234"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"total {expected.total}"
    assert f"{BODY * 1234 + TAIL}" in proc.stdout


def test_build_is_cached():
    plugin = insncount.build()
    mtime = plugin.stat().st_mtime_ns
    assert insncount.build() == plugin and plugin.stat().st_mtime_ns == mtime


def test_region_arithmetic_on_plugin_output():
    """Per-inference spans across nested per-layer markers, and vCPUs kept apart."""
    text = "\n".join([
        "insn_count 1",
        "marker 100 0 10 10",      # inference begins
        "marker 1 0 15 15",        # layer 1
        "marker 2 0 40 45",        # layer 2 (vCPU 1 has run 5 meanwhile)
        "marker 7 1 5 50",         # another thread's marker: not part of vCPU 0's regions
        "marker 101 0 60 70",      # inference ends
        "marker 100 0 70 80",
        "marker 1 0 71 81",
        "marker 101 0 90 100",
        "vcpu 0 95",
        "vcpu 1 5",
        "total 100",
    ])
    total, markers, vcpus = parse_output(text)
    result = Result(total, markers, vcpus)
    assert total == 100 and vcpus == {0: 95, 1: 5}
    assert markers[3] == Marker(7, 1, 5, 50)
    assert result.between(100, 101) == [50, 20]
    assert result.between(100, 101, all_vcpus=True) == [60, 20]
    assert [r.all_insns for r in result.regions()][:3] == [5, 30, 25]
    assert result.between(1, 2) == [25]
    assert result.by_start() == {100: 5 + 1, 1: 25 + 19, 2: 20, 101: 10}
    with pytest.raises(CountError):
        parse_output("insn_count 1\nmarker 1 0 1 1\n")
    with pytest.raises(CountError):
        parse_output("")


def test_threads_snapshot_every_vcpu_at_each_marker(threads):
    """Each marker carries every vCPU's count (summing to the total at that moment); a thread's own region shows its
    loop on its own vCPU."""
    n = 200_000
    result = run(threads, str(n))
    assert all(m.at and sum(m.at) == m.total and m.at[m.vcpu] == m.insns for m in result.markers)
    spans = {r.start: r for r in result.regions() if r.start in (100, 110)}
    for region in spans.values():
        assert sum(region.threads) == region.all_insns
        assert region.threads[region.vcpu] == region.insns == BODY * n + TAIL
        assert region.critical >= region.insns


def test_critical_path_arithmetic_on_plugin_output():
    """Per layer the busiest thread, summed over the layers between the inference markers of the marking thread."""
    text = "\n".join([
        "insn_count 1",
        "marker 100 0 10 10", "at 10",            # inference begins; one vCPU so far
        "marker 1 0 12 14", "at 12 2",            # layer 1 begins (a worker has appeared)
        "marker 2 0 20 40", "at 20 28",           # layer 1: main 8, worker 26 -> 26
        "marker 101 0 40 60", "at 40 28",         # layer 2: main 20, worker idle -> 20
        "vcpu 0 40", "vcpu 1 28", "total 68",
    ])
    total, markers, vcpus = parse_output(text)
    result = Result(total, markers, vcpus)
    assert markers[1] == Marker(1, 0, 12, 14, (12, 2))
    assert [r.threads for r in result.regions()] == [(2, 2), (8, 26), (20, 0)]
    assert result.threads_between(100, 101) == [(30, 28)]
    assert result.critical_path(100, 101) == [2 + 26 + 20]
    assert result.between(100, 101) == [30] and result.between(100, 101, all_vcpus=True) == [50]
