"""SCons as SCons users expect it: a misspelt variable is an error naming its nearest match (never a default
build), cache=DIR is a real CacheDir shared between build folders, and `scons -c` removes the model's outputs but not the runtime objects other
models share (unless clean_shared=yes)."""

from __future__ import annotations

import json

from conftest import ROOT, scons

TINY = ROOT / "tests/models/tiny_passes.yaml"


def test_misspelt_variable_is_an_error_naming_the_nearest_one(tmp_path):
    proc = scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path}", "wieghts=w.npz", check=False)
    assert proc.returncode != 0
    assert "scons: error: unknown variable wieghts=; did you mean weights=?" in proc.stderr
    proc = scons("target=armv7", f"modle={TINY}", f"build_dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "did you mean model=?" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing built, not even the default model


def test_clean_keeps_shared_objects_and_cache_restores_them(tmp_path):
    build_dir, cache = tmp_path / "build", tmp_path / "cache"
    args = ["target=armv7", f"model={TINY}", f"build_dir={build_dir}", f"cache={cache}"]
    scons(*args)
    binary = build_dir / "armv7/tiny_passes/tiny_passes"
    runtime = sorted((build_dir / "armv7/runtime").glob("*.o"))
    assert binary.is_file() and runtime and any(cache.iterdir())

    scons("-c", *args)
    assert not binary.exists() and not (binary.parent / "tiny_passes.weights").exists()
    assert all(o.is_file() for o in runtime)  # other models link these

    scons("-c", "clean_shared=yes", *args)
    assert not any(o.exists() for o in runtime)
    rebuilt = scons(*args).stdout
    assert "Retrieved" in rebuilt and "from cache" in rebuilt and binary.is_file()
    assert all(o.is_file() for o in runtime)

    # another build folder takes everything from the cache; a copy of the model elsewhere is compiled again, so
    # that its manifest names the copy
    elsewhere = scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path / 'other'}", f"cache={cache}").stdout
    assert "arm-linux-gnueabihf-g++" not in elsewhere and elsewhere.count("from cache") >= len(runtime) + 3
    copy = tmp_path / "copy" / TINY.name
    copy.parent.mkdir()
    copy.write_text(TINY.read_text())
    built = scons("target=armv7", f"model={copy}", f"build_dir={tmp_path / 'third'}", f"cache={cache}").stdout
    assert f"compile {copy}" in built and f"runtime/engine.o' from cache" in built
    manifest = json.loads((tmp_path / "third/armv7/tiny_passes/tiny_passes.json").read_text())
    assert manifest["source"] == str(copy)
