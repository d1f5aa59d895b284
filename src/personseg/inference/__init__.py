"""Inference on ONNX Runtime: model loading, image I/O, edge-aware refinement, compositing.

Nothing here imports torch; ``load_model`` imports it lazily only for a ``.pt`` training checkpoint.
"""
