"""Write FSDD manifests for both evaluation protocols.

    python recipes/fsdd/prepare.py [--root ../shared/data/fsdd] [--out runs/fsdd]

* ``OUT/official/{train,val,test}.jsonl``: the dataset's own split (recordings 0-4 of every
  speaker and digit are the test set); validation = recordings 5-9, training = 10-49.
* ``OUT/speaker/{train,val,test}.jsonl``: speaker-held-out; the test speakers' recordings are the
  test set (default ``theo``); validation = recordings 0-4 of the other speakers.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
from pathlib import Path

from speechconv.data.manifest import write_manifest
from speechconv.data.readers import FSDD_DEFAULT_TEST_SPEAKERS, read_fsdd

INDEX = re.compile(r"_(\d+)$")


def recording_index(path: str) -> int:
    return int(INDEX.search(Path(path).stem).group(1))


def split_entries(root: str, protocol: str, test_speakers: tuple[str, ...]) -> dict[str, list]:
    entries = [dataclasses.replace(e, path=os.path.abspath(e.path))
               for e in read_fsdd(root, protocol, test_speakers)]
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for entry in entries:
        index = recording_index(entry.path)
        if entry.split == "test":
            part = "test"
        elif protocol == "official":
            part = "val" if index < 10 else "train"
        else:
            part = "val" if index < 5 else "train"
        parts[part].append(dataclasses.replace(entry, split=part))
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/fsdd", help="FSDD folder (with recordings/)")
    parser.add_argument("--out", default="runs/fsdd", help="output folder for the manifests")
    parser.add_argument("--test-speakers", nargs="+", default=list(FSDD_DEFAULT_TEST_SPEAKERS))
    args = parser.parse_args(argv)
    for protocol in ("official", "speaker"):
        parts = split_entries(args.root, protocol, tuple(args.test_speakers))
        for name, entries in parts.items():
            path = write_manifest(Path(args.out) / protocol / f"{name}.jsonl", entries)
            speakers = collections.Counter(e.speaker for e in entries)
            print(f"{path}: {len(entries)} clips, speakers {dict(sorted(speakers.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
