"""``cellviewer versions``: the model store's versions (fine-tuned, gate-accepted models); activate or roll back.

::

    cellviewer versions                      every stored model and its versions (● = active)
    cellviewer versions NAME                 the versions of NAME with their parent and gate score
    cellviewer versions NAME --activate V    make version V the one ``--model NAME`` and the GUI load
    cellviewer versions NAME --rollback      re-activate the version active before the current one
    cellviewer versions NAME --shipped       no stored version active: the shipped model is used again

The store lives in ``$CELLVIEWER_HOME/models`` (default ``~/.local/share/cellviewer/models``);
``--store DIR`` points elsewhere (a lab's shared store).
"""

from __future__ import annotations

EPILOG = "exit codes: 0 done; 2 usage error; 5 cannot write the store; 6 unknown model or version"


def add_parser(sub) -> None:
    import argparse

    p = sub.add_parser("versions", help="list stored model versions; activate one or roll back",
                       description=__doc__.split("\n")[0].split(": ", 1)[1],
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="a model name (default: list every stored model)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--activate", type=_version, metavar="V", help="make version V active (6 or v6, as listed)")
    g.add_argument("--rollback", action="store_true", help="re-activate the previously active version")
    g.add_argument("--shipped", action="store_true", help="deactivate every stored version (use the shipped model)")
    p.add_argument("--store", metavar="DIR", help="the model store folder (default $CELLVIEWER_HOME/models)")
    p.set_defaults(func=handler)


def _version(text: str) -> int:
    """An argparse type: a version number as listed (``v6``) or bare (``6``)."""
    import argparse

    t = text.strip()
    t = t[1:] if t[:1] in ("v", "V") else t
    if not t.isdigit():
        raise argparse.ArgumentTypeError(f"expected a version number such as 6 or v6, got '{text}'")
    return int(t)


def _line(mv) -> str:
    card = mv.card or {}
    parent = card.get("parent") or {}
    gate = card.get("gate") or {}
    bits = [f"{'●' if mv.active else ' '} {mv.name} v{mv.version}"]
    if mv.problem:  # listed, never left out: it may be the active one
        return "  ".join(bits + [f"⚠ card {mv.problem}: {mv.stem.with_suffix('.json')}"])
    if parent.get("model"):
        bits.append(f"from {parent['model']}" + (f" v{parent['version']}" if parent.get("version") else ""))
    if card.get("stored_at"):
        bits.append(f"stored {card['stored_at']}")
    if isinstance(gate, dict) and "accepted" in gate:
        bits.append("gate: " + ("accepted" if gate["accepted"] else "refused (accepted anyway)"))
    return "  ".join(bits)


def _check_known(name: str, store) -> None:
    """Raise :class:`ModelLoadError` (exit 6) when ``name`` is neither a shipped model nor one in ``store``."""
    from cellviewer.core.errors import ModelLoadError
    from cellviewer.core.modelfind import model_cards

    known = set(store.names())
    for p, card in model_cards():
        if "architecture" in card:
            known |= {p.stem, str(card.get("name") or p.stem)}
    if name not in known:
        raise ModelLoadError(f"No model named '{name}'.", hint=f"known models: {', '.join(sorted(known))}")


def handler(args) -> int:
    from cellviewer.cli import UsageError
    from cellviewer.core.modelstore import ModelStore

    store = ModelStore(args.store)
    acting = args.activate is not None or args.rollback or args.shipped
    if acting and not args.name:
        raise UsageError("Say which model: cellviewer versions NAME --activate V | --rollback | --shipped.")
    if args.activate is not None:
        mv = store.activate(args.name, args.activate)
        print(f"{args.name}: version {mv.version} is active")
        return 0
    if args.rollback:
        mv = store.rollback(args.name)
        print(f"{args.name}: " + (f"version {mv.version} is active" if mv else "the shipped model is used again"))
        return 0
    if args.shipped:
        if store.deactivate(args.name):
            print(f"{args.name}: the shipped model is used again")
        else:  # nothing stored: already the case
            print(f"{args.name}: no stored version in {store.root}; the shipped model is used already")
        return 0
    names = [args.name] if args.name else store.names()
    if args.name and not store.versions(args.name):
        _check_known(args.name, store)
    if not names or not any(store.versions(n) for n in names):
        print(f"no stored model versions in {store.root}" + (f" for '{args.name}'" if args.name else ""))
        return 0
    for n in names:
        for mv in store.versions(n):
            print(_line(mv))
    _warn_unusable(store, names)
    return 0


def _warn_unusable(store, names) -> None:
    """One ``warning:`` line on stderr per listed model whose active version cannot be used (an unreadable
    ``store.json`` or card): what the message of ``--model NAME`` would be, with what to do."""
    import sys

    from cellviewer.core.modelstore import ModelFileError

    for n in names:
        try:
            store.active(n)
        except ModelFileError as e:
            print(f"warning: {e}", file=sys.stderr)
