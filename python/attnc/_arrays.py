"""NumPy arrays and PyTorch tensors as the extension's array descriptors:
(address, element type, strides in elements).  No data is copied for Q, K,
V, O and LSE; captured tensors (small) are made float32/int32 contiguous."""

ELEM = {"float32": 0, "float16": 1, "bfloat16": 2}  # attnc.h attnc_elem
DTYPE = {"int": 0, "float": 1}  # attnc.h attnc_dtype


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _dtype_name(x):
    name = str(x.dtype)
    return name[len("torch."):] if name.startswith("torch.") else name


def describe(x, what, rank=4, any_rank=False):
    """((address, elem, strides), "numpy" | "torch", shape) of array x."""
    from . import Error

    if _is_torch(x):
        lib = "torch"
        if x.device.type not in ("cpu", "cuda"):
            raise Error(f"{what}: a tensor on '{x.device.type}' (attnc runs CPU tensors, and CUDA tensors on the "
                        f"'cuda' backend)", 2)
        address, strides, shape = x.data_ptr(), tuple(x.stride()), tuple(x.shape)
    elif hasattr(x, "__array_interface__"):
        lib = "numpy"
        iface = x.__array_interface__
        address, shape = iface["data"][0], tuple(x.shape)
        if any(s % x.itemsize for s in x.strides):
            raise Error(f"{what}: strides {x.strides} are not whole elements", 2)
        strides = tuple(s // x.itemsize for s in x.strides)
    else:
        raise Error(f"{what}: expected a NumPy array or a PyTorch tensor, got {type(x).__name__}", 2)
    name = _dtype_name(x)
    if any_rank:
        if name != "float32":
            raise Error(f"{what}: expected float32, got {name}", 2)
        return (address, 0, (0, 0, 0, 0)), lib, shape
    if len(shape) != rank:
        raise Error(f"{what}: expected {rank} dimensions ({'[B, H, L, D]' if rank == 4 else '[B, H, Lq]'}), "
                    f"got shape {shape}", 2)
    if name not in ELEM or (rank == 3 and name != "float32"):
        raise Error(f"{what}: element type {name} is not supported (float32, float16, bfloat16; LSE float32)", 2)
    strides = strides + (0,) * (4 - rank)
    # a stride along a dimension of size 1 is never used: give the contiguous one, which the library accepts
    return (address, ELEM[name], strides), lib, shape


def device_of(x):
    """None for host memory (NumPy, CPU tensors), else the torch.device."""
    return x.device if _is_torch(x) and x.device.type != "cpu" else None


def empty_like_layout(x, lib, shape, dtype):
    """A new contiguous array of `shape` in x's library (and x's element type
    when dtype is None)."""
    if lib == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype) if dtype else x.dtype, device=x.device)
    import numpy as np

    return np.empty(shape, dtype=np.dtype(dtype) if dtype else x.dtype)


def tensor_arg(x, dtype, name):
    """(the array kept alive, (name, dtype code, shape, address)) of a
    captured tensor, as float32 or int32, contiguous."""
    if _is_torch(x):
        import torch

        # host memory even for a call on the device: the tile analysis reads them (attnc.h)
        arr = x.detach().to(device="cpu", dtype=torch.float32 if dtype == "float" else torch.int32).contiguous()
        address = arr.data_ptr()
    else:
        import numpy as np

        arr = np.ascontiguousarray(x, dtype=np.float32 if dtype == "float" else np.int32)
        address = arr.__array_interface__["data"][0]
    return arr, (name, DTYPE[dtype], tuple(arr.shape), address)
