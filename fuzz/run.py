"""Run each harness for a bounded time and print a summary: `make fuzz` (FUZZ_SECONDS each).

For each harness, its seeds are written to build/fuzz/<name>/seeds (from the test corpus;
the harness checks each first), and libFuzzer runs it with build/fuzz/<name>/corpus as its
growing corpus (kept between runs), -max_total_time, and -timeout so that one input that
hangs is reported as a failure. A failing input is written to build/fuzz/<name>/ as
crash-* or timeout-*. The summary has libFuzzer's last line for each harness
(`#runs DONE cov: edges ft: features`), or how it failed; the exit status is 1 if any did.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / "build" / "fuzz"
HARNESSES = ("http11", "chunked", "forwarded", "proxy_protocol")
DONE = re.compile(r"^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\S+)", re.MULTILINE)
FAILURE = re.compile(r"^(?:==\d+== )?ERROR: libFuzzer: .*$|^SUMMARY: libFuzzer: .*$", re.MULTILINE)


def fuzz(name: str, seconds: int) -> tuple[bool, str]:
    folder = BUILD / name
    seeds, corpus = folder / "seeds", folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    harness = [sys.executable, str(HERE / f"fuzz_{name}.py")]
    made = subprocess.run([*harness, "--seeds", str(seeds)], capture_output=True, text=True)
    if made.returncode:
        return False, "a seed input fails the harness:\n" + made.stderr[-2000:]
    args = [f"-max_total_time={seconds}", "-timeout=10", f"-artifact_prefix={folder}/"]
    ran = subprocess.run([*harness, str(corpus), str(seeds), *args], capture_output=True, text=True)
    (folder / "last-run.log").write_text(ran.stderr)
    done = DONE.search(ran.stderr)
    if ran.returncode == 0 and done is not None:
        runs, cov, ft, corp = done.groups()
        return True, f"{int(runs):>9} runs  cov: {cov:>4}  ft: {ft:>5}  corpus: {corp}"
    failure = "\n".join(FAILURE.findall(ran.stderr)) or f"exit status {ran.returncode}"
    return False, f"{failure}\n(see {folder}/last-run.log)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="per harness")
    parser.add_argument("harness", nargs="*", help=f"some of {', '.join(HARNESSES)} (all)")
    options = parser.parse_args()
    unknown = set(options.harness) - set(HARNESSES)
    if unknown:
        parser.error(f"no harness {', '.join(sorted(unknown))}; there are {', '.join(HARNESSES)}")
    results = []
    for name in options.harness or HARNESSES:
        print(f"fuzzing {name} for {options.seconds} s ...", flush=True)
        results.append((name, *fuzz(name, options.seconds)))
    print("\nfuzz summary (libFuzzer: runs, Python edges covered, features, corpus):")
    for name, ok, line in results:
        print(f"  {name:<15} {'ok  ' if ok else 'FAIL'} {line}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
