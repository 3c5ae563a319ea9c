"""Media I/O: probe files, decode audio, sample frames, and every ffmpeg process.

Reading goes through PyAV (FFmpeg libraries in-process); subprocess work (cut, reframe, burn
captions, the audio track, spans of audio) goes through `run_ffmpeg` and its streaming kin in
`clipforge.media.ffmpeg`, the only place ffmpeg is started. Bad inputs raise the typed errors
below, all subclasses of `clipforge.errors.MediaError`; a stuck ffmpeg raises `ToolTimeout`.
"""

from clipforge.media.audio import decode_audio, decode_span, iter_audio
from clipforge.media.errors import (
    CorruptMedia,
    EmptyMedia,
    NoAudioStream,
    NoVideoStream,
    ToolTimeout,
)
from clipforge.media.ffmpeg import ffmpeg_exe, ffmpeg_pipe, run_ffmpeg
from clipforge.media.frames import Frame, sample_frames
from clipforge.media.probe import MediaInfo, probe, require_clip_source

__all__ = [
    "CorruptMedia",
    "EmptyMedia",
    "Frame",
    "MediaInfo",
    "NoAudioStream",
    "NoVideoStream",
    "ToolTimeout",
    "decode_audio",
    "decode_span",
    "ffmpeg_exe",
    "ffmpeg_pipe",
    "iter_audio",
    "probe",
    "require_clip_source",
    "run_ffmpeg",
    "sample_frames",
]
