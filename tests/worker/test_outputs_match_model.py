"""The written files hold what the model produced, carried through ml-sharp's unprojection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData

from sharpmld.formats.gaussians import SceneMeta
from sharpmld.formats.registry import WriteOptions
from sharpmld.formats.splat import RECORD_SIZE
from sharpmld.protocol import ImageTask, JobRequest
from sharpmld.worker.model import load_model
from sharpmld.worker.pipeline import decode, infer, write_outputs
from tests.intake import corpus

SH_C0 = 0.28209479177387814


def srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.clip(x, 0, None), 1 / 2.4) - 0.055)


def rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (q / np.linalg.norm(q, axis=-1, keepdims=True)).T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def covariances(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    r = rotation(q.astype(np.float64))
    return r @ (np.square(s.astype(np.float64))[..., None] * np.swapaxes(r, -1, -2))


def test_ply_and_splat_hold_the_unprojected_model_output(tmp_path: Path, checkpoint: Path) -> None:
    src = tmp_path / "in.jpg"
    rgb = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    corpus.write_jpeg(src, rgb, exif=corpus.make_exif(focal_35mm=28))
    out = tmp_path / "out"
    out.mkdir()
    model = load_model("tiny_sharp:create", checkpoint, "cpu")
    request = JobRequest("t", str(out), (ImageTask("in.jpg", str(src), "in"),))
    decoded = decode(request.images[0], out, request)
    assert decoded.image is not None and decoded.error is None
    ndc = infer(model, decoded.image)
    # ml-sharp's layout, to check the camera it stores too (the vertex table is the default's).
    entry, _, _ = write_outputs(decoded, ndc, out, ["ply", "splat"], WriteOptions(ply_layout="ml-sharp"))

    img = decoded.image
    f = img.f_px
    assert f == 28 * np.hypot(320, 240) / np.hypot(36, 24)
    # The tiny model's own output, unprojected by hand: x * W/(2f), y * H/(2f), z unchanged.
    m = ndc.mean_vectors[0].double().numpy()
    a = np.diag([img.width / (2 * f), img.height / (2 * f), 1.0])
    means = m @ a.T
    cov = a @ covariances(ndc.quaternions[0].numpy(), ndc.singular_values[0].numpy()) @ a.T
    colors = ndc.colors[0].double().numpy()
    opacities = ndc.opacities[0].double().numpy()

    ply = PlyData.read(str(out / "in.ply"))
    v = ply["vertex"]
    n = entry["gaussians"]
    assert v.count == n == means.shape[0] == 32 * 32
    xyz = np.stack([v["x"], v["y"], v["z"]], -1)
    np.testing.assert_allclose(xyz, means, rtol=1e-5, atol=1e-6)
    q = np.stack([v[f"rot_{i}"] for i in range(4)], -1)
    s = np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], -1))
    got_cov = covariances(q, s)
    rel = np.linalg.norm(got_cov - cov, axis=(1, 2)) / np.linalg.norm(cov, axis=(1, 2))
    assert rel.max() < 1e-4
    f_dc = np.stack([v[f"f_dc_{i}"] for i in range(3)], -1)
    np.testing.assert_allclose(f_dc * SH_C0 + 0.5, srgb(colors), atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"].astype(np.float64))), opacities, atol=1e-6)
    assert list(ply["image_size"]["image_size"]) == [320, 240]
    np.testing.assert_allclose(ply["intrinsic"]["intrinsic"], [f, 0, 160, 0, f, 120, 0, 0, 1], rtol=1e-6)
    assert ply["color_space"]["color_space"][0] == 0

    # The .splat: one 32-byte record per Gaussian, each a faithful encoding of a .ply row.
    raw = (out / "in.splat").read_bytes()
    assert len(raw) == RECORD_SIZE * n
    rec = np.frombuffer(raw, dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)])
    by_position = {tuple(p): i for i, p in enumerate(xyz.astype(np.float32))}
    rows = np.array([by_position[tuple(p)] for p in rec["p"]])
    assert sorted(rows.tolist()) == list(range(n))
    np.testing.assert_allclose(rec["s"], s[rows].astype(np.float32), rtol=1e-6)
    colour = np.clip((0.5 + SH_C0 * f_dc[rows]) * 255, 0, 255)
    assert np.all(np.abs(rec["c"][:, :3] - colour) <= 1)
    assert np.all(np.abs(rec["c"][:, 3] - 255 / (1 + np.exp(-v["opacity"][rows]))) <= 1)
    unit = q[rows] / np.linalg.norm(q[rows], axis=1, keepdims=True)
    assert np.all(np.abs(rec["r"] - (unit * 128 + 128).clip(0, 255)) <= 1)
    key = np.exp(np.log(rec["s"]).sum(1)) / (1 + np.exp(-v["opacity"][rows]))
    assert np.all(np.diff(key) <= 1e-6 * key[:-1])  # biggest and most opaque first
    assert torch.is_tensor(ndc.mean_vectors)


def test_convert_of_the_daemons_ply_is_byte_identical_to_its_other_formats(
    tmp_path: Path, checkpoint: Path
) -> None:
    from sharpmld.formats.registry import FORMATS, convert

    src = tmp_path / "in.jpg"
    rgb = (np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8)
    corpus.write_jpeg(src, rgb, exif=corpus.make_exif(focal_35mm=28))
    out = tmp_path / "out"
    out.mkdir()
    model = load_model("tiny_sharp:create", checkpoint, "cpu")
    request = JobRequest("t", str(out), (ImageTask("in.jpg", str(src), "in"),))
    decoded = decode(request.images[0], out, request)
    assert decoded.image is not None
    # a focal length float32 cannot hold exactly, as from any real photo's EXIF
    assert float(np.float32(decoded.image.f_px)) != decoded.image.f_px
    ndc = infer(model, decoded.image)
    # ml-sharp's layout carries the camera; the default vertex-only one gets it from the flags.
    img = decoded.image
    camera = SceneMeta(f_px=img.f_px, width=img.width, height=img.height)
    for layout, given in (("ml-sharp", None), ("3dgs", camera)):
        options = WriteOptions(ply_layout=layout)
        written = tmp_path / layout
        written.mkdir()
        write_outputs(decoded, ndc, written, list(FORMATS), options)
        again = tmp_path / f"converted-{layout}"
        again.mkdir()
        for fmt in FORMATS.values():
            target = again / f"in{fmt.suffix}"
            convert(written / "in.ply", target, options, given)
            assert target.read_bytes() == (written / f"in{fmt.suffix}").read_bytes(), (layout, fmt.name)
