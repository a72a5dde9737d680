"""Rendered and thumbnail resources (PS3.18 10.4.1.1.3 and 10.4.1.1.4; 8.3.5.1.3).

``/rendered`` at study, series, instance and frame level, ``/thumbnail`` at the same levels,
as image/jpeg (default) or image/png. Query parameters: ``window=center,width[,function]``
(else the stored window), ``viewport=w,h`` (fit inside, aspect kept), ``quality`` (JPEG 1-100).

- instance ``/rendered``: frame 1; ``/frames/{list}/rendered``: one image per frame, a single
  image for one frame and multipart/related for several (or when Accept asks for multipart);
- study and series ``/rendered``: multipart/related, frame 1 of each instance with pixels;
- ``/thumbnail``: one small image (default viewport 128x128) of a representative frame: the
  middle instance of the series (of the first series with pixels for a study), the middle
  frame of a multi-frame instance, or the frame asked for.

Routes are sync functions: decoding and encoding run in the worker thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response

from radpacs.archive import Archive, InstanceFile
from radpacs.dicom.render import RenderOptions, render_frame
from radpacs.dicomweb.negotiation import RenderedChoice, choose_rendered
from radpacs.dicomweb.responses import multipart_response
from radpacs.dicomweb.wado import frame_numbers
from radpacs.errors import NotFound
from radpacs.http.deps import ArchiveDep

__all__ = ["THUMBNAIL_VIEWPORT", "router"]

router = APIRouter(tags=["WADO-RS rendered"])

THUMBNAIL_VIEWPORT = (128, 128)
_CACHE_CONTROL = "private, max-age=3600"


def _choice_and_options(request: Request, thumbnail: bool) -> tuple[RenderedChoice, RenderOptions]:
    query = request.query_params
    choice = choose_rendered(request.headers.get("accept"), query.get("accept"))
    options = RenderOptions.from_query(
        choice.media_type,
        window=query.get("window"),
        viewport=query.get("viewport"),
        quality=query.get("quality"),
        default_viewport=THUMBNAIL_VIEWPORT if thumbnail else None,
    )
    return choice, options


def _image(body: bytes, options: RenderOptions) -> Response:
    return Response(body, media_type=options.media_type, headers={"Cache-Control": _CACHE_CONTROL})


def _images(
    choice: RenderedChoice, options: RenderOptions, bodies: Iterator[bytes], single: bool
) -> Response:
    if single and not choice.multipart:
        return _image(next(bodies), options)
    return multipart_response(((options.media_type, [body]) for body in bodies), options.media_type)


def _with_pixels(files: list[InstanceFile]) -> list[InstanceFile]:
    kept = [file for file in files if file.number_of_frames is not None]
    if not kept:
        study = files[0].study_uid if files else "?"
        raise NotFound(f"no instance with pixel data in study {study}")
    return kept


def _render_many(
    request: Request, archive: Archive, study: str, series: str | None = None
) -> Response:
    _, options = _choice_and_options(request, thumbnail=False)
    files = _with_pixels(archive.instance_files(study, series))
    bodies = (render_frame(archive.read_file(file), 1, options) for file in files)
    return multipart_response(((options.media_type, [body]) for body in bodies), options.media_type)


def _thumbnail_of(
    request: Request, archive: Archive, files: list[InstanceFile], frame: int | None = None
) -> Response:
    _, options = _choice_and_options(request, thumbnail=True)
    candidates = _with_pixels(files)
    first_series = [file for file in candidates if file.series_uid == candidates[0].series_uid]
    file = first_series[len(first_series) // 2]
    dataset = archive.read_file(file)
    if frame is None:
        frame = int(dataset.get("NumberOfFrames") or 1) // 2 + 1
    return _image(render_frame(dataset, frame, options), options)


@router.get("/studies/{study}/rendered", summary="Retrieve a rendered study")
def rendered_study(study: str, request: Request, archive: ArchiveDep) -> Response:
    return _render_many(request, archive, study)


@router.get("/studies/{study}/series/{series}/rendered", summary="Retrieve a rendered series")
def rendered_series(study: str, series: str, request: Request, archive: ArchiveDep) -> Response:
    return _render_many(request, archive, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    summary="Retrieve a rendered instance",
)
def rendered_instance(
    study: str, series: str, instance: str, request: Request, archive: ArchiveDep
) -> Response:
    choice, options = _choice_and_options(request, thumbnail=False)
    [file] = archive.instance_files(study, series, instance)
    body = render_frame(archive.read_file(file), 1, options)
    return _images(choice, options, iter([body]), single=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
    summary="Retrieve rendered frames",
)
def rendered_frames(
    study: str, series: str, instance: str, frames: str, request: Request, archive: ArchiveDep
) -> Response:
    numbers = frame_numbers(frames)
    choice, options = _choice_and_options(request, thumbnail=False)
    [file] = archive.instance_files(study, series, instance)
    dataset = archive.read_file(file)
    bodies = [render_frame(dataset, number, options) for number in numbers]
    return _images(choice, options, iter(bodies), single=len(bodies) == 1)


@router.get("/studies/{study}/thumbnail", summary="Retrieve a study thumbnail")
def thumbnail_study(study: str, request: Request, archive: ArchiveDep) -> Response:
    return _thumbnail_of(request, archive, archive.instance_files(study))


@router.get("/studies/{study}/series/{series}/thumbnail", summary="Retrieve a series thumbnail")
def thumbnail_series(study: str, series: str, request: Request, archive: ArchiveDep) -> Response:
    return _thumbnail_of(request, archive, archive.instance_files(study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
    summary="Retrieve an instance thumbnail",
)
def thumbnail_instance(
    study: str, series: str, instance: str, request: Request, archive: ArchiveDep
) -> Response:
    return _thumbnail_of(request, archive, archive.instance_files(study, series, instance))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
    summary="Retrieve a frame thumbnail",
)
def thumbnail_frame(
    study: str, series: str, instance: str, frames: str, request: Request, archive: ArchiveDep
) -> Response:
    numbers = frame_numbers(frames)
    files = archive.instance_files(study, series, instance)
    return _thumbnail_of(request, archive, files, frame=numbers[0])
