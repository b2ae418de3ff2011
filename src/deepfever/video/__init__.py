"""Videos: stream frames, follow faces across them, and turn each tracked face into rows over time.

Example:
    >>> from deepfever import Extractor
    >>> from deepfever.video import extract_video, plot_timeline
    >>> table = extract_video(Extractor(), "clip.mp4", fps=2, smoothing=0.5)  # doctest: +SKIP
    >>> plot_timeline(table, "timeline.png")  # doctest: +SKIP
"""
from deepfever.video.annotate import write_annotated_video
from deepfever.video.decode import Frame, VideoInfo, VideoReadError, iter_frames, probe_video
from deepfever.video.extract import VideoReport, extract_video, iter_frame_rows, iter_video_rows, video_columns
from deepfever.video.timeline import plot_timeline
from deepfever.video.tracking import FaceTracker, Track

__all__ = [
    "FaceTracker", "Frame", "Track", "VideoInfo", "VideoReadError", "VideoReport", "extract_video", "iter_frame_rows",
    "iter_frames", "iter_video_rows", "plot_timeline", "probe_video", "video_columns", "write_annotated_video",
]
