"""Entry point of the PyInstaller bundle: the same ``cellviewer`` command as the installed package."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # training's data loader workers re-enter the executable
    from cellviewer.cli import main

    sys.exit(main())
