"""A procedural scene of moving, occluding shapes with exact per-frame instance masks.

Used as live source, demo, test oracle and training data, so every frame must be cheap and
random-access: each object's whole life (entry, path, spin, size, texture, depth) is a closed-form
function of (seed, lane, generation), and ``render(i)`` derives frame ``i`` from that alone.

Objects live in ``instances`` lanes; lane ``j`` spawns generation ``n`` at about
``phase_j + n * lifetime_frames`` and the object crosses the frame from one border to another, so
about ``instances`` objects are in view at once and they keep entering and leaving. The instance
id ``n * lanes + j + 1`` is unique for the scene and never reused. The class is carried by the
shape only: colours and textures are drawn independently of the class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from streamseg.interface import TruthInstance

SYNTHETIC_CLASSES = ("disk", "square", "triangle", "ring", "cross")  # class_id = index

_NOISE_BANK = 6  # precomputed noise fields; each frame picks one (cheap, deterministic)


@dataclass
class SceneConfig:
    seed: int = 0
    width: int = 640
    height: int = 360
    instances: int = 6  # target number of objects in view at once (= lanes)
    noise: float = 6.0  # std of additive pixel noise (0 disables)
    lifetime_frames: int = 150  # spawn period of a lane; an object lives 0.9-1.5x this, crossing the view
    min_size: float = 0.07  # object radius range, fraction of min(width, height)
    max_size: float = 0.16
    pan_pixels: int = 24  # amplitude of the slow background pan (0 = static background)


@dataclass(frozen=True, eq=False)
class _Obj:
    """One object's whole life; positions etc. are closed-form in the frame index."""

    instance_id: int
    class_id: int
    start: float  # first frame (may be fractional)
    duration: float
    p0: tuple[float, float]  # centre at start (outside the view)
    p1: tuple[float, float]  # centre at end (outside the view)
    wobble_amp: float
    wobble_freq: float
    wobble_phase: float
    r0: float
    r1: float
    angle0: float
    spin: float  # radians per frame
    depth: float  # larger = nearer (painted later)
    color_a: tuple[int, int, int]
    color_b: tuple[int, int, int]
    texture: int  # 0 solid+shade, 1 stripes, 2 checker, 3 rings
    tex_period: float
    palette: np.ndarray  # uint32 RGBA colours the texture codes index


def _random_color(rng: np.random.Generator) -> tuple[int, int, int]:
    h = rng.uniform(0, 6)
    s = rng.uniform(0.35, 1.0)
    v = rng.uniform(0.35, 1.0)
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(int(round(255 * c)) for c in rgb)  # type: ignore[return-value]


class SyntheticScene:
    """Renders frame ``index`` of the scene defined by ``config`` (deterministic, random access)."""

    def __init__(self, config: SceneConfig):
        if config.width < 16 or config.height < 16:
            raise ValueError("synthetic scene needs width and height >= 16")
        if config.instances < 0:
            raise ValueError("synthetic scene instances must be >= 0")
        self.config = config
        self.classes = SYNTHETIC_CLASSES
        self._lanes = max(1, config.instances)
        # Colours stay within [margin, 255 - margin] and noise within +-margin, so noise is added
        # with plain uint8 arithmetic (no overflow, no int16 round trip): one pass per frame.
        self._margin = int(min(math.ceil(3 * config.noise), 60)) if config.noise > 0 else 0
        lane_rng = np.random.default_rng([config.seed, 0x5EED])
        period = float(config.lifetime_frames)
        self._period = period
        self._phases = lane_rng.uniform(-period, 0.0, size=self._lanes)
        self._background = self._make_background()
        self._noise = self._make_noise()
        self._object = lru_cache(maxsize=256)(self._make_object)
        self._ys = np.arange(config.height, dtype=np.float32)[:, None]
        self._xs = np.arange(config.width, dtype=np.float32)[None, :]

    # ---- scene construction (once) -------------------------------------------------------------

    def _make_background(self) -> np.ndarray:
        """A seed-dependent textured canvas, larger than the view so it can pan."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 0xB6])
        pad = 2 * cfg.pan_pixels
        h, w = cfg.height + pad, cfg.width + pad
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
        c0 = np.array(_random_color(rng), np.float32) * rng.uniform(0.4, 0.9)
        c1 = np.array(_random_color(rng), np.float32) * rng.uniform(0.4, 0.9)
        ang = rng.uniform(0, 2 * math.pi)
        g = (math.cos(ang) * x + math.sin(ang) * y)
        g = (g - g.min()) / max(float(g.max() - g.min()), 1e-6)
        img = c0 * (1 - g[..., None]) + c1 * g[..., None]
        kind = int(rng.integers(0, 4))
        if kind == 0:  # gratings
            tex = np.zeros((h, w), np.float32)
            for _ in range(3):
                a = rng.uniform(0, 2 * math.pi)
                f = rng.uniform(4, 30)
                tex += np.sin(2 * math.pi * f * (math.cos(a) * x + math.sin(a) * y * h / w) + rng.uniform(0, 6.3))
            tex /= 3.0
        elif kind == 1:  # checkerboard
            cell = int(rng.integers(12, 48))
            yi = np.arange(h)[:, None] // cell
            xi = np.arange(w)[None, :] // cell
            tex = (((yi + xi) % 2) * 2.0 - 1.0).astype(np.float32)
        elif kind == 2:  # smooth blobs (upsampled low-res noise)
            cell = int(rng.integers(16, 64))
            low = rng.uniform(-1, 1, size=(h // cell + 2, w // cell + 2)).astype(np.float32)
            tex = np.kron(low, np.ones((cell, cell), np.float32))[:h, :w]
            k = max(1, cell // 2)
            tex = _box_blur(tex, k)
            tex /= max(float(np.abs(tex).max()), 1e-6)
        else:  # fine random texture
            low = rng.uniform(-1, 1, size=(h // 4 + 1, w // 4 + 1)).astype(np.float32)
            tex = np.kron(low, np.ones((4, 4), np.float32))[:h, :w]
        amp = rng.uniform(15, 45)
        img = img + amp * tex[..., None] * rng.uniform(0.5, 1.0, size=3).astype(np.float32)
        return np.clip(img, self._margin, 255 - self._margin).astype(np.uint8)

    def _make_noise(self) -> list[np.ndarray] | None:
        cfg = self.config
        if cfg.noise <= 0:
            return None
        rng = np.random.default_rng([cfg.seed, 0x401])
        shape = (cfg.height, cfg.width, 3)
        m = self._margin
        # int8 noise viewed as uint8: adding it modulo 256 equals signed addition (see _margin)
        return [np.clip(np.rint(rng.normal(0, cfg.noise, size=shape)), -m, m).astype(np.int8).view(np.uint8)
                for _ in range(_NOISE_BANK)]

    def _make_object(self, lane: int, gen: int) -> _Obj:
        """Object ``gen`` of ``lane``: every random draw comes from its own (seed, lane, gen) stream."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, lane, gen])
        period = self._period
        duration = period * rng.uniform(0.9, 1.5)
        start = self._phases[lane] + gen * period + rng.uniform(0.0, 0.2 * period)
        m = min(cfg.width, cfg.height)
        r0 = m * rng.uniform(cfg.min_size, cfg.max_size)
        r1 = float(np.clip(r0 * rng.uniform(0.75, 1.33), m * cfg.min_size, m * cfg.max_size))
        margin = max(r0, r1) * 1.5 + 2
        side0 = int(rng.integers(0, 4))
        side1 = (side0 + int(rng.integers(1, 4))) % 4  # leave by another border
        p0 = self._border_point(side0, rng.uniform(0.1, 0.9), margin)
        p1 = self._border_point(side1, rng.uniform(0.1, 0.9), margin)
        class_id = int(rng.integers(0, len(SYNTHETIC_CLASSES)))
        wobble = (float(rng.uniform(0, 0.06) * m), float(rng.uniform(0.5, 2.5)), float(rng.uniform(0, 2 * math.pi)))
        angle0, spin, depth = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(-0.04, 0.04)), float(rng.uniform())
        color_a, color_b = _random_color(rng), _random_color(rng)
        texture = int(rng.integers(0, 4))
        return _Obj(
            instance_id=gen * self._lanes + lane + 1,
            class_id=class_id,
            start=float(start),
            duration=float(duration),
            p0=p0,
            p1=p1,
            wobble_amp=wobble[0],
            wobble_freq=wobble[1],
            wobble_phase=wobble[2],
            r0=float(r0),
            r1=r1,
            angle0=angle0,
            spin=spin,
            depth=depth,
            color_a=color_a,
            color_b=color_b,
            texture=texture,
            tex_period=float(rng.uniform(6, 16)),
            palette=_palette(texture, color_a, color_b, self._margin),
        )

    def _border_point(self, side: int, t: float, margin: float) -> tuple[float, float]:
        w, h = self.config.width, self.config.height
        if side == 0:
            return (t * w, -margin)
        if side == 1:
            return (w + margin, t * h)
        if side == 2:
            return (t * w, h + margin)
        return (-margin, t * h)

    # ---- per frame ------------------------------------------------------------------------------

    def objects_at(self, index: int) -> list[_Obj]:
        """Objects alive at frame ``index`` (in view or about to enter), far to near."""
        alive = []
        for lane in range(self._lanes if self.config.instances > 0 else 0):
            g = math.floor((index - self._phases[lane]) / self._period)
            for gen in (g - 1, g):
                if gen < 0:
                    continue
                o = self._object(lane, gen)
                if o.start <= index < o.start + o.duration:
                    alive.append(o)
        alive.sort(key=lambda o: o.depth)
        return alive

    def render(self, index: int) -> tuple[np.ndarray, list[TruthInstance]]:
        """Frame ``index`` as H x W x 3 uint8 RGB and its visible instances (area > 0), near last."""
        cfg = self.config
        h, w = cfg.height, cfg.width
        if cfg.pan_pixels > 0:
            ox = int(round(cfg.pan_pixels * (1 + math.sin(index * 0.011 + cfg.seed))))
            oy = int(round(cfg.pan_pixels * (1 + math.sin(index * 0.007 + 2 * cfg.seed))))
        else:
            ox = oy = 0
        image = np.ascontiguousarray(self._background[oy : oy + h, ox : ox + w])
        labels = np.zeros((h, w), np.int16)  # 0 = background, k+1 = painted object k
        painted: list[tuple[_Obj, tuple[int, int, int, int]]] = []
        for o in self.objects_at(index):
            box = self._paint(o, index, image, labels, len(painted) + 1)
            if box is not None:
                painted.append((o, box))
        if self._noise is not None:
            np.add(image, self._noise[(index * 7919 + cfg.seed * 104729) % _NOISE_BANK], out=image)
        truth = []
        for k, (o, (y0, y1, x0, x1)) in enumerate(painted, start=1):
            crop = labels[y0:y1, x0:x1] == k
            if not crop.any():
                continue
            mask = np.zeros((h, w), bool)
            mask[y0:y1, x0:x1] = crop
            truth.append(TruthInstance(o.instance_id, o.class_id, SYNTHETIC_CLASSES[o.class_id], mask))
        return image, truth

    def amodal_masks(self, index: int) -> dict[int, np.ndarray]:
        """Each alive object's full silhouette in view (ignoring occlusion), keyed by instance id."""
        cfg = self.config
        out = {}
        for o in self.objects_at(index):
            scratch = np.zeros((cfg.height, cfg.width, 3), np.uint8)
            labels = np.zeros((cfg.height, cfg.width), np.int16)
            if self._paint(o, index, scratch, labels, 1) is not None:
                out[o.instance_id] = labels == 1
        return out

    def _paint(self, o: _Obj, index: int, image: np.ndarray, labels: np.ndarray, k: int):
        cfg = self.config
        t = (index - o.start) / o.duration
        dx, dy = o.p1[0] - o.p0[0], o.p1[1] - o.p0[1]
        length = math.hypot(dx, dy) or 1.0
        wob = o.wobble_amp * math.sin(2 * math.pi * o.wobble_freq * t + o.wobble_phase)
        cx = o.p0[0] + t * dx - dy / length * wob
        cy = o.p0[1] + t * dy + dx / length * wob
        r = o.r0 + t * (o.r1 - o.r0)
        ext = r * _EXTENT[o.class_id] + 1
        x0, x1 = max(0, int(cx - ext)), min(cfg.width, int(cx + ext) + 1)
        y0, y1 = max(0, int(cy - ext)), min(cfg.height, int(cy + ext) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        px = self._xs[:, x0:x1] - np.float32(cx)  # 1 x w
        py = self._ys[y0:y1, :] - np.float32(cy)  # h x 1
        mask = _shape_mask(o.class_id, px, py, o.angle0 + o.spin * index, r)
        if not mask.any():
            return None
        tex = self._texture(o, px, py, r)
        np.copyto(image[y0:y1, x0:x1], tex, where=mask[..., None])
        np.copyto(labels[y0:y1, x0:x1], np.int16(k), where=mask)
        return (y0, y1, x0, x1)

    @staticmethod
    def _texture(o: _Obj, px: np.ndarray, py: np.ndarray, r: float) -> np.ndarray:
        """The object's texture over its box (h x w x 3 uint8 view), moving with it (not rotating).

        Row/column codes broadcast into a lookup of the object's RGBA palette packed as uint32: a
        one-word gather is ~10x cheaper than gathering 3-byte rows, the main cost of render() at 720p.
        """
        if o.texture == 0:  # shaded solid: 8 levels along the diagonal
            qx = np.clip((px + r) * (3.5 / r), 0, 7).astype(np.intp)
            qy = np.clip((py + r) * (3.5 / r), 0, 7).astype(np.intp)
            code = (qx + qy) >> 1
        else:
            inv = 1.0 / o.tex_period
            ix = np.floor(px * inv).astype(np.intp)  # 1 x w
            iy = np.floor(py * inv).astype(np.intp)  # h x 1
            if o.texture == 1:  # vertical stripes
                code = np.broadcast_to(ix & 1, (py.shape[0], px.shape[1]))
            elif o.texture == 2:  # checker
                code = (ix + iy) & 1
            else:  # diagonal stripes
                code = (ix - iy) & 1
        rgba = o.palette[code]
        return rgba.view(np.uint8).reshape(*rgba.shape, 4)[..., :3]


def _palette(texture: int, color_a: tuple[int, int, int], color_b: tuple[int, int, int], margin: int) -> np.ndarray:
    """The texture's colours (within [margin, 255 - margin]) as RGBA packed in uint32 (bytes R, G, B, A)."""
    if texture == 0:
        levels = (0.6 + 0.6 * np.arange(8) / 7.0)[:, None]
        rgb = np.array(color_a, np.float32) * levels
    else:
        rgb = np.array([color_a, color_b], np.float32)
    rgb = np.clip(rgb, margin, 255 - margin).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return np.ascontiguousarray(rgba).view(np.uint32).ravel()


_EXTENT = (1.0, 1.21, 1.21, 1.0, 1.06)  # half-size of each class's bounding square, in radii


def _shape_mask(class_id: int, px: np.ndarray, py: np.ndarray, angle: float, r: float) -> np.ndarray:
    """Inside-test of each class's shape, rotated by ``angle``, on the box grid (px: 1 x w, py: h x 1).

    Every 2-D quantity is a sum of a row term and a column term (broadcast), which keeps render()
    at one or two full-box passes per test.
    """
    name = SYNTHETIC_CLASSES[class_id]
    if name in ("disk", "ring"):  # rotation-invariant
        d = px * px + py * py
        if name == "disk":
            return d <= r * r
        return (d <= r * r) & (d >= (0.55 * r) ** 2)
    ca, sa = math.cos(angle), math.sin(angle)

    def along(cx: float, cy: float) -> np.ndarray:  # (cx, cy) . (px, py) as an h x w array
        return np.float32(cx) * px + np.float32(cy) * py

    if name == "triangle":
        half_in = r * 0.6  # circumradius 1.2 r, inradius 0.6 r
        m = None
        for edge in (90.0, 210.0, 330.0):  # outward edge normals in the object's frame
            e = math.radians(edge)
            cx, cy = math.cos(e), math.sin(e)  # rotate the normal by `angle`
            inside = along(ca * cx - sa * cy, sa * cx + ca * cy) <= half_in
            m = inside if m is None else (m & inside)
        return np.asarray(m)
    au = np.abs(along(ca, sa))
    av = np.abs(along(-sa, ca))
    if name == "square":
        s = r * 0.85
        return (au <= s) & (av <= s)
    arm = r * 0.32  # cross
    return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))


def _box_blur(a: np.ndarray, k: int) -> np.ndarray:
    """Separable box blur (edge-padded) via cumulative sums."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (k, k)
        p = np.pad(a, pad, mode="edge")
        c = np.cumsum(p, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        n = a.shape[axis]
        hi = np.take(c, np.arange(2 * k + 1, 2 * k + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        a = ((hi - lo) / (2 * k + 1)).astype(np.float32)
    return a
