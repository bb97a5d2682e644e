#!/usr/bin/env bash
# Cross-checks the safetensors writer with an independent reader: the test binary writes a file
# holding every dtype, and numpy (Debian's, through /usr/bin/python3) parses the header by hand
# and compares every value with the same formulas the C++ side used.
set -euo pipefail
tests="${SEEKSERVE_BUILD_DIR:?}/tests/seekserve_tests"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SEEKSERVE_SAFETENSORS_FIXTURE="$tmp/fixture.safetensors" "$tests" \
  --gtest_filter='SafetensorsNumpy.WritesTheCrossCheckFixture' >"$tmp/log" 2>&1 || {
  cat "$tmp/log"
  exit 1
}
/usr/bin/python3 - "$tmp/fixture.safetensors" <<'PY'
import json, math, struct, sys
import numpy as np

raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert n % 8 == 0, f"header length {n} not a multiple of 8"
header = json.loads(raw[8:8 + n].decode("utf-8"))
data = raw[8 + n:]
assert header.pop("__metadata__") == {"format": "pt"}

def fp8_e4m3(codes):
    out = []
    for c in codes:
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        if e == 15 and m == 7:
            v = math.nan
        elif e == 0:
            v = m / 8 * 2.0 ** -6
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        out.append(-v if s else v)
    return np.array(out)

def decode(dtype, buf):
    simple = {"F32": "<f4", "F16": "<f2", "I8": "i1", "U8": "u1", "I16": "<i2", "I32": "<i4",
              "I64": "<i8", "F64": "<f8", "BOOL": "u1"}
    if dtype in simple:
        return np.frombuffer(buf, dtype=simple[dtype])
    if dtype == "BF16":
        return (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    if dtype == "F8_E4M3":
        return fp8_e4m3(np.frombuffer(buf, dtype="u1"))
    raise SystemExit(f"unexpected dtype {dtype}")

def expected(dtype, n):
    i = np.arange(n, dtype=np.int64)
    if dtype in ("F32", "F16", "BF16", "F8_E4M3"):
        return i * 0.5 - 1.0
    return {"I8": i - 3, "U8": i * 40, "I16": i * 1000 - 3000, "I32": i * 100000 - 7,
            "I64": i * 10**12 - 5, "F64": i / 3.0, "BOOL": i % 2}[dtype]

widths = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I8": 1, "U8": 1, "I16": 2, "I32": 4,
          "I64": 8, "F64": 8, "BOOL": 1}
shapes = {"F32": [2, 3], "F16": [4], "BF16": [1, 2, 3], "F8_E4M3": [3, 2], "I8": [5],
          "U8": [2, 2], "I16": [3], "I32": [2, 2], "I64": [3], "F64": [2, 2], "BOOL": [6]}
assert set(header) == set(shapes) | {"EMPTY"}, sorted(header)
spans = sorted(tuple(e["data_offsets"]) for e in header.values())
end = 0
for b, e in spans:
    assert b == end, f"gap or overlap at {b}"
    end = e
assert end == len(data), f"data section {len(data)} bytes, tensors end at {end}"
for name, entry in header.items():
    b, e = entry["data_offsets"]
    n = int(np.prod(entry["shape"], dtype=np.int64))
    assert e - b == n * widths[entry["dtype"]], name
    if name == "EMPTY":
        assert entry["dtype"] == "F32" and entry["shape"] == [0, 4]
        continue
    assert entry["dtype"] == name and entry["shape"] == shapes[name], (name, entry)
    got = decode(name, data[b:e])
    want = expected(name, n)
    assert np.array_equal(got, want), f"{name}: {got} != {want}"
print(f"safetensors numpy cross-check: {len(header)} tensors, {len(data)} data bytes ok")
PY
