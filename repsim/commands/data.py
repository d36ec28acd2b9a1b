"""``repsim data``: fetch and check the few-shot datasets.

``repsim data download [--data-dir DIR]`` fetches the official Omniglot zips and verifies
their contents; ``repsim data info [--data-dir DIR]`` decodes (or loads the cache) and prints
counts, verification and split sizes.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data",
        help="download Omniglot, check it and show its splits",
        description=__doc__.split("\n\n")[1],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("download", "fetch images_background.zip and images_evaluation.zip and verify them"),
        ("info", "decode (or load the cached) dataset; print counts, digests and split sizes"),
    ):
        p = actions.add_parser(
            name, help=text, description=text, parents=[_options.shared_options()]
        )
        p.add_argument(
            "--cache-dir",
            default=None,
            help="decoded cache (default: $REPSIM_CACHE or ~/.cache/repsim)",
        )
        if name == "download":
            p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        p.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.action == "download":
        return _download(args)
    return _info(args)


def _download(args: argparse.Namespace) -> int:
    import os
    import urllib.error
    import urllib.request

    from repsim.data import omniglot as og
    from repsim.data.locations import data_root
    from repsim.errors import DataNotFoundError

    folder, how = data_root("omniglot", args.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Omniglot folder: {folder} (from {how})")
    for name in og.SETS:
        target = folder / f"{name}.zip"
        if target.is_file():
            print(f"{target.name}: already there, verifying")
        else:
            url = og.DOWNLOAD_URL.format(name=name)
            part = target.with_name(target.name + ".part")
            print(f"{target.name}: downloading {url}")
            try:
                with (
                    urllib.request.urlopen(url, timeout=args.timeout) as resp,
                    open(part, "wb") as fh,
                ):
                    while chunk := resp.read(1 << 20):
                        fh.write(chunk)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                part.unlink(missing_ok=True)
                raise DataNotFoundError(
                    f"could not download {url} ({exc}). Without internet access, fetch the file "
                    f"elsewhere and put it at {target} (or pass --data-dir / set REPSIM_DATA to "
                    "the folder that holds it)"
                ) from exc
            os.replace(part, target)
        src = og._source_for(folder, name)
        digest = og.verify_source(src)
        expected = og.EXPECTED[name][2]
        if digest == expected:
            print(f"{target.name}: {len(src.members):,} images, members digest OK ({digest[:16]})")
        else:
            print(
                f"{target.name}: WARNING: members digest {digest[:16]} differs from the official "
                f"{expected[:16]}; the images are not the published Omniglot release"
            )
    print(f"Done. Use it with --data-dir {folder} or REPSIM_DATA={folder}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from repsim.data import load_probe_classes
    from repsim.data import omniglot as og

    built, prov = og.load_all(args.data_dir, args.cache_dir)
    names = built["class_names"]
    print("Omniglot (Lake et al., 2015), MIT licence")
    for s, path in prov["source"].items():
        n = [c for c in names if c.startswith(s + "/")]
        alphabets = {c.split("/")[1] for c in n}
        print(f"  {s}: {len(alphabets)} alphabets, {len(n)} characters x 20 drawings  ({path})")
    print(f"  total: {len({c.split('/')[1] for c in names})} alphabets, {len(names)} characters")
    state = "match the official release" if prov["verified"] else "DIFFER from the official"
    print(f"  content: members digests {state}; source digest {prov['source_digest'][:16]}")
    built_in = prov.get("cache_build_seconds")
    how = f"built now in {built_in:.1f} s" if built_in is not None else "loaded"
    print(f"  cache: {prov['cache_file']} ({how}); images uint8 [1623, 20, 28, 28]")
    print(f"  preprocessing: {prov['preprocessing']}")
    print("splits (characters; rotations=True gives 4x as many classes):")
    for split, parts in og.SPLITS.items():
        sizes = ", ".join(f"{p} {len(og.split_indices(names, split, p))}" for p in parts)
        print(f"  {split:10s} {sizes}")
    probe = load_probe_classes()
    print(f"probe set (no data needed): {probe.meta['probe_file']}: {probe.meta['subset']}")
    return 0
