"""The photo options are defined once (personseg.inference.options) and reach the output everywhere.

For every RemoveOptions and Background field: the CLI flag, the API query name and the UI control are the ones
its Spec names, and a changed value changes the result through the Python API, ``personseg remove`` and
``POST /v1/remove`` alike. EXAMPLES must cover every field: a new option without an example fails here.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personseg.cli import build_parser, main
from personseg.inference.options import Background, OptionError, RemoveOptions, option_fields, problem
from synthetic import two_people

#: field -> (options for the baseline, options that change only that field). The image is two synthetic people
#: (a big one with a hole of background colour in it, a small one at the top edge).
EXAMPLES: dict[str, tuple[dict, dict]] = {
    "soft": ({}, {"soft": False}),
    "edge_cutoff": ({}, {"edge_cutoff": 0.0}),
    "threshold": ({"soft": False}, {"soft": False, "threshold": 0.9}),
    "keep_largest": ({}, {"keep_largest": 1}),
    "fill_holes": ({"soft": False}, {"soft": False, "fill_holes": 0.05}),
    "feather": ({"soft": False}, {"soft": False, "feather": 3.0}),
    "matting": ({}, {"matting": True}),
    "foreground": ({}, {"foreground": "none"}),
    "crop": ({}, {"crop": True}),
    "crop_margin": ({"crop": True}, {"crop": True, "crop_margin": 0.3}),
    "subject": ({}, {"subject": "main"}),
    "zoom": ({}, {"zoom": False}),
    "color": ({"color": (255, 0, 0)}, {"color": (0, 0, 255)}),
    "image": ({"image": "BACKGROUND"}, {"image": "BACKGROUND2"}),
    "blur": ({"blur": 2.0}, {"blur": 8.0}),
}
#: Fields that only video and live have.
VIDEO_ONLY = {"video"}
PHOTO_FIELDS = [f for cls in (RemoveOptions, Background) for f in option_fields(cls) if f.name not in VIDEO_ONLY]
BACKGROUND_FIELDS = {f.name for f in option_fields(Background)}


def test_every_photo_option_has_an_example():
    assert set(EXAMPLES) == {f.name for f in PHOTO_FIELDS}


def test_flags_and_query_names_come_from_the_spec():
    from personseg.serve.options import MaskQuery, RemoveQuery

    remove = build_parser(["remove"]).parse_args(["remove", "x.png"])
    video = build_parser(["video"]).parse_args(["video", "a.mp4", "b.mp4"])
    for f in PHOTO_FIELDS:
        dest = f.spec.flag_for(f.name).lstrip("-").replace("-", "_")
        assert hasattr(remove, dest), f.name
        assert hasattr(video, dest) == (f.name not in ("crop", "crop_margin")), f.name
        query = f.spec.query_for(f.name)
        if query is not None:
            assert query in RemoveQuery.model_fields, f.name
            assert (query in MaskQuery.model_fields) == (f.name not in BACKGROUND_FIELDS | {"foreground"}), f.name
    assert hasattr(video, "bg_video") and not hasattr(remove, "bg_video")
    assert set(RemoveQuery.aliases) == {"bgcolor"}  # the earlier name, still accepted


def test_ui_offers_the_fields_with_a_ui_label():
    pytest.importorskip("gradio")
    from personseg.serve.ui import BACKGROUNDS, UI_FIELDS

    assert [f.name for _, f in UI_FIELDS] == [f.name for f in PHOTO_FIELDS if f.spec.ui is not None]
    assert [value for _, value in BACKGROUNDS] == ["none", "color", "image", "blur"]


def test_one_check_for_every_entry_point():
    threshold = next(f for f in option_fields(RemoveOptions) if f.name == "threshold")
    assert problem(threshold, 0.5) is None and problem(threshold, None) is None
    assert problem(threshold, 1.0) == "must be > 0 and < 1, got 1"
    assert problem(threshold, float("nan")).startswith("must be a finite number")
    with pytest.raises(OptionError, match="^threshold: must be > 0 and < 1, got 1$"):
        RemoveOptions(threshold=1.0)
    error = OptionError("{} makes a soft alpha: it cannot be combined with a hard mask ({})", "matting", "soft")
    assert error.named({"matting": "--matting", "soft": "--hard"}).startswith("--matting makes a soft alpha")
    with pytest.raises(OptionError, match="give one background, not color and blur"):
        Background(color="red", blur=3)
    assert Background(color="rgba(0, 0, 255, 0.5)").color == (0, 0, 255, 128)  # CSS, as browsers write it
    assert Background(color="rgba(0, 0, 255, 1)").color == (0, 0, 255, 255)
    assert Background(color="rgba(0, 0, 255, 128)").color == (0, 0, 255, 128)  # Pillow's 0..255 form
    # The Python API names its own keyword arguments, not the fields behind them.
    import personseg

    with pytest.raises(ValueError, match="^give one background, not bgcolor and bg_blur$"):
        personseg.remove_background(np.zeros((8, 8, 3), np.uint8), bgcolor="red", bg_blur=3)
    help_text = (
        next(a for a in build_parser(["remove"])._actions if a.dest == "command").choices["remove"].format_help()
    )
    assert "--hard      " in help_text and "hard 0/1 mask at the threshold instead of a soft alpha" in help_text


def test_cli_errors_name_the_flag(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(two_people()[0]).save(photo)
    assert main(["remove", str(photo), "-o", str(tmp_path / "out"), "--matting", "--hard"]) == 2
    assert "--matting makes a soft alpha: it cannot be combined with a hard mask (--hard)" in capsys.readouterr().err
    assert main(["remove", str(photo), "-o", str(tmp_path / "out"), "--edge-cutoff", "0.7"]) == 2
    assert capsys.readouterr().err == "personseg remove: --edge-cutoff: must be >= 0 and < 0.5, got 0.7\n"
    assert main(["video", "in.mp4", str(tmp_path / "out.mp4"), "--smooth", "1"]) == 2
    assert capsys.readouterr().err == "personseg video: --smooth: must be >= 0 and < 1, got 1\n"
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["remove", str(photo), "--bg-color", "red", "--bg-blur", "3"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["remove", "-", "-o", str(tmp_path / "out"), "--ray"]) == 2
    assert "--ray reads and writes files on the cluster" in capsys.readouterr().err
    assert main(["remove", str(photo), "-o", str(tmp_path / "out"), "--jobs", "-1"]) == 2
    assert not (tmp_path / "out").exists()  # a usage error leaves no folder behind


# --- each option reaches the output ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[np.ndarray, Path, Path]:
    """The test image (as an array and a PNG) and a background image file (its mirror image beside it)."""
    rgb, big, _ = two_people()
    rgb = rgb.copy()
    rows, cols = np.nonzero(big)
    cy, cx = int(rows.mean()), int(cols.mean())
    rgb[cy - 6 : cy + 6, cx - 6 : cx + 6] = rgb[-1, -1]  # a 12 x 12 hole of background colour
    folder = tmp_path_factory.mktemp("options")
    Image.fromarray(rgb).save(folder / "scene.png")
    ramp = np.dstack([np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))] * 3)
    Image.fromarray(ramp).save(folder / "background.png")
    Image.fromarray(ramp[:, ::-1]).save(folder / "background2.png")
    return rgb, folder / "scene.png", folder / "background.png"


def _split(values: dict, background_file: Path) -> tuple[dict, dict]:
    files = {"BACKGROUND": background_file, "BACKGROUND2": background_file.with_name("background2.png")}
    values = {k: (str(files[v]) if isinstance(v, str) and v in files else v) for k, v in values.items()}
    return (
        {k: v for k, v in values.items() if k not in BACKGROUND_FIELDS},
        {k: v for k, v in values.items() if k in BACKGROUND_FIELDS},
    )


def _python(model, scene, values: dict) -> np.ndarray:
    from personseg.inference.remove import segment

    rgb, _, background_file = scene
    remove, background = _split(values, background_file)
    seg = segment(rgb, model, RemoveOptions(**remove))
    new = Background(**background)
    return seg.replaced(new) if new.kind else seg.cutout()


def _cli(model_path, scene, values: dict, out: Path) -> np.ndarray:
    _, photo, background_file = scene
    args = ["remove", str(photo), "-o", str(out), "--model", str(model_path), "--outputs"]
    args.append("replaced" if set(values) & BACKGROUND_FIELDS else "cutout")
    fields = {f.name: f for f in PHOTO_FIELDS}
    remove, background = _split(values, background_file)
    for name, value in {**remove, **background}.items():
        flag = fields[name].spec.flag_for(name)
        if isinstance(value, bool):
            if value != fields[name].default:
                args.append(flag)  # store_true flags; --hard for soft=False
        else:
            args += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert main(args) == 0, args
    (written,) = out.glob("scene_*")
    return np.asarray(Image.open(written))


def _api(client, scene, values: dict) -> np.ndarray:
    _, photo, background_file = scene
    remove, background = _split(values, background_file)
    fields = {f.name: f for f in PHOTO_FIELDS}
    params = {fields[k].spec.query_for(k): v for k, v in remove.items()}
    files = {"file": ("scene.png", photo.read_bytes(), "image/png")}
    for name, value in background.items():
        if fields[name].spec.query_for(name) is None:  # the background image: the upload's second part
            files["background"] = ("bg.png", Path(value).read_bytes(), "image/png")
        else:
            params[fields[name].spec.query_for(name)] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    response = client.post("/v1/remove", params=params, files=files)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.fixture(scope="module")
def zoom_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model, asking for the second look at the people (so that ``zoom`` has something to turn off)."""
    from personseg.export import export_onnx
    from personseg.models.checkpoint import atomic_save, with_inference

    folder = tmp_path_factory.mktemp("zoom_model")
    atomic_save(with_inference(tiny_model.checkpoint, zoom=True), folder / "tiny-zoom.pt")
    return export_onnx(folder / "tiny-zoom.pt", folder / "tiny-zoom.onnx")


@pytest.fixture(scope="module")
def client(zoom_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personseg.serve.app import create_app

    with TestClient(create_app(str(zoom_model), threads=1)) as c:
        yield c


def _differ(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or not np.array_equal(a, b)


@pytest.mark.parametrize("field", list(EXAMPLES))
def test_each_option_changes_the_output_everywhere(field, zoom_model, scene, client, tmp_path):
    from personseg.inference.api import load_model

    base, changed = EXAMPLES[field]
    model = load_model(zoom_model, providers="cpu", threads=1)
    python = [_python(model, scene, v) for v in (base, changed)]
    assert _differ(*python), f"{field} did not change the Python API's output"
    cli = [_cli(zoom_model, scene, v, tmp_path / name) for v, name in ((base, "a"), (changed, "b"))]
    assert _differ(*cli), f"{field} did not change personseg remove's output"
    if field not in BACKGROUND_FIELDS:
        np.testing.assert_array_equal(cli[1], python[1])
    else:  # a replaced background is written as JPEG: the same picture, not the same bits
        assert cli[1].shape == python[1].shape and np.abs(cli[1].astype(int) - python[1]).mean() < 4
    if field != "matting":  # the API leaves matting out (slow, an extra); it is refused there
        api = [_api(client, scene, v) for v in (base, changed)]
        assert _differ(*api), f"{field} did not change /v1/remove's output"
        np.testing.assert_array_equal(api[1], python[1])
    else:
        response = client.post("/v1/remove", params={"matting": True}, content=scene[1].read_bytes())
        assert response.status_code == 400 and "matting" in response.text
