"""Entry point of the PyInstaller bundle: the same ``cellviewer`` command as the installed package.

``cellviewer --run-module MODULE ARGS`` runs a cellviewer module as ``python -m MODULE ARGS`` would (the
bench's GUI and batch children, the kill-cycle test: :func:`cellviewer.core.resources.module_command`).
"""
import multiprocessing
import runpy
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # training's data loader workers re-enter the executable
    from cellviewer.core.resources import RUN_MODULE_FLAG

    if len(sys.argv) > 2 and sys.argv[1] == RUN_MODULE_FLAG and sys.argv[2].startswith("cellviewer."):
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        sys.exit(0)
    from cellviewer.cli import main

    sys.exit(main())
