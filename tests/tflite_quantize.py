"""A fully 8-bit .tflite made here with TensorFlow Lite's own post-training quantizer, as shipped in ai-edge-litert
(the calibrator TFLiteConverter runs when given a representative dataset: calibrate on inputs, then quantize every
operator to int8 with per-channel convolution weights; float32 input and output around it).

MediaPipe's float models keep their weights as float16 behind DEQUANTIZE operators, which the calibrator does not
take; `widen` first turns those into float32 constants with LiteRT's own flatbuffer tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def widen(source: Path, target: Path) -> None:
    """float16 weights (a DEQUANTIZE of a constant) -> float32 constants; those DEQUANTIZE operators removed."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu
    model = fu.read_model(str(source))
    graph = model.subgraphs[0]
    kept = []
    for op in graph.operators:
        code = fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
        if code == fb.BuiltinOperator.DEQUANTIZE:
            stored, result = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            data = model.buffers[stored.buffer].data
            if stored.type == fb.TensorType.FLOAT16 and data is not None and len(data):
                values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float16).astype(np.float32)
                buffer = fb.BufferT()
                buffer.data = np.frombuffer(values.tobytes(), np.uint8)
                model.buffers.append(buffer)
                result.buffer = len(model.buffers) - 1
                continue
        kept.append(op)
    used = sorted({op.opcodeIndex for op in kept})
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in kept:
        op.opcodeIndex = used.index(op.opcodeIndex)
    graph.operators = kept
    fu.write_model(model, str(target))


def quantize(source: Path, target: Path, inputs: list[np.ndarray]) -> None:
    """Calibrate `source` (float32 weights) on `inputs` and write it fully quantized: int8 activations and weights
    (per channel for convolutions, per tensor for fully connected layers), int32 biases, float32 interface."""
    from ai_edge_litert import _pywrap_tensorflow_lite_calibration_wrapper as calibration
    model = Path(source).read_bytes()  # the calibrator reads the model from this buffer: keep it alive
    calibrator = calibration.CalibrationWrapper(model, [], [])
    calibrator.Prepare()
    for x in inputs:
        calibrator.FeedTensor([x])
    f32, i8, i32 = (np.dtype(t).num for t in (np.float32, np.int8, np.int32))
    # input type, output type, allow float operators, activations type, bias type, disable per-channel,
    # disable per-channel for fully connected layers (ACL 20.08's 8-bit fully connected layer takes one scale)
    Path(target).write_bytes(calibrator.QuantizeModel(f32, f32, False, i8, i32, False, True))
    del model
