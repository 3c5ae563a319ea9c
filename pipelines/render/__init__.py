"""A clip's files from a local source: the ffmpeg cut with burned captions and loudness
(`clip`), subject-aware reframing (`reframe*`), the end fade (`clip_end`), the poster frame
(`poster`), and all of them for one clip (`clip_files`). Used by the export stage and by
`process(local=True)`; imports only `pipelines.config` of the pipelines."""
