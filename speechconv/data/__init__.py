"""Data: manifests, dataset readers, synthetic keyword corpora and evaluation streams."""

from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest

__all__ = ["ManifestEntry", "read_manifest", "write_manifest"]
