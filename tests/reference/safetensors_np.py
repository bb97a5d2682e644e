"""Plain-numpy safetensors reader/writer for the float64 reference (no safetensors/torch package).

File layout (MODELS.md section 6): u64 little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end)}} plus an optional "__metadata__", then the
data; offsets are relative to the start of the data. A sharded checkpoint has
model.safetensors.index.json {"weight_map": {name: file}}.

The reader is strict, like the engine's must be: a header over 100 MB, offsets that are not
contiguous (or overlap, or run past the file) and byte sizes that differ from shape x dtype size are
errors naming the tensor.
"""

import json
import os
import struct

import numpy as np

MAX_HEADER_BYTES = 100 * 1000 * 1000

# dtype name -> (bytes per element, numpy dtype of the raw storage)
_DTYPES = {
    "BOOL": (1, np.dtype(np.bool_)),
    "U8": (1, np.dtype("<u1")),
    "I8": (1, np.dtype("<i1")),
    "F8_E4M3": (1, np.dtype("<u1")),
    "F8_E5M2": (1, np.dtype("<u1")),
    "I16": (2, np.dtype("<i2")),
    "U16": (2, np.dtype("<u2")),
    "F16": (2, np.dtype("<f2")),
    "BF16": (2, np.dtype("<u2")),
    "I32": (4, np.dtype("<i4")),
    "U32": (4, np.dtype("<u4")),
    "F32": (4, np.dtype("<f4")),
    "F64": (8, np.dtype("<f8")),
    "I64": (8, np.dtype("<i8")),
    "U64": (8, np.dtype("<u8")),
}


def _e4m3_table():
    """All 256 FP8 E4M3 "fn" values: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits.

    normal (e > 0): 2^(e-7) * (1 + m/8); subnormal (e = 0): 2^-6 * m/8; no infinities; the only
    NaNs are S.1111.111 (0x7F, 0xFF). Every value is a small dyadic rational, so the table is exact.
    """
    table = np.empty(256, dtype=np.float64)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exponent = (code >> 3) & 0xF
        mantissa = code & 0x7
        if exponent == 0xF and mantissa == 0x7:
            table[code] = np.nan
        elif exponent == 0:
            table[code] = sign * 2.0**-6 * (mantissa / 8.0)
        else:
            table[code] = sign * 2.0 ** (exponent - 7) * (1.0 + mantissa / 8.0)
    return table


E4M3_TABLE = _e4m3_table()


def _e5m2_table():
    """FP8 E5M2 (IEEE-like: bias 15, infinities and NaNs at exponent 31); decoded through float16,
    whose top byte it is."""
    codes = np.arange(256, dtype=np.uint16) << 8
    return codes.view(np.float16).astype(np.float64)


E5M2_TABLE = _e5m2_table()


def bf16_to_f32(raw_u16):
    """BF16 is the high half of an IEEE float32: shift the 16 bits into the top of a u32."""
    return (raw_u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> BF16 bits, round to nearest even (NaN kept quiet). Used by the tiny-model writer."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(x)
    rounded = np.where(nan, 0x7FC0, rounded)
    return rounded.astype(np.uint16)


def f32_to_e4m3_codes(x):
    """float -> FP8 E4M3 codes, round to nearest, ties to even code, clamped to +-448 (plain RNE would
    turn values above 464 into NaN). Used to write FP8 test checkpoints."""
    x = np.asarray(x, dtype=np.float64)
    positive_codes = np.arange(0x7F)  # 0x00..0x7E: 0 .. 448, increasing
    positive_values = E4M3_TABLE[positive_codes]
    mag = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(positive_values, mag, side="left"), 0, 0x7E)
    lo = np.clip(hi - 1, 0, 0x7E)
    d_hi = positive_values[hi] - mag
    d_lo = mag - positive_values[lo]
    take_lo = (d_lo < d_hi) | ((d_lo == d_hi) & (lo % 2 == 0))
    code = np.where(take_lo, lo, hi).astype(np.uint8)
    code = np.where(np.signbit(x), code | 0x80, code).astype(np.uint8)
    return code


class SafetensorsFile:
    """One .safetensors file: header parsed and checked at open, tensors read on demand."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"{path}: header of {n} bytes exceeds {MAX_HEADER_BYTES}")
            if 8 + n > size:
                raise ValueError(f"{path}: header of {n} bytes runs past the end of the file")
            header = json.loads(f.read(n).decode("utf-8"))
        self.data_start = 8 + n
        data_size = size - self.data_start
        self.metadata = header.pop("__metadata__", None)
        self.entries = {}
        spans = []
        for name, info in header.items():
            dtype = info["dtype"]
            if dtype not in _DTYPES:
                raise ValueError(f"{path}: tensor {name}: unknown dtype {dtype}")
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(v) for v in info["data_offsets"])
            if not (0 <= begin <= end <= data_size):
                raise ValueError(f"{path}: tensor {name}: offsets [{begin}, {end}) outside data of {data_size} bytes")
            expected = int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype][0]
            if end - begin != expected:
                raise ValueError(f"{path}: tensor {name}: {end - begin} bytes but shape {shape} x {dtype} needs {expected}")
            self.entries[name] = (dtype, shape, begin, end)
            spans.append((begin, end, name))
        # Contiguous and non-overlapping: sorted spans must tile the data exactly.
        spans.sort()
        cursor = 0
        for begin, end, name in spans:
            if begin != cursor:
                kind = "overlaps" if begin < cursor else "leaves a gap before"
                raise ValueError(f"{path}: tensor {name} {kind} offset {cursor} (data must be contiguous)")
            cursor = end
        if cursor != data_size:
            raise ValueError(f"{path}: {data_size - cursor} trailing bytes after the last tensor")

    def names(self):
        return list(self.entries)

    def raw(self, name):
        """The stored elements, undecoded (BF16/F8 as unsigned integers)."""
        dtype, shape, begin, end = self.entries[name]
        storage = _DTYPES[dtype][1]
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            buf = f.read(end - begin)
        if len(buf) != end - begin:
            raise ValueError(f"{self.path}: tensor {name}: short read")
        return np.frombuffer(buf, dtype=storage).reshape(shape), dtype

    def get(self, name):
        """The tensor decoded to a numeric numpy array (floats as float32/float64, ints as ints)."""
        arr, dtype = self.raw(name)
        if dtype == "BF16":
            return bf16_to_f32(arr)
        if dtype == "F8_E4M3":
            return E4M3_TABLE[arr]
        if dtype == "F8_E5M2":
            return E5M2_TABLE[arr]
        return arr.copy()


def dequantize_blocks(weight, scale_inv, block=128):
    """DeepSeek block scales: W[i][j] = fp8(W[i][j]) * scale_inv[i // 128][j // 128]; the edge blocks
    may be partial, so the scale grid is ceil(out/128) x ceil(in/128)."""
    rows, cols = weight.shape
    want = (-(-rows // block), -(-cols // block))
    if tuple(scale_inv.shape) != want:
        raise ValueError(f"weight_scale_inv shape {tuple(scale_inv.shape)} != {want} for weight {weight.shape}")
    expanded = np.repeat(np.repeat(np.asarray(scale_inv, np.float64), block, axis=0), block, axis=1)
    return np.asarray(weight, np.float64) * expanded[:rows, :cols]


class Checkpoint:
    """An HF folder's weights: model.safetensors or the shards named by model.safetensors.index.json.

    `get(name)` returns float64 for float tensors; an FP8 weight with a `<name>_scale_inv` companion
    is returned already multiplied by its block scales. The `_scale_inv` tensors are hidden from
    `names()`.
    """

    def __init__(self, folder):
        self.folder = folder
        index = os.path.join(folder, "model.safetensors.index.json")
        self.files = {}
        self.where = {}
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            for name, fname in weight_map.items():
                if fname not in self.files:
                    self.files[fname] = SafetensorsFile(os.path.join(folder, fname))
                if name not in self.files[fname].entries:
                    raise ValueError(f"index maps {name} to {fname}, which does not hold it")
                self.where[name] = self.files[fname]
        else:
            single = os.path.join(folder, "model.safetensors")
            st = SafetensorsFile(single)
            self.files["model.safetensors"] = st
            for name in st.names():
                self.where[name] = st

    def names(self):
        return [n for n in self.where if not n.endswith("_scale_inv")]

    def __contains__(self, name):
        return name in self.where

    def dtype(self, name):
        return self.where[name].entries[name][0]

    def get(self, name, dtype=np.float64):
        """dtype=None keeps the decoded type (float32 for F32/BF16/F16, float64 for F64/FP8)."""
        if name not in self.where:
            raise KeyError(f"tensor {name} not in checkpoint {self.folder}")
        st = self.where[name]
        arr = st.get(name)
        scale_name = name + "_scale_inv"
        if st.entries[name][0] == "F8_E4M3" and scale_name in self.where:
            arr = dequantize_blocks(arr, self.where[scale_name].get(scale_name))
        if dtype is not None and np.issubdtype(arr.dtype, np.floating):
            return np.asarray(arr, dtype=dtype)
        return arr


def save_file(path, tensors, dtypes=None, metadata=None):
    """Write a .safetensors file by hand. `tensors`: {name: array}; `dtypes`: optional {name: dtype
    string} to store floats as F16/BF16/F8_E4M3 (for F8_E4M3 the array must already hold the uint8
    codes). Tensors are laid out in the order given, contiguous from offset 0."""
    dtypes = dtypes or {}
    header = {}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dtype = dtypes.get(name)
        if dtype is None:
            dtype = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.float16): "F16",
                     np.dtype(np.int32): "I32", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8",
                     np.dtype(np.int8): "I8", np.dtype(np.bool_): "BOOL"}[arr.dtype]
        if dtype == "BF16":
            data = f32_to_bf16_bits(arr).astype("<u2").tobytes()
        elif dtype == "F8_E4M3":
            if arr.dtype != np.uint8:
                raise ValueError(f"{name}: F8_E4M3 wants uint8 codes")
            data = arr.tobytes()
        else:
            data = np.ascontiguousarray(arr, dtype=_DTYPES[dtype][1]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the data start is 8-byte aligned, as writers do
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
