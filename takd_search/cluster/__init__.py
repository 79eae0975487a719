"""A search as a Ray job on a cluster: `takd-search submit / status / stop`.

    client.py   the job server's address, a JobSubmissionClient that sends the token,
                auth and connection failures as one line
    storage.py  --storage: a shared path or a pyarrow URI; copying run folders in and out
    jobs.py     submit, follow, status, stop (on the user's machine)
    driver.py   the job's driver on the head node (`python -m takd_search.cluster job`)

See docs/cluster.md. The token itself is read by takd_search.ray_token.
"""

from takd_search.cluster.client import client, job_address
from takd_search.cluster.driver import job_main
from takd_search.cluster.jobs import follow, status, stop, submit
from takd_search.cluster.storage import download, storage_kind, upload

__all__ = [
    "client",
    "download",
    "follow",
    "job_address",
    "job_main",
    "status",
    "stop",
    "storage_kind",
    "submit",
    "upload",
]
