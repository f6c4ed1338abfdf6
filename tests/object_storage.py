"""A real S3 API on loopback for tests: moto in server mode, in its own process, and an ``aws`` connection to it.

``MotoS3`` starts ``python -m moto.server`` on a free port of 127.0.0.1 and stops it (SIGTERM, then
SIGKILL) on ``stop()``; ``connection_json()`` is an Airflow ``aws`` connection whose ``endpoint_url``
points at it, for ``AIRFLOW_CONN_<ID>``; ``client()`` is a plain boto3 client to check what is stored::

    with MotoS3() as s3:
        s3.create_bucket("voices")
        os.environ["AIRFLOW_CONN_CAMB_S3"] = s3.connection_json()
        ...  # TextToVoiceResultOperator(..., destination="s3://voices/run", destination_conn_id="camb_s3")
        assert s3.keys("voices") == [...]

Credentials are fixed dummies: moto accepts any. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.loopback_only import free_port
from tests.processes import end_process

ACCESS_KEY = "camb-test-access-key"
SECRET_KEY = "camb-test-secret-key"
REGION = "us-east-1"


class MotoS3:
    """moto's S3 server on loopback.

    :param log_path: Where the server's output goes (default: discarded).
    :param start_timeout: Seconds to wait for it to answer.
    """

    def __init__(self, log_path: Path | None = None, start_timeout: float = 60.0) -> None:
        self.port = 0
        self.endpoint_url = ""
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def argv(self) -> list[str]:
        """The command that runs the server (chooses the port on first call)."""
        if not self.port:
            self.port = free_port()
            self.endpoint_url = f"http://127.0.0.1:{self.port}"
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def start(self) -> MotoS3:
        """Start the server in its own process group and wait until it answers."""
        argv = self.argv()
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if self.log_path:
                output.close()  # type: ignore[union-attr]
        self.wait_until_ready()
        return self

    def wait_until_ready(self) -> None:
        """Wait until the server (started here or by someone else from ``argv()``) answers."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                requests.get(f"{self.endpoint_url}/moto-api/data.json", timeout=2).raise_for_status()
                return
            except requests.RequestException:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"moto exited with {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not answer on {self.endpoint_url}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            end_process(self.process)

    def connection_json(self) -> str:
        """An Airflow ``aws`` connection to this server (for ``AIRFLOW_CONN_<ID>``)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            }
        )

    def client(self) -> Any:
        """A boto3 S3 client to this server."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                region_name=REGION,
            )
        return self._client

    def create_bucket(self, bucket: str) -> str:
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def unfinished_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=bucket)
        return sorted(upload["Key"] for upload in found.get("Uploads", []))

    def read(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def sha256(self, bucket: str, key: str) -> str:
        return hashlib.sha256(self.read(bucket, key)).hexdigest()
