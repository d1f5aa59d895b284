"""The web UI's handlers without a browser: run on a new photo, clear on removal, the main-subject choice.

The page itself (run on upload, checkerboard, folded panel, download) is tested in a real Chromium in
tests/test_ui_browser.py.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from personseg.serve.pool import ModelPool  # noqa: E402
from personseg.serve.ui import CSS, UI_FIELDS, UiRunner, page_options  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "src" / "personseg" / "assets"
#: model, background choice, then one value per UI_FIELDS (the page's inputs after the photo, as Gradio passes them)
DEFAULTS = {"model": "personseg-fast", "background": "none", "soft": True, "threshold": 0.5, "color": "#ffffff"}
DEFAULTS |= {"image": None, "blur": 15.0}


def page_inputs(photo, subject="all", **changes):
    values = DEFAULTS | {"subject": subject} | changes
    return (photo, values["model"], values["background"], *(values[f.name] for _, f in UI_FIELDS))


@pytest.fixture(scope="module")
def runner() -> UiRunner:
    return UiRunner(ModelPool("personseg-fast", None, 1), max_pixels=None)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(ASSETS / "astronaut.png").convert("RGB").resize((160, 128), Image.BILINEAR))


def test_a_new_photo_runs_at_once_and_enables_the_download(runner, photo) -> None:
    original, mask, result, download = runner.on_new_photo(*page_inputs(photo))
    assert original.shape == (128, 160, 3) and mask.shape == (128, 160) and result.shape == (128, 160, 4)
    assert isinstance(download, gr.DownloadButton) and download.interactive
    assert Image.open(download.value["path"]).mode == "RGBA"


def test_removing_the_photo_clears_the_results_without_an_error(runner) -> None:
    original, mask, result, download = runner.on_new_photo(*page_inputs(None))
    assert (original, mask, result, download.value, download.interactive) == (None, None, None, None, False)
    with pytest.raises(gr.Error, match="Upload a photo"):
        runner.on_click(*page_inputs(None))


def test_main_subject_only_keeps_a_subset_of_everyone(runner, photo) -> None:
    assert {f.name for _, f in UI_FIELDS} == {"subject", "soft", "threshold", "color", "image", "blur"}
    everyone = runner(photo, model="personseg-fast", subject="all")[1]
    main = runner(photo, model="personseg-fast", subject="main")[1]
    assert main.max() == 255 and (main <= everyone).all()


def test_the_page_shows_the_result_over_a_checkerboard() -> None:
    assert "#result-image img" in CSS and "conic-gradient" in CSS
    assert page_options()["css"] == CSS and page_options()["ssr_mode"] is False


def test_controls_start_at_the_options_defaults(runner) -> None:
    from personseg.serve.ui import build_ui

    blocks = build_ui(models=runner.models)
    values = {c.label: c.value for c in blocks.blocks.values() if isinstance(c, gr.Slider | gr.Radio | gr.Checkbox)}
    assert values["Blur in pixels"] == 15  # what --bg-blur alone means
    assert values["People"] == "all" and values["New background"] == "none"
    assert values["Soft edges (hair, anti-aliasing)"] is True
    assert values["Threshold (person/background cut, hard edges)"] == runner.models.get(None).threshold
