"""tinyzoo: three small image classifiers in plain PyTorch, the example of a zoo of your own
(the resfam docs: "Verified cards for your own zoo")."""
