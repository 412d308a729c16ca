"""PyInstaller runtime hook of the "cpu" bundle: hide GPUs from torch.

The cpu bundle leaves out the CUDA libraries torch loads lazily (cuDNN's engines,
cuSOLVER ...), so a GPU would be found but could not run a network. With no visible
CUDA device, ``--device auto`` picks the CPU. Set CELLVIEWER_ALLOW_CUDA=1 to skip this.
"""
import os

if os.environ.get("CELLVIEWER_ALLOW_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
