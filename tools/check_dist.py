"""
Build the sdist and the wheel, and check that they ship every template, static file, migration and
compiled catalogue of the source tree (the files git tracks), plus the plugin entry points.

    python tools/check_dist.py
"""
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["pretix_integrations_core", "pretix_sortir", "pretix_helloasso_bridge", "pretix_crm_bridge"]
KINDS = ("/templates/", "/static/", "/migrations/", "/locale/")


def expected_files():
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(f for f in tracked if any(k in f for k in KINDS) and not f.endswith(".po~"))


def main():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", out, str(ROOT)],
                       check=True)
        subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", out], cwd=ROOT, check=True, capture_output=True)
        wheel = next(Path(out).glob("*.whl"))
        sdist = next(Path(out).glob("*.tar.gz"))
        wheel_names = set(zipfile.ZipFile(wheel).namelist())
        sdist_names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
        expected = expected_files()
        missing = [f"wheel: {f}" for f in expected if f not in wheel_names]
        missing += [f"sdist: {f}" for f in expected if f not in sdist_names]
        mo = [f for f in wheel_names if f.endswith(".mo")]
        if not any("/fr/" in f for f in mo):
            missing.append("wheel: no compiled French catalogue")
        entry_points = zipfile.ZipFile(wheel).read(next(n for n in wheel_names if n.endswith("entry_points.txt"))).decode()
        for pkg in PACKAGES:
            if f"{pkg} = {pkg}" not in entry_points and f"{pkg}={pkg}" not in entry_points:
                missing.append(f"entry point pretix.plugin {pkg}")
        if missing:
            raise SystemExit("distribution incomplete:\n  " + "\n  ".join(missing))
        print(f"{wheel.name} and {sdist.name}: {len(expected)} data files, {len(mo)} compiled catalogues, 4 entry points")


if __name__ == "__main__":
    main()
