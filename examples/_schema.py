"""Shared by the examples: Python classes generated from Leadflow's .proto
files, as an outside team would generate them (protoc from grpcio-tools)."""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load():
    """Generates the classes into a temp dir and imports them."""
    out = tempfile.mkdtemp(prefix="leadflow-pb-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}/proto", f"--python_out={out}",
         "leadflow/v1/events.proto", "leadflow/v1/commands.proto"],
        check=True,
    )
    sys.path.insert(0, out)
    from leadflow.v1 import commands_pb2, events_pb2
    return events_pb2, commands_pb2
