"""The web UI (Gradio): a photo in, original | mask | cut-out out, with a new background if asked.

``build_ui()`` returns the Blocks; ``mount_ui(app, ...)`` puts them at ``/ui`` of the API app (``personseg
serve``), and ``personseg ui`` launches them alone; both pass :func:`page_options` (theme, CSS, no SSR). The UI
never fetches URLs and makes no third-party requests (system fonts, no analytics), so it works offline.

A photo is processed as soon as it arrives (upload, webcam, clipboard or a sample); the button runs it again
after the options change. The cut-out is shown over a checkerboard, so what is transparent can be seen.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from personseg.inference.io import DEFAULT_MAX_PIXELS, encode_image, read_image
from personseg.inference.remove import RemoveOptions, segment
from personseg.inference.subject import SUBJECT_MODES
from personseg.serve.pool import ModelPool

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [str(ASSETS / name) for name in ("astronaut.png", "grace_hopper.jpg")]
BACKGROUNDS = ("transparent", "colour", "image", "blur")
#: The "People" choice: (label, ``RemoveOptions.subject``) for each mode the library has.
PEOPLE = tuple(({"main": "main subject only"}.get(mode, mode), mode) for mode in SUBJECT_MODES)
UI_PATH = "/ui"

#: The result over a grey-and-white checkerboard: transparent pixels show it, opaque ones hide it.
CSS = """
#result-image img {
  background: repeating-conic-gradient(#c8c8c8 0 25%, #ffffff 0 50%) 0 0 / 16px 16px;
}
"""


def parse_ui_color(value: str | None) -> tuple[int, int, int]:
    """Gradio's colour picker gives ``#rrggbb``, ``#rgb`` or ``rgb(a)(r, g, b[, a])`` depending on the version."""
    value = (value or "").strip()
    if re.fullmatch(r"#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", value):
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
    if re.fullmatch(r"#[0-9a-fA-F]{3}", value):
        return tuple(int(c * 2, 16) for c in value[1:])
    numbers = re.findall(r"[\d.]+", value)
    if value.startswith("rgb") and len(numbers) >= 3:
        return tuple(min(255, round(float(n))) for n in numbers[:3])
    raise ValueError(f"not a colour: {value!r}")


class UiRunner:
    """What a new photo or a click does: segment, compose, write the PNG to download."""

    def __init__(self, models: ModelPool, max_pixels: int | None) -> None:
        self.models = models
        self.max_pixels = max_pixels
        self.out_dir = Path(tempfile.mkdtemp(prefix="personseg-ui-"))

    def __call__(
        self,
        image: np.ndarray | None,
        background: str,
        color: str | None,
        bg_image: np.ndarray | None,
        blur: float,
        threshold: float,
        soft: bool,
        model_name: str,
        subject: str = "all",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Original, mask, result and the path of the result's PNG."""
        import gradio as gr

        if image is None:
            raise gr.Error("Upload a photo (or take one with the webcam) first.")
        try:
            model = self.models.get(model_name)
            options = RemoveOptions(soft=soft, threshold=threshold, subject=subject)
            seg = segment(read_image(image).rgb, model, options, max_pixels=self.max_pixels, name="upload")
            if background == "colour":
                result = seg.replaced(bgcolor=parse_ui_color(color))
            elif background == "image":
                if bg_image is None:
                    raise ValueError("choose a background image (in the Background panel), or another background")
                result = seg.replaced(bg_image=read_image(bg_image).rgb)
            elif background == "blur":
                result = seg.replaced(bg_blur=float(blur))
            else:
                result = seg.cutout()
        except (ValueError, OSError) as exc:
            raise gr.Error(" ".join(str(exc).split())) from None
        self._forget_old_results()
        fd, path = tempfile.mkstemp(dir=self.out_dir, prefix="personseg-", suffix=".png")
        with os.fdopen(fd, "wb") as f:
            f.write(encode_image(result, ".png"))
        return seg.image, seg.mask(), result, path

    def on_click(self, *inputs: Any) -> tuple[Any, ...]:
        """The button: run, and enable the download button on the new PNG."""
        import gradio as gr

        original, mask, result, path = self(*inputs)
        return original, mask, result, gr.DownloadButton(value=path, interactive=True)

    def on_new_photo(self, image: np.ndarray | None, *options: Any) -> tuple[Any, ...]:
        """A photo arrived: run at once. The photo was removed: clear the results (no error)."""
        import gradio as gr

        if image is None:
            return None, None, None, gr.DownloadButton(value=None, interactive=False)
        return self.on_click(image, *options)

    def _forget_old_results(self, max_age_s: float = 600.0) -> None:
        """Delete result PNGs older than ``max_age_s`` (Gradio has copied them to its own cache by then)."""
        now = time.time()
        for old in self.out_dir.glob("personseg-*.png"):
            try:
                if now - old.stat().st_mtime > max_age_s:
                    old.unlink()
            except OSError:  # another request removed it first
                pass


def build_ui(
    model: Any = None,
    *,
    models: ModelPool | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    providers: Any = None,
    threads: int | None = None,
    workers: int = 2,
    queue_size: int = 16,
) -> Any:
    """The Gradio Blocks. ``models``: share the API's loaded models; otherwise ``model`` is loaded here."""
    import gradio as gr

    models = models or ModelPool(model, providers, threads)
    run = UiRunner(models, max_pixels)
    names = models.names()
    threshold = float(models.get(None).threshold)
    # delete_cache: Gradio's copies of uploads and results older than an hour go, checked hourly.
    title = "personseg: remove the background"
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(
            "## personseg\nDrop a photo (or use the webcam): the people stay, the background goes. "
            "The result appears on its own (a checkerboard shows where it is transparent); change the options "
            "below and press *Run again* to redo it."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label="Photo", sources=["upload", "webcam", "clipboard"], type="numpy", elem_id="input-image"
                )
                subject = gr.Radio(list(PEOPLE), value="all", label="People", elem_id="people")
                with gr.Accordion("Background: transparent, colour, image or blur", open=False, elem_id="background"):
                    background = gr.Radio(list(BACKGROUNDS), value="transparent", label="New background")
                    color = gr.ColorPicker(value="#ffffff", label="Colour (for 'colour')")
                    bg_image = gr.Image(label="Image (for 'image')", sources=["upload"], type="numpy")
                    blur = gr.Slider(1, 60, value=15, step=1, label="Blur in pixels (for 'blur')")
                with gr.Accordion("Mask: model, threshold, edges", open=False, elem_id="mask-options"):
                    model_choice = gr.Dropdown(names, value=models.default_name, label="Model")
                    threshold_slider = gr.Slider(
                        0.05, 0.95, value=threshold, step=0.05, label="Threshold (person/background cut, hard edges)"
                    )
                    soft = gr.Checkbox(value=True, label="Soft edges (hair, anti-aliasing)")
                button = gr.Button("Run again with these options", variant="primary", elem_id="run-button")
            with gr.Column(scale=2):
                with gr.Row():
                    original = gr.Image(label="Original", interactive=False, format="png")
                    mask = gr.Image(label="Mask (white: person)", interactive=False, format="png")
                    result = gr.Image(label="Result", interactive=False, format="png", elem_id="result-image")
                download = gr.DownloadButton(
                    "Download PNG", interactive=False, variant="primary", elem_id="download-png"
                )
        inputs = [image, background, color, bg_image, blur, threshold_slider, soft, model_choice, subject]
        outputs = [original, mask, result, download]
        # change, not upload: the webcam, the clipboard and the samples set the photo too.
        image.change(run.on_new_photo, inputs=inputs, outputs=outputs, api_visibility="private")
        button.click(run.on_click, inputs=inputs, outputs=outputs, api_name="remove")
        gr.Examples(examples=[[p] for p in EXAMPLES], inputs=[image], label="Sample photos (public domain)")
    blocks.queue(default_concurrency_limit=workers, max_size=queue_size)
    return blocks


def theme() -> Any:
    """Gradio's default theme with system fonts: no request to a font CDN (offline, and no tracking)."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def page_options() -> dict[str, Any]:
    """What ``launch`` and ``mount_gradio_app`` both need: theme and CSS, no SSR (no Node), the samples allowed."""
    return {
        "theme": theme(),
        "css": CSS,
        "ssr_mode": False,
        "allowed_paths": [str(ASSETS)],
        "footer_links": [],
    }


def mount_ui(
    app: Any,
    models: ModelPool,
    *,
    max_pixels: int | None,
    workers: int,
    queue_size: int,
    max_upload_bytes: int,
    path: str = UI_PATH,
) -> Any:
    """Mount :func:`build_ui` at ``path`` of the FastAPI ``app`` (sharing its loaded models)."""
    import gradio as gr

    blocks = build_ui(models=models, max_pixels=max_pixels, workers=workers, queue_size=queue_size)
    return gr.mount_gradio_app(app, blocks, path=path, max_file_size=max_upload_bytes, **page_options())
