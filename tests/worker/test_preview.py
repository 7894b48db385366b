"""The splat renderer: it reproduces an image from one Gaussian per pixel, composites in depth
order, agrees with a brute-force per-pixel reference, and writes previews people can open."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import linear_to_srgb, srgb_to_linear
from sharpmld.worker.preview import write_previews
from sharpmld.worker.preview.camera import Camera, input_camera
from sharpmld.worker.preview.encode import encode_gif, encode_png
from sharpmld.worker.preview.raster import SplatScene, render_scene
from sharpmld.worker.preview.views import orbit_frames, preview, render

U8 = npt.NDArray[np.uint8]
Arr = npt.ArrayLike


def _gaussians(means: Arr, scales: Arr, quats: Arr, colors: Arr, opacities: Arr) -> Gaussians:
    return Gaussians(
        means=np.asarray(means, np.float32).reshape(-1, 3),
        scales=np.asarray(scales, np.float32).reshape(-1, 3),
        quaternions=np.asarray(quats, np.float32).reshape(-1, 4),
        colors=np.asarray(colors, np.float32).reshape(-1, 3),
        opacities=np.asarray(opacities, np.float32).reshape(-1),
    )


def natural_image(width: int = 128, height: int = 96) -> U8:
    """Smooth gradients, a soft-edged disc and a hard-edged rectangle."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (u + 0.5) / width, (v + 0.5) / height
    img = np.stack([0.15 + 0.7 * x, 0.2 + 0.6 * y, 0.5 + 0.3 * np.sin(6 * x + 4 * y)], -1)
    disc = np.clip(12 - np.hypot(u + 0.5 - 40, v + 0.5 - 40), 0, 1)[..., None]
    img = img * (1 - disc) + np.array([0.9, 0.2, 0.1]) * disc
    rect = ((u > 70) & (u < 110) & (v > 50) & (v < 80))[..., None]
    img = np.where(rect, np.array([0.1, 0.3, 0.8]), img)
    out: U8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def one_per_pixel(img: U8, f_px: float = 100.0, footprint: float = 0.6) -> tuple[Gaussians, SceneMeta]:
    """A Gaussian on every pixel's ray at a random depth in 2-5 m, σ = footprint px."""
    height, width, _ = img.shape
    rng = np.random.default_rng(7)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    z = 2 + 3 * rng.random((height, width))
    cx, cy = width / 2, height / 2
    means = np.stack([(u + 0.5 - cx) * z / f_px, (v + 0.5 - cy) * z / f_px, z], -1)
    sigma = np.repeat((footprint * z / f_px).reshape(-1, 1), 3, 1)
    n = width * height
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    colors = srgb_to_linear(img.reshape(-1, 3) / 255.0)
    return _gaussians(means, sigma, quats, colors, np.full(n, 0.99)), SceneMeta(f_px, width, height)


def psnr(a: U8, b: U8) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_one_gaussian_per_pixel_renders_back_the_image() -> None:
    img = natural_image()
    g, meta = one_per_pixel(img)
    out = render(g, input_camera(meta, meta.width, meta.height), meta.width, meta.height)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert psnr(out, img) >= 30.0


def test_preview_uses_the_input_camera_scaled() -> None:
    img = natural_image()
    g, meta = one_per_pixel(img)
    small = preview(g, meta, long_side=64)
    assert small.shape == (48, 64, 3)
    reference = np.asarray(Image.fromarray(img).resize((64, 48), Image.Resampling.BOX))
    assert psnr(small, reference) >= 25.0


@pytest.mark.parametrize("reverse", [False, True])
def test_the_nearer_gaussian_wins_whatever_the_input_order(reverse: bool) -> None:
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    means = [(0.0, 0.0, 2.0), (0.0, 0.0, 4.0)]  # both on the optical axis
    scales = [(0.04, 0.04, 0.04), (0.08, 0.08, 0.08)]  # 2 px wide on screen each
    colors = [red, blue]
    if reverse:
        means, scales, colors = means[::-1], scales[::-1], colors[::-1]
    g = _gaussians(means, scales, [(1, 0, 0, 0)] * 2, colors, [0.95, 0.95])
    out = render(g, Camera(100, 100, 16.5, 16.5), 32, 32)  # centres on pixel (16, 16)
    r, gr, b = (int(c) for c in out[16, 16])
    assert r > 240 and b < 100, (r, gr, b)
    # Exactly: 0.95 red, then 5% of 0.95 blue behind it, in linear light.
    expect = np.rint(linear_to_srgb(np.array([0.95, 0.0, 0.05 * 0.95])) * 255)
    assert np.abs(out[16, 16].astype(int) - expect).max() <= 1


def test_empty_and_culled_scenes_render_the_background() -> None:
    bg = (12, 200, 77)
    empty = _gaussians(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), [])
    cam = Camera(50, 50, 20, 15)
    assert (render(empty, cam, 40, 30, bg) == np.array(bg, np.uint8)).all()
    nan = float("nan")
    culled = _gaussians(
        [(0, 0, -2.0), (0, 0, 0.0), (100.0, 0, 2.0), (0, -50.0, 1.0), (0, 0, 3.0), (nan, 0, 2), (0, 0, 2)],
        [(0.1, 0.1, 0.1)] * 6 + [(nan, 0.1, 0.1)],
        [(1, 0, 0, 0)] * 7,
        [(1, 1, 1)] * 7,
        # behind, at the camera, right of and above the view, transparent, NaN mean, NaN scale
        [1, 1, 1, 1, 0.001, 1, 1],
    )
    assert (render(culled, cam, 40, 30, bg) == np.array(bg, np.uint8)).all()


def _random_scene(n: int, seed: int) -> Gaussians:
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.5, 4.0, n)
    means = np.stack([rng.uniform(-0.3, 0.3, n) * z, rng.uniform(-0.25, 0.25, n) * z, z], -1)
    scales = rng.uniform(0.005, 0.06, (n, 3))
    quats = rng.normal(size=(n, 4))
    return _gaussians(means, scales, quats, rng.uniform(0, 1, (n, 3)), rng.uniform(0.4, 1.0, n))


def _reference(g: Gaussians, cam: Camera, width: int, height: int) -> U8:
    """Per pixel, every Gaussian in depth order, in float64 with explicit 3×3 matrices."""
    w_rot, t = np.asarray(cam.rotation, np.float64), np.asarray(cam.translation, np.float64)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    color, trans = np.zeros((height, width, 3)), np.ones((height, width))
    p_cam = g.means.astype(np.float64) @ w_rot.T + t
    for i in np.argsort(p_cam[:, 2], kind="stable"):
        x, y, z = p_cam[i]
        w_, qx, qy, qz = g.quaternions[i].astype(np.float64) / np.linalg.norm(g.quaternions[i])
        rot = np.array(
            [
                [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - w_ * qz), 2 * (qx * qz + w_ * qy)],
                [2 * (qx * qy + w_ * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - w_ * qx)],
                [2 * (qx * qz - w_ * qy), 2 * (qy * qz + w_ * qx), 1 - 2 * (qx * qx + qy * qy)],
            ]
        )
        sigma = rot @ np.diag(g.scales[i].astype(np.float64) ** 2) @ rot.T
        jac = np.array([[cam.fx / z, 0, -cam.fx * x / z**2], [0, cam.fy / z, -cam.fy * y / z**2]])
        cov = jac @ w_rot @ sigma @ w_rot.T @ jac.T + 0.3 * np.eye(2)
        conic = np.linalg.inv(cov)
        dx, dy = u - (cam.fx * x / z + cam.cx), v - (cam.fy * y / z + cam.cy)
        power = conic[0, 0] * dx * dx + 2 * conic[0, 1] * dx * dy + conic[1, 1] * dy * dy
        alpha = np.minimum(0.99, g.opacities[i] * np.exp(-0.5 * power))
        inside = (np.abs(dx) <= 3 * np.sqrt(cov[0, 0])) & (np.abs(dy) <= 3 * np.sqrt(cov[1, 1]))
        alpha = np.where(inside & (alpha >= 1 / 255), alpha, 0.0)
        color += (trans * alpha)[..., None] * g.colors[i].astype(np.float64)
        trans *= 1 - alpha
    srgb = linear_to_srgb(np.clip(color, 0, 1))
    return np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8)


def test_matches_a_brute_force_reference_from_a_turned_camera() -> None:
    g = _random_scene(150, seed=3)
    cam = Camera.look_at(60, 58, 24, 17, eye=(0.3, -0.2, 0.1), target=(0, 0, 2.5))
    ours = render(g, cam, 48, 36)
    ref = _reference(g, cam, 48, 36)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_chunked_compositing_matches_one_pass() -> None:
    g = _random_scene(400, seed=5)
    scene = SplatScene(g)
    cam = Camera(60, 60, 24, 18)
    whole = render_scene(scene, cam, 48, 36, max_fragments=1 << 24)
    chunked = render_scene(scene, cam, 48, 36, max_fragments=97)
    assert np.abs(whole.astype(int) - chunked.astype(int)).max() <= 1


def test_orbit_frames_differ_and_make_a_looping_gif(tmp_path: Path) -> None:
    g, meta = one_per_pixel(natural_image(64, 48))
    frames = orbit_frames(g, meta, long_side=64, frames=8)
    assert len(frames) == 8 and all(f.shape == (48, 64, 3) for f in frames)
    assert (frames[0] == preview(g, meta, long_side=64)).all()  # the sway starts at the input view
    for a, b in zip(frames, [*frames[1:], frames[0]], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).sum() > 0
    with Image.open(io.BytesIO(encode_gif(frames, fps=10))) as gif:
        assert gif.format == "GIF"
        assert getattr(gif, "is_animated", False) and getattr(gif, "n_frames", 1) == 8
        assert gif.info.get("loop") == 0
        assert gif.info.get("duration") == 100


def test_png_round_trips() -> None:
    img = natural_image(40, 30)
    with Image.open(io.BytesIO(encode_png(img))) as back:
        assert back.format == "PNG"
        assert (np.asarray(back.convert("RGB")) == img).all()


def test_write_previews_describes_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sharpmld.worker.preview as render_pkg

    # Small sizes keep the test quick; the sizes themselves are the defaults' job.
    monkeypatch.setattr(render_pkg, "PREVIEW_LONG_SIDE", 80)
    monkeypatch.setattr(render_pkg, "ORBIT_LONG_SIDE", 48)
    monkeypatch.setattr(render_pkg, "ORBIT_FRAMES", 6)
    g, meta = one_per_pixel(natural_image(64, 48))
    out = write_previews(g, meta, tmp_path, "shot 1")
    assert set(out) == {"preview", "orbit"}
    assert out["preview"]["path"] == "previews/shot 1.png"
    assert out["orbit"]["path"] == "previews/shot 1.orbit.gif"
    for entry in out.values():
        data = (tmp_path / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    with Image.open(tmp_path / out["preview"]["path"]) as png:
        assert png.size == (80, 60)
    with Image.open(tmp_path / out["orbit"]["path"]) as gif:
        assert gif.size == (48, 36) and getattr(gif, "n_frames", 1) == 6
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["shot 1.orbit.gif", "shot 1.png"]
