"""Media I/O: probe files, decode audio for ASR, sample frames for visual features.

Reading goes through PyAV (FFmpeg libraries in-process); subprocess work (cut, reframe, burn
captions) uses the binary from `ffmpeg_exe()`. Bad inputs raise the typed errors below, all
subclasses of `clipforge.errors.MediaError`.
"""

from clipforge.media.audio import decode_audio, iter_audio
from clipforge.media.errors import CorruptMedia, EmptyMedia, NoAudioStream, NoVideoStream
from clipforge.media.ffmpeg import ffmpeg_exe
from clipforge.media.frames import Frame, sample_frames
from clipforge.media.probe import MediaInfo, probe, require_clip_source

__all__ = [
    "CorruptMedia",
    "EmptyMedia",
    "Frame",
    "MediaInfo",
    "NoAudioStream",
    "NoVideoStream",
    "decode_audio",
    "ffmpeg_exe",
    "iter_audio",
    "probe",
    "require_clip_source",
    "sample_frames",
]
