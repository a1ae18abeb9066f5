"""``python -m xai_core info BUNDLE``."""

from __future__ import annotations


def _info(args) -> int:
    from xai_core.checkpoints import describe_bundle, load_bundle

    for path in args.bundles:
        print(describe_bundle(load_bundle(path)))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="describe model bundles (architecture, layers, metrics)")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="a .safetensors bundle file")
    p.set_defaults(func=_info)
