"""Location of the ffmpeg binary used for subprocess work (cutting, reframing, burning captions).

The binary comes from the `imageio-ffmpeg` wheel so no system ffmpeg is needed; it honours
`IMAGEIO_FFMPEG_EXE` for deployments that ship their own build.
"""

from __future__ import annotations

from functools import lru_cache

import imageio_ffmpeg


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg executable (looked up once per process)."""
    return str(imageio_ffmpeg.get_ffmpeg_exe())
