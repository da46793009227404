"""Reads a safetensors file's tensors as raw bytes (enough to compare two
files tensor by tensor, independently of kpo's reader)."""
import json
import struct


def read_tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    return {name: data[base + info["data_offsets"][0]:base + info["data_offsets"][1]]
            for name, info in header.items() if name != "__metadata__"}
