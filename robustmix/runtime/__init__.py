"""Plumbing every stage may use: the error type (`errors`), the package version (`version`), the
device, processor, host and scheduler job a run is on (`devices`), torch.distributed under torchrun (`distributed`),
glibc malloc tuning for long CPU runs (`allocator`) and atomic file writes (`files`).

    errors.py       RobustmixError (one-line message, exit 2 on the CLI), RobustmixWarning
    version.py      __version__
    devices.py      resolve_device ("auto": cuda, then mps, then cpu), processor, cpu_kernels, host_and_job
    distributed.py  World, init, shard, gather: single-process code paths are the world_size = 1 case
    allocator.py    keep_freed_memory: malloc settings the CLI sets for long CPU runs
    files.py        write_bytes / write_text / write_json: temp file, fsync, rename

May import: nothing in robustmix.
"""
