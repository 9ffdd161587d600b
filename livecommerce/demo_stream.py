"""The demo's video: a short HLS test clip (colour bars, a clock and a tone) made once by ffmpeg
into the data dir and served by the app; the watch page loops it, so a newcomer sees a moving
picture without a long-running encoder or a streaming provider."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from livecommerce.embedded_redis import die_with_parent

log = logging.getLogger("livecommerce")

SEGMENT_S = 2
SEGMENTS = 10
STREAM_DIR = "demo-stream"
PLAYLIST = "index.m3u8"
PLAYLIST_PATH = f"/{STREAM_DIR}/{PLAYLIST}"


def stream_dir(data_dir: Path) -> Path:
    return data_dir / STREAM_DIR


def file_names() -> list[str]:
    """Every file of the stream: the only names the stream route serves."""
    return [PLAYLIST, *(f"seg{index}.ts" for index in range(SEGMENTS))]


def is_ready(data_dir: Path) -> bool:
    directory = stream_dir(data_dir)
    return all((directory / name).is_file() for name in file_names())


async def generate(data_dir: Path) -> bool:
    """Render the clip into ``data_dir/demo-stream`` unless it is there; False without ffmpeg."""
    if is_ready(data_dir):
        return True
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    directory = stream_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    seconds = SEGMENT_S * SEGMENTS
    gop = 25 * SEGMENT_S
    process = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-profile:v", "main",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_list_size", "0",
        "-hls_segment_filename", str(directory / "seg%d.ts"),
        str(directory / PLAYLIST),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        _, stderr = await process.communicate()
    except BaseException:  # the demo stopped while ffmpeg ran: leave nothing behind
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
        raise
    if process.returncode != 0 or not is_ready(data_dir):
        log.warning("ffmpeg could not make the demo stream: %s", stderr.decode(errors="replace"))
        return False
    return True
