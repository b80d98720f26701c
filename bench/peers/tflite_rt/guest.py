"""The TFLite peers' program, run by Debian's python3.11 under qemu-arm / qemu-aarch64 (not by the host's Python);
--package names the wheel's module (tflite_runtime, or ai_edge_litert: the same Interpreter API).

Same protocol as the C++ peers (bench/peers/base.py): warmup untimed inferences, then timed ones bracketed by
instruction-count markers, the last output written as float32, one JSON line on stdout. Markers are the
0xC0DE system call of bench/qemu_plugin/insn_marker.h issued through libc's syscall(); a second pair of markers
around nothing measures what the two ctypes calls themselves cost, so the host can subtract it.
"""

import argparse
import ctypes
import gc
import importlib
import json
import sys
import time

INSN_MARKER_SYSCALL = 0xC0DE
INFERENCE_BEGIN, INFERENCE_END = 0x10000, 0x10001
EMPTY_BEGIN, EMPTY_END = 0x10002, 0x10003


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", action="append", default=[], help="directory to put on sys.path")
    parser.add_argument("--package", default="tflite_runtime", help="the module holding interpreter.py")
    parser.add_argument("--model", required=True)
    parser.add_argument("--shape", required=True, help="C,H,W of the (NCHW) input file")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sys.path[:0] = args.site
    import numpy as np
    interpreter_module = importlib.import_module(f"{args.package}.interpreter")
    Interpreter, OpResolverType = interpreter_module.Interpreter, interpreter_module.OpResolverType

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.argtypes, syscall.restype = [ctypes.c_long, ctypes.c_uint], ctypes.c_long

    interpreter = Interpreter(model_path=args.model, num_threads=args.threads,
                              experimental_op_resolver_type=OpResolverType.AUTO)   # default delegates, if built in
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]   # delegated partitions show as DELEGATE

    c, h, w = (int(d) for d in args.shape.split(","))
    nchw = np.fromfile(args.input, dtype="<f4").reshape(1, c, h, w)
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(source["index"], np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)))

    gc.disable()   # no collection may fall inside a counted span
    times = []
    for run in range(args.warmup + args.runs):
        timed = run >= args.warmup
        start = time.perf_counter()
        if timed:
            syscall(INSN_MARKER_SYSCALL, INFERENCE_BEGIN)
        interpreter.invoke()
        if timed:
            syscall(INSN_MARKER_SYSCALL, INFERENCE_END)
            times.append((time.perf_counter() - start) * 1000.0)
            syscall(INSN_MARKER_SYSCALL, EMPTY_BEGIN)
            syscall(INSN_MARKER_SYSCALL, EMPTY_END)
    interpreter.get_tensor(result["index"]).astype("<f4").tofile(args.output)
    print(json.dumps({"times_ms": times, "ops": ops, "delegate_nodes": ops.count("DELEGATE"),
                      "numpy": np.__version__, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
