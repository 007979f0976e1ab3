"""Which devices exist here, and turning a user's device name into a checked one."""

from __future__ import annotations


class DeviceError(ValueError):
    """The requested device does not exist or is not usable on this machine."""


def available_devices() -> list[str]:
    """Devices usable on this machine: always ``cpu``, then each ``cuda:N``, then ``mps``."""
    import torch  # (here: a command that names no device does not load torch)

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


AUTO_GPU_BATCH = 256  # from this batch size on, ``auto`` picks a GPU when there is one


def device_choice(name: str, *, batch_size: int, resolved: str) -> str:
    """Why ``auto`` picked ``resolved``, in one line for the front ends; ``""`` when the user
    named the device."""
    if name.strip().lower() != "auto":
        return ""
    gpus = [d for d in available_devices() if d != "cpu"]
    if resolved != "cpu":
        return f"device auto picked {resolved}: batches of {batch_size} (>= {AUTO_GPU_BATCH}) keep a GPU busy"
    if gpus and batch_size < AUTO_GPU_BATCH:
        return (f"device auto picked the CPU: with batches of {batch_size} (under {AUTO_GPU_BATCH}) a GPU "
                f"only adds launch overhead per step; --device {gpus[0]} uses it anyway")
    return "device auto picked the CPU: no GPU on this machine"


def resolve_device(name: str, *, batch_size: int = 1) -> str:
    """Check ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and return a concrete one.

    ``auto`` picks the CPU for small batches, where a GPU only adds launch overhead per
    step, and the first GPU for batches of 256 or more when one exists.
    """
    devices = available_devices()
    name = name.strip().lower()
    if name == "auto":
        if batch_size >= AUTO_GPU_BATCH and len(devices) > 1:
            return devices[1]
        return "cpu"
    if name == "cuda":
        name = "cuda:0"
    if name in devices:
        return name
    if name.startswith("cuda") or name == "mps":
        have = ", ".join(devices)
        raise DeviceError(f"device {name!r} is not available on this machine (available: {have}, auto)")
    raise DeviceError(f"unknown device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
