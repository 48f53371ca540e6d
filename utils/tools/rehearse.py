"""Rehearse a profile's whole notebook sequence with random weights, anywhere.

    python -m utils.tools.rehearse --profile t4 --reduced            # any CPU, minutes
    python -m utils.tools.rehearse --profile t4 --emulate t4          # a bigger CUDA GPU under a T4's limits
    python -m utils.tools.rehearse                                    # this GPU's own profile, real size

Each solved notebook runs top to bottom in its own kernel (as on Colab), with
$LLMFLATION_RANDOM_WEIGHTS set, so every model is built from its real
architecture with random weights and nothing is downloaded. Random checkpoints
are shared between the kernels through $LLMFLATION_RANDOM_CACHE, and the
results go to a store of their own (never the learner's).

Writes ``rehearsal.md`` and ``rehearsal.jsonl`` in ``--out``: per notebook,
whether it ran, the first error (cell and message), the time, and the peak
memory: GPU memory in use as the driver reports it (nvidia-smi, CUDA context
included), or the kernel's peak resident memory on a CPU. Under emulation the
peak is compared with the emulated GPU's memory. Exit status 1 if any notebook
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path

from .. import cli
from ..models import emulate, rehearsal
from ..models.rehearsal import LABEL
from .class_notebook import LESSON

REPO = Path(__file__).resolve().parent.parent.parent


class PeakSampler:
    """Peak memory while a block runs: GPU memory used (nvidia-smi), else the RSS of this
    process's children (the notebook kernel)."""

    def __init__(self, gpu: bool, interval_s: float = 0.5):
        self.gpu, self.interval, self.peak_gb = gpu, interval_s, 0.0
        self.label, self.peaks = None, {}      # the part now running (a class's lesson), its peak
        self._stop = threading.Event()

    def note(self, gb: float) -> None:
        self.peak_gb = max(self.peak_gb, gb)
        if self.label is not None:
            self.peaks[self.label] = max(self.peaks.get(self.label, 0.0), gb)

    def sample(self) -> float:
        if self.gpu:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10)
            return float(out.stdout.split()[0]) * 2**20 / 1e9   # MiB -> GB
        import psutil
        return sum(c.memory_info().rss for c in psutil.Process().children(recursive=True)
                   if c.is_running()) / 1e9

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.note(self.sample())
            except Exception:   # noqa: BLE001 - a child that exits mid-sample
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


LAST = "07_cost_curve"      # reads every other notebook's records


def notebook_order(paths) -> list[Path]:
    """Notebooks in the order a sequence runs them: by number, the cost curve (07) last, after
    08 has recorded its step, so that it draws what the others measured in the same run; then the
    class notebook (``class_t4``: the core lessons again, in one runtime, on a store of its own)."""
    return sorted(paths, key=lambda p: (is_class(p), Path(p).stem == LAST, Path(p).name))


def is_class(path) -> bool:
    """A class notebook (``class_t4``), not one of the numbered sequence."""
    return not Path(path).stem[:1].isdigit()


def own_store(path, env: dict) -> dict:
    """``env`` for running ``path``: a class notebook records into a store of its own beside the
    sequence's, so that its lessons' runs and the sequence's never meet in one curve."""
    if not is_class(path) or "LLMFLATION_RESULTS" not in env:
        return env
    store = Path(env["LLMFLATION_RESULTS"])
    return dict(env, LLMFLATION_RESULTS=str(store.with_name(f"{Path(path).stem}_{store.name}")))


def first_error(nb) -> dict | None:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return dict(cell=i, error=f"{out.get('ename')}: {out.get('evalue')}"[:1000])
    return None


def quiet_kernel_manager():
    """A kernel manager whose kernels talk over local IPC sockets (in a temporary folder) instead of
    TCP, so no kernel prints the "running over TCP without encryption" warning at the learner; the
    kernel's real errors still reach the console."""
    import tempfile

    from jupyter_client import AsyncKernelManager
    from traitlets import default

    # The asynchronous manager, as nbclient's own default: with the blocking one, nbclient's wait for the
    # kernel's output holds the event loop, so a kernel that dies, a cell timeout or a signal is never seen
    # and the run hangs.
    class QuietKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            folder = Path(tempfile.gettempdir()) / "llmflation-kernels"
            folder.mkdir(exist_ok=True)
            return str(folder / f"kernel-{os.getpid()}")
    return QuietKernelManager


def run_notebook(path: Path, env: dict, timeout: int, gpu: bool, save: Path | None) -> dict:
    """Execute one notebook in a fresh kernel with ``env``; what happened, with its peak memory."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)          # the kernel inherits this process's environment
    start = time.perf_counter()
    error = None
    client = None
    try:
        with PeakSampler(gpu) as peak:
            def lesson(cell, **_):     # a class notebook's cells say which lesson they belong to
                peak.label = cell.metadata.get(LESSON, peak.label)
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    kernel_manager_class=quiet_kernel_manager(),
                                    resources={"metadata": {"path": str(path.parent)}}, on_cell_start=lesson)
            client.execute()
    except CellExecutionError:
        error = first_error(nb) or dict(cell=None, error="cell failed")
    except Exception as err:  # noqa: BLE001 - a dead kernel or a timeout: recorded, the run goes on
        error = dict(cell=None, error=failure(client, err), **({"interrupted": True} if interrupted(client) else {}))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / path.name)
    return dict(notebook=path.stem, ok=error is None, seconds=round(time.perf_counter() - start, 1),
                peak_gb=round(peak.peak_gb, 3), peak_source="nvidia-smi memory.used" if gpu
                else "kernel RSS (sampled)", **({"lessons": {k: round(v, 3) for k, v in peak.peaks.items()}}
                                                if peak.peaks else {}), **(error or {}))


def interrupted(client) -> bool:
    """Whether the run was stopped by a signal to this process (SIGINT, SIGTERM): nbclient then shuts
    the kernel down itself, and its second clean-up fails on an empty assertion."""
    return getattr(client, "_async_cleanup_kernel_future", None) is not None


def failure(client, err: BaseException) -> str:
    """What stopped a notebook outside its cells, in words: an interruption by name, else the error,
    or the error it replaced when its own message is empty (nbclient's empty AssertionError hides
    the DeadKernelError it was handling)."""
    if interrupted(client):
        return "interrupted: this process received SIGINT or SIGTERM, and the kernel was shut down mid-cell"
    shown = err if str(err) or err.__context__ is None else err.__context__
    return f"{type(shown).__name__}: {shown}"[:1000]


def report(rows: list[dict], meta: dict) -> str:
    limit = meta.get("memory_limit_gb")
    lines = [f"# Notebook rehearsal: profile {meta['profile']}", "",
             f"**{LABEL}.** Mode: {meta['mode']}"
             + (f"; emulated {meta['emulated']} (limits imposed, timings are the host GPU's)" if meta.get("emulated") else ""),
             "", f"- machine: {meta['hardware']}", f"- software: {meta['software']}",
             f"- date: {meta['date']}", "",
             "| notebook | ran | time s | peak GB | " + (f"of the {limit:.1f} GB limit | " if limit else "")
             + "first error |", "|---|---|---|---|" + ("---|" if limit else "") + "---|"]
    for r in rows:
        share = f"{r['peak_gb'] / limit:.0%} | " if limit else ""
        err = f"cell {r.get('cell')}: {r['error']}" if not r["ok"] else ""
        name = r["notebook"] + (f" (rerun {r['date'][:16]}, after the fix)" if r.get("rerun_after_fix") else "")
        lines.append(f"| {name} | {'yes' if r['ok'] else 'NO'} | {r['seconds']:.0f} | "
                     f"{r['peak_gb']:.2f} | {share}{err.replace('|', '/')[:300]} |")
        for lesson, gb in r.get("lessons", {}).items():
            lines.append(f"| &nbsp;&nbsp;lesson {lesson} |  |  | {gb:.2f} | "
                         + (f"{gb / limit:.0%} | " if limit else "") + " |")
    lines += ["", f"Peak memory: {rows[0]['peak_source'] if rows else ''}."]
    return "\n".join(lines) + "\n"


@cli.command
def main(argv=None) -> int:
    """Run the rehearsal; this process's environment is left as it was found."""
    saved = dict(os.environ)
    try:
        return _main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _main(argv=None) -> int:
    from datetime import datetime, timezone

    from ..models.hardware import detect_hardware
    from ..models.profiles import load_profile
    from ..results import software_versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="default: this machine's profile")
    parser.add_argument("--reduced", action="store_true", help="shrunk architectures (for a CPU)")
    parser.add_argument("--emulate", choices=sorted(emulate.TARGETS), help="impose this GPU's limits")
    parser.add_argument("--notebooks", nargs="*", help="stems or prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--folder", default=str(REPO / "solutions"))
    parser.add_argument("--out", default=str(REPO / "results" / "rehearsal"))
    parser.add_argument("--cache", help="random checkpoints (default: OUT/random-checkpoints)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--save-notebooks", action="store_true", help="keep the executed notebooks")
    parser.add_argument("--short", action="store_true",
                        help="fewer tokens and repeats (models, prompts and batch sizes unchanged)")
    args = parser.parse_args(argv)

    mode = "reduced" if args.reduced else "1"
    env = {rehearsal.ENV: mode, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    if args.emulate:
        env[emulate.ENV] = args.emulate
    if args.short:
        env[rehearsal.ENV_SHORT] = "1"
    os.environ.update({k: v for k, v in env.items() if k.startswith("LLMFLATION_")})
    hw = detect_hardware()
    profile = load_profile(args.profile, hw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env.update({"LLMFLATION_PROFILE": profile.name,
                "LLMFLATION_RESULTS": str(out / "rehearsal_results.jsonl"),
                "LLMFLATION_RANDOM_CACHE": args.cache or str(out / "random-checkpoints")})
    gpu = hw.device == "cuda"
    meta = dict(profile=profile.name, mode=("reduced architectures" if args.reduced else "real size")
                + (f", short runs ({profile.new_tokens} new tokens, {profile.repeats} repeats)" if args.short else ""),
                emulated=hw.emulated, hardware=hw.summary(),
                software=", ".join(f"{k} {v}" for k, v in software_versions().items() if v),
                date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                memory_limit_gb=hw.vram_gb if hw.emulated else None)
    print(f"{LABEL.upper()}\nprofile {profile.name}; {meta['mode']}; {hw.summary()}", flush=True)
    paths = notebook_order(Path(args.folder).glob("*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in args.notebooks)]
    rows = []
    for path in paths:
        row = run_notebook(path, own_store(path, env), args.timeout, gpu,
                           out / "executed" if args.save_notebooks else None)
        rows.append(row)
        print(f"{row['notebook']}: {'ok' if row['ok'] else 'FAILED ' + row.get('error', '')[:200]} "
              f"({row['seconds']:.0f}s, peak {row['peak_gb']:.2f} GB)", flush=True)
        with open(out / "rehearsal.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(row, **meta)) + "\n")
        (out / "rehearsal.md").write_text(report(rows, meta), encoding="utf-8")
        if row.get("interrupted"):           # stopped on purpose: the rest of the sequence is not run
            print(f"interrupted: the notebooks after {row['notebook']} were not run", flush=True)
            return 130
    print(f"report: {out / 'rehearsal.md'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
