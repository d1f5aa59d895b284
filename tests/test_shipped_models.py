"""The model files shipped inside the package: registered, intact, loadable, and sensible on real photos.

These run the real shipped networks (no stand-ins) on the two public-domain photos bundled in personseg/assets.
The boxes below were set by hand on the photos: on the person, and in background corners free of people.
"""

from pathlib import Path

import numpy as np
import pytest

import personseg
from personseg.cli import main as cli_main
from personseg.data.download import file_digest
from personseg.inference import registry
from personseg.inference.io import read_image

ASSETS = Path(personseg.__file__).parent / "assets"
REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["personseg-default", "personseg-fast"]

# (photo, boxes on the person, background boxes): boxes are (y0, y1, x0, x1) in pixels. The first box on the
# astronaut is her orange suit, which models trained with synthetic flag backgrounds lost (0.15-0.52).
PHOTOS = {
    "astronaut.png": ([(260, 380, 70, 250), (60, 150, 200, 250)], [(0, 64, 448, 512), (380, 512, 400, 512)]),
    "grace_hopper.jpg": ([(80, 280, 200, 310), (460, 600, 100, 420)], [(0, 75, 0, 64), (0, 220, 448, 512)]),
}
#: The flag beside Grace Hopper (left edge, top half): issue 13 wants none of it kept.
GRACE_FLAG = (0, 250, 0, 90)
#: The rest of that flag, looked at in session 18: the stars and stripes above her left shoulder and the stripes
#: between her arm and the photo's edge.
GRACE_FLAG_LOWER = [(260, 360, 0, 90), (400, 560, 0, 12)]

# The shipped files' int8 weights use 7 bits (personseg.export.quantize), so every CPU computes the same mask and
# these boxes read the same everywhere. Before session 17 they used 8 bits and the same file gave different masks
# on CPUs with and without VNNI: the v3 default kept Grace Hopper's flag at 0.07 on an AVX512-VNNI CPU and 0.19
# on an AVX2-only one, and failed this file there. The xfails below are what the shipped files really do.
# The v8 default kept Grace Hopper's flag at 0.17 run at a 384 square; since session 18 it runs each photo at a
# shape of its own within 320x320 pixels (resize "fit") and keeps 0.06 (float 0.06): the test passes for both.
# The fast model (v14 since session 26) kept 0.04 at 224 and keeps 0.02 at 256x192 oriented (session 33; float
# 0.02); fast v25 (since session 46, the same network and input) keeps 0.07 (float 0.05). The v17 default
# (sessions 30-44, fit within 320x320 like v8) kept 0.02 (float 0.04); the v27 default (since session 45, the same
# network and settings) keeps 0.04 (float 0.04).


def test_registry_lists_both_shipped_models(capsys):
    assert set(SHIPPED) <= set(registry.SHIPPED_MODELS)
    assert registry.DEFAULT_MODEL == "personseg-default"
    assert cli_main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_matches_its_recorded_sha256(name):
    entry = registry.SHIPPED_MODELS[name]
    path = registry.WEIGHTS_DIR / entry.filename
    assert path.is_file(), f"{path} is not in the package"
    assert len(entry.sha256) == 64
    assert file_digest(path) == entry.sha256
    assert path.stat().st_size < 20 * 2**20  # fits a normal git repository


@pytest.mark.parametrize("name", [None, *SHIPPED])
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_shipped_model_finds_the_person_in_a_real_photo(name, photo):
    model = personseg.load_model(name)
    rgb = read_image(ASSETS / photo).rgb
    prob = model.predict(rgb)
    assert prob.shape == rgb.shape[:2] and prob.dtype == np.float32
    person, background = PHOTOS[photo]
    for y0, y1, x0, x1 in person:
        assert prob[y0:y1, x0:x1].mean() > 0.9, f"{name}: person box {(y0, y1, x0, x1)} of {photo} missed"
    for y0, y1, x0, x1 in background:
        assert prob[y0:y1, x0:x1].mean() < 0.1, f"{name}: background box {(y0, y1, x0, x1)} of {photo} kept"


# The bundled demo photo is the first thing a new user sees (issue 13): no part of the US flag strip at the
# astronaut's left may be kept, and the helmet in her hands is kept whole or not at all, never half. With 7-bit
# weights (every CPU alike): the v27 default (since session 45, fit within 320x320) flag strip 0.05 (float 0.14),
# helmet 0.08; the v17 default (sessions 30-44) 0.09 (float 0.16) and 0.09; the v8 default before it 0.08 and
# 0.11 (at a 384 square 0.04 and 0.10); fast v25 (since session 46, v14's network and input) 0.07 and 0.08; the
# fast model of sessions 33-45 (v14, Lite2 to stride 32, at 256x192 turned to the photo) 0.03 and 0.08 (at 224
# since session 26: 0.02 and 0.11, a faint ghost of the helmet that failed this test); the fast model of sessions
# 11-25 (v3 weights at 192) 0.11 and 0.06; the v3 default before it 0.13 and 0.04. The fast model of sessions
# 1-9, distilled from the stage-2 default at 160, had 0.78 and 0.17.
ASTRONAUT_FLAG_STRIP = (0, 250, 0, 60)
ASTRONAUT_HELMET = (360, 500, 290, 490)
#: The same flag lower down, the sliver between her arm and the photo's left edge (red and white stripes, no suit).
ASTRONAUT_FLAG_BESIDE_ARM = (300, 450, 0, 8)


@pytest.mark.parametrize("name", SHIPPED)
def test_no_part_of_the_flag_beside_grace_hopper_is_kept(name):
    prob = personseg.load_model(name).predict(read_image(ASSETS / "grace_hopper.jpg").rgb)
    y0, y1, x0, x1 = GRACE_FLAG
    assert prob[y0:y1, x0:x1].mean() < 0.1


GRACE_LOWER = (
    "issue 13: the lower part of Grace Hopper's flag is kept (box means 0.50 above her shoulder and 0.92 beside her "
    "arm for the v27 default, 0.44 and 0.96 for v17, 0.53 and 0.95 for v8; 0.50 and 0.86 for fast v25, 0.37 and 0.88 "
    "for fast v14)"
)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.xfail(strict=True, reason=GRACE_LOWER)
def test_no_part_of_the_flag_below_grace_hoppers_is_kept(name):
    prob = personseg.load_model(name).predict(read_image(ASSETS / "grace_hopper.jpg").rgb)
    means = [prob[y0:y1, x0:x1].mean() for y0, y1, x0, x1 in GRACE_FLAG_LOWER]
    assert max(means) < 0.1, f"{name}: box means {[round(float(m), 2) for m in means]}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_int8_weights_use_seven_bits_so_every_cpu_agrees(name):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    graph = onnx.load(str(registry.WEIGHTS_DIR / registry.SHIPPED_MODELS[name].filename)).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) > 50
    assert all(-64 <= w.min() and w.max() <= 64 for w in weights)


@pytest.mark.parametrize("name", SHIPPED)
def test_no_part_of_the_flag_beside_the_astronaut_is_kept(name):
    prob = personseg.load_model(name).predict(read_image(ASSETS / "astronaut.png").rgb)
    y0, y1, x0, x1 = ASTRONAUT_FLAG_STRIP
    assert prob[y0:y1, x0:x1].mean() < 0.1


SLIVER = (
    "issue 13: the flag between her arm and the edge is kept (box mean 0.66 for the v27 default, 0.64 for v17, 0.70 "
    "for v8; 0.16 for the fast models)"
)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.xfail(strict=True, reason=SLIVER)
def test_no_flag_is_kept_between_the_astronauts_arm_and_the_edge(name):
    prob = personseg.load_model(name).predict(read_image(ASSETS / "astronaut.png").rgb)
    y0, y1, x0, x1 = ASTRONAUT_FLAG_BESIDE_ARM
    assert prob[y0:y1, x0:x1].mean() < 0.1


@pytest.mark.parametrize("name", SHIPPED)
def test_the_held_helmet_is_kept_whole_or_not_at_all(name):
    prob = personseg.load_model(name).predict(read_image(ASSETS / "astronaut.png").rgb)
    y0, y1, x0, x1 = ASTRONAUT_HELMET
    mean = prob[y0:y1, x0:x1].mean()
    assert mean < 0.1 or mean > 0.9, f"{name}: helmet box mean {mean:.2f}: half kept"


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_for_fine_tuning_agrees_with_the_shipped_onnx(name):
    pytest.importorskip("torch")
    from personseg.models.checkpoint import load_checkpoint

    path = REPO / "checkpoints" / f"{name}.pt"
    model, meta = load_checkpoint(path)
    assert model.get_num_params() > 1e6
    onnx_model = personseg.load_model(name)
    pt_model = personseg.load_model(path)
    rgb = read_image(ASSETS / "grace_hopper.jpg").rgb
    # Each checkpoint carries the input size its ONNX file runs at (320 and 256x192) and how photos meet it: the
    # default fits each photo within its pixels, the fast model stretches it to 256x192 turned to the photo.
    assert meta["input_size"] == onnx_model.meta["input_size"] == list(registry.SHIPPED_MODELS[name].input_size)
    assert (
        meta["resize"] == onnx_model.meta["resize"] == {"personseg-default": "fit", "personseg-fast": "stretch"}[name]
    )
    assert meta.get("orient", False) == onnx_model.meta.get("orient", False) == (name == "personseg-fast")
    # And the same second look at the people: the default's photos get it, the fast (video, live) model's not.
    assert meta.get("zoom") == onnx_model.meta.get("zoom")
    assert (onnx_model.zoom is not None) == (name == "personseg-default")
    # int8 (7-bit weights) against float: mean difference 0.011 for the v27 default, 0.017 for v17 (0.006 for v8; v17's
    # lies on the top of her cap and on the flag, the photo's uncertain parts; no second look runs here), 0.006
    # for fast v25 and 0.005 for fast v14 at 256x192 (0.006 at 224; 0.013 for the v3 weights at 192); the v3
    # default's float weights run at 320 instead of 384 differed from its file by 0.021.
    diff = np.abs(onnx_model.predict(rgb) - pt_model.predict(rgb))
    assert diff.mean() < 0.02
