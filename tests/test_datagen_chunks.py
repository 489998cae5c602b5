"""datagen's stored chunks: workers compress and checksum the pairs as HDF5 stores them, the writer
copies the bytes (issue 14). HDF5's Fletcher-32 reproduced exactly, chunks any HDF5 reader decodes,
journals of the raw form (earlier versions) and damaged encoded shards."""
from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from datagen import build as build_mod
from datagen.build import build
from datagen.inspection import verify
from datagen.plan import Options, make_plan
from datagen.work import (CODEC, GZIP_LEVEL, compute_task, decode_chunk, encode_chunk,
                          encode_rows, fletcher32, run_task)
from tiny_data import tiny_build


def fletcher32_loop(data: bytes) -> int:
    """HDF5's ``H5_checksum_fletcher32`` transcribed word by word (the reference)."""
    s1 = s2 = 0
    n, i = len(data) // 2, 0
    while n:
        t = min(n, 360)
        n -= t
        for _ in range(t):
            s1 = (s1 + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
            s2 = (s2 + s1) & 0xFFFFFFFF
            i += 2
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    if len(data) % 2:
        s1 = (s1 + (data[-1] << 8)) & 0xFFFFFFFF
        s2 = (s2 + s1) & 0xFFFFFFFF
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    s1 = (s1 & 0xFFFF) + (s1 >> 16)
    s2 = (s2 & 0xFFFF) + (s2 >> 16)
    return ((s2 << 16) | s1) & 0xFFFFFFFF


def test_fletcher32_is_hdf5s_on_every_length_and_extreme_bytes():
    rng = np.random.default_rng(0)
    for n in [*range(0, 40), 359, 360, 361, 719, 720, 721, 722, 1441, 4001]:
        for data in (rng.integers(0, 256, n, dtype=np.uint8).tobytes(), b"\xff" * n,
                     b"\x00" * n, b"\xff\x00" * (n // 2)):
            assert fletcher32(data) == fletcher32_loop(data), n
    assert fletcher32(b"") == 0 and fletcher32(b"\x01\x02") == (0x0102 << 16) | 0x0102


def hdf5_chunk(f, name, row):
    """The chunk HDF5 itself writes for ``row`` with the build's pipeline."""
    d = f.create_dataset(name, shape=(2, *row.shape), dtype=np.uint8, chunks=(1, *row.shape),
                         compression="gzip", compression_opts=GZIP_LEVEL, shuffle=True,
                         fletcher32=True)
    d[0] = row
    mask, chunk = d.id.read_direct_chunk((0,) * d.ndim)
    return d, mask, chunk


def test_chunks_are_what_hdf5_writes_and_reads(tmp_path):
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),  # incompressible, odd sizes
            np.full((32, 32, 3), 255, np.uint8), np.zeros((9, 9), np.uint8),
            (rng.integers(0, 3, (48, 48, 3)) * 100).astype(np.uint8)]
    with h5py.File(tmp_path / "c.h5", "w") as f:
        for i, row in enumerate(rows):
            d, mask, theirs = hdf5_chunk(f, f"d{i}", row)
            assert mask == 0
            # HDF5's chunk: deflate stream + HDF5's checksum of it (little-endian), as ours
            assert fletcher32(theirs[:-4]) == int.from_bytes(theirs[-4:], "little")
            assert decode_chunk(theirs) == row.tobytes()
            ours = encode_chunk(row)
            assert decode_chunk(ours) == row.tobytes()
            assert zlib.decompress(ours[:-4]) == row.tobytes()
            d.id.write_direct_chunk((1,) + (0,) * row.ndim, ours)  # HDF5 reads ours, checked
            np.testing.assert_array_equal(d[1], row)
    with pytest.raises(TypeError, match="uint8"):
        encode_chunk(np.zeros((4, 4), np.uint16))
    bad = bytearray(encode_chunk(rows[1]))
    bad[3] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(bad)


def test_encoded_rows_and_tasks():
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    data, ends = encode_rows(rows)
    assert data.dtype == np.uint8 and ends.dtype == np.int64 and ends[-1] == len(data)
    starts = np.r_[0, ends[:-1]]
    for k in range(3):
        assert decode_chunk(data[starts[k]:ends[k]]) == rows[k].tobytes()
    crop = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gammas = np.array([2.0, 5.0])
    plain = run_task("llf", crop, gammas)["output"]
    data, ends = compute_task("llf", crop, gammas)["output"]
    assert len(ends) == 2
    assert decode_chunk(data[ends[0]:ends[1]]) == plain[1].tobytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(plan, reference file): a 1-worker build of l0 and llf on tiny images."""
    folder = tmp_path_factory.mktemp("chunks")
    ref = tiny_build(folder, "ref.h5", OPS, size=32)
    files = tuple(sorted(str(p) for p in folder.glob("*.png")))
    opts = Options(ops=OPS, images=files, images_label="tiny", size=32, test_fraction=0.34,
                   seed=0, max_crops=2, scales=(1.0,))
    return make_plan(opts), ref


OPS = ("l0", "llf")


def contents(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"sources": f["sources/pixels"][:], "digest": np.array(f.attrs["digest"])}
        for n in f["ops"]:
            for k in ("output", "gamma", "source", "split"):
                out[f"{n}/{k}"] = f["ops"][n][k][:]
    return out


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_file_records_the_level_and_verifies(built):
    _, ref = built
    with h5py.File(ref, "r") as f:
        for name in ("sources/pixels", "ops/l0/output", "ops/llf/output"):
            d = f[name]
            assert (d.compression, d.compression_opts, d.fletcher32) == ("gzip", GZIP_LEVEL, True)
        # every pair's stored chunk is one the workers made: checksum and contents by hand
        d = f["ops/l0/output"]
        for k in range(d.shape[0]):
            mask, chunk = d.id.read_direct_chunk((k, 0, 0, 0))
            assert mask == 0 and decode_chunk(chunk) == d[k].tobytes()
    report, ok = verify(ref, samples=1)
    assert ok, report


def interrupted(plan, tmp_path, monkeypatch, name: str):
    """A 1-worker build of ``plan`` stopped by a failing fourth task, 2 pairs per journal shard;
    returns (out, journal folder)."""
    real, calls = build_mod.run_task, []

    def fail_on_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("stop here")
        return real(*args)

    monkeypatch.setattr(build_mod, "FLUSH_EVERY_PAIRS", 2)
    monkeypatch.setattr(build_mod, "run_task", fail_on_fourth)
    out = tmp_path / name
    with pytest.raises(RuntimeError, match="stop here"):
        build(plan, out, workers=1, progress=False)
    monkeypatch.setattr(build_mod, "run_task", real)
    partial = tmp_path / (name + ".partial")
    return out, partial


def test_the_journal_holds_stored_chunks(built, tmp_path, monkeypatch):
    plan, ref = built
    out, partial = interrupted(plan, tmp_path, monkeypatch, "enc.h5")
    shards = sorted(partial.glob("*.npz"))
    assert shards
    with h5py.File(ref, "r") as f:
        for shard in shards:
            with np.load(shard) as z:
                assert str(z["codec"]) == CODEC and "outputs" not in z.files
                slots, data, ends = z["slots"], z["outputs_chunks"], z["outputs_ends"]
            name = shard.name.split(".")[0]
            starts = np.r_[0, ends[:-1]]
            for slot, a, b in zip(slots, starts, ends):
                assert decode_chunk(data[a:b]) == f["ops"][name]["output"][slot].tobytes()
    assert build(plan, out, workers=1, progress=False, resume=True).resumed_pairs > 0
    same(contents(ref), contents(out))


def test_a_journal_of_raw_rows_still_resumes(built, tmp_path, monkeypatch):
    """Shards as earlier versions wrote them (``outputs``: the raw uint8 rows) are encoded when
    the file is assembled; the file is the same."""
    plan, ref = built
    out, partial = interrupted(plan, tmp_path, monkeypatch, "raw.h5")
    shards = sorted(partial.glob("*.npz"))
    for shard in shards:
        with np.load(shard) as z:
            data, ends, slots = z["outputs_chunks"], z["outputs_ends"], z["slots"]
        rows = [np.frombuffer(decode_chunk(data[a:b]), np.uint8)
                for a, b in zip(np.r_[0, ends[:-1]], ends)]
        with open(shard, "wb") as fh:
            np.savez(fh, slots=slots, outputs=np.stack(rows).reshape(len(rows), 32, 32, 3))
    journaled = 0
    for shard in shards:
        with np.load(shard) as z:
            journaled += len(z["slots"])
    result = build(plan, out, workers=1, progress=False, resume=True)
    assert result.resumed_pairs == journaled > 0
    assert not result.notes  # no shard was set aside
    same(contents(ref), contents(out))


@pytest.mark.parametrize("damage", ["checksum", "ends", "codec"])
def test_a_shard_whose_chunks_do_not_hold_together_is_recomputed(built, tmp_path, monkeypatch,
                                                                 damage):
    """An encoded shard that unzips (its zip CRCs hold) but whose chunks are wrong: set aside,
    its pairs computed again, the file the same."""
    plan, ref = built
    out, partial = interrupted(plan, tmp_path, monkeypatch, f"{damage}.h5")
    shard = sorted(partial.glob("*.npz"))[0]
    with np.load(shard) as z:
        arrays = {k: z[k].copy() for k in z.files}
    if damage == "checksum":
        arrays["outputs_chunks"][len(arrays["outputs_chunks"]) // 2] ^= 0x10
    elif damage == "ends":
        arrays["outputs_ends"][0] -= 1
    else:
        arrays["codec"] = np.array("hdf5-chunk:something-else")
    with open(shard, "wb") as fh:
        np.savez(fh, **arrays)
    result = build(plan, out, workers=1, progress=False, resume=True)
    assert any(shard.name in note and "damaged" in note for note in result.notes), result.notes
    same(contents(ref), contents(out))
