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
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from personseg.inference.io import DEFAULT_MAX_PIXELS, encode_image, read_image
from personseg.inference.options import Background, OptionField, RemoveOptions, option_fields
from personseg.inference.remove import segment
from personseg.serve.pool import ModelPool

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [str(ASSETS / name) for name in ("astronaut.png", "grace_hopper.jpg")]
#: The options the page offers, as (options class, field), from the fields whose Spec has a ``ui`` label.
UI_FIELDS = [(cls, f) for cls in (RemoveOptions, Background) for f in option_fields(cls) if f.spec.ui is not None]
#: The "New background" choice: (label, Background field) for each background the page offers.
BACKGROUNDS = (("transparent", "none"),) + tuple((f.spec.ui, f.name) for cls, f in UI_FIELDS if cls is Background)
UI_PATH = "/ui"

#: The result over a grey-and-white checkerboard: transparent pixels show it, opaque ones hide it.
CSS = """
#result-image img {
  background: repeating-conic-gradient(#c8c8c8 0 25%, #ffffff 0 50%) 0 0 / 16px 16px;
}
"""


def _control(gr: Any, field: OptionField, value: Any = None) -> Any:
    """The Gradio component for one option field (its label, range and choices from its Spec)."""
    spec = field.spec
    # A background's sigma has no default (None: not chosen); the slider starts at what the bare CLI flag means.
    value = (field.default if field.default is not None else spec.const) if value is None else value
    if spec.ui_widget == "color":
        return gr.ColorPicker(value=value or "#ffffff", label=f"Colour (for '{spec.ui}')")
    if spec.ui_widget == "image":
        return gr.Image(label=f"Image (for '{spec.ui}')", sources=["upload"], type="numpy")
    if field.kind is bool:
        return gr.Checkbox(value=value, label=spec.ui)
    if spec.choices is not None:
        labels = spec.ui_labels or {}
        return gr.Radio([(labels.get(c, c), c) for c in spec.choices], value=value, label=spec.ui)
    if spec.ui_range is not None:
        low, high, step = spec.ui_range
        label = spec.ui if field.spec.ui_panel != "background" else f"{spec.ui.capitalize()} in pixels"
        return gr.Slider(low, high, value=value if value is not None else (low + high) / 2, step=step, label=label)
    raise TypeError(f"no UI control for option {field.name}")


class UiRunner:
    """What a new photo or a click does: segment, compose, write the PNG to download.

    Gradio passes the page's inputs in order: the photo, the model, the background choice, then one value per
    :data:`UI_FIELDS`; :meth:`run` takes the same by name.
    """

    def __init__(self, models: ModelPool, max_pixels: int | None) -> None:
        self.models = models
        self.max_pixels = max_pixels
        self.out_dir = Path(tempfile.mkdtemp(prefix="personseg-ui-"))

    def run(
        self, photo: np.ndarray | None, model: str | None = None, background: str = "none", **values: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Original, mask, result and the path of the result's PNG. ``background``: ``none`` or a Background
        field; ``values``: RemoveOptions and Background fields (only the chosen background's is used)."""
        import gradio as gr

        if photo is None:
            raise gr.Error("Upload a photo (or take one with the webcam) first.")
        mask_fields = {f.name for cls, f in UI_FIELDS if cls is RemoveOptions}
        try:
            options = RemoveOptions(**{k: v for k, v in values.items() if k in mask_fields})
            chosen = values.get(background) if background != "none" else None
            if background != "none" and chosen is None:
                raise ValueError(f"choose a background {background} (in the Background panel), or another background")
            new = Background(**({background: chosen} if chosen is not None else {}))
            model = self.models.get(model)
            seg = segment(read_image(photo).rgb, model, options, max_pixels=self.max_pixels, name="upload")
            result = seg.replaced(new) if new.kind is not None else seg.cutout()
        except (ValueError, OSError) as exc:
            raise gr.Error(" ".join(str(exc).split())) from None
        self._forget_old_results()
        fd, path = tempfile.mkstemp(dir=self.out_dir, prefix="personseg-", suffix=".png")
        with os.fdopen(fd, "wb") as f:
            f.write(encode_image(result, ".png"))
        return seg.image, seg.mask(), result, path

    __call__ = run

    def _by_name(self, inputs: tuple[Any, ...]) -> dict[str, Any]:
        photo, model, background, *values = inputs
        named = {f.name: v for (_, f), v in zip(UI_FIELDS, values, strict=True)}
        return {"photo": photo, "model": model, "background": background, **named}

    def on_click(self, *inputs: Any) -> tuple[Any, ...]:
        """The button: run, and enable the download button on the new PNG."""
        import gradio as gr

        original, mask, result, path = self.run(**self._by_name(inputs))
        return original, mask, result, gr.DownloadButton(value=path, interactive=True)

    def on_new_photo(self, *inputs: Any) -> tuple[Any, ...]:
        """A photo arrived: run at once. The photo was removed: clear the results (no error)."""
        import gradio as gr

        if inputs[0] is None:
            return None, None, None, gr.DownloadButton(value=None, interactive=False)
        return self.on_click(*inputs)

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
                controls = {}
                for _, field in UI_FIELDS:
                    if field.spec.ui_panel == "main":
                        controls[field.name] = _control(gr, field)
                with gr.Accordion("Background: transparent, colour, image or blur", open=False, elem_id="background"):
                    background = gr.Radio(list(BACKGROUNDS), value="none", label="New background")
                    for _, field in UI_FIELDS:
                        if field.spec.ui_panel == "background":
                            controls[field.name] = _control(gr, field)
                with gr.Accordion("Mask: model, threshold, edges", open=False, elem_id="mask-options"):
                    model_choice = gr.Dropdown(names, value=models.default_name, label="Model")
                    for _, field in UI_FIELDS:
                        if field.spec.ui_panel == "mask":
                            start = threshold if field.name == "threshold" else None  # the model's own
                            controls[field.name] = _control(gr, field, start)
                button = gr.Button("Run again with these options", variant="primary", elem_id="run-button")
            with gr.Column(scale=2):
                with gr.Row():
                    original = gr.Image(label="Original", interactive=False, format="png")
                    mask = gr.Image(label="Mask (white: person)", interactive=False, format="png")
                    result = gr.Image(label="Result", interactive=False, format="png", elem_id="result-image")
                download = gr.DownloadButton(
                    "Download PNG", interactive=False, variant="primary", elem_id="download-png"
                )
        inputs = [image, model_choice, background] + [controls[f.name] for _, f in UI_FIELDS]
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
