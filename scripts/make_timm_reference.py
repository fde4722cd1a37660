"""Regenerate tests/fixtures/timm-reference.json from timm: for maintainers who have timm installed.

    bash scripts/install.sh timm                                    # once: .venv-timm, with timm and resfam
    .venv-timm/bin/python scripts/make_timm_reference.py           # every registered model ID
    .venv-timm/bin/python scripts/make_timm_reference.py wide_resnet50_2 [ID ...]   # add or update these only

For each ID, timm's model of that name (no pretrained weights) gets the deterministic weight fill of
tests/fixtures/reference_fill.py; the file records its parameter count, its state_dict layout (key,
shape, dtype, in order) and its logits on the seeded input, which tests/test_zoo.py compares resfam's
model with. The family is resfam's (timm has none). Named IDs are merged into the existing file, which
must then have been made with the same timm version (otherwise regenerate every ID). The file is
replaced whole, or not at all.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "fixtures" / "timm-reference.json"
FILL = ROOT / "tests" / "fixtures" / "reference_fill.py"
SEED = 0
INPUT = [1, 3, 224, 224]


def fail(message: str) -> None:
    print(f"make_timm_reference.py: {message}", file=sys.stderr)
    sys.exit(2)


def deterministic_fill():
    spec = importlib.util.spec_from_file_location("reference_fill", FILL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.deterministic_fill


def reference_entry(timm, torch, name: str, family: str, fill) -> dict:
    try:
        model = timm.create_model(name, pretrained=False).eval()
    except Exception as error:  # noqa: BLE001 - timm's error for a name it lacks varies by version
        fail(f"timm cannot build {name!r} ({type(error).__name__}: {error}); a model timm does not have "
             "cannot have a reference: leave it out (see docs/adding-a-model.md)")
    fill(model, SEED)
    x = torch.randn(*INPUT, generator=torch.Generator().manual_seed(SEED + 1))
    with torch.no_grad():
        logits = model(x)[0].double()
    return {
        "family": family,
        "params": sum(p.numel() for p in model.parameters()),
        "logits_first16": [round(float(v), 6) for v in logits[:16]],
        "logits_sum": round(float(logits.sum()), 5),
        "logits_norm": round(float(logits.norm()), 5),
        "argmax": [int(logits.argmax())],
        "state_dict": [[key, list(t.shape), str(t.dtype).removeprefix("torch.")]
                       for key, t in model.state_dict().items()],
    }


def write_whole(path: Path, text: str) -> None:
    """Write `path` through a temporary file in its folder and one rename: never half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", metavar="ID",
                        help="model IDs to add or update (default: every registered ID)")
    parser.add_argument("--output", type=Path, default=REFERENCE,
                        help=f"the file (default: {REFERENCE.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    try:
        import timm  # only here: resfam does not depend on timm
    except ImportError:
        fail("timm is not installed. This script is for maintainers who regenerate the reference: "
             "run bash scripts/install.sh timm, then this script with .venv-timm/bin/python (docs/adding-a-model.md).")
    import torch

    import resfam

    unknown = [name for name in args.ids if not resfam.is_model(name)]
    if unknown:
        fail(f"not registered in resfam: {', '.join(unknown)}; register the model first (docs/adding-a-model.md)")
    names = args.ids or resfam.list_models()
    reference = {"timm": timm.__version__, "torch": torch.__version__, "seed": SEED, "input": INPUT, "models": {}}
    if args.ids and args.output.exists():
        existing = json.loads(args.output.read_text(encoding="utf-8"))
        if existing.get("timm") != timm.__version__ or existing.get("seed") != SEED or existing.get("input") != INPUT:
            fail(f"{args.output} was made with timm {existing.get('timm')}, this is timm {timm.__version__}: "
                 "regenerate every ID (run without IDs), or install that timm version")
        reference = dict(existing, torch=torch.__version__)  # the versions of the newest entries

    fill = deterministic_fill()
    for name in names:
        reference["models"][name] = reference_entry(timm, torch, name, resfam.get_model_entry(name).family, fill)
        print(f"{name}: {reference['models'][name]['params']:,} parameters", file=sys.stderr)
    reference["models"] = dict(sorted(reference["models"].items()))
    write_whole(args.output, json.dumps(reference, indent=1))
    print(f"wrote {args.output}: {len(names)} model(s) from timm {timm.__version__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
