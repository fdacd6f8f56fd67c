"""Everything that knows about image files and folders: scan, split, cache, load, augment.

Submodules are imported where they are used (``from cnnlab.data.scan import scan_dataset``);
this package imports nothing heavy so the CLI stays fast.
"""
