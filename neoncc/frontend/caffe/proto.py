"""Caffe's message classes, built at run time from caffe_subset.proto: protoc (from the grpcio-tools package)
compiles it to a descriptor set, and protobuf makes the classes from that, so no generated code is kept in the
repository and the .proto stays the one source."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from neoncc.errors import UserError

PROTO = Path(__file__).with_name("caffe_subset.proto")


@functools.cache
def messages() -> dict[str, type]:
    """Message classes by full name (`caffe.NetParameter`, ...), in a pool of their own so that a real Caffe
    loaded in the same process cannot clash with them."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise UserError("importing Caffe models needs protoc from the grpcio-tools package: "
                        "pip install -r requirements.txt") from None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "caffe.desc"
        status = protoc.main(["protoc", f"--proto_path={PROTO.parent}", f"--descriptor_set_out={out}", PROTO.name])
        if status != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit {status})")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return message_factory.GetMessages(files, pool=descriptor_pool.DescriptorPool())


def net_parameter():
    """A new, empty caffe.NetParameter."""
    return messages()["caffe.NetParameter"]()
