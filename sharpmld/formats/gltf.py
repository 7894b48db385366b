"""Binary glTF (``.glb``) with the Khronos ``KHR_gaussian_splatting`` extension.

Follows the extension's specification (KhronosGroup/glTF,
``extensions/2.0/Khronos/KHR_gaussian_splatting/README.md`` and its JSON schema): one mesh
primitive in ``POINTS`` mode (0) whose attributes are

=============================================  ======  ===============================
attribute                                      type    content
=============================================  ======  ===============================
``POSITION``                                   VEC3    float, with ``min``/``max``
``COLOR_0``                                    VEC4    normalized unsigned byte: the
                                                       point-cloud fallback colour,
                                                       *linear* RGB as glTF requires,
                                                       alpha = opacity
``KHR_gaussian_splatting:ROTATION``            VEC4    float unit quaternion, x y z w
``KHR_gaussian_splatting:SCALE``               VEC3    float, linear (not log)
``KHR_gaussian_splatting:OPACITY``             SCALAR  float in [0, 1] (after sigmoid)
``KHR_gaussian_splatting:SH_DEGREE_0_COEF_0``  VEC3    float, the ``.ply``'s f_dc
=============================================  ======  ===============================

and ``extensions.KHR_gaussian_splatting = {"kernel": "ellipse", "colorSpace":
"srgb_rec709_display"}`` (both required by the schema; ml-sharp's DC coefficients encode sRGB
display colour, ``0.5 + SH_C0 × f_dc``). The extension is listed in ``extensionsUsed`` only:
the specification reserves ``extensionsRequired`` for extensions built on top of it.

Axes: glTF is right-handed with +Y up and +Z forward (the "LUF" frame); ml-sharp's ``.ply``
is x right, y down, z forward (RDF). The data is rotated 180° about Z on the way out (x and y
negated, and likewise the quaternions' x and y), the convention SPZ's coordinate converter and
PlayCanvas splat-transform use for ``.ply`` -> glTF. It is baked into the data rather than put
on the node so that viewers that ignore node transforms for splats show it the same way. With
``meta`` the file also gets a perspective camera at the photo's viewpoint, computed from the
focal length rounded to float32 as the ``.ply`` stores it, so a ``.glb`` converted from the
``.ply`` is byte-identical to the one written beside it.

Layout: every attribute in its own tightly packed buffer view (each a multiple of 4 bytes, so
each starts 4-byte aligned), accessors at byte offset 0. glTF has no empty accessors, so a
scene of no Gaussians is written as a valid file with no mesh (and no BIN chunk), and read
back as no Gaussians.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sharpmld.core.fsio import atomic_writer
from sharpmld.formats.gaussians import F32, Gaussians, SceneMeta
from sharpmld.formats.ply import SH_C0, VERTEX_DTYPE, VERTEX_PROPERTIES, srgb_to_linear

EXTENSION = "KHR_gaussian_splatting"
ROTATION = f"{EXTENSION}:ROTATION"
SCALE = f"{EXTENSION}:SCALE"
OPACITY = f"{EXTENSION}:OPACITY"
SH_DC = f"{EXTENSION}:SH_DEGREE_0_COEF_0"
COLOR_SPACE = "srgb_rec709_display"
KERNEL = "ellipse"

GLB_MAGIC = 0x46546C67  # "glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
MODE_POINTS = 0
ARRAY_BUFFER = 34962
FLOAT = 5126
UNSIGNED_BYTE = 5121
COMPONENT_DTYPES: dict[int, str] = {
    5120: "i1",
    5121: "u1",
    5122: "<i2",
    5123: "<u2",
    5125: "<u4",
    5126: "<f4",
}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
GENERATOR = "sharpmld"
CAMERA_ZNEAR = 0.01

_NCOLS = len(VERTEX_PROPERTIES)
_FLIP = np.array([-1.0, -1.0, 1.0], dtype=np.float32)
"""RDF <-> LUF: a 180° turn about Z negates x and y (its own inverse)."""


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _attributes(records: npt.NDArray[np.void]) -> list[tuple[str, str, npt.NDArray[Any]]]:
    """(semantic, accessor type, (n, k) array) for every attribute, in file order."""
    n = len(records)
    t = np.ascontiguousarray(records).view(np.float32).reshape(n, _NCOLS)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        position = t[:, 0:3] * _FLIP
        if not np.isfinite(position).all():
            raise ValueError("positions must be finite to be stored in glTF (POSITION min/max)")
        opacity = np.float32(1.0) / (np.float32(1.0) + np.exp(-t[:, 6]))
        scale = np.exp(t[:, 7:10])
        # (w, x, y, z) -> unit (x, y, z, w), turned with the axes; degenerate -> identity.
        rotation = np.empty((n, 4), dtype=np.float32)
        rotation[:, 0:3] = t[:, 11:14] * _FLIP
        rotation[:, 3] = t[:, 10]
        norm = np.sqrt(np.einsum("ij,ij->i", rotation, rotation))
        bad = ~(np.isfinite(norm) & (norm > 0))
        rotation[bad] = (0.0, 0.0, 0.0, 1.0)
        norm[bad] = 1.0
        rotation /= norm[:, None]
        sh_dc = np.ascontiguousarray(t[:, 3:6])
        srgb = np.clip(sh_dc * np.float32(SH_C0) + np.float32(0.5), 0.0, 1.0)
        color = np.empty((n, 4), dtype=np.float32)
        color[:, 0:3] = srgb_to_linear(srgb)
        color[:, 3] = np.nan_to_num(opacity)
        color_u8 = np.rint(np.clip(color, 0.0, 1.0) * np.float32(255)).astype(np.uint8)
    return [
        ("POSITION", "VEC3", position),
        ("COLOR_0", "VEC4", color_u8),
        (ROTATION, "VEC4", rotation),
        (SCALE, "VEC3", scale.astype(np.float32, copy=False)),
        (OPACITY, "SCALAR", opacity.astype(np.float32, copy=False)),
        (SH_DC, "VEC3", sh_dc),
    ]


def _camera(meta: SceneMeta) -> dict[str, Any]:
    yfov = 2.0 * math.atan(meta.height / (2.0 * meta.f_px))
    return {
        "type": "perspective",
        "perspective": {
            "aspectRatio": meta.width / meta.height,
            "yfov": yfov,
            "znear": CAMERA_ZNEAR,
        },
    }


def _document(
    arrays: list[tuple[str, str, npt.NDArray[Any]]], n: int, meta: SceneMeta | None
) -> tuple[dict[str, Any], int]:
    """The glTF JSON for ``arrays`` and the BIN chunk's unpadded length."""
    buffer_views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []
    attributes: dict[str, int] = {}
    offset = 0
    for index, (semantic, kind, data) in enumerate(arrays):
        length = int(data.nbytes)
        buffer_views.append({"buffer": 0, "byteOffset": offset, "byteLength": length, "target": ARRAY_BUFFER})
        accessor: dict[str, Any] = {
            "bufferView": index,
            "byteOffset": 0,
            "componentType": UNSIGNED_BYTE if data.dtype == np.uint8 else FLOAT,
            "count": n,
            "type": kind,
        }
        if data.dtype == np.uint8:
            accessor["normalized"] = True
        if semantic == "POSITION" and n:
            accessor["min"] = [float(v) for v in data.min(axis=0)]
            accessor["max"] = [float(v) for v in data.max(axis=0)]
        accessors.append(accessor)
        attributes[semantic] = index
        offset = _align4(offset + length)
    nodes: list[dict[str, Any]] = []
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": GENERATOR},
        "scene": 0,
        "scenes": [{"nodes": []}],
        "nodes": nodes,
    }
    if n:
        # glTF has no empty accessors (count >= 1), so an empty scene is a file without a mesh.
        doc["extensionsUsed"] = [EXTENSION]
        doc["meshes"] = [
            {
                "name": "gaussians",
                "primitives": [
                    {
                        "attributes": attributes,
                        "mode": MODE_POINTS,
                        "extensions": {EXTENSION: {"kernel": KERNEL, "colorSpace": COLOR_SPACE}},
                    }
                ],
            }
        ]
        doc["buffers"] = [{"byteLength": offset}]
        doc["bufferViews"] = buffer_views
        doc["accessors"] = accessors
        nodes.append({"name": "gaussians", "mesh": 0})
    if meta is not None and meta.f_px > 0 and meta.width > 0 and meta.height > 0:
        # glTF cameras look down their -Z; turned 180° about Y this one looks down +Z, the
        # photo's viewing direction in the turned frame, with +X (its right) on the photo's right.
        nodes.append({"name": "photo camera", "camera": 0, "rotation": [0.0, 1.0, 0.0, 0.0]})
        doc["cameras"] = [_camera(meta)]
        doc["scenes"][0]["extras"] = {
            "sharpmld": {"f_px": meta.f_px, "width": meta.width, "height": meta.height}
        }
    doc["scenes"][0]["nodes"] = list(range(len(nodes)))
    return doc, offset


def write_glb(path: Path, records: npt.NDArray[np.void], meta: SceneMeta | None = None) -> None:
    """Write ``records`` as a ``.glb`` with KHR_gaussian_splatting, atomically."""
    if records.dtype != VERTEX_DTYPE or records.ndim != 1:
        raise ValueError(f"expected a 1-D VERTEX_DTYPE array, got {records.dtype}")
    if meta is not None:
        # the .ply keeps f_px as float32: use exactly that value, whichever of the two we start from
        meta = SceneMeta(f_px=float(np.float32(meta.f_px)), width=meta.width, height=meta.height)
    arrays = _attributes(records)
    doc, bin_length = _document(arrays, len(records), meta)
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    json_chunk = text + b" " * (_align4(len(text)) - len(text))
    bin_padded = _align4(bin_length)
    total = 12 + 8 + len(json_chunk) + (8 + bin_padded if bin_length else 0)
    if total >= 1 << 32:
        raise ValueError(f"{len(records)} Gaussians make a {total}-byte GLB, over its 4 GiB limit")
    with atomic_writer(path) as f:
        f.write(struct.pack("<III", GLB_MAGIC, GLB_VERSION, total))
        f.write(struct.pack("<II", len(json_chunk), CHUNK_JSON))
        f.write(json_chunk)
        if bin_length:
            f.write(struct.pack("<II", bin_padded, CHUNK_BIN))
            written = 0
            for _, _, data in arrays:
                f.write(np.ascontiguousarray(data).data)
                written += data.nbytes
                pad = _align4(written) - written
                f.write(b"\0" * pad)
                written += pad


def parse_glb(data: bytes, where: str = "glb") -> tuple[dict[str, Any], memoryview]:
    """Split a GLB into its JSON document and BIN chunk; ValueError if malformed."""
    if len(data) < 20:
        raise ValueError(f"{where}: too short for a GLB")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != GLB_VERSION:
        raise ValueError(f"{where}: not a glTF 2 binary (magic 0x{magic:08x}, version {version})")
    if length != len(data):
        raise ValueError(f"{where}: header says {length} bytes, file has {len(data)}")
    view = memoryview(data)
    doc: dict[str, Any] | None = None
    binary = memoryview(b"")
    offset = 12
    while offset + 8 <= length:
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        body = view[offset + 8 : offset + 8 + chunk_length]
        if len(body) != chunk_length:
            raise ValueError(f"{where}: chunk at {offset} runs past the end")
        if chunk_type == CHUNK_JSON and doc is None:
            try:
                doc = json.loads(bytes(body).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{where}: bad JSON chunk ({exc})") from exc
        elif chunk_type == CHUNK_BIN and not len(binary):
            binary = body
        offset += 8 + _align4(chunk_length)
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: no JSON chunk")
    return doc, binary


def read_accessor(doc: dict[str, Any], binary: memoryview, index: int) -> npt.NDArray[Any]:
    """Accessor ``index`` of a GLB's own buffer as an (count, components) array (a copy)."""
    accessor = doc["accessors"][index]
    view = doc["bufferViews"][accessor["bufferView"]]
    if view.get("buffer", 0) != 0 or "uri" in doc["buffers"][0]:
        raise ValueError("only the GLB's own BIN buffer is supported")
    dtype = np.dtype(COMPONENT_DTYPES[accessor["componentType"]])
    k = TYPE_SIZES[accessor["type"]]
    count = int(accessor["count"])
    element = dtype.itemsize * k
    stride = int(view.get("byteStride", element))
    start = int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0))
    end = start + (stride * (count - 1) + element if count else 0)
    if end > int(view.get("byteOffset", 0)) + int(view["byteLength"]) or end > len(binary):
        raise ValueError(f"accessor {index} runs past its buffer view")
    raw = np.frombuffer(binary, dtype=np.uint8, count=end - start, offset=start)
    if stride != element:
        raw = np.lib.stride_tricks.as_strided(raw, shape=(count, element), strides=(stride, 1))
    out: npt.NDArray[Any] = np.ascontiguousarray(raw).view(dtype).reshape(count, k)
    return out


def _float_attribute(doc: dict[str, Any], binary: memoryview, attributes: dict[str, int], name: str) -> F32:
    if name not in attributes:
        raise ValueError(f"the splat primitive has no {name} attribute")
    accessor = doc["accessors"][attributes[name]]
    if accessor["componentType"] != FLOAT:
        raise ValueError(f"{name} is not float (componentType {accessor['componentType']})")
    out: F32 = read_accessor(doc, binary, attributes[name]).astype(np.float32, copy=False)
    return out


def from_glb(data: bytes, where: str = "glb") -> Gaussians:
    """Decode the first KHR_gaussian_splatting primitive back into ml-sharp's axes."""
    doc, binary = parse_glb(data, where)
    try:
        primitives = [p for mesh in doc.get("meshes", []) for p in mesh.get("primitives", [])]
        splats = [p for p in primitives if EXTENSION in p.get("extensions", {})]
        if not primitives:  # what write_glb makes of an empty scene
            return Gaussians(
                means=np.zeros((0, 3), np.float32),
                scales=np.zeros((0, 3), np.float32),
                quaternions=np.zeros((0, 4), np.float32),
                colors=np.zeros((0, 3), np.float32),
                opacities=np.zeros(0, np.float32),
            )
        if not splats:
            raise ValueError(f"{where}: no {EXTENSION} primitive")
        attributes: dict[str, int] = splats[0]["attributes"]
        position = _float_attribute(doc, binary, attributes, "POSITION")
        rotation = _float_attribute(doc, binary, attributes, ROTATION)
        scale = _float_attribute(doc, binary, attributes, SCALE)
        opacity = _float_attribute(doc, binary, attributes, OPACITY)
        sh_dc = _float_attribute(doc, binary, attributes, SH_DC)
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{where}: malformed glTF ({exc!r})") from exc
    quaternions = np.empty_like(rotation)
    quaternions[:, 0] = rotation[:, 3]
    quaternions[:, 1:4] = rotation[:, 0:3] * _FLIP
    return Gaussians(
        means=np.ascontiguousarray(position * _FLIP),
        scales=np.ascontiguousarray(scale),
        quaternions=quaternions,
        colors=srgb_to_linear(sh_dc * np.float32(SH_C0) + np.float32(0.5)),
        opacities=np.ascontiguousarray(opacity.reshape(-1)),
    )


def read_glb(path: Path) -> Gaussians:
    """Read a ``.glb`` written by :func:`write_glb` (or any float KHR_gaussian_splatting one)."""
    return from_glb(path.read_bytes(), str(path))
