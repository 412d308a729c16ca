"""CLI sub-commands that live in their own module (see ``cellviewer.cli.COMMAND_MODULES``).

Each module defines ``add_parser(subparsers)`` and keeps heavy imports (torch, Qt) inside
its handler, so ``cellviewer --help`` stays fast.
"""
