"""Peak memory of the work done since the last `reset_peak()`.

On GPU: TensorFlow's allocator peak (`tf.config.experimental.get_memory_info`),
summed over the GPUs. On CPU: the process's resident-set high-water mark (Linux
`VmHWM`), which `reset_peak` sets back to the current RSS by writing 5 to
`/proc/self/clear_refs`; where that is not possible (not Linux) the mark is the
whole process's (`resource.getrusage`), and `source` says so.

Example:
>>> reset_peak()
>>> block = bytearray(50 * 2**20)      # 50 MiB, touched
>>> peak, source = peak_bytes()
>>> peak >= current_bytes() - 2**20, source   # doctest: +ELLIPSIS
(True, 'process RSS high-water mark (VmHWM...')
"""

import resource
import sys


def _gpus():
    import tensorflow as tf

    return [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices("GPU")]


def _reset_cpu_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status_bytes(field):
    """A memory field of /proc/self/status (`VmHWM`, `VmRSS`) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_cpu_reset_works = None


def reset_peak():
    """Starts a new peak-memory window."""
    global _cpu_reset_works
    import tensorflow as tf

    for gpu in _gpus():
        tf.config.experimental.reset_memory_stats(gpu)
    _cpu_reset_works = _reset_cpu_peak()


def current_bytes():
    """Memory in use now: GPU allocator bytes, or the process's resident set on CPU."""
    import tensorflow as tf

    gpus = _gpus()
    if gpus:
        return sum(tf.config.experimental.get_memory_info(g)["current"] for g in gpus)
    return _proc_status_bytes("VmRSS") or 0


def peak_bytes():
    """Returns (bytes, what was measured) for the window since `reset_peak()`."""
    import tensorflow as tf

    gpus = _gpus()
    if gpus:
        return sum(tf.config.experimental.get_memory_info(g)["peak"] for g in gpus), "GPU allocator peak"
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None and _cpu_reset_works:
        return hwm, "process RSS high-water mark (VmHWM, reset per mode)"
    # ru_maxrss is KiB on Linux, bytes on macOS; it never resets.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return rss, "process RSS high-water mark since start (cannot reset here)"
