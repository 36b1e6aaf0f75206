"""Rebuild topologies/calibration/h200-sxm.toml: the fit of its raw record, with the tables not measured there.

``wideep calibrate --from-raw`` writes what the H200 measured (memory, GEMM shapes, the fused MoE kernel); the
shipped file also holds tables read from NVIDIA AIConfigurator ([attention], [attention_gqa], the mxfp4
[[grouped_gemm]] curves, their stamp keys and the comment lines naming them). This refits the record and lays
those over it, from the current file. Run from the repository root: python tools/compose_h200_calibration.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FILE = Path("topologies/calibration/h200-sxm.toml")
RAW = "topologies/calibration/raw/h200-sxm-2026-12-02.json"
CARRIED = ("attention", "attention_gqa")  # tables carried over whole
GPU_LINE = 'gpu = "h200-sxm"'


def table(text: str, name: str) -> str:
    start = text.index(f"\n[{name}]\n") + 1
    return text[start:text.index("\n\n", start)]


def main() -> None:
    current = FILE.read_text()
    fitted = subprocess.run([sys.executable, "-m", "wideep", "calibrate", "--gpu", "h200-sxm", "--model",
                             "deepseek-v3", "--from-raw", RAW, "--out", "/dev/stdout"],
                            capture_output=True, text=True, check=True).stdout
    fitted = fitted[:fitted.rindex("\nwrote ")] + "\n" if "\nwrote " in fitted else fitted
    fitted = fitted.replace("--out /dev/stdout", f"--out {FILE}")
    head_cur, body_cur = current.split(GPU_LINE, 1)
    head_new, body = fitted.split(GPU_LINE, 1)
    manual = [line for line in head_cur.splitlines() if line not in head_new.splitlines()
              and not line.startswith("# Measured on") and not line.startswith("# Routed experts ([[grouped_gemm]])")
              and not line.startswith("# GEMM shapes")]
    stamp_new = table("\n" + body, "stamp").splitlines()
    extra = [line for line in table(body_cur, "stamp").splitlines() if line not in stamp_new
             and line.split(" = ")[0] not in {s.split(" = ")[0] for s in stamp_new}]
    body = body.replace("\n".join(stamp_new), "\n".join(stamp_new + extra), 1)
    after_flops = body.index("\n\n", body.index("\n[flops]\n") + 1)
    body = body[:after_flops] + "".join("\n\n" + table(body_cur, t) for t in CARRIED) + body[after_flops:]
    mxfp4 = ["[[grouped_gemm]]\n" + e.rstrip("\n") for e in body_cur.split("\n[[grouped_gemm]]\n")[1:]
             if 'dtype = "mxfp4"' in e]
    body = body.rstrip("\n") + "".join("\n\n" + e for e in mxfp4) + "\n"
    FILE.write_text(head_new + "\n".join(manual) + "\n" + GPU_LINE + body)
    print(f"wrote {FILE}: {len(mxfp4)} mxfp4 curves and {', '.join(CARRIED)} carried over")


if __name__ == "__main__":
    main()
