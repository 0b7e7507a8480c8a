"""`harness label-maps`: list the shipped label maps, or show how one maps to benchmark organs."""

from __future__ import annotations

import argparse

from harness.cli.flags import add_output_flags, say


def register(subparsers: argparse._SubParsersAction) -> None:
    maps = subparsers.add_parser("label-maps", help="list shipped label maps, or show how one maps to benchmark organs")
    maps.add_argument("name", nargs="?", help="a shipped name, JSON file or inline JSON")
    add_output_flags(maps, quiet_help="print the mapping without its notes")
    maps.set_defaults(func=cmd_label_maps)


def cmd_label_maps(args: argparse.Namespace) -> int:
    from harness.labelmap import build_mapping, resolve_label_map, shipped_label_map_names
    from harness.taxonomy import load_taxonomy

    if not args.name:
        for name in shipped_label_map_names():
            print(name)
        return 0
    mapping = build_mapping(resolve_label_map(args.name))
    names = {o.id: o.name for o in load_taxonomy().organs}
    for native, benchmark in sorted(mapping.native_to_benchmark.items()):
        print(f"{native:>4} {mapping.label_map.labels[native]:<28} -> {benchmark:>2} {names[benchmark]}")
    for note in mapping.notes():
        say(args, note)
    return 0
