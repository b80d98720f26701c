"""neoncc's host-side commands: python3 -m neoncc
{summary,preprocess,random-weights,convert-weights,validate,import} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neoncc import __version__
from neoncc.errors import exit_status, program_name


def _summary(args) -> None:
    from neoncc.tools.summary import summary
    print(summary(args.model))


def _preprocess(args) -> None:
    from neoncc.tools.preprocess import image_to_tensor, write_tensor
    tensor = image_to_tensor(args.model, args.image)
    write_tensor(tensor, args.output)
    print(f"{args.output}: float32 {'x'.join(map(str, tensor.shape))} from {args.image}")


def _random_weights(args) -> None:
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.weights.pack import random_weights
    from neoncc.weights.state_dict import write_npz
    weights = random_weights(load_yaml_model(args.model), args.seed)
    write_npz(weights, args.output)
    print(f"{args.output}: {len(weights)} arrays, seeded random (seed {args.seed})")


def _convert_weights(args) -> None:
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.weights.state_dict import load_state_dict, write_npz
    weights = load_state_dict(load_yaml_model(args.model), args.checkpoint)
    write_npz(weights, args.output)
    print(f"{args.output}: {len(weights)} arrays from {args.checkpoint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("python3 -m neoncc"), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("summary", help="per-layer shapes, parameters, MACs and activation bytes")
    p.add_argument("model", help="model description (YAML)")
    p.set_defaults(run=_summary)
    p = commands.add_parser("preprocess", help="turn a JPEG/PNG into the engine's float32 input tensor")
    p.add_argument("image")
    p.add_argument("--model", required=True, help="model description (YAML) that declares the preprocessing")
    p.add_argument("-o", "--output", required=True, type=Path, help="raw float32 NCHW file to write")
    p.set_defaults(run=_preprocess)
    p = commands.add_parser("random-weights", help="write seeded random weights as a .npz in the expected keys")
    p.add_argument("model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, type=Path)
    p.set_defaults(run=_random_weights)
    p = commands.add_parser("convert-weights", help="a PyTorch state_dict keyed by the model's layer names -> .npz")
    p.add_argument("checkpoint", type=Path, help=".pth file")
    p.add_argument("--model", required=True, help="model description (YAML) whose layer names the keys use")
    p.add_argument("-o", "--output", required=True, type=Path)
    p.set_defaults(run=_convert_weights)
    p = commands.add_parser("validate", help="engine on target vs the PyTorch reference: errors, cosine, top-1/5")
    from neoncc.tools import validate
    validate.add_arguments(p)
    p.set_defaults(run=validate.main)
    from neoncc.tools import import_model
    import_model.add_parser(commands)
    args = parser.parse_args(argv)
    return exit_status(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
