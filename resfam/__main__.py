"""`python -m resfam [PATTERN]`: list the model zoo with each model's default config."""
import sys

from . import get_model_entry, list_models


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pattern = argv[0] if argv else "*"
    names = list_models(pattern)
    print(f"{'model':22} {'family':9} {'size':>4} {'crop':>5}  interpolation")
    for name in names:
        entry = get_model_entry(name)
        cfg = entry.config
        print(f"{name:22} {entry.family:9} {cfg.image_size:>4} {cfg.crop_pct:>5}  {cfg.interpolation}")
    print(f"{len(names)} models")
    return 0 if names else 1


if __name__ == "__main__":
    sys.exit(main())
