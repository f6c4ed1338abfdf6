"""The FastAPI app of the "CAMB files" view, mounted on the API server under ``/camb``.

Routes (``{map_index}`` is ``-1`` for a task that is not mapped; the UI's unfilled ``{MAP_INDEX}``
token means the same)::

    GET /camb/files/{dag_id}/{run_id}/{task_id}/{map_index}                  the page
    GET /camb/files/{dag_id}/{run_id}/{task_id}/{map_index}/{number}/{name}  one file, with Range

A mounted app inherits no authentication, so every route depends on Airflow's own: a logged-in user
(the UI's token cookie or a bearer token; none gives 401) who may read that DAG's task instances
(else 403), asked of the configured auth manager. A file is served only when the task instance is one
of a CAMB result operator (its serialized task carries ``CambFilesLink``), its XCom lists the file at
``number`` under that ``name``, the path is one our operators write (``_listing.servable_path``) and
its size is the XCom's. Anything else is the same bare 404, whether or not a file exists there. Files
stream from where they were written, through the connection named in their path; the browser gets
bytes only, never a storage link, credential or CAMB key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from typing import IO, Any
from uuid import UUID

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.providers.common.compat.sdk import ObjectStoragePath
from airflow.utils.session import create_session
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from airflow_provider_camb.links.camb_files import CambFilesLink
from airflow_provider_camb.plugins._listing import ListedFile, files_of
from airflow_provider_camb.plugins._page import files_page, new_nonce, security_headers
from airflow_provider_camb.plugins._ranges import RangeNotSatisfiable, requested_range

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_UNFILLED_MAP_INDEX = "{MAP_INDEX}"
_READ_TASK_INSTANCES = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]

router = APIRouter()


def create_app() -> FastAPI:
    """The app the plugin mounts; no OpenAPI pages (the routes are for the view only)."""
    app = FastAPI(title="CAMB.AI files", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    return app


def _not_found() -> HTTPException:
    return HTTPException(404, "Not Found")  # the same words for every refusal: nothing about what exists


@router.get("/files/{dag_id}/{run_id}/{task_id}/{map_index}", dependencies=_READ_TASK_INSTANCES)
def files_view(dag_id: str, run_id: str, task_id: str, map_index: str, session: SessionDep) -> HTMLResponse:
    """The page of one task instance: every file its XCom lists, each with a player."""
    index = _map_index(map_index)
    title = f"{dag_id} / {run_id} / {task_id}" + ("" if index < 0 else f" [{index}]")
    nonce = new_nonce()
    files = _files(session, dag_id, run_id, task_id, index)
    shown = [file for file in files or [] if file.servable]
    note: str | None = None
    if files is None:
        note = "This task is not a CAMB result operator, or has not run: it wrote no CAMB files."
    elif not shown:
        note = "This task instance lists no files (yet): it has not finished, or wrote none."
    page = files_page(nonce, title, shown, map_index, note)
    return HTMLResponse(page, headers=security_headers(nonce))


@router.api_route(
    "/files/{dag_id}/{run_id}/{task_id}/{map_index}/{number}/{name}",
    methods=["GET", "HEAD"],
    dependencies=_READ_TASK_INSTANCES,
)
def file_bytes(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    number: str,
    name: str,
    request: Request,
    session: SessionDep,
) -> Response:
    """One listed file's bytes, whole or the one range asked for."""
    if not number.isdigit():
        raise _not_found()
    files = _files(session, dag_id, run_id, task_id, _map_index(map_index)) or []
    chosen = next((file for file in files if file.number == int(number)), None)
    if chosen is None or chosen.name != name or not chosen.servable:
        raise _not_found()
    source, opened = _open(chosen)
    try:
        size = int(source.stat().st_size)
        if size != chosen.bytes:
            log.warning("Not serving %s: it has %d bytes, the task's XCom says %d.", chosen.name, size, chosen.bytes)
            raise _not_found()
        wanted = requested_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        opened.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{chosen.bytes}"})
    except BaseException:
        opened.close()
        raise
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{chosen.name}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=300",
        "ETag": f'"{chosen.sha256}"',
    }
    first, length, status = 0, size, 200
    if wanted is not None:
        first, length, status = wanted.first, wanted.length, 206
        headers["Content-Range"] = wanted.content_range
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        opened.close()
        return Response(status_code=status, headers=headers, media_type=chosen.media_type)
    return StreamingResponse(_chunks(opened, first, length), status, headers, media_type=chosen.media_type)


def _map_index(text: str) -> int:
    if text == _UNFILLED_MAP_INDEX:
        return -1  # the UI leaves the token as it is for a task that is not mapped
    try:
        index = int(text)
    except ValueError:
        raise _not_found() from None
    if index < -1:
        raise _not_found()
    return index


def _files(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[ListedFile] | None:
    """The files a CAMB result task instance lists in its XCom; ``None`` when it is no such instance."""
    version = session.scalar(
        select(TaskInstance.dag_version_id).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    if version is None or not _offers_camb_files(version, dag_id, task_id):
        return None
    row = session.scalar(
        select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key == "return_value",
        )
    )
    return [] if row is None else files_of(XComModel.deserialize_value(row))


@lru_cache(maxsize=4096)
def _offers_camb_files(dag_version_id: UUID, dag_id: str, task_id: str) -> bool:
    """Whether that DAG version's task carries ``CambFilesLink``: a CAMB result operator (or a subclass).

    Read from the serialized DAG, which only DAG files write (unlike an XCom, which the REST API can edit).
    """
    from airflow.models.dag_version import DagVersion

    with create_session() as session:
        version = session.get(DagVersion, dag_version_id)
        serialized = None if version is None else version.serialized_dag
        if serialized is None or serialized.dag_id != dag_id:
            return False
        task = serialized.dag.task_dict.get(task_id)
    key = CambFilesLink().xcom_key
    return task is not None and any(getattr(link, "xcom_key", None) == key for link in task.operator_extra_links)


def _open(file: ListedFile) -> tuple[ObjectStoragePath, IO[bytes]]:
    """The file's storage path (its connection from the path itself) and the file opened for reading."""
    try:
        source = ObjectStoragePath(file.path)
        opened: Any = source.open("rb")  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TypeError, ImportError) as error:
        log.warning("Cannot open %s for the CAMB files view: %s", file.name, type(error).__name__)
        raise _not_found() from None
    return source, opened


def _chunks(opened: IO[bytes], first: int, length: int) -> Iterator[bytes]:
    with opened:
        opened.seek(first)
        left = length
        while left > 0:
            chunk = opened.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
