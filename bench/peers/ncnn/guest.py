"""The ncnn peer's program, run by Debian's armhf python3.11 under qemu-arm with PyPI's ncnn wheel on sys.path.

Same protocol as the other peers (bench/peers/base.py): warmup untimed inferences, then timed ones bracketed by
instruction-count markers, the last output written as float32, one JSON line on stdout. One inference is what
ncnn's own benchncnn times: a new Extractor, input(), extract() (an Extractor keeps what it computed, so reusing
one would compute nothing). A second marker pair around nothing measures the two ctypes calls, for the host to
subtract.
"""

import argparse
import ctypes
import gc
import json
import sys
import time

INSN_MARKER_SYSCALL = 0xC0DE
INFERENCE_BEGIN, INFERENCE_END = 0x10000, 0x10001
EMPTY_BEGIN, EMPTY_END = 0x10002, 0x10003


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", action="append", default=[], help="directory to put on sys.path")
    parser.add_argument("--param", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--input-blob", required=True)
    parser.add_argument("--output-blob", required=True)
    parser.add_argument("--shape", required=True, help="C,H,W of the (NCHW) input file")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()
    sys.path[:0] = args.site
    import numpy as np
    import ncnn

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.argtypes, syscall.restype = [ctypes.c_long, ctypes.c_uint], ctypes.c_long

    net = ncnn.Net()
    opt = net.opt
    opt.num_threads = args.threads
    opt.use_vulkan_compute = False
    # float32 storage and arithmetic throughout: the armv7 build would otherwise keep fp16 (VFPv4) or bf16 copies
    # of weights and activations, and its output would not be float32's
    opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.use_int8_inference = args.int8
    options = {key: getattr(opt, key) for key in ("use_winograd_convolution", "use_sgemm_convolution",
                                                     "use_packing_layout", "use_int8_inference",
                                                     "use_fp16_storage", "use_bf16_storage")}
    if net.load_param(args.param) != 0 or net.load_model(args.bin) != 0:
        raise SystemExit(f"ncnn could not load {args.param} / {args.bin}")

    c, h, w = (int(d) for d in args.shape.split(","))
    chw = np.ascontiguousarray(np.fromfile(args.input, dtype="<f4").reshape(c, h, w))
    tensor = ncnn.Mat(chw)   # shares chw's memory: chw stays alive until the end

    gc.disable()   # no collection may fall inside a counted span
    times = []
    out = None
    for run in range(args.warmup + args.runs):
        timed = run >= args.warmup
        start = time.perf_counter()
        if timed:
            syscall(INSN_MARKER_SYSCALL, INFERENCE_BEGIN)
        extractor = net.create_extractor()
        extractor.input(args.input_blob, tensor)
        status, out = extractor.extract(args.output_blob)
        if timed:
            syscall(INSN_MARKER_SYSCALL, INFERENCE_END)
            times.append((time.perf_counter() - start) * 1000.0)
            syscall(INSN_MARKER_SYSCALL, EMPTY_BEGIN)
            syscall(INSN_MARKER_SYSCALL, EMPTY_END)
        if status != 0:
            raise SystemExit(f"ncnn extract({args.output_blob}) returned {status}")
        del extractor
    np.array(out).astype("<f4").tofile(args.output)
    print(json.dumps({"times_ms": times, "ncnn": ncnn.__version__, "options": options, "chw": list(chw.shape),
                      "numpy": np.__version__, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
