# SPDX-License-Identifier: MIT
"""reap(): shmk_reap() with its report as Python objects."""
import ctypes
import dataclasses
import os
from typing import Optional, Tuple

from . import _lib
from ._lib import lib
from .errors import Error, error


@dataclasses.dataclass(frozen=True)
class ReapItem:
    """One thing the reap found and what it did about it."""
    #: "owner-dead", "owner-alive", "reaped", "already-gone", "live",
    #: "stray-kept", "stray-removed", "quarantined", "error",
    #: "owner-unknown", "kept"
    action: str
    ns: str
    owner: str          #: owner id ("" for strays)
    pid: int            #: owner pid from the record (0 if unknown)
    object: str         #: segment name or registry file
    bytes: int          #: segment size (0 if unknown)
    errno: int          #: the cause (positive errno) for error,
                        #: quarantined and owner-unknown; else 0
    reason: str         #: why, in words
    holders: Tuple[int, ...]  #: pids that still have it open or mapped


@dataclasses.dataclass(frozen=True)
class ReapReport:
    """What shmk_reap() found and did, and its totals."""
    items: Tuple[ReapItem, ...]
    owners_dead: int
    owners_alive: int
    owners_unknown: int
    segments_reaped: int
    segments_gone: int
    segments_live: int
    segments_kept: int
    segments_held: int
    strays_kept: int
    strays_removed: int
    quarantined: int
    errors: int
    bytes_reaped: int
    bytes_live: int
    bytes_strays: int
    bytes_kept: int
    bytes_held: int
    #: With check=False: the error the reap returned along with the report
    #: (see reap()), else None.
    error: Optional[Error] = None

    def by_action(self, action):
        """The items whose action is action (e.g. "reaped")."""
        return [i for i in self.items if i.action == action]


_TOTALS = [f.name for f in dataclasses.fields(ReapReport)
           if f.name not in ("items", "error")]


def _text(p):
    return os.fsdecode(p) if p else ""


def _convert(r):
    items = []
    for k in range(r.n_items):
        it = r.items[k]
        items.append(ReapItem(
            action=lib.shmk_reap_action_name(it.action).decode(),
            ns=_text(it.ns), owner=_text(it.owner), pid=it.pid,
            object=_text(it.object), bytes=it.bytes, errno=-it.error,
            reason=_text(it.reason),
            holders=tuple(it.holders[h] for h in range(it.n_holders))))
    return dict(items=tuple(items),
                **{name: getattr(r, name) for name in _TOTALS})


def reap(ns=None, dir=None, *, shm_dir=None, strays=False, dry_run=False,
         holders=True, scan_strays=True, stray_min_age=None, check=True):
    """Reaps the segments of dead owners of namespace ns (None: every
    namespace) in registry dir (None: $SHMKEEPER_DIR, else the library's
    default) and returns a ReapReport.

    strays: also unlink strays ("<ns>.*" objects no record names) that are
    provably unused and at least stray_min_age seconds old (None: the
    library's default, 60).  dry_run: report only, change nothing.
    holders=False: skip the /proc pass that names who still holds each
    segment (faster; strays are then never removed).  scan_strays=False:
    do not even look for strays.

    An error of the reap (EIO: something could not be handled, was
    quarantined, or an owner's liveness is unknown; EBUSY: the namespace
    belongs to another registry; ENOTEMPTY: dir is not a registry; ...) is
    raised with the report as its .report attribute, or, with check=False,
    returned in the report's .error.  (Should the library give no report,
    the error is raised whatever check says.)
    """
    opts = _lib.ReapOptions()
    opts.ns = _lib.cstr(ns)
    opts.dir = _lib.cstr(dir)
    opts.shm_dir = _lib.cstr(shm_dir)
    flags = 0
    if dry_run:
        flags |= _lib.SHMK_REAP_DRY_RUN
    if strays:
        flags |= _lib.SHMK_REAP_STRAYS
    if not scan_strays:
        flags |= _lib.SHMK_REAP_NO_STRAYS
    if not holders:
        flags |= _lib.SHMK_REAP_NO_HOLDERS
    if stray_min_age is not None:
        flags |= _lib.SHMK_REAP_ANY_AGE
        opts.stray_min_age = stray_min_age
    opts.flags = flags
    rep = ctypes.POINTER(_lib.ReapReport)()
    rc = lib.shmk_reap(ctypes.byref(opts), ctypes.byref(rep))
    err = error(rc) if rc < 0 else None  # the sentence, before anything else
    if not rep:
        if err is None:
            raise error(5, "reap: no report")  # EIO: not expected
        raise err
    try:
        report = ReapReport(error=err, **_convert(rep.contents))
    finally:
        lib.shmk_reap_report_free(rep)
    if err is not None and check:
        err.report = report
        raise err
    return report
