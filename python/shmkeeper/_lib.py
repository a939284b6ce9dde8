# SPDX-License-Identifier: MIT
"""Loading libshmkeeper and declaring what ctypes needs of it.

The structs below are copies of the ones in shmkeeper.h.  They are never
trusted: at load, every field declared here is checked, offset and size,
and every struct's size, against the library's own answer
(shmk_layout()).  A library whose layout differs is refused with an
ImportError naming the struct and field, rather than read wrongly.
"""
import ctypes
import ctypes.util
import os

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double,
                    c_int, c_int64, c_long, c_size_t, c_uint, c_uint64,
                    c_void_p)

#: Environment variable naming the library file to load (a path, or a name
#: the dynamic loader resolves).  Unset: "libshmkeeper.so.0", then whatever
#: ctypes.util.find_library("shmkeeper") finds.
ENV_LIB = "SHMKEEPER_LIB"
SOMAJOR = 0

c_pid_t = c_int  # pid_t on Linux
c_enum = c_int   # the library's enums are int-sized

# Values of flags and enums: part of the ABI, they never change meaning.
SHMK_DURABLE_AUTO, SHMK_DURABLE_OFF, SHMK_DURABLE_ON = 0, 1, 2
SHMK_OPEN_NO_REAP = 0x1
SHMK_REAP_DRY_RUN = 0x1
SHMK_REAP_STRAYS = 0x2
SHMK_REAP_NO_STRAYS = 0x4
SHMK_REAP_ANY_AGE = 0x8
SHMK_REAP_NO_HOLDERS = 0x10


class Options(Structure):
    _fields_ = [("dir", c_char_p), ("ns", c_char_p), ("shm_dir", c_char_p),
                ("role", c_char_p), ("durability", c_enum),
                ("budget_bytes", c_uint64), ("flags", c_uint)]


class ReapOptions(Structure):
    _fields_ = [("dir", c_char_p), ("ns", c_char_p), ("shm_dir", c_char_p),
                ("flags", c_uint), ("stray_min_age", c_uint)]


class ReapItem(Structure):
    _fields_ = [("action", c_enum), ("ns", c_char_p), ("owner", c_char_p),
                ("pid", c_pid_t), ("object", c_char_p), ("bytes", c_uint64),
                ("error", c_int), ("reason", c_char_p),
                ("n_holders", c_size_t), ("holders", POINTER(c_pid_t))]


class ReapReport(Structure):
    _fields_ = [("n_items", c_size_t), ("items", POINTER(ReapItem)),
                ("owners_dead", c_size_t), ("owners_alive", c_size_t),
                ("segments_reaped", c_size_t), ("segments_gone", c_size_t),
                ("segments_live", c_size_t), ("strays_kept", c_size_t),
                ("strays_removed", c_size_t), ("quarantined", c_size_t),
                ("errors", c_size_t), ("bytes_reaped", c_uint64),
                ("bytes_live", c_uint64), ("bytes_strays", c_uint64),
                ("strings_", c_void_p), ("owners_unknown", c_size_t),
                ("segments_kept", c_size_t), ("bytes_kept", c_uint64),
                ("segments_held", c_size_t), ("bytes_held", c_uint64)]


SOFT_FN = CFUNCTYPE(None, c_char_p, c_uint64, c_uint64, c_void_p)


class MonitorOptions(Structure):
    _fields_ = [("pid", c_pid_t), ("ns", c_char_p), ("shm_dir", c_char_p),
                ("warmup", c_uint), ("fd_threshold", c_long),
                ("rss_threshold_pct", c_double),
                ("rss_threshold_bytes", c_uint64),
                ("segment_threshold", c_uint64),
                ("bytes_threshold", c_uint64),
                ("ns_bytes_soft", c_uint64), ("ns_bytes_hard", c_uint64),
                ("rss_soft", c_uint64), ("rss_hard", c_uint64),
                ("on_soft", SOFT_FN), ("arg", c_void_p),
                ("check_every", c_uint)]


class Sample(Structure):
    _fields_ = [("when_ms", c_int64), ("pid", c_pid_t), ("fds", c_long),
                ("rss", c_uint64), ("threads", c_long), ("children", c_long),
                ("zombies", c_long), ("ns_segments", c_uint64),
                ("ns_bytes", c_uint64), ("shm_free", c_uint64),
                ("shm_total", c_uint64)]


class Verdict(Structure):
    _fields_ = [("leak", c_int), ("fd_leak", c_int), ("rss_leak", c_int),
                ("thread_leak", c_int), ("child_leak", c_int),
                ("segment_leak", c_int), ("bytes_leak", c_int),
                ("fd_delta", c_long), ("thread_delta", c_long),
                ("child_delta", c_long), ("zombies", c_long),
                ("rss_delta", c_int64), ("segment_delta", c_int64),
                ("bytes_delta", c_int64), ("reason", c_char * 512)]


#: struct tag in shmkeeper.h -> the ctypes copy checked against it.
STRUCTS = {
    "shmk_options": Options,
    "shmk_reap_options": ReapOptions,
    "shmk_reap_item": ReapItem,
    "shmk_reap_report": ReapReport,
    "shmk_monitor_options": MonitorOptions,
    "shmk_sample": Sample,
    "shmk_verdict": Verdict,
}

_P = c_void_p  # opaque handles: shmk_ctx *, shmk_segment *, shmk_monitor *
_PROTOS = {
    "shmk_version": (c_char_p, []),
    "shmk_last_error": (c_char_p, []),
    "shmk_layout": (c_int, [c_char_p, c_char_p, POINTER(c_size_t),
                            POINTER(c_size_t)]),
    "shmk_ns_check": (c_int, [c_char_p]),
    "shmk_name_check": (c_int, [c_char_p]),
    "shmk_open": (c_int, [POINTER(Options), POINTER(_P)]),
    "shmk_close": (c_int, [_P]),
    "shmk_dir": (c_char_p, [_P]),
    "shmk_ns": (c_char_p, [_P]),
    "shmk_owned_count": (c_size_t, [_P]),
    "shmk_segment_create": (c_int, [_P, c_char_p, c_size_t, POINTER(_P)]),
    "shmk_segment_attach": (c_int, [_P, c_char_p, POINTER(_P)]),
    "shmk_segment_detach": (None, [_P]),
    "shmk_segment_destroy_name": (c_int, [_P, c_char_p]),
    "shmk_segment_addr": (c_void_p, [_P]),
    "shmk_segment_size": (c_size_t, [_P]),
    "shmk_reap": (c_int, [POINTER(ReapOptions), POINTER(POINTER(ReapReport))]),
    "shmk_reap_report_free": (None, [POINTER(ReapReport)]),
    "shmk_reap_action_name": (c_char_p, [c_enum]),
    "shmk_monitor_create": (c_int, [POINTER(MonitorOptions), POINTER(_P)]),
    "shmk_monitor_destroy": (None, [_P]),
    "shmk_monitor_sample": (c_int, [_P, POINTER(Sample)]),
    "shmk_monitor_set_baseline": (c_int, [_P, POINTER(Sample)]),
    "shmk_monitor_has_baseline": (c_int, [_P]),
    "shmk_monitor_baseline": (c_int, [_P, POINTER(Sample)]),
    "shmk_monitor_check": (c_int, [_P, POINTER(Sample), POINTER(Verdict)]),
    "shmk_monitor_tick": (c_int, [_P, POINTER(Verdict)]),
    "shmk_monitor_limits": (c_int, [_P, POINTER(Sample)]),
    "shmk_monitor_attach": (c_int, [_P, _P]),
    "shmk_sample_json": (c_int, [POINTER(Sample), c_char_p, c_size_t]),
}


def check_struct(lib, tag, cls, where="libshmkeeper"):
    """Raises ImportError unless struct <tag> of lib has cls's size and
    every field of cls at the same offset with the same size."""
    off, size = c_size_t(), c_size_t()

    def ask(field):
        rc = lib.shmk_layout(tag.encode(), field and field.encode(),
                             ctypes.byref(off), ctypes.byref(size))
        if rc < 0:
            raise ImportError(
                "%s: %s: this binding does not match the library"
                % (where, lib.shmk_last_error().decode(errors="replace")))
        return off.value, size.value

    if ask(None)[1] != ctypes.sizeof(cls):
        raise ImportError(
            "%s: struct %s is %d bytes, the binding declares %d: this "
            "binding does not match the library"
            % (where, tag, size.value, ctypes.sizeof(cls)))
    for name, _ in cls._fields_:
        mine = getattr(cls, name)
        theirs = ask(name)
        if theirs != (mine.offset, mine.size):
            raise ImportError(
                "%s: struct %s field %s is at offset %d (%d bytes), the "
                "binding declares offset %d (%d bytes): this binding does "
                "not match the library"
                % (where, tag, name, theirs[0], theirs[1], mine.offset,
                   mine.size))


def _open_library():
    path = os.environ.get(ENV_LIB)
    if path:
        candidates = [path]
    else:
        candidates = ["libshmkeeper.so.%d" % SOMAJOR]
        found = ctypes.util.find_library("shmkeeper")
        if found and found not in candidates:
            candidates.append(found)
    errors = []
    for name in candidates:
        try:
            # use_errno: not needed (the library returns errnos); the
            # handle is never closed (ctypes cannot unload safely).
            return ctypes.CDLL(name), name
        except OSError as e:
            errors.append(str(e))
    raise ImportError(
        "shmkeeper: cannot load libshmkeeper (%s); install the library "
        "(make install) or set %s to its path" % ("; ".join(errors), ENV_LIB))


def _load():
    lib, name = _open_library()
    for fn, (restype, argtypes) in _PROTOS.items():
        try:
            f = getattr(lib, fn)
        except AttributeError:
            raise ImportError(
                "shmkeeper: %s has no %s(): the library is older than this "
                "binding needs" % (name, fn)) from None
        f.restype, f.argtypes = restype, argtypes
    version = lib.shmk_version().decode()
    if version.split(".")[0] != str(SOMAJOR):
        raise ImportError("shmkeeper: %s is version %s; this binding needs "
                          "%d.x" % (name, version, SOMAJOR))
    for tag, cls in STRUCTS.items():
        check_struct(lib, tag, cls, "shmkeeper: %s %s" % (name, version))
    return lib, name, version


lib, path, version = _load()


def last_error():
    """The calling thread's last error sentence (valid right after the
    failing call, on the same thread)."""
    return lib.shmk_last_error().decode(errors="replace")


def cstr(s):
    """str (or bytes, or None) as the char * the library takes."""
    if s is None or isinstance(s, bytes):
        return s
    return os.fsencode(s)
