"""Model definitions; importing this package registers every model ID."""
from . import res2net, resnest, resnet  # noqa: F401
