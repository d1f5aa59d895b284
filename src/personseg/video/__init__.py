"""Video: remove or replace the background of every frame, steadily, keeping the sound.

    from personseg.video import Background, VideoOptions, process_video
    process_video("talk.mp4", "talk_cutout.webm")                       # VP9 with alpha
    process_video("talk.mp4", "talk_beach.mp4", options=VideoOptions(background=Background(image="beach.jpg")))

Needs PyAV (``pip install 'personseg[video]'``), imported only when a video is opened.
"""

from __future__ import annotations

from personseg.inference.options import Background
from personseg.video.pipeline import DEFAULT_BACKGROUND, FrameProcessor, VideoOptions, VideoResult, process_video
from personseg.video.reader import VideoError, VideoInfo, VideoReader
from personseg.video.stabilize import FlowStabilizer, Stabilizer
from personseg.video.writer import OUTPUT_KINDS, VideoWriter, kind_from_path

__all__ = [
    "Background",
    "DEFAULT_BACKGROUND",
    "FrameProcessor",
    "FlowStabilizer",
    "OUTPUT_KINDS",
    "Stabilizer",
    "VideoError",
    "VideoInfo",
    "VideoOptions",
    "VideoReader",
    "VideoResult",
    "VideoWriter",
    "kind_from_path",
    "process_video",
]
